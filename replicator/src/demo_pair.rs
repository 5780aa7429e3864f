//! A demo pair's files: given a directory, an inventory and a port base,
//! writes `site-a/site.toml` (the protected site, with the VMs) and
//! `site-b/site.toml` (the recovery site), each pinning the other's
//! certificate (made here on first start), and keeps the API tokens in
//! `secrets.json` so a restarted demo keeps them. Starting the sites is the
//! caller's (`ferry demo`'s) job; this only writes files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::access::{Role, TokenEntry, hash_token, new_token};
use crate::config::{
    ComputeConfig, DatastoreConfig, Listen, NetworkConfig, PeerConfig, SiteConfig, VmSeed,
};
use crate::identity::{Identity, write_private};

/// The protected site, then the recovery site.
pub const SITES: [&str; 2] = ["site-a", "site-b"];

#[derive(Debug, thiserror::Error)]
pub enum DemoPairError {
    #[error("assets/demo.toml: {0}")]
    Inventory(#[from] toml::de::Error),
    #[error("--port-base {0} leaves no room for four ports")]
    PortBase(u16),
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
}

/// The demo inventory: what site-a holds and both sites' networks.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inventory {
    folders: Vec<String>,
    resource_pools: Vec<String>,
    protected_networks: Vec<NetworkConfig>,
    recovery_networks: Vec<NetworkConfig>,
    vms: Vec<VmSeed>,
}

/// One site's API tokens, one per role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

/// Tokens survive restarts of the demo. `pairing` is what demos before
/// TLS paired with; it is still written so an older ferry reads the file,
/// but nothing checks it any more.
#[derive(Serialize, Deserialize)]
struct Secrets {
    pairing: String,
    tokens: Vec<Tokens>,
}

/// One site of the pair as written: its directory holds its site.toml.
#[derive(Debug, Clone)]
pub struct PairSite {
    pub name: String,
    pub dir: PathBuf,
    pub tokens: Tokens,
}

/// Writes both sites' configs under `dir` (created when missing), reusing
/// `dir/secrets.json` when it is there. `inventory` is the TOML text of the
/// demo inventory; the four ports from `port_base` on are site-a's API and
/// replication ports, then site-b's. Returns the sites in [`SITES`] order.
pub fn write(dir: &Path, inventory: &str, port_base: u16) -> Result<Vec<PairSite>, DemoPairError> {
    write_with(dir, inventory, port_base, &ComputeConfig::default())
}

