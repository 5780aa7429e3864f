//! What the site benchmarks share: a site pair on free loopback ports,
//! each a real `ferry-replicator` process started by the test kit, and
//! their configs.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use ferry_api::types::ReplicationInfo;
use ferry_replicator::access::Role;
use ferry_replicator::config::{ComputeConfig, GuestSeed, VmSeed};
use ferry_testkit::config as testkit;
pub use ferry_testkit::free_port;
use ferry_testkit::{SiteConfigBuilder, SiteProcess, site_fingerprint};

pub const TOKEN: &str = "soak-viewer-token";

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub struct Ports {
    pub api: u16,
    pub repl: u16,
}

/// A site's config, pinning `peer`'s certificate by its fingerprint.
pub fn config(
    name: &str,
    own: &Ports,
    peer: (&str, &Ports, &str),
    vms: Vec<VmSeed>,
) -> SiteConfigBuilder {
    SiteConfigBuilder::new(name)
        .listen(
            &format!("127.0.0.1:{}", own.api),
            &format!("127.0.0.1:{}", own.repl),
        )
        .peer(
            peer.0,
            &format!("http://127.0.0.1:{}", peer.1.api),
            &format!("127.0.0.1:{}", peer.1.repl),
            peer.2,
        )
        .token("bench", Role::Admin, TOKEN)
        .vms(vms)
}

pub fn vms(count: u64, size_mib: u64, power_on: bool, kib_s: u64, rpo: u64) -> Vec<VmSeed> {
    (0..count)
        .map(|i| VmSeed {
            power_on,
            guest: GuestSeed {
                records_per_second: 2.0,
                overwrite_kib_per_second: kib_s,
            },
            replication: Some(testkit::replication(rpo)),
            ..testkit::vm(&format!("vm-{i:04}"), size_mib)
        })
        .collect()
}

/// A `ferry-replicator` process, stopped with SIGTERM when dropped.
pub struct Site {
    process: SiteProcess,
}

impl std::ops::Deref for Site {
    type Target = SiteProcess;
    fn deref(&self) -> &SiteProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Site {
    fn deref_mut(&mut self) -> &mut SiteProcess {
        &mut self.process
    }
}

impl Site {
    pub fn start(dir: &Path, config: &SiteConfigBuilder) -> Self {
        config.write(dir);
        let process = SiteProcess::spawn(
            Path::new(env!("CARGO_BIN_EXE_ferry-replicator")),
            &["--config"],
            dir,
            "warn",
        );
        Self { process }
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
        self.process.terminate();
    }
}

/// One site's API through the ferry-api client, for benches that are plain
/// blocking code: each call runs on a current-thread runtime of its own.
pub struct Api {
    runtime: tokio::runtime::Runtime,
    client: ferry_api::Client,
}

impl Api {
    pub fn new(site: &str, ports: &Ports, timeout: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let url = format!("http://127.0.0.1:{}", ports.api);
        let client = ferry_api::Client::new(site, &url, TOKEN, timeout).expect("a client");
        Self { runtime, client }
    }

    /// Runs one of the client's calls to its end.
    pub fn block<'a, T, F>(&'a self, call: impl FnOnce(&'a ferry_api::Client) -> F) -> T
    where
        F: Future<Output = T> + 'a,
    {
        self.runtime.block_on(call(&self.client))
    }

    /// The site's replications; none while it does not answer.
    pub fn replications(&self) -> Vec<ReplicationInfo> {
        self.block(|c| c.replications()).unwrap_or_default()
    }
}

/// A paired site-a (with `vms`) and an empty site-b on free ports; returns
/// both and site-a's ports.
pub fn start_pair(work: &Path, name: &str, vms: Vec<VmSeed>) -> (Site, Site, Ports) {
    let (site_a, site_b, a, _) = start_pair_with_ports(work, name, vms);
    (site_a, site_b, a)
}

/// [`start_pair`], with site-b's ports too.
pub fn start_pair_with_ports(
    work: &Path,
    name: &str,
    vms: Vec<VmSeed>,
) -> (Site, Site, Ports, Ports) {
    start_pair_on(work, name, vms, &ComputeConfig::default())
}

/// [`start_pair_with_ports`], both sites running their VMs on `compute`.
pub fn start_pair_on(
    work: &Path,
    name: &str,
    vms: Vec<VmSeed>,
    compute: &ComputeConfig,
) -> (Site, Site, Ports, Ports) {
    let a = Ports {
        api: free_port(),
        repl: free_port(),
    };
    let b = Ports {
        api: free_port(),
        repl: free_port(),
    };
    // Each site's certificate is made before either starts, so both
    // configs can pin the other's from the first connection.
    let (dir_a, dir_b) = (
        work.join(format!("{name}-a")),
        work.join(format!("{name}-b")),
    );
    let (fp_a, fp_b) = (site_fingerprint(&dir_a), site_fingerprint(&dir_b));
    let site_b = Site::start(
        &dir_b,
        &config("site-b", &b, ("site-a", &a, &fp_a), Vec::new()).compute(compute.clone()),
    );
    let site_a = Site::start(
        &dir_a,
        &config("site-a", &a, ("site-b", &b, &fp_b), vms).compute(compute.clone()),
    );
    (site_a, site_b, a, b)
}
