//! The I/O error sweep: an initial sync and a cycle run with one kind of
//! I/O error armed on one file (EIO on write or fsync, once or three
//! times; no space left; short writes), then a power loss. Once the fault
//! is gone, the recovery must find a complete instance byte for byte,
//! never older than an acknowledged one, and replication must bring the
//! replica to the newest instance, whose block sums must scrub clean.
//!
//! `FERRY_SWEEP_SEEDS=<n>` runs `n` seeds (3 in CI), as the crash sweep.

use super::world::{Model, Rng, World};
use crate::storage::fs::sim::{Faults, PowerLoss};

/// The files a cycle writes, as the layer's path patterns match them.
const FILES: [&str; 7] = [
    "disk-0.raw",
    "disk-1.raw",
    "redo.log",
    "replica.tmp",
    "consolidating",
    "blocks.tmp",
    "vm-1",
];

/// Every fault tried, with its name in the tally.
fn faults() -> Vec<(String, Faults)> {
    let mut all = Vec::new();
    for file in FILES {
        for times in [1, 3] {
            all.push((
                format!("EIO on write of {file} ×{times}"),
                Faults {
                    fail_write: Some((file.into(), times)),
                    ..Faults::default()
                },
            ));
            all.push((
                format!("EIO on fsync of {file} ×{times}"),
                Faults {
                    fail_sync: Some((file.into(), times)),
                    ..Faults::default()
                },
            ));
        }
    }
    for file in ["disk-0.raw", "disk-1.raw", "redo.log", "blocks.tmp"] {
        for pages in [0, 2, 5] {
            all.push((
                format!("ENOSPC on {file} after {pages} pages"),
                Faults {
                    space: Some((file.into(), pages)),
                    ..Faults::default()
                },
            ));
        }
    }
    for bytes in [1, 100, 4097] {
        all.push((
            format!("short writes of {bytes} bytes"),
            Faults {
                short_writes: Some(bytes),
                ..Faults::default()
            },
        ));
    }
    all
}

#[derive(Debug, Default)]
struct Tally {
    runs: u64,
    faults: u64,
    failed_cycles: u64,
    checked: u64,
    lost: u64,
    first_loss: Option<String>,
}

fn sweep(sizes: &[u64], first_seed: u64) -> Tally {
    let seeds = std::env::var("FERRY_SWEEP_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3u64);
    let mut tally = Tally::default();
    let mut unrecorded = 0u64;
    for seed in first_seed..first_seed + seeds {
        let mut rng = Rng::new(seed);
        for (name, fault) in faults() {
            let what = format!("seed {seed}, {name}");
            let mut world = World::new(Model::new(seed, sizes, 2));
            world.fs.arm(fault);
            let run = world
                .sync(1, true)
                .and_then(|()| world.sync(2, seed % 2 == 1));
            tally.runs += 1;
            tally.failed_cycles += u64::from(run.is_err());
            tally.faults += world.fs.counts().faults;
            world.fs.power_loss(PowerLoss::Random(rng.next()));
            let mut verdict = |result: Result<(), String>| {
                tally.checked += 1;
                if let Err(e) = result {
                    tally.lost += 1;
                    tally
                        .first_loss
                        .get_or_insert_with(|| format!("{what}: {e}"));
                }
            };
            // The fault gone, the recovery at open finds a complete one.
            world.fs.arm(Faults::default());
            verdict(world.check().map(|_| ()));
            verdict(
                world
                    .catch_up()
                    .map_err(|e| format!("did not heal: {e}"))
                    .and_then(|()| world.check())
                    .and_then(|at| match at {
                        Some(2) => Ok(()),
                        other => Err(format!("healed to {other:?}, not instance 2")),
                    })
                    .and_then(|()| match super::scrub::clean(&world) {
                        // A fault on the sums' own file in the last cycle
                        // leaves them unrecorded (the data whole); said so.
                        Err(e) if name.contains("blocks.tmp") && e.contains("NotRecorded") => {
                            unrecorded += 1;
                            Ok(())
                        }
                        other => other,
                    }),
            );
        }
    }
    eprintln!(
        "I/O error sweep of {} disk(s), {seeds} seed(s): {} runs, {} faults injected, \
         {} runs with a failed cycle, {} replicas checked, {} lost, \
         {unrecorded} left without block sums",
        sizes.len(),
        tally.runs,
        tally.faults,
        tally.failed_cycles,
        tally.checked,
        tally.lost
    );
    tally
}

#[test]
fn every_io_error_of_a_one_disk_vm_leaves_a_complete_instance_and_heals() {
    let tally = sweep(&[48 * 1024 + 512], 300);
    assert_eq!(tally.lost, 0, "first loss: {:?}", tally.first_loss);
    assert!(tally.failed_cycles > 0 && tally.faults > 0, "{tally:?}");
}

#[test]
fn every_io_error_of_a_two_disk_vm_leaves_a_complete_instance_and_heals() {
    let tally = sweep(&[32 * 1024, 24 * 1024 + 512], 400);
    assert_eq!(tally.lost, 0, "first loss: {:?}", tally.first_loss);
    assert!(tally.failed_cycles > 0 && tally.faults > 0, "{tally:?}");
}