/// [`write`], with both sites running their VMs on `compute`.
pub fn write_with(
    dir: &Path,
    inventory: &str,
    port_base: u16,
    compute: &ComputeConfig,
) -> Result<Vec<PairSite>, DemoPairError> {
    crate::site::trust::private_dir(dir).map_err(|e| file_error(dir, e))?;
    let inventory: Inventory = toml::from_str(inventory)?;
    let secrets = load_or_make_secrets(dir)?;
    if port_base > u16::MAX - 4 {
        return Err(DemoPairError::PortBase(port_base));
    }
    // Each site's certificate, made here on first start so that each
    // site.toml can pin the other's: the demo pairs its sites by itself.
    let fingerprints = SITES
        .iter()
        .map(|name| {
            let site_dir = dir.join(name);
            Identity::load_or_create(&site_dir)
                .map(|identity| identity.fingerprint.to_string())
                .map_err(|e| file_error(&site_dir, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut sites = Vec::new();
    for (index, name) in SITES.iter().enumerate() {
        let site_dir = dir.join(name);
        std::fs::create_dir_all(&site_dir).map_err(|e| file_error(&site_dir, e))?;
        let mut config = site_config(index, &inventory, &secrets, port_base, &fingerprints);
        config.compute = compute.clone();
        let path = site_dir.join("site.toml");
        let text = toml::to_string(&config).map_err(|e| file_error(&path, e))?;
        write_private(&path, text.as_bytes()).map_err(|e| file_error(&path, e))?;
        sites.push(PairSite {
            name: name.to_string(),
            dir: site_dir,
            tokens: secrets.tokens[index].clone(),
        });
    }
    Ok(sites)
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> DemoPairError {
    DemoPairError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn load_or_make_secrets(dir: &Path) -> Result<Secrets, DemoPairError> {
    let path = dir.join("secrets.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|e| file_error(&path, e));
    }
    let secrets = Secrets {
        pairing: new_token(),
        tokens: SITES
            .iter()
            .map(|_| Tokens {
                admin: new_token(),
                operator: new_token(),
                viewer: new_token(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| file_error(&path, e))?;
    write_private(&path, text.as_bytes()).map_err(|e| file_error(&path, e))?;
    Ok(secrets)
}

fn site_config(
    index: usize,
    inventory: &Inventory,
    secrets: &Secrets,
    port_base: u16,
    fingerprints: &[String],
) -> SiteConfig {
    let port = |i: u16| port_base + i;
    let (own, peer) = (index as u16 * 2, (1 - index as u16) * 2);
    let t = &secrets.tokens[index];
    let tokens = [
        ("admin", Role::Admin, &t.admin),
        ("operator", Role::Operator, &t.operator),
        ("viewer", Role::Viewer, &t.viewer),
    ]
    .into_iter()
    .map(|(name, role, token)| TokenEntry {
        name: name.into(),
        role,
        hash: hash_token(token),
    })
    .collect();
    SiteConfig {
        name: SITES[index].into(),
        listen: Listen {
            api: format!("127.0.0.1:{}", port(own)),
            replication: format!("127.0.0.1:{}", port(own + 1)),
            // The demo's sites and TUI share one machine: plain HTTP on
            // loopback, which a site accepts nowhere else.
            api_tls: false,
        },
        datastores: vec![DatastoreConfig {
            name: "ds1".into(),
            path: "ds1".into(),
        }],
        networks: if index == 0 {
            inventory.protected_networks.clone()
        } else {
            inventory.recovery_networks.clone()
        },
        folders: inventory.folders.clone(),
        resource_pools: inventory.resource_pools.clone(),
        peer: Some(PeerConfig {
            name: SITES[1 - index].into(),
            url: format!("http://127.0.0.1:{}", port(peer)),
            replication: format!("127.0.0.1:{}", port(peer + 1)),
            fingerprint: fingerprints[1 - index].clone(),
            secret: String::new(),
        }),
        tokens,
        vms: if index == 0 {
            inventory.vms.clone()
        } else {
            Vec::new()
        },
        compute: Default::default(),
        audit: Default::default(),
        bandwidth: Default::default(),
        scrub: Default::default(),
        demo: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = r#"
folders = ["Apps"]
resource_pools = ["Gold"]
protected_networks = [{ name = "prod", subnet = "10.10.1.0/24" }]
recovery_networks = [{ name = "dr", subnet = "10.20.1.0/24" }]
vms = []
"#;

    #[test]
    fn a_pair_points_each_site_at_the_other_and_keeps_its_tokens_on_rewrite() {
        let tmp = tempfile::tempdir().unwrap();
        let first = write(tmp.path(), INVENTORY, 40000).unwrap();
        let read = |site: &PairSite| -> SiteConfig {
            toml::from_str(&std::fs::read_to_string(site.dir.join("site.toml")).unwrap()).unwrap()
        };
        let (a, b) = (read(&first[0]), read(&first[1]));
        assert_eq!((a.name.as_str(), b.name.as_str()), ("site-a", "site-b"));
        assert_eq!(a.listen.api, "127.0.0.1:40000");
        assert_eq!(b.listen.replication, "127.0.0.1:40003");
        assert_eq!(a.peer.unwrap().url, "http://127.0.0.1:40002");
        assert_eq!(b.networks[0].name, "dr");
        assert_eq!(a.tokens[0].hash, hash_token(&first[0].tokens.admin));
        let again = write(tmp.path(), INVENTORY, 40000).unwrap();
        assert_eq!(again[1].tokens.viewer, first[1].tokens.viewer);
    }

    #[test]
    fn a_port_base_without_room_for_four_ports_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write(tmp.path(), INVENTORY, u16::MAX - 2).unwrap_err();
        assert!(matches!(err, DemoPairError::PortBase(_)), "{err}");
    }
}
