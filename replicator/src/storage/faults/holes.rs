//! The holes an audit found, each with the test that would have caught it:
//! an fsync failure during an initial sync, a consolidation that runs out of
//! space, a failed fsync of the base during consolidation, a corrupt block
//! in a committed log, and a redo log whose directory entry was not durable.

use super::world::{Model, World};
use crate::storage::fs::sim::{Faults, PowerLoss};

const SIZES: [u64; 2] = [64 * 1024, 40 * 1024 + 512];

#[test]
fn a_failed_fsync_during_the_initial_sync_never_leaves_stale_blocks() {
    let mut world = World::new(Model::new(1, &SIZES, 1));
    let fail_once = Faults {
        fail_sync: Some(("disk-".into(), 1)),
        ..Faults::default()
    };
    world.fs.arm(fail_once.clone());
    let first = world.sync(1, true).unwrap_err().to_string();
    assert!(
        first.contains("vm-1") && first.contains("disk-0.raw") && first.contains("fsync"),
        "{first}"
    );
    let sent_first = world.sent;
    world.fs.arm(fail_once);
    assert!(world.sync(1, true).is_err(), "the second fsync fails too");
    assert_eq!(
        world.sent - sent_first,
        sent_first,
        "the page cache of the failed sync is not trusted: everything is sent again"
    );
    assert_eq!(world.open().unwrap().state().instance, None);
    world.sync(1, true).unwrap();
    assert_eq!(world.check(), Ok(Some(1)));
    // What was recorded complete is on disk, not only in the page cache.
    world.fs.power_loss(PowerLoss::DropUnsynced);
    assert_eq!(world.check(), Ok(Some(1)));
}

#[test]
fn a_consolidation_without_space_stays_at_its_last_instance_until_space_returns() {
    let mut world = World::new(Model::new(2, &SIZES, 2));
    // Instance 2 writes eight blocks that are holes at instance 1: more
    // than the three pages of space left.
    let holes: Vec<usize> = (0..16)
        .filter(|b| {
            world.model.instances[1][0][b * 4096..(b + 1) * 4096]
                .iter()
                .all(|&x| x == 0)
        })
        .take(8)
        .collect();
    assert_eq!(holes.len(), 8);
    for b in holes {
        world.model.instances[2][0][b * 4096..(b + 1) * 4096].fill(0xa5);
    }
    world.catch_up_to(1);
    world.fs.arm(Faults {
        space: Some(("disk-".into(), 3)),
        ..Faults::default()
    });
    let err = world.sync(2, false).unwrap_err().to_string();
    assert_eq!(
        world.acked, 2,
        "the instance was committed before the apply"
    );
    assert!(
        err.contains("vm-1") && err.contains("disk-") && err.contains("no space"),
        "{err}"
    );
    assert!(err.contains("stays at instance 1"), "{err}");
    // While the condition lasts, open serves instance 1 byte for byte and
    // refuses a new cycle with the same reason.
    let mut replica = world.open().unwrap();
    assert_eq!(replica.state().instance, Some(1));
    let deferred = replica.deferred().expect("a deferred consolidation");
    assert!(!deferred.base_touched && deferred.instance == 2);
    for (disk, want) in world.model.instances[1].iter().enumerate() {
        assert!(world.disk(disk) == *want, "disk {disk} at instance 1");
    }
    assert!(replica.begin(&header(3)).is_err());
    drop(replica);
    world.fs.arm(Faults::default());
    world.acked = 2;
    assert_eq!(world.check(), Ok(Some(2)));
    world.fs.power_loss(PowerLoss::DropUnsynced);
    assert_eq!(world.check(), Ok(Some(2)));
}

#[test]
fn a_failed_fsync_of_the_base_is_rewritten_from_the_log() {
    let mut world = World::new(Model::new(3, &SIZES, 2));
    world.catch_up_to(1);
    world.fs.arm(Faults {
        fail_sync: Some(("disk-1".into(), 1)),
        ..Faults::default()
    });
    let err = world.sync(2, false).unwrap_err().to_string();
    assert!(
        err.contains("disk-1.raw") && err.contains("unusable"),
        "{err}"
    );
    // No power loss: the page cache still shows the blocks whose writeback
    // failed; the retry at open writes them again from the log.
    assert_eq!(world.check(), Ok(Some(2)));
    world.fs.power_loss(PowerLoss::DropUnsynced);
    assert_eq!(world.check(), Ok(Some(2)));
}

