//! Sender restarts: a clean shutdown keeps change tracking, an unclean one
//! loses it, and the full sync that follows sends only the blocks that differ.

use super::support::*;

fn write_blocks(vm: &ferry_replicator::storage::TrackedVm, blocks: &[u64], fill: u8) {
    for &block in blocks {
        vm.disks()[(block % 2) as usize]
            .write_at(&[fill; 4096], block * 4096)
            .unwrap();
    }
}

#[test]
fn unclean_exit_means_full_sync_of_only_differing_blocks() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = open_vm(source.path(), 2, 1 << 20);
    write_blocks(&vm, &[1, 2, 3, 100, 101], 1);
    let first = cycle(&vm, &receiver.addr).unwrap();
    assert!(first.full, "the initial sync is a full sync");
    assert_eq!(
        first.blocks_sent, 5,
        "only blocks that differ from the empty replica"
    );

    // Written, shipped, then more written and the site dies uncleanly.
    write_blocks(&vm, &[7, 8], 2);
    assert_eq!(cycle(&vm, &receiver.addr).unwrap().blocks_sent, 2);
    write_blocks(&vm, &[20, 21, 22], 3);
    drop(vm); // no close(): as after kill -9

    let vm = open_vm(source.path(), 2, 1 << 20);
    let report = cycle(&vm, &receiver.addr).unwrap();
    assert!(
        report.full,
        "tracking was lost, so this must be a full sync"
    );
    assert_eq!(report.blocks_sent, 3, "only the three blocks written since");
    assert_eq!(report.data_bytes, 3 * 4096);
    let (_, disks) = replica_contents(&receiver.replica_dir());
    assert_same("after full sync", &disks, &source_contents(&vm));
}

#[test]
fn clean_shutdown_keeps_tracking_and_in_flight_points() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = open_vm(source.path(), 2, 1 << 20);
    write_blocks(&vm, &[1, 2], 1);
    cycle(&vm, &receiver.addr).unwrap();
    write_blocks(&vm, &[5, 6, 9], 4);
    vm.close().unwrap();

    let vm = open_vm(source.path(), 2, 1 << 20);
    let report = cycle(&vm, &receiver.addr).unwrap();
    assert!(!report.full);
    assert_eq!(report.blocks_sent, 3);
    let (_, disks) = replica_contents(&receiver.replica_dir());
    assert_same("after delta", &disks, &source_contents(&vm));
}

#[test]
fn a_zeroed_block_becomes_a_hole_on_the_replica() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = open_vm(source.path(), 1, 1 << 20);
    vm.disks()[0].write_at(&[9; 256 << 10], 0).unwrap();
    cycle(&vm, &receiver.addr).unwrap();
    vm.disks()[0].write_at(&[0; 256 << 10], 0).unwrap();
    let report = cycle(&vm, &receiver.addr).unwrap();
    assert_eq!((report.blocks_sent, report.data_bytes), (64, 0));
    let path = receiver.replica_dir().join("disk-0.raw");
    let meta = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.blocks(), 0, "the replica holds no allocated blocks");
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn unreachable_peer_returns_the_point_to_dirty() {
    let source = tempfile::tempdir().unwrap();
    let vm = open_vm(source.path(), 1, 1 << 20);
    write_blocks(&vm, &[4], 1);
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let err = cycle(&vm, &addr).unwrap_err();
    assert!(err.is_link_failure(), "{err}");
    assert_eq!(vm.disks()[0].unreplicated().count(), 1);
}
