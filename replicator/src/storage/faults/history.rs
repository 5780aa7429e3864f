//! Kept instances under random writes and under crashes: every kept
//! instance reads back byte for byte as the source was at its point, after
//! many cycles, after pruning, and after a crash at any file call of
//! keeping or pruning followed by any kind of power loss.

use std::path::PathBuf;

use super::world::{Model, Rng, World};
use crate::storage::fs::sim::{Faults, PowerLoss};

impl World {
    fn keep_history(&mut self) -> std::io::Result<()> {
        self.open()?.keep_history(true)?;
        self.history = true;
        Ok(())
    }

    fn prune(&mut self, instance: u64) -> std::io::Result<()> {
        self.must_keep.remove(&instance);
        self.open()?
            .prune(instance)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Every kept instance, materialized, against the model; and every
    /// instance that must be kept is.
    fn check_kept(&self) -> Result<Vec<u64>, String> {
        let replica = self.open().map_err(|e| format!("open failed: {e}"))?;
        let kept: Vec<u64> = replica
            .kept()
            .map_err(|e| format!("listing failed: {e}"))?
            .iter()
            .map(|k| k.instance)
            .collect();
        if let Some(lost) = self.must_keep.iter().find(|k| !kept.contains(k)) {
            return Err(format!("instance {lost} lost; kept {kept:?}"));
        }
        for &k in &kept {
            let target = PathBuf::from(format!("/ds/tests/vm-1-{k}"));
            replica
                .materialize(k, &target)
                .map_err(|e| format!("instance {k} unreadable: {e}"))?;
            for (disk, want) in self.model.instances[k as usize].iter().enumerate() {
                let got = self
                    .fs
                    .contents(&target.join(format!("disk-{disk}.raw")))
                    .unwrap_or_default();
                if got != *want {
                    return Err(format!("instance {k}, disk {disk} differs (kept {kept:?})"));
                }
            }
        }
        Ok(kept)
    }
}

#[test]
fn every_kept_instance_reads_back_as_the_source_was_through_cycles_and_pruning() {
    for seed in 1..=3 {
        let mut world = World::new(Model::new(seed, &[40 * 1024 + 512, 24 * 1024], 14));
        world.sync(1, true).unwrap();
        world.keep_history().unwrap();
        let mut rng = Rng::new(seed);
        for n in 2..=14 {
            world.sync(n, n.is_multiple_of(5)).unwrap();
            let kept = world.check_kept().unwrap();
            assert_eq!(world.check().unwrap(), Some(n));
            // Thin now and then: a middle instance, or the oldest.
            if n.is_multiple_of(3) && kept.len() > 2 {
                let older = &kept[1..];
                let victim = older[rng.below(older.len() as u64) as usize];
                world.prune(victim).unwrap();
                let after = world.check_kept().unwrap();
                assert!(!after.contains(&victim), "pruned {victim}: {after:?}");
                assert_eq!(after.len(), kept.len() - 1);
            }
        }
    }
}

#[test]
fn the_newest_and_unknown_instances_are_refused_by_prune_and_read() {
    let mut world = World::new(Model::new(9, &[16 * 1024], 3));
    world.sync(1, true).unwrap();
    world.keep_history().unwrap();
    world.catch_up().unwrap();
    let mut replica = world.open().unwrap();
    let newest = replica.prune(3).unwrap_err().to_string();
    assert!(newest.contains("newest"), "{newest}");
    let unknown = replica.prune(7).unwrap_err().to_string();
    assert!(
        unknown.contains("no instance 7 (kept: 3, 2, 1)"),
        "{unknown}"
    );
    replica.prune(1).unwrap();
    let pruned = replica
        .materialize(1, &PathBuf::from("/t"))
        .unwrap_err()
        .to_string();
    assert!(pruned.contains("no instance 1 (kept: 3, 2)"), "{pruned}");
}

/// Instance 1 (initial sync), history on, instances 2–4 each keeping the
/// one before, then a middle instance pruned (merged into its older
/// neighbour), then the oldest.
fn scenario(world: &mut World) -> std::io::Result<()> {
    world.sync(1, true)?;
    world.keep_history()?;
    for n in 2..=4 {
        world.sync(n, false)?;
    }
    world.prune(2)?;
    world.prune(1)
}

#[test]
fn a_crash_anywhere_in_keeping_or_pruning_leaves_every_kept_instance_whole() {
    let mut checked = 0;
    for (seed, sizes) in [
        (300, vec![24 * 1024 + 512]),
        (301, vec![16 * 1024, 12 * 1024]),
    ] {
        let mut clean = World::new(Model::new(seed, &sizes, 4));
        scenario(&mut clean).expect("the scenario without faults");
        assert_eq!(clean.check_kept().unwrap(), vec![4, 3]);
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
                let mut world = World::new(Model::new(seed, &sizes, 4));
                world.fs.arm(Faults {
                    crash_at: Some(crash_at),
                    ..Faults::default()
                });
                let _ = scenario(&mut world);
                world.fs.power_loss(loss);
                world.check().unwrap_or_else(|e| panic!("{what}: {e}"));
                world.check_kept().unwrap_or_else(|e| panic!("{what}: {e}"));
                world
                    .catch_up()
                    .unwrap_or_else(|e| panic!("{what}: no resume: {e}"));
                world
                    .check_kept()
                    .unwrap_or_else(|e| panic!("{what}, resumed: {e}"));
                checked += 1;
            }
        }
    }
    eprintln!("kept-instance sweep: {checked} crashes checked");
}

