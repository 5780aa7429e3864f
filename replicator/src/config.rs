//! `site.toml`: what a site is. Parsed first (serde rejects unknown keys and
//! wrong types, naming them), then checked as a whole (names, ranges,
//! references), so a bad file stops the site with the file, the key and the
//! reason, before anything is touched.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::access::TokenEntry;
use crate::replication::receiver::is_safe_name;
use crate::replication::schedule::check_rpo;
use ferry_api::retention::RetentionPolicy;

mod compute;
mod scrub;

use compute::check_compute;
pub use compute::{Accelerator, ComputeConfig, ComputeKind, MEMORY_MIB, VCPUS};
pub use scrub::ScrubConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    pub listen: Listen,
    pub datastores: Vec<DatastoreConfig>,
    #[serde(default)]
    pub networks: Vec<NetworkConfig>,
    #[serde(default)]
    pub folders: Vec<String>,
    #[serde(default)]
    pub resource_pools: Vec<String>,
    pub peer: Option<PeerConfig>,
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// VMs created on the site's first start (an empty database).
    #[serde(default)]
    pub vms: Vec<VmSeed>,
    /// Where the site's VMs run.
    #[serde(default)]
    pub compute: ComputeConfig,
    /// How much of the audit log site.db keeps.
    #[serde(default)]
    pub audit: AuditRetention,
    /// The cap on replication bandwidth, until one is set through the API.
    #[serde(default)]
    pub bandwidth: ferry_api::bandwidth::BandwidthPolicy,
    /// How often every replica held here is scrubbed.
    #[serde(default)]
    pub scrub: ScrubConfig,
    /// A demo site (written by `ferry demo`): allows the simulated attack.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

/// The audit log's bound: the newest `keep_rows` entries, none older than
/// `keep_days`. Pruned as entries are written, so a flood of refused calls
/// cannot grow site.db without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRetention {
    #[serde(default = "AuditRetention::default_rows")]
    pub keep_rows: u64,
    #[serde(default = "AuditRetention::default_days")]
    pub keep_days: u64,
}

impl AuditRetention {
    fn default_rows() -> u64 {
        100_000
    }
    fn default_days() -> u64 {
        400
    }
}

