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

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_replicator::access::hash_token;

const TOKEN: &str = "soak-viewer-token";
const SECRET: &str = "soak pairing secret 0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Ports {
    api: u16,
    repl: u16,
}

fn config(name: &str, own: &Ports, peer: (&str, &Ports), vms: &str) -> String {
    format!(
        r#"name = "{name}"
folders = ["f"]
resource_pools = ["p"]
[listen]
api = "127.0.0.1:{}"
replication = "127.0.0.1:{}"
[[datastores]]
name = "ds1"
path = "ds1"
[[networks]]
name = "net"
[peer]
name = "{}"
url = "http://127.0.0.1:{}"
replication = "127.0.0.1:{}"
secret = "{SECRET}"
[[tokens]]
name = "viewer"
role = "viewer"
hash = "{}"
{vms}"#,
        own.api,
        own.repl,
        peer.0,
        peer.1.api,
        peer.1.repl,
        hash_token(TOKEN)
    )
}

fn vms(count: u64, size_mib: u64, power_on: bool, kib_s: u64, rpo: u64) -> String {
    (0..count)
        .map(|i| {
            format!(
                r#"[[vms]]
name = "vm-{i:04}"
folder = "f"
resource_pool = "p"
power_on = {power_on}
disks = [{{ datastore = "ds1", size_mib = {size_mib} }}]
guest = {{ records_per_second = 2.0, overwrite_kib_per_second = {kib_s} }}
replication = {{ rpo_seconds = {rpo} }}
"#
            )
        })
        .collect()
}

struct Site {
    child: Child,
}

impl Site {
    fn start(dir: &Path, text: &str) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("site.toml"), text).expect("config");
        let log = std::fs::File::create(dir.join("site.log")).expect("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry-replicator"))
            .arg("--config")
            .arg(dir.join("site.toml"))
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start site");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        lines.next();
        lines.next();
        std::thread::spawn(move || for _ in lines {});
        Self { child }
    }

    /// CPU seconds used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn replications(client: &reqwest::blocking::Client, port: u16) -> Vec<serde_json::Value> {
    client
        .get(format!("http://127.0.0.1:{port}/api/v1/replications"))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_default()
}

/// A paired site-a (with `vms`) and an empty site-b on free ports; returns
/// both and site-a's ports.
fn start_pair(work: &Path, name: &str, vms: &str) -> (Site, Site, Ports) {
    let a = Ports {
        api: free_port(),
        repl: free_port(),
    };
    let b = Ports {
        api: free_port(),
        repl: free_port(),
    };
    let site_b = Site::start(
        &work.join(format!("{name}-b")),
        &config("site-b", &b, ("site-a", &a), ""),
    );
    let site_a = Site::start(
        &work.join(format!("{name}-a")),
        &config("site-a", &a, ("site-b", &b), vms),
    );
    (site_a, site_b, a)
}

fn soak(work: &Path, count: u64, secs: u64, rpo: u64) {
    let (site_a, site_b, a) = start_pair(work, "soak", &vms(count, 64, true, 62, rpo));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let warm = Instant::now();
    loop {
        let reps = replications(&client, a.api);
        if reps.len() as u64 == count && reps.iter().all(|r| r["last_sync"].is_object()) {
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
        for r in replications(&client, a.api) {
            samples += 1;
            let lag = r["lag_seconds"].as_f64().unwrap_or(f64::INFINITY);
            max_lag = max_lag.max(lag);
            if lag <= rpo as f64 && r["rpo_violated"] == false {
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
    let (_site_a, _site_b, a) = start_pair(work, "api", &vms(count, 1, false, 0, 300));
    let client = reqwest::blocking::Client::new();
    let warm = Instant::now();
    while replications(&client, a.api)
        .iter()
        .filter(|r| r["last_sync"].is_object())
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
        let n = replications(&client, a.api).len();
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
