//! Scrub on the simulated file system: a clean replica scrubs clean, a byte
//! changed at rest is found by its block, a scrub racing cycles never
//! reports a difference that is not there, and the sums survive every
//! crash the sweep makes (checked there, through [`clean`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::world::{BLOCK, Model, World};
use crate::storage::fs::{FileLayer, Open};
use crate::storage::replica::{ScrubOutcome, scrub};

/// The replica scrubs with every block checked and none different.
pub fn clean(world: &World) -> Result<(), String> {
    let fs: Arc<dyn FileLayer> = Arc::new(world.fs.clone());
    match scrub(&*fs, &world.dir) {
        Ok(ScrubOutcome::Checked { disks, .. })
            if disks
                .iter()
                .all(|d| d.mismatches.is_empty() && d.blocks_skipped == 0) =>
        {
            Ok(())
        }
        other => Err(format!("scrub: {other:?}")),
    }
}

/// Flips one byte of disk `disk` at `offset`, durably: what a bad sector
/// or a stray write does at rest.
fn corrupt(world: &World, disk: usize, offset: u64) {
    let path = world.dir.join(format!("disk-{disk}.raw"));
    let file = world.fs.open(&path, Open::Write).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x5a], offset).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn a_clean_replica_scrubs_clean_after_its_initial_sync_and_each_cycle() {
    let mut world = World::new(Model::new(7, &[48 * 1024 + 512, 24 * 1024], 4));
    let fs: Arc<dyn FileLayer> = Arc::new(world.fs.clone());
    assert_eq!(scrub(&*fs, &world.dir).unwrap(), ScrubOutcome::NoInstance);
    for instance in 1..=4 {
        world
            .sync(instance, instance == 1 || instance == 3)
            .unwrap();
        match scrub(&*fs, &world.dir).unwrap() {
            ScrubOutcome::Checked {
                instance: at,
                disks,
                ..
            } => {
                assert_eq!(at, instance);
                assert_eq!(disks.len(), 2);
                assert_eq!(disks[0].blocks_checked, 13, "48.5 KiB in 4 KiB blocks");
                assert_eq!(disks[1].blocks_checked, 6);
                assert!(disks.iter().all(|d| d.mismatches.is_empty()), "{disks:?}");
            }
            other => panic!("instance {instance}: {other:?}"),
        }
    }
}

#[test]
fn a_byte_changed_at_rest_is_found_by_its_disk_and_block() {
    let mut world = World::new(Model::new(8, &[48 * 1024 + 512, 24 * 1024], 2));
    world.catch_up_to(2);
    corrupt(&world, 1, 5 * u64::from(BLOCK) + 17);
    corrupt(&world, 0, 12 * u64::from(BLOCK) + 3);
    let fs: Arc<dyn FileLayer> = Arc::new(world.fs.clone());
    let ScrubOutcome::Checked { disks, .. } = scrub(&*fs, &world.dir).unwrap() else {
        panic!("not checked");
    };
    assert_eq!(disks[0].mismatches, vec![12..13], "the partial last block");
    assert_eq!(disks[1].mismatches, vec![5..6]);
    assert_eq!(
        disks[0].mismatched_blocks() + disks[1].mismatched_blocks(),
        2
    );
    // The next cycle rewrites only what changed; the bad block stays bad
    // until something rewrites it, and the scrub keeps saying so.
    assert!(clean(&world).is_err());
}

#[test]
fn a_replica_without_recorded_sums_says_so_until_its_next_cycle_records_them() {
    let mut world = World::new(Model::new(9, &[16 * 1024], 2));
    world.catch_up_to(1);
    world.fs.remove_file(&world.dir.join("blocks.sum")).unwrap();
    let fs: Arc<dyn FileLayer> = Arc::new(world.fs.clone());
    assert_eq!(
        scrub(&*fs, &world.dir).unwrap(),
        ScrubOutcome::NotRecorded { instance: 1 },
        "nothing compared is never called clean"
    );
    // The next cycle cannot derive them, so it reads the base back.
    world.sync(2, false).unwrap();
    clean(&world).unwrap();
}

#[test]
fn a_scrub_racing_cycles_never_reports_a_difference_that_is_not_there() {
    let mut world = World::new(Model::new(10, &[256 * 1024, 96 * 1024 + 512], 40));
    world.catch_up_to(1);
    let fs: Arc<dyn FileLayer> = Arc::new(world.fs.clone());
    let dir = world.dir.clone();
    let done = Arc::new(AtomicBool::new(false));
    let cycles = {
        let done = done.clone();
        std::thread::spawn(move || {
            for instance in 2..=40 {
                world.sync(instance, instance % 10 == 0).unwrap();
            }
            done.store(true, Ordering::SeqCst);
            world
        })
    };
    let mut scrubs = 0;
    while !done.load(Ordering::SeqCst) || scrubs == 0 {
        let outcome = match scrub(&*fs, &dir) {
            // A consolidation under way: the scrub declines to read a base
            // half written, which is no report at all; it asks again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            outcome => outcome.unwrap(),
        };
        match outcome {
            ScrubOutcome::Checked { disks, .. } => {
                assert!(
                    disks.iter().all(|d| d.mismatches.is_empty()),
                    "scrub {scrubs}: {disks:?}"
                );
            }
            other => panic!("scrub {scrubs}: {other:?}"),
        }
        scrubs += 1;
    }
    let world = cycles.join().unwrap();
    assert_eq!(world.check().unwrap(), Some(40));
    clean(&world).unwrap();
}
