//! What the site benchmarks share: a site pair on free loopback ports,
//! each a real `ferry-replicator` process, and their configs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ferry_replicator::access::hash_token;

pub const TOKEN: &str = "soak-viewer-token";
pub const SECRET: &str = "soak pairing secret 0123456789";

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Ports {
    pub api: u16,
    pub repl: u16,
}

pub fn config(name: &str, own: &Ports, peer: (&str, &Ports), vms: &str) -> String {
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
[[networks]]
name = "bubble"
test = true
[peer]
name = "{}"
url = "http://127.0.0.1:{}"
replication = "127.0.0.1:{}"
secret = "{SECRET}"
[[tokens]]
name = "bench"
role = "admin"
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

pub fn vms(count: u64, size_mib: u64, power_on: bool, kib_s: u64, rpo: u64) -> String {
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

pub struct Site {
    pub child: Child,
}

impl Site {
    pub fn start(dir: &Path, text: &str) -> Self {
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
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    pub fn peak_rss_mib(&self) -> f64 {
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

pub fn replications(client: &reqwest::blocking::Client, port: u16) -> Vec<serde_json::Value> {
    client
        .get(format!("http://127.0.0.1:{port}/api/v1/replications"))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_default()
}

/// A paired site-a (with `vms`) and an empty site-b on free ports; returns
/// both and site-a's ports.
pub fn start_pair(work: &Path, name: &str, vms: &str) -> (Site, Site, Ports) {
    let (site_a, site_b, a, _) = start_pair_with_ports(work, name, vms);
    (site_a, site_b, a)
}

/// [`start_pair`], with site-b's ports too.
pub fn start_pair_with_ports(work: &Path, name: &str, vms: &str) -> (Site, Site, Ports, Ports) {
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
    (site_a, site_b, a, b)
}
