//! The NBD client against a real QEMU export.

use super::*;
use crate::compute::qemu::test_vm::{TestVm, create_disks, guest_write};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_data_and_holes_and_the_dirty_extents_of_a_bitmap() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 1, 4 * MIB);
    let vm = TestVm::start(dir.path(), &disks);
    let qmp = vm.qmp().await;
    guest_write(&qmp, 0, 0x11, 0, 4096).await;
    qmp.bitmap_add("disk-0", "b", false, false).await.unwrap();
    guest_write(&qmp, 0, 0xab, 65536, 4096).await;
    guest_write(&qmp, 0, 0xcd, 2 * MIB, 2 * 65536).await;
    qmp.execute_raw(
        "block-dirty-bitmap-disable",
        Some(serde_json::json!({"node": "disk-0", "name": "b"})),
    )
    .await
    .unwrap();
    let socket = dir.path().join("nbd.sock");
    qmp.nbd_server_start(&socket).await.unwrap();
    qmp.block_export_add("e0", "disk-0", "disk-0", &["b"])
        .await
        .unwrap();

    let (extents, head, written, hole) = tokio::task::spawn_blocking(move || {
        let mut nbd = NbdClient::connect(&socket, "disk-0", &["qemu:dirty-bitmap:b"]).unwrap();
        assert_eq!(nbd.size(), 4 * MIB);
        let extents = nbd.block_status("qemu:dirty-bitmap:b").unwrap();
        let mut head = vec![0; 4096];
        nbd.read(0, &mut head).unwrap();
        let mut written = vec![0; 65536];
        nbd.read(65536, &mut written).unwrap();
        let mut hole = vec![7; 65536];
        nbd.read(3 * MIB, &mut hole).unwrap();
        nbd.disconnect().unwrap();
        (extents, head, written, hole)
    })
    .await
    .unwrap();
    let dirty: Vec<_> = extents
        .iter()
        .filter(|e| e.flags & 1 == 1)
        .map(|e| (e.offset, e.length))
        .collect();
    assert_eq!(dirty, [(65536, 65536), (2 * MIB, 2 * 65536)]);
    assert_eq!(extents.iter().map(|e| e.length).sum::<u64>(), 4 * MIB);
    assert!(head.iter().all(|&b| b == 0x11));
    assert!(written[..4096].iter().all(|&b| b == 0xab));
    assert!(written[4096..].iter().all(|&b| b == 0));
    assert!(hole.iter().all(|&b| b == 0));
    qmp.block_export_del("e0").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_export_or_context_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 1, MIB);
    let vm = TestVm::start(dir.path(), &disks);
    let qmp = vm.qmp().await;
    let socket = dir.path().join("nbd.sock");
    qmp.nbd_server_start(&socket).await.unwrap();
    qmp.block_export_add("e0", "disk-0", "disk-0", &[])
        .await
        .unwrap();
    let (missing, no_context) = tokio::task::spawn_blocking(move || {
        let missing = NbdClient::connect(&socket, "nope", &[]).err().unwrap();
        let no_context = NbdClient::connect(&socket, "disk-0", &["qemu:dirty-bitmap:x"])
            .err()
            .unwrap();
        (missing, no_context)
    })
    .await
    .unwrap();
    assert!(matches!(missing, NbdError::Server { .. }), "{missing:?}");
    assert!(missing.to_string().contains("nbd.sock"), "{missing}");
    assert!(
        no_context.to_string().contains("qemu:dirty-bitmap:x"),
        "{no_context}"
    );
}
