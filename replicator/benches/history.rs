//! Kept instances benchmark on a 1 GiB replica, release build, on the real
//! file system of the temp directory (`TMPDIR`).
//!
//! `cargo bench -p ferry-replicator --bench history`. Prints one table;
//! every figure comes from this run:
//!
//! - the disk's own sequential write speed (1 GiB, 1 MiB writes, fsync);
//! - a cycle of a 512 MiB delta (random 64 KiB blocks, random bytes) at the
//!   replica, redo log through commit and consolidation, with retention off
//!   (today's path) and on (the undo file of the instance replaced);
//! - space of a kept instance against the bytes that changed;
//! - the time to write a test copy of the newest, a middle and the oldest of
//!   the kept instances;
//! - clean-point scoring: CPU per GiB of changed blocks, and per cycle with
//!   the sample actually taken.
//!
//! The cycle excludes the wire (TLS, framing): it is the storage's share,
//! the part keeping history adds to.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_api::retention::RetentionPolicy;
use ferry_replicator::storage::clean_point::{looks_encrypted, sample_indices};
use ferry_replicator::storage::replica::Retention;
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, RedoHeader, Replica};
use ferry_testkit::Rng;
use ferry_testkit::measure::mib_s;

const DISK: u64 = 1 << 30;
const BLOCK: u64 = DEFAULT_BLOCK_SIZE as u64;
const BLOCKS: u64 = DISK / BLOCK;
const DELTA_BLOCKS: u64 = BLOCKS / 2;

fn header(instance: u64) -> RedoHeader {
    RedoHeader {
        instance,
        point_time_ms: instance * 60_000,
        block_size: DEFAULT_BLOCK_SIZE,
        disk_sizes: vec![DISK],
    }
}

fn sequential_write(dir: &Path) -> Duration {
    let path = dir.join("seq.raw");
    let mut file = File::create(&path).expect("create");
    let mut buf = vec![0u8; 1 << 20];
    Rng::new(7).fill(&mut buf);
    let start = Instant::now();
    for _ in 0..DISK >> 20 {
        file.write_all(&buf).expect("write");
    }
    file.sync_all().expect("fsync");
    let took = start.elapsed();
    std::fs::remove_file(&path).expect("remove");
    took
}

/// One cycle of `DELTA_BLOCKS` random blocks: begin, append, commit,
/// consolidate. Returns its wall time.
fn cycle(replica: &mut Replica, instance: u64, rng: &mut Rng) -> Duration {
    let blocks = rng.blocks(BLOCKS, DELTA_BLOCKS);
    let mut buf = vec![0u8; BLOCK as usize];
    let start = Instant::now();
    let mut writer = replica.begin(&header(instance)).expect("begin");
    for block in blocks {
        rng.fill(&mut buf);
        writer.append_data(0, block, &buf).expect("append");
    }
    replica.commit(writer).expect("commit");
    replica.consolidate().expect("consolidate");
    start.elapsed()
}

fn seed(replica: &mut Replica, rng: &mut Rng) {
    let mut writer = replica.begin(&header(1)).expect("begin");
    let mut buf = vec![0u8; BLOCK as usize];
    for block in 0..BLOCKS {
        rng.fill(&mut buf);
        writer.append_data(0, block, &buf).expect("seed");
    }
    replica.commit(writer).expect("commit seed");
}

fn rate(bytes: u64, took: Duration) -> String {
    format!("{:.0} MiB/s", mib_s(bytes, took))
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let delta = DELTA_BLOCKS * BLOCK;
    let seq = sequential_write(tmp.path());
    let mut rng = Rng::new(0x5eed);

    // Retention off: today's path.
    let off_dir = tmp.path().join("off");
    let mut off = Replica::open(&off_dir).expect("open");
    seed(&mut off, &mut rng);
    let off_times: Vec<Duration> = (2..=3).map(|n| cycle(&mut off, n, &mut rng)).collect();
    drop(off);
    std::fs::remove_dir_all(&off_dir).expect("remove");

    // Retention on: every instance kept for a day.
    let on_dir = tmp.path().join("on");
    let mut on = Replica::open(&on_dir).expect("open");
    seed(&mut on, &mut rng);
    on.set_retention(Retention {
        policy: RetentionPolicy {
            keep_all_seconds: 86_400,
            ..RetentionPolicy::default()
        },
        budget_bytes: None,
    })
    .expect("retention");
    let on_times: Vec<Duration> = (2..=4).map(|n| cycle(&mut on, n, &mut rng)).collect();
    let kept = on.kept().expect("kept");
    let undo_bytes: Vec<u64> = kept
        .iter()
        .skip(1)
        .map(|k| {
            std::fs::metadata(on_dir.join(format!("undo-{}.log", k.instance)))
                .expect("undo")
                .len()
        })
        .collect();
    let mut copies = Vec::new();
    for k in [
        kept[0].instance,
        kept[1].instance,
        kept[kept.len() - 1].instance,
    ] {
        let target = tmp.path().join(format!("test-{k}"));
        let start = Instant::now();
        on.materialize(k, &target).expect("materialize");
        copies.push((k, start.elapsed()));
        std::fs::remove_dir_all(&target).expect("remove");
    }

    // Scoring: every block of a GiB, then a cycle's sample.
    let mut block = vec![0u8; BLOCK as usize];
    rng.fill(&mut block);
    let start = Instant::now();
    let mut encrypted = 0u64;
    for _ in 0..BLOCKS {
        encrypted += u64::from(looks_encrypted(&block));
    }
    let per_gib = start.elapsed();
    assert_eq!(encrypted, BLOCKS);
    let start = Instant::now();
    for _ in sample_indices(DELTA_BLOCKS as usize) {
        encrypted += u64::from(looks_encrypted(&block));
    }
    let per_cycle = start.elapsed();
    std::hint::black_box(encrypted);

    let best = |t: &[Duration]| t.iter().min().copied().unwrap_or_default();
    println!("kept instances on a 1 GiB disk, 512 MiB delta of random 64 KiB blocks");
    println!(
        "{:<52} {:>14}",
        "disk sequential write (1 GiB, fsync)",
        rate(DISK, seq)
    );
    println!(
        "{:<52} {:>14}   runs {:?}",
        "cycle, retention off (today's path)",
        rate(delta, best(&off_times)),
        off_times
    );
    println!(
        "{:<52} {:>14}   runs {:?}",
        "cycle, retention on (undo file kept)",
        rate(delta, best(&on_times)),
        on_times
    );
    for (i, bytes) in undo_bytes.iter().enumerate() {
        println!(
            "{:<52} {:>14.4}",
            format!(
                "space of kept instance {} / bytes changed",
                kept[i + 1].instance
            ),
            *bytes as f64 / delta as f64
        );
    }
    for (k, took) in copies {
        println!(
            "{:<52} {:>14.2?}",
            format!("test copy of instance {k} (newest {})", kept[0].instance),
            took
        );
    }
    println!(
        "{:<52} {:>14.2?}",
        "scoring CPU per GiB of changed blocks (all scored)", per_gib
    );
    println!(
        "{:<52} {:>14.2?}",
        "scoring CPU per cycle (64-block sample)", per_cycle
    );
}
