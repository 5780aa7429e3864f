//! Promote under faults: crashed at every file-layer call, with each kind
//! of power loss, and failed by EIO on each directory's fsync; a retry
//! must finish it with the disks byte for byte at the replica's instance,
//! and the VM must be recorded before anything leaves the replica.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::world::{Model, Rng, World};
use crate::storage::fs::FileLayer;
use crate::storage::fs::sim::{Faults, PowerLoss};
use crate::storage::promote::{self, MARKER, PromoteError};

const HOME: &str = "/ds/vms/vm-1";

/// The VM's database row, which a crash of the file layer does not undo.
#[derive(Default)]
struct Recorded(Option<u64>);

/// The site's promote: decide, record, finish; a VM recorded without a
/// marker was promoted whole (the record follows the marker).
fn run(world: &World, recorded: &mut Recorded, disks: usize) -> Result<u64, PromoteError> {
    let layer: Arc<dyn FileLayer> = Arc::new(world.fs.clone());
    let home = Path::new(HOME);
    if let Some(point) = recorded.0
        && promote::in_progress(&*layer, home)?.is_none()
    {
        return Ok(point);
    }
    let point = promote::prepare(&layer, &world.dir, home)?;
    recorded.0.get_or_insert(point);
    promote::finish(&*layer, &world.dir, home, disks)?;
    Ok(point)
}

fn world(seed: u64, sizes: &[u64]) -> World {
    let mut world = World::new(Model::new(seed, sizes, 2));
    world.catch_up_to(2);
    world
}

/// What a finished promote must leave: the disks at instance 2 in the
/// home, no replica, no marker.
fn check_promoted(world: &World, disks: usize) -> Result<(), String> {
    for disk in 0..disks {
        let got = world
            .fs
            .contents(&PathBuf::from(HOME).join(format!("disk-{disk}.raw")))
            .ok_or(format!("disk {disk} is missing from the home"))?;
        if got != world.model.instances[2][disk] {
            return Err(format!("disk {disk} differs from instance 2"));
        }
    }
    if world
        .fs
        .contents(&world.dir.join("replica.state"))
        .is_some()
    {
        return Err("the replica directory is still there".into());
    }
    if world.fs.contents(&Path::new(HOME).join(MARKER)).is_some() {
        return Err("the marker is still there".into());
    }
    Ok(())
}

#[test]
fn a_promote_crashed_at_every_call_is_finished_by_a_retry() {
    let mut checked = 0;
    for (seed, sizes) in [(1, vec![40_000]), (2, vec![40_000, 70_001])] {
        let disks = sizes.len();
        let clean = world(seed, &sizes);
        let before = clean.fs.calls();
        assert_eq!(run(&clean, &mut Recorded::default(), disks).unwrap(), 2000);
        check_promoted(&clean, disks).unwrap();
        let total = clean.fs.calls() - before;
        let mut rng = Rng::new(seed);
        for crash_at in 1..=total {
            for loss in [
                PowerLoss::KeepAll,
                PowerLoss::DropUnsynced,
                PowerLoss::TearLast,
                PowerLoss::Random(rng.next()),
            ] {
                let w = world(seed, &sizes);
                let mut recorded = Recorded::default();
                w.fs.arm(Faults {
                    crash_at: Some(w.fs.calls() + crash_at),
                    ..Faults::default()
                });
                assert!(
                    run(&w, &mut recorded, disks).is_err(),
                    "crash at {crash_at}"
                );
                w.fs.power_loss(loss);
                let what = format!("seed {seed}, crash at {crash_at}/{total}, {loss:?}");
                if recorded.0.is_none() {
                    // Nothing may have left the replica before the record.
                    assert_eq!(w.check(), Ok(Some(2)), "{what}");
                }
                let point = run(&w, &mut recorded, disks)
                    .unwrap_or_else(|e| panic!("{what}: the retry failed: {e}"));
                assert_eq!((point, recorded.0), (2000, Some(2000)), "{what}");
                check_promoted(&w, disks).unwrap_or_else(|e| panic!("{what}: {e}"));
                // A third call finds it done and changes nothing.
                promote::finish(&w.fs, &w.dir, Path::new(HOME), disks).unwrap();
                check_promoted(&w, disks).unwrap_or_else(|e| panic!("{what}: {e}"));
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} crashes tried");
}

#[test]
fn a_promote_whose_fsync_fails_is_finished_by_a_retry() {
    for path in [HOME, "/ds/vms", "/ds/replicas"] {
        for times in 1..=2 {
            let w = world(3, &[40_000, 9_000]);
            let mut recorded = Recorded::default();
            w.fs.arm(Faults {
                fail_sync: Some((path.to_string(), times)),
                ..Faults::default()
            });
            let mut tries = 0;
            let point = loop {
                tries += 1;
                match run(&w, &mut recorded, 2) {
                    Ok(point) => break point,
                    Err(e) if tries <= times => {
                        assert!(e.to_string().contains("fsync failed"), "{e}");
                    }
                    Err(e) => panic!("{path}: still failing after {tries} tries: {e}"),
                }
            };
            assert_eq!(point, 2000);
            check_promoted(&w, 2).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }
}

#[test]
fn a_replica_without_an_instance_is_not_promoted_and_stays() {
    let w = World::new(Model::new(4, &[40_000], 1));
    let err = run(&w, &mut Recorded::default(), 1).unwrap_err();
    assert!(matches!(err, PromoteError::NoInstance), "{err}");
    assert!(w.fs.contents(&Path::new(HOME).join(MARKER)).is_none());
}

#[test]
fn a_marker_is_exactly_one_line_with_the_point() {
    assert_eq!(
        promote::decode_marker(promote::encode_marker(42).as_bytes()),
        Some(42)
    );
    for bad in [
        "",
        "point_time_ms \n",
        "point_time_ms 1",
        "point_time_ms -1\n",
        "point_time_ms 02\n",
        "x 1\n",
    ] {
        assert_eq!(promote::decode_marker(bad.as_bytes()), None, "{bad:?}");
    }
}
