//! Bandwidth control and long links, in-process: a receiver on 127.0.0.1,
//! senders on threads, the test kit's chaos proxy for round-trip time.
//!
//! `cargo bench -p ferry-replicator --bench wan`. Prints one table:
//!
//! - cap accuracy: four VMs sending deltas back to back for 30 s under one
//!   site cap, at three caps; the rate is the bytes the proxy carried
//!   between two samples, over the time between them;
//! - fairness: 20 VMs start a 16 MiB delta each at once under one cap; each
//!   VM's bytes while a quarter to three quarters of all was read (min /
//!   max);
//! - delta throughput of a 256 MiB delta under a 100 MiB/s cap at 0, 10,
//!   50 and 100 ms round trip (latency on the proxy), from connect to the
//!   receiver's commit.
//!
//! Durations are `FERRY_WAN_SECONDS` (default 30) per cap.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_api::bandwidth::BandwidthPolicy;
use ferry_replicator::identity::Identity;
use ferry_replicator::replication::{
    CycleProgress, Limiter, LinkTls, Receiver, ReceiverConfig, SyncTarget, receiver,
    run_cycle_limited,
};
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, Geometry, TrackedVm};
use ferry_testkit::Chaos;

const MIB: u64 = 1 << 20;
static SENDER: std::sync::LazyLock<Identity> =
    std::sync::LazyLock::new(|| Identity::ephemeral().expect("identity"));
static RECEIVER: std::sync::LazyLock<Identity> =
    std::sync::LazyLock::new(|| Identity::ephemeral().expect("identity"));

fn start_receiver(datastore: &Path) -> String {
    let config = ReceiverConfig {
        site: "site-b".into(),
        tls: LinkTls::new(&RECEIVER, Some(SENDER.fingerprint)).expect("tls"),
        datastores: BTreeMap::from([("ds".to_string(), datastore.to_path_buf())]),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            receiver::serve(listener, Receiver::new(config), std::future::pending()).await;
        });
    });
    rx.recv().expect("receiver address").to_string()
}

fn target(addr: &str) -> SyncTarget {
    SyncTarget {
        addr: addr.to_string(),
        tls: LinkTls::new(&SENDER, Some(RECEIVER.fingerprint)).expect("tls"),
        site: "site-a".into(),
        datastore: "ds".into(),
        compress: false,
        retention: Default::default(),
    }
}

fn capped(mib_per_second: u32) -> Limiter {
    Limiter::new(BandwidthPolicy {
        mib_per_second: Some(mib_per_second),
        windows: Vec::new(),
    })
    .expect("a valid cap")
}

/// A VM with one disk of `mib` MiB, replicated once (so cycles are deltas).
fn replicated_vm(dir: &Path, mib: u64, addr: &str) -> TrackedVm {
    let vm = TrackedVm::open(
        dir,
        &[(
            dir.join("disk-0.raw"),
            Geometry::new(mib * MIB, DEFAULT_BLOCK_SIZE),
        )],
    )
    .expect("open VM");
    let name = dir.file_name().and_then(|n| n.to_str()).expect("a name");
    run_cycle_limited(
        name,
        &vm,
        &target(addr),
        false,
        &CycleProgress::default(),
        &Limiter::default(),
    )
    .expect("initial sync");
    vm
}

