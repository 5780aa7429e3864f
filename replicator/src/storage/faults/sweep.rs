//! The crash sweep: an initial sync, a cycle (redo log, commit) and its
//! consolidation, crashed at every file-layer call in turn, followed by
//! each kind of power loss, for one- and two-disk VMs. After each, the
//! real recovery (`Replica::open`) must find every disk at one complete
//! instance, byte for byte as the source was at it, never older than an
//! acknowledged one; then replication must bring it to the newest, whose
//! recorded block sums must scrub clean.
//!
//! `FERRY_SWEEP_SEEDS=<n>` runs `n` seeds instead of [`SEEDS`]; run with
//! `--nocapture` to see the counts.

use super::world::{Model, Rng, World};
use crate::storage::fs::sim::{Faults, PowerLoss};

/// Seeds per VM shape in CI.
const SEEDS: u64 = 3;

#[derive(Debug, Default)]
struct Tally {
    faults: u64,
    checked: u64,
    lost: u64,
    first_loss: Option<String>,
}

impl Tally {
    fn verdict(&mut self, what: &str, result: Result<(), String>) {
        self.checked += 1;
        if let Err(e) = result {
            self.lost += 1;
            self.first_loss
                .get_or_insert_with(|| format!("{what}: {e}"));
        }
    }
}

fn seeds() -> u64 {
    std::env::var("FERRY_SWEEP_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SEEDS)
}

/// Instance 1 by an initial sync, instance 2 by a cycle: a delta, or on
/// odd seeds a full sync through the redo log (the sender lost its
/// tracking).
fn scenario(world: &mut World, seed: u64) -> std::io::Result<()> {
    world.sync(1, true)?;
    world.sync(2, seed % 2 == 1)
}

fn sweep(sizes: &[u64], first_seed: u64) -> Tally {
    let mut tally = Tally::default();
    for seed in first_seed..first_seed + seeds() {
        let mut clean = World::new(Model::new(seed, sizes, 2));
        scenario(&mut clean, seed).expect("the scenario without faults");
        let total = clean.fs.calls();
        let mut rng = Rng::new(seed);
        for crash_at in 1..=total {
            for loss in [
                PowerLoss::KeepAll,
                PowerLoss::DropUnsynced,
                PowerLoss::TearLast,
                PowerLoss::Random(rng.next()),
            ] {
                let what = format!("seed {seed}, crash at call {crash_at}, {loss:?}");
                let mut world = World::new(Model::new(seed, sizes, 2));
                world.fs.arm(Faults {
                    crash_at: Some(crash_at),
                    ..Faults::default()
                });
                let _ = scenario(&mut world, seed);
                world.fs.power_loss(loss);
                tally.faults += 1;
                if let PowerLoss::Random(_) = loss {
                    // A second crash, inside the recovery itself.
                    let again = world.fs.calls() + 1 + rng.below(24);
                    world.fs.arm(Faults {
                        crash_at: Some(again),
                        ..Faults::default()
                    });
                    let _ = world.open();
                    world.fs.power_loss(PowerLoss::Random(rng.next()));
                    tally.faults += 1;
                }
                let recovered = world.check().map(|_| ());
                tally.verdict(&what, recovered);
                let resumed = world
                    .catch_up()
                    .map_err(|e| format!("replication did not resume: {e}"))
                    .and_then(|()| world.check())
                    .and_then(|at| match at {
                        Some(2) => Ok(()),
                        other => Err(format!("resumed to {other:?}, not instance 2")),
                    })
                    .and_then(|()| super::scrub::clean(&world));
                tally.verdict(&format!("{what}, resumed"), resumed);
            }
        }
    }
    eprintln!(
        "sweep of {} disk(s), {} seed(s): {} faults injected, {} replicas checked, {} lost",
        sizes.len(),
        seeds(),
        tally.faults,
        tally.checked,
        tally.lost
    );
    tally
}

#[test]
fn every_crash_of_a_one_disk_vm_recovers_to_a_complete_instance() {
    let tally = sweep(&[48 * 1024 + 512], 100);
    assert_eq!(tally.lost, 0, "first loss: {:?}", tally.first_loss);
}

#[test]
fn every_crash_of_a_two_disk_vm_recovers_to_a_complete_instance() {
    let tally = sweep(&[32 * 1024, 24 * 1024 + 512], 200);
    assert_eq!(tally.lost, 0, "first loss: {:?}", tally.first_loss);
}
