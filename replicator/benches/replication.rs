//! Replication benchmark on a 1 GiB disk over loopback, release build.
//!
//! `cargo bench -p ferry-replicator --bench replication` (or
//! `replicator/benches/replication.sh`, which installs rsync first). Prints
//! one table; every figure comes from this run, ferry and rsync side by side.
//!
//! - delta sync of 1% and 10% random 64 KiB blocks: wall time and bytes on
//!   the wire, against `rsync --inplace --no-whole-file --stats` to an rsync
//!   daemon on 127.0.0.1 moving the same change;
//! - changed-block throughput: a delta of half the disk, end to end
//!   (including redo-log fsync and consolidation);
//! - full sync of two identical disks (hash compare only), and of a
//!   half-zero disk onto an empty replica;
//! - write-path overhead of change tracking against plain pwrite.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_replicator::replication::{CycleProgress, CycleReport, run_cycle};
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, Geometry, TrackedVm};
use ferry_testkit::link::{self, Rng, TestReceiver};
use ferry_testkit::measure::mib_s;

const DISK: u64 = 1 << 30;
const BLOCK: u64 = DEFAULT_BLOCK_SIZE as u64;
const BLOCKS: u64 = DISK / BLOCK;
fn open_vm(dir: &Path) -> TrackedVm {
    TrackedVm::open(
        dir,
        &[(
            dir.join("disk-0.raw"),
            Geometry::new(DISK, DEFAULT_BLOCK_SIZE),
        )],
    )
    .expect("open VM")
}

fn cycle(vm_id: &str, vm: &TrackedVm, addr: &str, full: bool) -> CycleReport {
    run_cycle(
        vm_id,
        vm,
        &link::target(addr),
        full,
        &CycleProgress::default(),
    )
    .expect("cycle")
}

fn write_random_blocks(vm: &TrackedVm, rng: &mut Rng, blocks: &[u64]) {
    let mut buf = vec![0u8; BLOCK as usize];
    for &block in blocks {
        rng.fill(&mut buf);
        vm.disks()[0].write_at(&buf, block * BLOCK).expect("write");
    }
}

/// An rsync daemon on 127.0.0.1 with one writable module, `dest`.
struct RsyncDaemon {
    child: Child,
    port: u16,
    module_dir: PathBuf,
}