/// Overwrites the first `mib` MiB with fresh random bytes.
fn scribble(vm: &TrackedVm, mib: u64, seed: &mut u64) {
    let mut block = vec![0u8; MIB as usize];
    for i in 0..mib {
        for chunk in block.chunks_exact_mut(8) {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes());
        }
        vm.disks()[0].write_at(&block, i * MIB).expect("write");
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

fn cap_accuracy(work: &Path, addr: &str, seconds: u64) {
    println!("\ncap accuracy: 4 VMs sending 32 MiB deltas back to back, {seconds} s per cap");
    println!("{:>10} {:>12} {:>8}", "cap MiB/s", "got MiB/s", "error");
    let chaos = Chaos::start(addr);
    for (round, cap) in [10u32, 40, 100].into_iter().enumerate() {
        let limiter = capped(cap);
        let vms: Vec<_> = (0..4)
            .map(|i| {
                let dir = work.join(format!("cap{round}-vm{i}"));
                (dir.clone(), replicated_vm(&dir, 32, addr))
            })
            .collect();
        let stop = AtomicBool::new(false);
        let target = target(chaos.addr());
        let (got, took) = std::thread::scope(|scope| {
            for (i, (dir, vm)) in vms.iter().enumerate() {
                let (stop, target, limiter) = (&stop, &target, &limiter);
                let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("vm");
                scope.spawn(move || {
                    let mut seed = 0x9E37_79B9 + i as u64;
                    while !stop.load(Ordering::Relaxed) {
                        scribble(vm, 32, &mut seed);
                        let progress = CycleProgress::default();
                        run_cycle_limited(name, vm, target, false, &progress, limiter)
                            .expect("a capped cycle");
                    }
                });
            }
            // Measure once every sender is past its first writes.
            std::thread::sleep(Duration::from_secs(3));
            let (b0, t0) = (
                chaos.counts().bytes_up.load(Ordering::Relaxed),
                Instant::now(),
            );
            std::thread::sleep(Duration::from_secs(seconds));
            let (b1, t1) = (
                chaos.counts().bytes_up.load(Ordering::Relaxed),
                Instant::now(),
            );
            stop.store(true, Ordering::Relaxed);
            (b1 - b0, t1 - t0)
        });
        let rate = mib(got) / took.as_secs_f64();
        println!(
            "{cap:>10} {rate:>12.1} {:>7.1}%",
            (rate / f64::from(cap) - 1.0) * 100.0
        );
    }
}

fn fairness(work: &Path, addr: &str) {
    let (count, cap) = (20, 20u32);
    println!("\nfairness: {count} VMs start a 16 MiB delta at once under {cap} MiB/s");
    let limiter = capped(cap);
    let vms: Vec<_> = (0..count)
        .map(|i| {
            let dir = work.join(format!("fair-vm{i:02}"));
            let vm = replicated_vm(&dir, 16, addr);
            let mut seed = 0xFA17 + i as u64;
            scribble(&vm, 16, &mut seed);
            (dir, vm, CycleProgress::default())
        })
        .collect();
    let target = target(addr);
    let shares: Vec<u64> = std::thread::scope(|scope| {
        let cycles: Vec<_> = vms
            .iter()
            .map(|(dir, vm, progress)| {
                let (target, limiter) = (&target, &limiter);
                let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("vm");
                scope.spawn(move || run_cycle_limited(name, vm, target, false, progress, limiter))
            })
            .collect();
        // Each VM's bytes between a quarter and three quarters of all: the
        // rate while every VM sends, without the head start a quicker TLS
        // handshake gives at the start.
        let total = count as u64 * 16 * MIB;
        let sample = |share: u64| -> Vec<u64> {
            let done = || -> u64 {
                vms.iter()
                    .map(|(_, _, p)| p.bytes_done.load(Ordering::Relaxed))
                    .sum()
            };
            while done() < total * share / 4 && !cycles.iter().any(|c| c.is_finished()) {
                std::thread::sleep(Duration::from_millis(20));
            }
            vms.iter()
                .map(|(_, _, p)| p.bytes_done.load(Ordering::Relaxed))
                .collect()
        };
        let (first, second) = (sample(1), sample(3));
        let shares = first.iter().zip(&second).map(|(a, b)| b - a).collect();
        for c in cycles {
            c.join().expect("a sender").expect("a fair cycle");
        }
        shares
    });
    let (min, max) = (
        shares.iter().copied().min().unwrap_or(0),
        shares.iter().copied().max().unwrap_or(0),
    );
    println!(
        "bytes per VM from 1/4 to 3/4 of all (to within a frame): min {:.1} MiB, max {:.1} MiB, min/max {:.2}",
        mib(min),
        mib(max),
        min as f64 / max.max(1) as f64
    );
}

fn long_links(work: &Path, addr: &str) {
    println!("\ndelta throughput, 256 MiB delta, 100 MiB/s cap, connect to commit");
    println!(
        "{:>8} {:>10} {:>12} {:>9}",
        "RTT ms", "commit ms", "MiB/s", "of cap"
    );
    let chaos = Chaos::start(addr);
    let limiter = capped(100);
    let dir = work.join("long-vm");
    let vm = replicated_vm(&dir, 256, addr);
    let mut seed = 0x10_0C;
    for rtt in [0u64, 10, 50, 100] {
        chaos.set(|k| k.latency = Duration::from_millis(rtt / 2));
        scribble(&vm, 256, &mut seed);
        let report = run_cycle_limited(
            "long-vm",
            &vm,
            &target(chaos.addr()),
            false,
            &CycleProgress::default(),
            &limiter,
        )
        .expect("a long-link cycle");
        let rate = mib(report.data_bytes) / report.commit_duration.as_secs_f64();
        println!(
            "{rtt:>8} {:>10.0} {rate:>12.1} {:>8.0}%",
            report.commit_duration.as_secs_f64() * 1e3,
            rate
        );
    }
}

fn main() {
    let seconds = common::env_or("FERRY_WAN_SECONDS", 30);
    let work = tempfile::Builder::new()
        .prefix("ferry-wan-bench")
        .tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .expect("work dir");
    let addr = start_receiver(&work.path().join("ds"));
    println!("ferry WAN benchmark: bandwidth cap and long links, loopback");
    long_links(work.path(), &addr);
    fairness(work.path(), &addr);
    cap_accuracy(work.path(), &addr, seconds);
}
