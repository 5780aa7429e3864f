//! QEMU change tracking against a real QEMU: exact points, deltas of only
//! the changed blocks, failed cycles folded back, bitmaps lost in a crash.

use std::sync::Arc;

use super::*;
use crate::compute::qemu::test_vm::{TestVm, create_disks, guest_write};

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 65536;

fn geometries(count: usize) -> Vec<Geometry> {
    vec![Geometry::new(4 * MIB, BLOCK as u32); count]
}

async fn start_tracking(vm: &TestVm, disks: usize) -> (Arc<Qmp>, QemuTracking) {
    let qmp = Arc::new(vm.qmp().await);
    let tracking = QemuTracking::with_session("test-vm", &vm.dir, qmp.clone(), geometries(disks));
    (qmp, tracking)
}

/// Reads `len` bytes at `offset` of `disk` of the point, on a blocking thread.
async fn read(point: QemuPoint, disk: usize, offset: u64, len: usize) -> (QemuPoint, Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let mut point = point;
        let mut buf = vec![0; len];
        point.read(disk, offset, &mut buf).unwrap();
        (point, buf)
    })
    .await
    .unwrap()
}

fn all(buf: &[u8], byte: u8) -> bool {
    buf.iter().all(|&b| b == byte)
}

async fn bitmaps(qmp: &Qmp, disk: usize) -> Vec<(String, u64, bool)> {
    let nodes = qmp.block_nodes().await.unwrap();
    let node = nodes
        .iter()
        .find(|n| n.node_name == format!("disk-{disk}"))
        .unwrap();
    let mut names: Vec<_> = node
        .dirty_bitmaps
        .iter()
        .map(|b| (b.name.clone(), b.count / BLOCK, b.recording))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_point_holds_what_was_written_before_it_and_nothing_after() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 2, 4 * MIB);
    let vm = TestVm::start(dir.path(), &disks);
    let (qmp, tracking) = start_tracking(&vm, 2).await;
    guest_write(&qmp, 0, 0xaa, 0, BLOCK).await;
    guest_write(&qmp, 1, 0xa1, MIB, BLOCK).await;
    let point = tracking.take_point(1, None).await.unwrap();
    guest_write(&qmp, 0, 0xbb, 0, BLOCK).await;
    guest_write(&qmp, 1, 0xb1, MIB, 4096).await;
    guest_write(&qmp, 1, 0xb2, 2 * MIB, BLOCK).await;
    assert_eq!(point.blocks(0).count(), 64, "a full point has every block");
    let (point, a) = read(point, 0, 0, BLOCK as usize).await;
    let (point, a1) = read(point, 1, MIB, BLOCK as usize).await;
    let (point, after) = read(point, 1, 2 * MIB, BLOCK as usize).await;
    assert!(all(&a, 0xaa), "disk 0 holds A, not B");
    assert!(all(&a1, 0xa1), "disk 1 holds A, not B");
    assert!(all(&after, 0), "a write after the point is not in it");
    point.finish(true).await.unwrap();
    // Tracking since the point: exactly the writes after it.
    assert_eq!(bitmaps(&qmp, 0).await, [("ferry-1".into(), 1, true)]);
    assert_eq!(bitmaps(&qmp, 1).await, [("ferry-1".into(), 2, true)]);
    assert!(tracking.tracks_since(Some(1)).await.unwrap());
    assert!(!tracking.tracks_since(Some(0)).await.unwrap());
    assert!(!dir.path().join("ferry-scratch-0.qcow2").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_point_lists_only_the_changed_blocks_and_rotates_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 2, 4 * MIB);
    let vm = TestVm::start(dir.path(), &disks);
    let (qmp, tracking) = start_tracking(&vm, 2).await;
    tracking
        .take_point(1, None)
        .await
        .unwrap()
        .finish(true)
        .await
        .unwrap();
    guest_write(&qmp, 0, 0x01, 0, 4096).await;
    guest_write(&qmp, 0, 0x02, 4096, 4096).await; // same block again
    guest_write(&qmp, 0, 0x03, 3 * BLOCK + 100, 2 * BLOCK).await; // spans 3 blocks
    guest_write(&qmp, 1, 0x04, 3 * MIB, 512).await;
    let point = tracking.take_point(2, Some(1)).await.unwrap();
    guest_write(&qmp, 0, 0x05, 2 * MIB, BLOCK).await; // after the point
    assert_eq!(point.blocks(0).iter().collect::<Vec<_>>(), [0, 3, 4, 5]);
    assert_eq!(point.blocks(1).iter().collect::<Vec<_>>(), [48]);
    let (point, head) = read(point, 0, 0, 8192).await;
    assert!(all(&head[..4096], 0x01) && all(&head[4096..], 0x02));
    // Until the peer commits, the base bitmap stays (stopped).
    assert!(
        bitmaps(&qmp, 0)
            .await
            .contains(&("ferry-1".into(), 4, false))
    );
    point.finish(true).await.unwrap();
    assert_eq!(bitmaps(&qmp, 0).await, [("ferry-2".into(), 1, true)]);
    assert_eq!(bitmaps(&qmp, 1).await, [("ferry-2".into(), 0, true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cycle_folds_its_point_back_into_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 1, 4 * MIB);
    let vm = TestVm::start(dir.path(), &disks);
    let (qmp, tracking) = start_tracking(&vm, 1).await;
    tracking
        .take_point(1, None)
        .await
        .unwrap()
        .finish(true)
        .await
        .unwrap();
    guest_write(&qmp, 0, 0x01, 0, BLOCK).await;
    let point = tracking.take_point(2, Some(1)).await.unwrap();
    guest_write(&qmp, 0, 0x02, MIB, BLOCK).await;
    point.finish(false).await.unwrap();
    // Both bitmaps record: since 1 (both writes), since 2 (the later one).
    assert_eq!(
        bitmaps(&qmp, 0).await,
        [("ferry-1".into(), 2, true), ("ferry-2".into(), 1, true)]
    );
    guest_write(&qmp, 0, 0x03, 2 * MIB, BLOCK).await;
    assert!(tracking.tracks_since(Some(1)).await.unwrap());
    // The retry of instance 2 from base 1 has every change since 1.
    let point = tracking.take_point(2, Some(1)).await.unwrap();
    assert_eq!(point.blocks(0).iter().collect::<Vec<_>>(), [0, 16, 32]);
    // Dropped unfinished (a sender that died): not shipped, cleaned up.
    drop(point);
    let point = tracking.take_point(2, Some(1)).await.unwrap();
    assert_eq!(point.blocks(0).count(), 3);
    point.finish(true).await.unwrap();
    assert_eq!(bitmaps(&qmp, 0).await, [("ferry-2".into(), 0, true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitmaps_survive_a_clean_exit_and_are_gone_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 1, 4 * MIB);
    let mut vm = TestVm::start(dir.path(), &disks);
    let (qmp, tracking) = start_tracking(&vm, 1).await;
    tracking
        .take_point(1, None)
        .await
        .unwrap()
        .finish(true)
        .await
        .unwrap();
    guest_write(&qmp, 0, 0x01, 0, BLOCK).await;
    qmp.quit().await.unwrap();
    vm.wait_exit();
    drop((tracking, qmp));

    let mut vm = TestVm::start(dir.path(), &disks);
    let (qmp, tracking) = start_tracking(&vm, 1).await;
    assert!(
        tracking.tracks_since(Some(1)).await.unwrap(),
        "kept across a clean exit"
    );
    assert_eq!(bitmaps(&qmp, 0).await, [("ferry-1".into(), 1, true)]);
    vm.kill();
    drop((tracking, qmp));

    let vm = TestVm::start(dir.path(), &disks);
    let (_qmp, tracking) = start_tracking(&vm, 1).await;
    assert!(
        !tracking.tracks_since(Some(1)).await.unwrap(),
        "gone after a crash"
    );
}

#[tokio::test]
async fn no_qemu_running_is_a_clear_error() {
    let (_publish, session) = tokio::sync::watch::channel(None);
    let tracking = QemuTracking::new(
        "vm-9",
        std::path::Path::new("/nonexistent"),
        session,
        geometries(1),
    );
    let err = tracking.take_point(1, None).await.err().unwrap();
    assert!(matches!(err, TrackingError::NotRunning { .. }), "{err:?}");
    assert!(err.to_string().contains("vm-9"), "{err}");
    assert!(tracking.tracks_since(Some(1)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_its_own_socket_tracking_connects_again_after_a_qemu_restart() {
    let dir = tempfile::tempdir().unwrap();
    let disks = create_disks(dir.path(), 1, 4 * MIB);
    let mut vm = TestVm::start(dir.path(), &disks);
    let socket = vm.qmp_socket();
    let tracking = QemuTracking::on_socket("test-vm", dir.path(), &socket, geometries(1));
    tracking
        .take_point(1, None)
        .await
        .unwrap()
        .finish(true)
        .await
        .unwrap();
    assert!(tracking.tracks_since(Some(1)).await.unwrap());
    vm.kill();
    let err = tracking.tracks_since(Some(1)).await.unwrap_err();
    assert!(err.to_string().contains("test-vm"), "{err}");

    let _vm = TestVm::start(dir.path(), &disks);
    assert!(
        !tracking.tracks_since(Some(1)).await.unwrap(),
        "a new QEMU, no bitmap"
    );
    tracking
        .take_point(2, None)
        .await
        .unwrap()
        .finish(true)
        .await
        .unwrap();
    assert!(tracking.tracks_since(Some(2)).await.unwrap());
}