impl RsyncDaemon {
    fn start(dir: &Path) -> Option<Self> {
        Command::new("rsync").arg("--version").output().ok()?;
        let module_dir = dir.join("rsync-dest");
        std::fs::create_dir_all(&module_dir).ok()?;
        let config = dir.join("rsyncd.conf");
        std::fs::write(
            &config,
            format!(
                "use chroot = no\nuid = 0\ngid = 0\n[dest]\npath = {}\nread only = false\n",
                module_dir.display()
            ),
        )
        .ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            port,
            module_dir,
        })
    }

    /// Places the pre-change copy the daemon will update in place.
    fn seed(&self, source: &Path) {
        let status = Command::new("cp")
            .args(["--sparse=always"])
            .arg(source)
            .arg(self.module_dir.join("disk.raw"))
            .status()
            .expect("cp");
        assert!(status.success());
        // rsync skips a file whose size and mtime (to the second) match; the
        // copy must look stale so rsync compares contents, as after a change.
        let status = Command::new("touch")
            .args(["-d", "@0"])
            .arg(self.module_dir.join("disk.raw"))
            .status()
            .expect("touch");
        assert!(status.success());
    }

    /// Pushes `source` the way the issue names; returns (wall, wire bytes).
    fn push(&self, source: &Path) -> (Duration, u64) {
        let started = Instant::now();
        let out = Command::new("rsync")
            .args(["--inplace", "--no-whole-file", "--stats"])
            .arg(source)
            .arg(format!("rsync://127.0.0.1:{}/dest/disk.raw", self.port))
            .output()
            .expect("rsync");
        let wall = started.elapsed();
        assert!(out.status.success(), "rsync failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().replace(',', ""))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (
            wall,
            field("Total bytes sent:") + field("Total bytes received:"),
        )
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_overhead(dir: &Path, rng: &mut Rng) -> (f64, f64) {
    let order = rng.blocks(BLOCKS, BLOCKS);
    let mut buf = vec![0u8; BLOCK as usize];
    rng.fill(&mut buf);
    let raw = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("raw.img"))
        .expect("raw");
    raw.set_len(DISK).expect("len");
    let vm = TrackedVm::open(
        &dir.join("tracked"),
        &[(
            dir.join("tracked.img"),
            Geometry::new(DISK, DEFAULT_BLOCK_SIZE),
        )],
    )
    .expect("tracked");
    let disk = &vm.disks()[0];
    // Allocate both files fully first so neither pays for allocation.
    for &b in &order {
        raw.write_all_at(&buf, b * BLOCK).expect("raw write");
        disk.write_at(&buf, b * BLOCK).expect("tracked write");
    }
    let (mut best_raw, mut best_tracked) = (0f64, 0f64);
    for _ in 0..5 {
        let t = Instant::now();
        for &b in &order {
            raw.write_all_at(&buf, b * BLOCK).expect("raw write");
        }
        best_raw = best_raw.max(mib_s(DISK, t.elapsed()));
        let t = Instant::now();
        for &b in &order {
            disk.write_at(&buf, b * BLOCK).expect("tracked write");
        }
        best_tracked = best_tracked.max(mib_s(DISK, t.elapsed()));
    }
    (best_raw, best_tracked)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let work = tempfile::Builder::new()
        .prefix("ferry-bench")
        .tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .expect("work dir");
    let datastore = work.path().join("ds");
    let receiver = TestReceiver::start(&datastore);
    let addr = receiver.addr.clone();
    let mut rng = Rng::new(0x5eed_1234_abcd_ef01);
    let rsync = RsyncDaemon::start(work.path());
    if rsync.is_none() {
        eprintln!("rsync is not installed: run replicator/benches/replication.sh to compare");
    }

    println!("ferry replication benchmark: 1 GiB disk, 64 KiB blocks, loopback\n");
    let vm = open_vm(&work.path().join("src"));
    write_random_blocks(&vm, &mut rng, &(0..BLOCKS).collect::<Vec<_>>());
    let initial = cycle("vm", &vm, &addr, false);
    println!(
        "initial full sync, 1 GiB random onto an empty replica: {:>8.0} ms  {:>7.0} MiB/s",
        initial.duration.as_secs_f64() * 1e3,
        mib_s(DISK, initial.duration)
    );

    println!(
        "\n{:<28} {:>10} {:>14} {:>10} {:>14} {:>9}",
        "delta sync", "ferry ms", "ferry wire B", "rsync ms", "rsync wire B", "speedup"
    );
    let source_path = work.path().join("src").join("disk-0.raw");
    for percent in [1u64, 10] {
        if let Some(rsync) = &rsync {
            rsync.seed(&source_path);
        }
        let blocks = rng.blocks(BLOCKS, BLOCKS * percent / 100);
        write_random_blocks(&vm, &mut rng, &blocks);
        let report = cycle("vm", &vm, &addr, false);
        assert!(!report.full);
        let changed = blocks.len() as u64 * BLOCK;
        let (rsync_ms, rsync_wire) = rsync
            .as_ref()
            .map(|r| {
                let (wall, wire) = r.push(&source_path);
                (wall.as_secs_f64() * 1e3, wire)
            })
            .unwrap_or((f64::NAN, 0));
        let ferry_ms = report.duration.as_secs_f64() * 1e3;
        println!(
            "{:<28} {:>10.1} {:>14} {:>10.1} {:>14} {:>8.1}x",
            format!("{percent}% changed ({} MiB)", changed >> 20),
            ferry_ms,
            report.wire_bytes,
            rsync_ms,
            rsync_wire,
            rsync_ms / ferry_ms
        );
        println!(
            "{:<28} wire/changed = {:.4} (target within 1.02)",
            "",
            report.wire_bytes as f64 / changed as f64
        );
    }

    let blocks = rng.blocks(BLOCKS, BLOCKS / 2);
    write_random_blocks(&vm, &mut rng, &blocks);
    let half = cycle("vm", &vm, &addr, false);
    let changed = blocks.len() as u64 * BLOCK;
    println!(
        "\nchanged-block throughput, 512 MiB delta: {:.0} MiB/s to commit, {:.0} MiB/s including consolidation (target 600)",
        mib_s(changed, half.commit_duration),
        mib_s(changed, half.duration)
    );

    let same = cycle("vm", &vm, &addr, true);
    assert_eq!(same.blocks_sent, 0);
    println!(
        "full sync, two identical 1 GiB disks: {:.0} ms, {:.2} GB/s (target 1 GB/s)",
        same.duration.as_secs_f64() * 1e3,
        DISK as f64 / 1e9 / same.duration.as_secs_f64()
    );

    let half_zero = open_vm(&work.path().join("src2"));
    write_random_blocks(&half_zero, &mut rng, &(0..BLOCKS / 2).collect::<Vec<_>>());
    let hz = cycle("vm2", &half_zero, &addr, false);
    println!(
        "full sync, half-zero 1 GiB disk onto an empty replica: {:.0} ms, {:.2} GB/s of disk, {} MiB sent",
        hz.duration.as_secs_f64() * 1e3,
        DISK as f64 / 1e9 / hz.duration.as_secs_f64(),
        hz.data_bytes >> 20
    );
    drop(half_zero);
    drop(vm);

    let (raw, tracked) = write_overhead(work.path(), &mut rng);
    println!(
        "write path, 64 KiB random writes: raw pwrite {raw:.0} MiB/s, tracked {tracked:.0} MiB/s = {:.1}% (target 90%)",
        tracked / raw * 100.0
    );
}