#[test]
fn a_corrupt_block_in_a_committed_log_is_found_before_the_base_is_touched() {
    use crate::storage::fs::{FileLayer, Open};
    let mut world = World::new(Model::new(4, &SIZES, 1));
    world.catch_up_to(1);
    let mut replica = world.open().unwrap();
    let mut log = replica.begin(&header(2)).unwrap();
    for block in 0..6 {
        log.append_data(1, block, &[9; 4096]).unwrap();
    }
    replica.commit(log).unwrap();
    drop(replica);
    // A bit flips at rest inside the last block's data, after the commit.
    let log = world
        .fs
        .open(&world.dir.join("redo.log"), Open::Write)
        .unwrap();
    let at = log.size().unwrap() - 33 - 100;
    log.write_all_at(&[0x5a], at).unwrap();
    let replica = world.open().unwrap();
    assert_eq!(replica.state().instance, Some(1));
    let why = replica.deferred().expect("deferred").to_string();
    assert!(
        why.contains("redo.log") && why.contains("checksum"),
        "{why}"
    );
    for (disk, want) in world.model.instances[1].iter().enumerate() {
        assert!(
            world.disk(disk) == *want,
            "disk {disk} untouched at instance 1"
        );
    }
}

fn header(instance: u64) -> crate::storage::RedoHeader {
    crate::storage::RedoHeader {
        instance,
        point_time_ms: 1000 * instance,
        block_size: super::world::BLOCK,
        disk_sizes: SIZES.to_vec(),
    }
}

#[test]
fn an_acknowledged_log_survives_a_power_loss() {
    let mut world = World::new(Model::new(5, &SIZES, 2));
    world.catch_up_to(1);
    let mut replica = world.open().unwrap();
    let mut log = replica.begin(&header(2)).unwrap();
    log.append_data(0, 0, &[7; 4096]).unwrap();
    replica.commit(log).unwrap();
    // Power lost before the consolidation: the log's name must be durable.
    world.fs.power_loss(PowerLoss::DropUnsynced);
    let replica = world.open().unwrap();
    assert_eq!(replica.state().instance, Some(2));
    assert!(world.disk(0)[..4096].iter().all(|&b| b == 7));
}

#[test]
fn short_writes_and_a_failed_log_write_leave_every_instance_whole() {
    let mut world = World::new(Model::new(6, &SIZES, 3));
    world.fs.arm(Faults {
        short_writes: Some(1000),
        ..Faults::default()
    });
    world.catch_up_to(2);
    assert_eq!(world.check(), Ok(Some(2)));
    world.fs.arm(Faults {
        fail_write: Some(("redo.log".into(), 1)),
        ..Faults::default()
    });
    assert!(world.sync(3, false).is_err());
    assert_eq!(world.check(), Ok(Some(2)), "the failed cycle left nothing");
    world.sync(3, false).unwrap();
    world.fs.power_loss(PowerLoss::DropUnsynced);
    assert_eq!(world.check(), Ok(Some(3)));
}

#[test]
fn a_failed_fsync_of_the_log_is_never_acknowledged_nor_applied() {
    let mut world = World::new(Model::new(7, &SIZES, 2));
    world.catch_up_to(1);
    world.fs.arm(Faults {
        fail_sync: Some(("redo.log".into(), 1)),
        ..Faults::default()
    });
    assert!(world.sync(2, false).is_err());
    assert_eq!(world.acked, 1);
    // The page cache still holds the whole log; it is gone all the same.
    assert!(world.fs.contents(&world.dir.join("redo.log")).is_none());
    assert_eq!(world.check(), Ok(Some(1)));
    world.sync(2, false).unwrap();
    assert_eq!(world.check(), Ok(Some(2)));
}
