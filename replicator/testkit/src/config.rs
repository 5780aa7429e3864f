//! A test site's configuration, built with types instead of TOML text: one
//! datastore `ds1`, folder `f`, pool `p`, a network `net` and the isolated
//! test network `bubble`, listening on port 0 unless told otherwise.

use std::path::Path;

use ferry_replicator::access::{Role, TokenEntry, hash_token};
use ferry_replicator::config::{
    DatastoreConfig, DiskSeed, GuestSeed, Listen, NetworkConfig, NicSeed, PeerConfig,
    ReplicationSeed, SiteConfig, VmSeed,
};

/// Builds a [`SiteConfig`]; [`Self::write`] puts it where a site reads it.
#[derive(Debug, Clone)]
pub struct SiteConfigBuilder {
    config: SiteConfig,
}

impl SiteConfigBuilder {
    pub fn new(name: &str) -> Self {
        let network = |name: &str, test: bool| NetworkConfig {
            name: name.into(),
            test,
            subnet: None,
            gateway: None,
        };
        Self {
            config: SiteConfig {
                name: name.into(),
                listen: Listen {
                    api: "127.0.0.1:0".into(),
                    replication: "127.0.0.1:0".into(),
                    // Plain HTTP on loopback unless a test asks for TLS
                    // (`api_tls`): most tests are about the API, not its TLS.
                    api_tls: false,
                },
                datastores: vec![DatastoreConfig {
                    name: "ds1".into(),
                    path: "ds1".into(),
                }],
                networks: vec![network("net", false), network("bubble", true)],
                folders: vec!["f".into()],
                resource_pools: vec!["p".into()],
                peer: None,
                tokens: Vec::new(),
                vms: Vec::new(),
                compute: Default::default(),
                audit: Default::default(),
                bandwidth: Default::default(),
                scrub: Default::default(),
                demo: false,
            },
        }
    }

    /// Listens on these addresses (`127.0.0.1:port`) instead of port 0.
    pub fn listen(mut self, api: &str, replication: &str) -> Self {
        self.config.listen.api = api.into();
        self.config.listen.replication = replication.into();
        self
    }

    /// Serves the API over TLS with the site's certificate (or not).
    pub fn api_tls(mut self, on: bool) -> Self {
        self.config.listen.api_tls = on;
        self
    }

    /// Marks the site a demo site (the simulated attack is allowed).
    pub fn demo(mut self, on: bool) -> Self {
        self.config.demo = on;
        self
    }

    /// Keeps only the newest `rows` audit entries.
    pub fn audit_keep_rows(mut self, rows: u64) -> Self {
        self.config.audit.keep_rows = rows;
        self
    }

    /// Accepts `token` (kept as its hash, as a site keeps it).
    pub fn token(mut self, name: &str, role: Role, token: &str) -> Self {
        self.config.tokens.push(TokenEntry {
            name: name.into(),
            role,
            hash: hash_token(token),
        });
        self
    }

    /// Pairs with `name` at `url` (API) and `replication` from the start,
    /// pinning the peer's certificate `fingerprint`.
    pub fn peer(mut self, name: &str, url: &str, replication: &str, fingerprint: &str) -> Self {
        self.config.peer = Some(PeerConfig {
            name: name.into(),
            url: url.into(),
            replication: replication.into(),
            fingerprint: fingerprint.into(),
            secret: String::new(),
        });
        self
    }

    /// Runs the site's VMs on `compute` (the built-in guest unless told).
    pub fn compute(mut self, compute: ferry_replicator::config::ComputeConfig) -> Self {
        self.config.compute = compute;
        self
    }

    pub fn vm(mut self, vm: VmSeed) -> Self {
        self.config.vms.push(vm);
        self
    }

    pub fn vms(mut self, vms: impl IntoIterator<Item = VmSeed>) -> Self {
        self.config.vms.extend(vms);
        self
    }

    /// Caps the site's replication bandwidth.
    pub fn bandwidth(mut self, policy: ferry_api::bandwidth::BandwidthPolicy) -> Self {
        self.config.bandwidth = policy;
        self
    }

    pub fn build(self) -> SiteConfig {
        self.config
    }

    pub fn to_toml(&self) -> String {
        // A config of plain strings and numbers always serializes.
        toml::to_string(&self.config).expect("a site config serializes to TOML")
    }

    /// Writes `site.toml` into `dir` (created if missing); gives its path.
    pub fn write(&self, dir: &Path) -> std::path::PathBuf {
        std::fs::create_dir_all(dir).expect("the site's directory");
        let path = dir.join("site.toml");
        std::fs::write(&path, self.to_toml()).expect("site.toml written");
        path
    }
}

/// A powered-on VM in folder `f`, pool `p`, with one disk of `size_mib` on
/// `ds1`, no NIC, the default guest and no replication; change what a test
/// needs with struct update syntax.
pub fn vm(name: &str, size_mib: u64) -> VmSeed {
    VmSeed {
        name: name.into(),
        folder: "f".into(),
        resource_pool: "p".into(),
        power_on: true,
        disks: vec![DiskSeed {
            datastore: "ds1".into(),
            size_mib,
        }],
        nics: Vec::new(),
        guest: GuestSeed::default(),
        replication: None,
        memory_mib: None,
        vcpus: None,
    }
}

/// A NIC on `network` with `ip` (`10.0.0.10/24`), no gateway or DNS.
pub fn nic(network: &str, ip: &str) -> NicSeed {
    NicSeed {
        network: network.into(),
        ip: Some(ip.into()),
        gateway: None,
        dns: Vec::new(),
    }
}

/// Replicates every `rpo_seconds` to the peer's first datastore.
pub fn replication(rpo_seconds: u64) -> ReplicationSeed {
    ReplicationSeed {
        rpo_seconds,
        datastore: None,
        compress: false,
        retention: Default::default(),
    }
}