#[test]
fn retention_drops_what_its_window_leaves_and_a_budget_alarms_naming_what_it_forced() {
    use crate::storage::replica::{PruneReason, Retention, budget_alarm};
    use ferry_api::retention::RetentionPolicy;
    let mut world = World::new(Model::new(5, &[32 * 1024], 12));
    world.sync(1, true).unwrap();
    // Points are a second apart: a 3 s window keeps four instances.
    let policy = RetentionPolicy {
        keep_all_seconds: 3,
        ..RetentionPolicy::default()
    };
    world
        .open()
        .unwrap()
        .set_retention(Retention {
            policy,
            budget_bytes: None,
        })
        .unwrap();
    for n in 2..=8 {
        world.sync(n, false).unwrap();
    }
    let kept = world.check_kept().unwrap();
    assert_eq!(kept, vec![8, 7, 6, 5]);
    // A budget smaller than the window's history forces the oldest out.
    let mut replica = world.open().unwrap();
    let one = replica
        .kept()
        .unwrap()
        .iter()
        .filter(|k| k.instance < 8)
        .map(|k| {
            world
                .fs
                .contents(&replica.undo_path(k.instance))
                .unwrap()
                .len() as u64
        })
        .max()
        .unwrap();
    replica
        .set_retention(Retention {
            policy,
            budget_bytes: Some(one),
        })
        .unwrap();
    let pruned = replica.retain(8000).unwrap();
    let forced: Vec<u64> = pruned
        .iter()
        .filter(|p| matches!(p.reason, PruneReason::Budget(_)))
        .map(|p| p.instance)
        .collect();
    assert!(forced.starts_with(&[5, 6]), "{pruned:?}");
    let alarm = budget_alarm("vm-1", &pruned).unwrap();
    assert!(
        alarm.contains("VM vm-1: instances 5 (point 5000 ms), 6"),
        "{alarm}"
    );
    assert!(alarm.contains("budget"), "{alarm}");
    drop(replica);
    let kept = world.check_kept().unwrap();
    assert_eq!(kept.len(), 4 - forced.len());
    // Newest only again: the next cycle drops every older instance.
    world
        .open()
        .unwrap()
        .set_retention(Retention::default())
        .unwrap();
    world.sync(9, false).unwrap();
    assert_eq!(world.check_kept().unwrap(), vec![9]);
}

#[test]
fn an_attack_alarms_at_its_first_instance_and_recommends_the_one_before() {
    const BLOCKS: usize = 64;
    let size = BLOCKS * super::world::BLOCK as usize;
    let mut rng = Rng::new(77);
    let mut instances = vec![vec![vec![0u8; size]]];
    for n in 1..=12usize {
        let mut disk = instances[n - 1][0].clone();
        // A record log's worth of text, then at 11 most of the disk random.
        let (count, random) = match n {
            1 => (BLOCKS, false),
            11 => (48, true),
            _ => (2, false),
        };
        for _ in 0..count {
            let block = rng.below(BLOCKS as u64) as usize;
            let bytes = &mut disk[block * 4096..(block + 1) * 4096];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = if random {
                    rng.next() as u8
                } else {
                    b"seq 000042 ts 1700000000 "[i % 25] ^ (n as u8 & 1)
                };
            }
        }
        instances.push(vec![disk]);
    }
    let mut world = World::new(Model { instances });
    world.sync(1, true).unwrap();
    world.keep_history().unwrap();
    for n in 2..=12 {
        world.sync(n, false).unwrap();
        let alarm = world.open().unwrap().clean_point_alarm(n);
        assert_eq!(alarm.is_some(), n == 11, "instance {n}: {alarm:?}");
        if let Some(alarm) = alarm {
            assert!(alarm.contains("VM vm-1: instance 11"), "{alarm}");
            assert!(
                alarm.contains("recommended clean point is instance 10"),
                "{alarm}"
            );
        }
    }
    let replica = world.open().unwrap();
    let flagged: Vec<(u64, bool)> = replica
        .kept()
        .unwrap()
        .iter()
        .take(3)
        .map(|k| (k.instance, k.score.is_some_and(|s| s.score.suspicious)))
        .collect();
    assert_eq!(flagged, [(12, true), (11, true), (10, false)]);
    world.check_kept().unwrap();
}
