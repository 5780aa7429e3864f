//! QMP against a real QEMU.

use std::time::Duration;

use super::*;
use crate::compute::qemu::test_vm::{TestVm, create_disks, guest_write};

#[tokio::test]
async fn negotiates_and_answers_commands() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 2, 1 << 20);
    let vm = TestVm::start(dir.path(), &disks);
    let qmp = vm.qmp().await;
    let status = qmp.query_status().await.unwrap();
    assert_eq!(status.status, "prelaunch");
    assert!(!status.running);
    let nodes = qmp.block_nodes().await.unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n.node_name.as_str()).collect();
    assert!(
        names.contains(&"disk-0") && names.contains(&"disk-1"),
        "{names:?}"
    );
    assert_eq!(
        nodes.iter().find(|n| n.node_name == "disk-1").unwrap().drv,
        "qcow2"
    );
}

#[tokio::test]
async fn a_transaction_adds_bitmaps_that_see_writes() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 2, 1 << 20);
    let vm = TestVm::start(dir.path(), &disks);
    let qmp = vm.qmp().await;
    let add = |node: &str| Action::BlockDirtyBitmapAdd {
        node: node.into(),
        name: "cp".into(),
        granularity: Some(65536),
        persistent: true,
        disabled: false,
    };
    qmp.transaction(&[add("disk-0"), add("disk-1")])
        .await
        .unwrap();
    guest_write(&qmp, 1, 0xab, 65536, 4096).await;
    let nodes = qmp.block_nodes().await.unwrap();
    let bitmap = |node: &str| {
        nodes
            .iter()
            .find(|n| n.node_name == node)
            .unwrap()
            .dirty_bitmaps[0]
            .clone()
    };
    assert_eq!(bitmap("disk-0").count, 0);
    assert_eq!(bitmap("disk-1").count, 65536);
    assert!(bitmap("disk-1").recording && bitmap("disk-1").persistent);
}

#[tokio::test]
async fn a_refused_command_names_the_vm_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 1, 1 << 20);
    let vm = TestVm::start(dir.path(), &disks);
    let qmp = vm.qmp().await;
    let err = qmp.bitmap_remove("disk-0", "nope").await.unwrap_err();
    assert!(matches!(err, QmpError::Command { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("test-vm") && text.contains("nope"), "{text}");
}

#[tokio::test]
async fn a_socket_that_does_not_answer_times_out_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    // Accepts and never greets, as a hung QEMU would.
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let _held = tokio::spawn(async move {
        let _conn = listener.accept().await;
        std::future::pending::<()>().await;
    });
    let err = Qmp::connect_with_timeout("vm-7", &path, Duration::from_millis(200))
        .await
        .err()
        .expect("no greeting, no session");
    assert!(matches!(err, QmpError::Timeout { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("vm-7") && text.contains("qmp.sock"), "{text}");
}

#[tokio::test]
async fn quit_saves_persistent_bitmaps_and_the_session_sees_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 1, 1 << 20);
    let mut vm = TestVm::start(dir.path(), &disks);
    let qmp = vm.qmp().await;
    let mut events = qmp.subscribe();
    qmp.bitmap_add("disk-0", "kept", true, false).await.unwrap();
    guest_write(&qmp, 0, 0x01, 0, 512).await;
    qmp.quit().await.unwrap();
    vm.wait_exit();
    qmp.wait_event(&mut events, "SHUTDOWN", Duration::from_secs(10), |e| {
        e.event == "SHUTDOWN"
    })
    .await
    .unwrap();
    let err = qmp.query_status().await.unwrap_err();
    assert!(matches!(err, QmpError::Closed { .. }), "{err:?}");
    assert!(qmp.is_closed());

    let vm = TestVm::start(dir.path(), &disks);
    let qmp = vm.qmp().await;
    let nodes = qmp.block_nodes().await.unwrap();
    let disk = nodes.iter().find(|n| n.node_name == "disk-0").unwrap();
    assert_eq!(disk.dirty_bitmaps.len(), 1);
    assert_eq!(disk.dirty_bitmaps[0].name, "kept");
    assert_eq!(disk.dirty_bitmaps[0].count, 65536);
}
