//! Writes racing sync cycles: after every cycle the replica equals the source
//! exactly at the consistency point, whatever the guest wrote meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::support::*;

/// One write as the model replays it.
struct Write {
    disk: usize,
    offset: u64,
    data: Vec<u8>,
}

fn replay(log: &[Write], disks: usize, size: u64, applied: &[u64]) -> Vec<Vec<u8>> {
    let mut model = vec![vec![0u8; size as usize]; disks];
    let mut counts = vec![0u64; disks];
    for w in log {
        if counts[w.disk] < applied[w.disk] {
            let at = w.offset as usize;
            model[w.disk][at..at + w.data.len()].copy_from_slice(&w.data);
            counts[w.disk] += 1;
        }
    }
    model
}

fn run(seed: u64, compress: bool) {
    const DISKS: usize = 2;
    const SIZE: u64 = 2 << 20;
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = Arc::new(open_vm(source.path(), DISKS, SIZE));
    let log: Shared<Vec<Write>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));

    let writer = {
        let (vm, log, stop) = (vm.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            while !stop.load(Ordering::Relaxed) {
                let disk = rng.below(DISKS as u64) as usize;
                // Sizes from a sector to several blocks, any alignment; some
                // writes are zeros so holes are exercised too.
                let len = 1 + rng.below(3 * 4096) as usize;
                let offset = rng.below(SIZE - len as u64);
                let mut data = vec![0u8; len];
                if rng.below(5) != 0 {
                    rng.fill(&mut data);
                }
                let mut log = log.lock().unwrap();
                vm.disks()[disk].write_at(&data, offset).unwrap();
                log.push(Write { disk, offset, data });
            }
        })
    };

    let mut target = target(&receiver.addr);
    target.compress = compress;
    let mut last_instance = 0;
    for round in 0..8 {
        wait_for(
            "the guest to write",
            std::time::Duration::from_secs(10),
            || log.lock().unwrap().len() > (round + 1) * 20,
        );
        let report = ferry_replicator::replication::run_cycle(
            VM,
            &*vm,
            &target,
            round == 5, // one forced full sync while writes race too
            &Default::default(),
        )
        .unwrap();
        assert_eq!(report.instance, last_instance + 1);
        last_instance = report.instance;
        let applied: Vec<u64> = report.frozen.iter().map(|f| f.writes_applied).collect();
        let expected = replay(&log.lock().unwrap(), DISKS, SIZE, &applied);
        let (instance, got) = replica_contents(&receiver.replica_dir());
        assert_eq!(instance, Some(report.instance));
        assert_same(&format!("seed {seed} round {round}"), &got, &expected);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn replica_equals_source_at_every_consistency_point() {
    for seed in 1..=4 {
        run(seed, seed % 2 == 0);
    }
}
