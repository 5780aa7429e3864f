//! Site soak benchmark, real processes on loopback.
//!
//! `cargo bench -p ferry-replicator --bench soak`. Environment knobs:
//! `FERRY_SOAK_VMS` (200), `FERRY_SOAK_SECS` (300), `FERRY_SOAK_RPO` (30),
//! `FERRY_API_VMS` (1000).
//!
//! 1. Soak: one site pair, N protected VMs (one 64 MiB disk each, guests
//!    writing about 64 KiB/s each), RPO 30 s, for the duration: share of
//!    VM-seconds in compliance, max lag, CPU and peak RSS of each site.
//! 2. API: `GET /api/v1/replications` with 1,000 replicated VMs, p50/p99.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::*;

fn soak(work: &Path, count: u64, secs: u64, rpo: u64) {
    let (site_a, site_b, a) = start_pair(work, "soak", vms(count, 64, true, 62, rpo));
    let api = Api::new("site-a", &a, Duration::from_secs(30));
    let warm = Instant::now();
    loop {
        let reps = api.replications();
        if reps.len() as u64 == count && reps.iter().all(|r| r.last_sync.is_some()) {
            break;
        }
        assert!(
            warm.elapsed() < Duration::from_secs(600),
            "initial syncs did not finish"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "soak: {count} VMs x 64 MiB, RPO {rpo} s: initial full syncs done in {:.1} s",
        warm.elapsed().as_secs_f64()
    );
    let (cpu_a0, cpu_b0) = (site_a.cpu_seconds(), site_b.cpu_seconds());
    let started = Instant::now();
    let (mut samples, mut compliant, mut max_lag) = (0u64, 0u64, 0f64);
    while started.elapsed() < Duration::from_secs(secs) {
        let tick = Instant::now();
        for r in api.replications() {
            samples += 1;
            let lag = r.lag_seconds.unwrap_or(f64::INFINITY);
            max_lag = max_lag.max(lag);
            if lag <= rpo as f64 && !r.rpo_violated {
                compliant += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "soak: {secs} s: {:.3}% of VM-seconds in compliance ({compliant}/{samples}), max lag {max_lag:.1} s (RPO {rpo} s)",
        100.0 * compliant as f64 / samples.max(1) as f64
    );
    println!(
        "soak: site-a CPU {:.0}% of a core, peak RSS {:.0} MiB; site-b CPU {:.0}%, peak RSS {:.0} MiB",
        100.0 * (site_a.cpu_seconds() - cpu_a0) / wall,
        site_a.peak_rss_mib(),
        100.0 * (site_b.cpu_seconds() - cpu_b0) / wall,
        site_b.peak_rss_mib()
    );
}

fn api_latency(work: &Path, count: u64) {
    let (_site_a, _site_b, a) = start_pair(work, "api", vms(count, 1, false, 0, 300));
    let api = Api::new("site-a", &a, Duration::from_secs(30));
    let warm = Instant::now();
    while api
        .replications()
        .iter()
        .filter(|r| r.last_sync.is_some())
        .count()
        < count as usize
    {
        assert!(
            warm.elapsed() < Duration::from_secs(600),
            "initial syncs did not finish"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut times = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        let n = api.replications().len();
        times.push(t.elapsed());
        assert_eq!(n as u64, count);
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "api: GET /api/v1/replications with {count} VMs: p50 {:.2} ms, p99 {:.2} ms (target p99 < 20 ms)",
        pct(0.5),
        pct(0.99)
    );
}

fn main() {
    let work = tempfile::Builder::new()
        .prefix("ferry-soak")
        .tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .expect("work dir");
    api_latency(work.path(), env_or("FERRY_API_VMS", 1000));
    soak(
        work.path(),
        env_or("FERRY_SOAK_VMS", 200),
        env_or("FERRY_SOAK_SECS", 300),
        env_or("FERRY_SOAK_RPO", 30),
    );
}