impl Default for AuditRetention {
    fn default() -> Self {
        Self {
            keep_rows: Self::default_rows(),
            keep_days: Self::default_days(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// The HTTP API, e.g. `127.0.0.1:47800`; port 0 picks a free port.
    pub api: String,
    /// The replication listener the peer sends to.
    pub replication: String,
    /// Serves the API over TLS with the site's certificate. `false` (plain
    /// HTTP) is accepted only for a loopback `api` address.
    #[serde(default = "yes")]
    pub api_tls: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    pub name: String,
    /// Relative paths are relative to the directory of site.toml.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub name: String,
    /// An isolated network used only by test recoveries.
    #[serde(default)]
    pub test: bool,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    /// The peer's HTTP API.
    pub url: String,
    /// The peer's replication listener, `host:port`.
    pub replication: String,
    /// The peer's certificate fingerprint (`sha256:` and 64 hex digits),
    /// pinned at pairing: the replication link accepts only that
    /// certificate.
    #[serde(default)]
    pub fingerprint: String,
    /// The shared secret older versions authenticated with. Still read so
    /// an old site.toml loads, but it decides nothing any more.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmSeed {
    pub name: String,
    pub folder: String,
    pub resource_pool: String,
    #[serde(default)]
    pub power_on: bool,
    pub disks: Vec<DiskSeed>,
    #[serde(default)]
    pub nics: Vec<NicSeed>,
    #[serde(default)]
    pub guest: GuestSeed,
    pub replication: Option<ReplicationSeed>,
    /// Memory and vCPUs; `[compute]`'s when not given.
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DiskSeed {
    pub datastore: String,
    pub size_mib: u64,
}

/// A NIC seed is also what the API shows of a VM's NICs.
pub use ferry_api::types::NicSeed;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuestSeed {
    pub records_per_second: f64,
    pub overwrite_kib_per_second: u64,
}

impl Default for GuestSeed {
    fn default() -> Self {
        Self {
            records_per_second: 5.0,
            overwrite_kib_per_second: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSeed {
    pub rpo_seconds: u64,
    /// Target datastore at the peer; default: the peer's first.
    pub datastore: Option<String>,
    #[serde(default)]
    pub compress: bool,
    /// Older instances the replica keeps; default: the newest only.
    #[serde(default, skip_serializing_if = "RetentionPolicy::newest_only")]
    pub retention: RetentionPolicy,
}

/// A config that failed to load: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

/// A loaded, checked config and where it lives.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub site: SiteConfig,
    /// The directory of site.toml: site.db lives here too.
    pub dir: PathBuf,
    pub file: PathBuf,
}

impl LoadedConfig {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let fail = |message: String| ConfigError {
            file: file.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(file).map_err(|e| fail(format!("cannot read: {e}")))?;
        let site: SiteConfig = toml::from_str(&text).map_err(|e| fail(describe_toml_error(&e)))?;
        validate(&site).map_err(|e| fail(e.to_string()))?;
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(Self {
            site,
            dir,
            file: file.to_path_buf(),
        })
    }

    pub fn datastore_path(&self, name: &str) -> Option<PathBuf> {
        self.site
            .datastores
            .iter()
            .find(|d| d.name == name)
            .map(|d| self.dir.join(&d.path))
    }
}

fn describe_toml_error(e: &toml::de::Error) -> String {
    // toml's message names the key and the line; keep it on one line.
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A key of site.toml with a value that cannot be used: which key and why,
/// so a caller (the peer API) can name its own field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {why}")]
pub struct KeyError {
    pub key: String,
    pub why: String,
}

fn key_err(key: &str, why: impl std::fmt::Display) -> KeyError {
    KeyError {
        key: key.to_string(),
        why: why.to_string(),
    }
}

fn check_name(key: &str, name: &str) -> Result<(), KeyError> {
    if is_safe_name(name) {
        Ok(())
    } else {
        Err(key_err(
            key,
            format!(
                "{name:?} must be 1-128 letters, digits, '-', '_' or '.', not starting with '.'"
            ),
        ))
    }
}

fn unique<'a>(
    key: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<BTreeSet<&'a str>, KeyError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(key_err(key, format!("{name:?} appears twice")));
        }
    }
    Ok(seen)
}

/// Checks a parsed config as a whole.
pub fn validate(c: &SiteConfig) -> Result<(), KeyError> {
    check_name("name", &c.name)?;
    for (key, addr) in [
        ("listen.api", &c.listen.api),
        ("listen.replication", &c.listen.replication),
    ] {
        addr.parse::<SocketAddr>().map_err(|_| {
            key_err(
                key,
                format!("{addr:?} is not an address like 127.0.0.1:47800"),
            )
        })?;
    }
    if !c.listen.api_tls
        && !c
            .listen
            .api
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    {
        return Err(key_err(
            "listen.api_tls",
            "plain HTTP (false) is allowed only on a loopback address: anyone on the path \
             could read the tokens",
        ));
    }
    if c.scrub.every_hours > 8760 {
        return Err(key_err(
            "scrub.every_hours",
            format!(
                "{} is more than a year (8760); 0 turns periodic scrubs off",
                c.scrub.every_hours
            ),
        ));
    }
    if c.datastores.is_empty() {
        return Err(key_err("datastores", "a site needs at least one datastore"));
    }
    for (i, d) in c.datastores.iter().enumerate() {
        check_name(&format!("datastores[{i}].name"), &d.name)?;
    }
    let datastores = unique("datastores", c.datastores.iter().map(|d| d.name.as_str()))?;
    let networks = unique("networks", c.networks.iter().map(|n| n.name.as_str()))?;
    let folders = unique("folders", c.folders.iter().map(String::as_str))?;
    let pools = unique(
        "resource_pools",
        c.resource_pools.iter().map(String::as_str),
    )?;
    if let Some(peer) = &c.peer {
        check_peer(peer)?;
    }
    for (i, t) in c.tokens.iter().enumerate() {
        if blake3::Hash::from_hex(&t.hash).is_err() {
            return Err(key_err(
                &format!("tokens[{i}].hash"),
                "must be the 64-hex-digit BLAKE3 hash of the token, not the token",
            ));
        }
    }
    unique("tokens", c.tokens.iter().map(|t| t.name.as_str()))?;
    check_compute(&c.compute)?;
    c.bandwidth
        .validate()
        .map_err(|e| key_err(&format!("bandwidth.{}", e.field), e.message))?;
    if c.audit.keep_rows < 100 {
        return Err(key_err("audit.keep_rows", "keep at least 100 entries"));
    }
    if c.audit.keep_days == 0 {
        return Err(key_err("audit.keep_days", "keep at least a day"));
    }
    unique("vms", c.vms.iter().map(|v| v.name.as_str()))?;
    for (i, vm) in c.vms.iter().enumerate() {
        let key = |field: &str| format!("vms[{i}].{field}");
        check_name(&key("name"), &vm.name)?;
        if !folders.contains(vm.folder.as_str()) {
            return Err(key_err(
                &key("folder"),
                format!("no folder {:?} in `folders`", vm.folder),
            ));
        }
        if !pools.contains(vm.resource_pool.as_str()) {
            return Err(key_err(
                &key("resource_pool"),
                format!(
                    "no resource pool {:?} in `resource_pools`",
                    vm.resource_pool
                ),
            ));
        }
        if vm.disks.is_empty() || vm.disks.len() > 16 {
            return Err(key_err(&key("disks"), "a VM has 1 to 16 disks"));
        }
        for (d, disk) in vm.disks.iter().enumerate() {
            if !datastores.contains(disk.datastore.as_str()) {
                return Err(key_err(
                    &key(&format!("disks[{d}].datastore")),
                    format!("no datastore {:?}", disk.datastore),
                ));
            }
            if !(1..=1 << 20).contains(&disk.size_mib) {
                return Err(key_err(
                    &key(&format!("disks[{d}].size_mib")),
                    "must be 1 to 1048576",
                ));
            }
        }
        for (n, nic) in vm.nics.iter().enumerate() {
            if !networks.contains(nic.network.as_str()) {
                return Err(key_err(
                    &key(&format!("nics[{n}].network")),
                    format!("no network {:?}", nic.network),
                ));
            }
        }
        if !(0.0..=1000.0).contains(&vm.guest.records_per_second) {
            return Err(key_err(
                &key("guest.records_per_second"),
                "must be 0 to 1000",
            ));
        }
        if vm.guest.overwrite_kib_per_second > 1 << 20 {
            return Err(key_err(
                &key("guest.overwrite_kib_per_second"),
                "must be 0 to 1048576",
            ));
        }
        if let Some(m) = vm.memory_mib
            && !MEMORY_MIB.contains(&m)
        {
            return Err(key_err(&key("memory_mib"), "must be 16 to 1048576"));
        }
        if let Some(n) = vm.vcpus
            && !VCPUS.contains(&n)
        {
            return Err(key_err(&key("vcpus"), "must be 1 to 64"));
        }
        if let Some(r) = &vm.replication {
            if c.peer.is_none() {
                return Err(key_err(
                    &key("replication"),
                    "replication needs a [peer] to replicate to",
                ));
            }
            check_rpo(Duration::from_secs(r.rpo_seconds))
                .map_err(|e| key_err(&key("replication.rpo_seconds"), e))?;
            r.retention
                .validate(r.rpo_seconds)
                .map_err(|e| key_err(&key(&format!("replication.{}", e.field)), e.message))?;
        }
    }
    Ok(())
}

pub fn check_peer(peer: &PeerConfig) -> Result<(), KeyError> {
    check_name("peer.name", &peer.name)?;
    if !(peer.url.starts_with("http://") || peer.url.starts_with("https://")) {
        return Err(key_err(
            "peer.url",
            format!("{:?} is not an http(s) URL", peer.url),
        ));
    }
    if peer
        .replication
        .rsplit_once(':')
        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return Err(key_err(
            "peer.replication",
            format!("{:?} is not host:port", peer.replication),
        ));
    }
    if peer.fingerprint.is_empty() {
        return Err(key_err(
            "peer.fingerprint",
            "is missing: pin the peer's certificate fingerprint, which its GET /api/v1/site shows",
        ));
    }
    peer.fingerprint
        .parse::<crate::identity::Fingerprint>()
        .map_err(|e| key_err("peer.fingerprint", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "site-a"
folders = ["db"]
resource_pools = ["gold"]
[listen]
api = "127.0.0.1:0"
replication = "127.0.0.1:0"
[[datastores]]
name = "ds1"
path = "ds1"
[[networks]]
name = "prod"
[peer]
name = "site-b"
url = "http://127.0.0.1:47802"
replication = "127.0.0.1:47803"
fingerprint = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
[[vms]]
name = "db-01"
folder = "db"
resource_pool = "gold"
disks = [{ datastore = "ds1", size_mib = 64 }]
nics = [{ network = "prod", ip = "10.0.0.5/24" }]
replication = { rpo_seconds = 15 }
"#;

    /// `[compute]` errors: each names its key.
    fn cases_extra(qemu: &str) {
        let e = load(qemu).unwrap_err().to_string();
        assert!(e.contains("compute.guest_image"), "{e}");
        let ok = qemu.replace(
            "backend = \"qemu\"",
            "backend = \"qemu\"\nguest_image = \"/img\"\naccelerator = \"tcg\"",
        );
        let c = load(&ok).unwrap();
        assert_eq!(c.site.compute.backend, ComputeKind::Qemu);
        assert_eq!(c.site.compute.accelerator, Accelerator::Tcg);
        for (bad, key) in [
            (
                ok.replace("accelerator = \"tcg\"", "accelerator = \"xen\""),
                "accelerator",
            ),
            (
                ok.replace("guest_image", "memory_mib = 1\nguest_image"),
                "compute.memory_mib",
            ),
            (
                ok.replace("[[vms]]\n", "[[vms]]\nvcpus = 0\n"),
                "vms[0].vcpus",
            ),
        ] {
            let e = load(&bad).unwrap_err().to_string();
            assert!(e.contains(key), "{key} not in {e}");
        }
    }

    fn load(text: &str) -> Result<LoadedConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(&file, text).unwrap();
        LoadedConfig::load(&file)
    }

    #[test]
    fn good_config_loads() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.site.vms[0].guest, GuestSeed::default());
        assert!(c.datastore_path("ds1").unwrap().ends_with("ds1"));
    }

    /// `[bandwidth]`: a cap with a window loads; a bad one names its key.
    #[test]
    fn a_bandwidth_cap_loads_and_a_bad_one_names_its_key() {
        let capped = format!(
            "{GOOD}[bandwidth]\nmib_per_second = 500\n[[bandwidth.windows]]\ndays = \"mon-fri\"\nfrom = \"08:00\"\nto = \"18:00\"\nmib_per_second = 50\n"
        );
        let c = load(&capped).unwrap();
        assert_eq!(c.site.bandwidth.mib_per_second, Some(500));
        assert_eq!(c.site.bandwidth.windows[0].mib_per_second, Some(50));
        let e = load(&capped.replace("\"18:00\"", "\"07:00\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bandwidth.windows[0].to") && e.contains("not after 08:00"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let c = load(GOOD).unwrap();
        assert!(c.site.listen.api_tls, "TLS unless told otherwise");
        let plain = GOOD.replace("[listen]\n", "[listen]\napi_tls = false\n");
        assert!(!load(&plain).unwrap().site.listen.api_tls);
        let exposed = plain.replace("api = \"127.0.0.1:0\"", "api = \"0.0.0.0:0\"");
        let e = load(&exposed).unwrap_err().to_string();
        assert!(
            e.contains("listen.api_tls") && e.contains("loopback"),
            "{e}"
        );
        let wide = GOOD.replace("api = \"127.0.0.1:0\"", "api = \"0.0.0.0:0\"");
        assert!(load(&wide).unwrap().site.listen.api_tls);
    }

    #[test]
    fn bad_configs_name_file_key_and_reason() {
        let cases = [
            (
                GOOD.replace("rpo_seconds = 15", "rpo_seconds = 3"),
                "vms[0].replication.rpo_seconds",
            ),
            (
                GOOD.replace("folder = \"db\"", "folder = \"nope\""),
                "vms[0].folder",
            ),
            (
                GOOD.replace("api = \"127.0.0.1:0\"", "api = \"nowhere\""),
                "listen.api",
            ),
            (
                GOOD.replace("size_mib = 64", "size_mib = \"big\""),
                "size_mib",
            ),
            (
                GOOD.replace("name = \"site-a\"", "name = \"site-a\"\ncolour = 1"),
                "colour",
            ),
            (
                GOOD.replace("name = \"ds1\"", "name = \"../ds\""),
                "datastores[0].name",
            ),
        ];
        let qemu = GOOD.replace("[[vms]]", "[compute]\nbackend = \"qemu\"\n[[vms]]");
        cases_extra(&qemu);
        for (text, key) in cases {
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains("site.toml"), "{err}");
            assert!(err.contains(key), "{key} not in {err}");
        }
    }
}
