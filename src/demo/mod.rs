//! `ferry demo`: creates (or reuses) two demo sites under a data directory,
//! runs them as child processes of this binary, writes `demo.json` with
//! their URLs, pids and tokens, and stops them cleanly on SIGINT or SIGTERM.
//! A site that dies is left dead: killing site-a is how a disaster is
//! simulated. A new demo gets mappings, two protection groups and a plan
//! ([`seed`]).

mod seed;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ferry_replicator::access::{Role, TokenEntry, hash_token, new_token};
use ferry_replicator::config::{
    DatastoreConfig, Listen, NetworkConfig, PeerConfig, SiteConfig, VmSeed,
};
use ferry_replicator::identity::write_private;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const INVENTORY: &str = include_str!("../../assets/demo.toml");
const SITES: [&str; 2] = ["site-a", "site-b"];
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Run only the sites and print their URLs and tokens (no terminal UI).
    #[arg(long)]
    pub no_tui: bool,
    /// Where the demo keeps its sites; reused when it exists.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// First of four loopback ports: site-a API and replication, then site-b's.
    #[arg(long, env = "FERRY_DEMO_PORT_BASE", default_value_t = 47800)]
    port_base: u16,
}

/// The demo inventory file in assets/.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inventory {
    folders: Vec<String>,
    resource_pools: Vec<String>,
    protected_networks: Vec<NetworkConfig>,
    recovery_networks: Vec<NetworkConfig>,
    vms: Vec<VmSeed>,
}

/// `demo.json`: what scripts and tests need to reach the sites.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoFile {
    pub sites: Vec<DemoSite>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoSite {
    pub name: String,
    pub url: String,
    pub pid: u32,
    pub tokens: Tokens,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

/// Tokens and the pairing secret survive restarts of the demo.
#[derive(Serialize, Deserialize)]
struct Secrets {
    pairing: String,
    tokens: Vec<Tokens>,
}

fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("dev", "ferry", "ferry")
        .map(|d| d.data_dir().join("demo"))
        .unwrap_or_else(|| std::env::temp_dir().join("ferry-demo"))
}

fn load_or_make_secrets(dir: &Path) -> Result<Secrets, String> {
    let path = dir.join("secrets.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()));
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
    let text = serde_json::to_string_pretty(&secrets).map_err(|e| e.to_string())?;
    write_private(&path, text.as_bytes()).map_err(|e| e.to_string())?;
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
    }
}

/// `ferry.toml` beside `demo.json`: both sites with their admin tokens, so
/// scripts and a second TUI can say `ferry --config <dir>/ferry.toml status`
/// (or set `FERRY_CONFIG`). Readable by its owner only: it holds tokens.
fn write_client_config(dir: &Path, demo: &DemoFile) -> Result<(), String> {
    let mut text = String::from(
        "# Written by `ferry demo`: its two sites, for `ferry --config <this file>`.\n",
    );
    for site in &demo.sites {
        text.push_str(&format!(
            "\n[[sites]]\nname = {:?}\nurl = {:?}\ntoken = {:?}\n",
            site.name, site.url, site.tokens.admin
        ));
    }
    let path = dir.join("ferry.toml");
    write_private(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

async fn start_site(exe: &Path, dir: &Path) -> Result<(Child, String), String> {
    let log = std::fs::File::create(dir.join("site.log")).map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    // If the demo dies without stopping its sites (an SSH hangup, kill -9),
    // the kernel sends them SIGTERM so they stop cleanly, not live on. The
    // fork happens on the runtime's main thread, which lives as long as the
    // demo, so the parent-death signal fires when the demo goes.
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command
        .arg("site")
        .arg("--config")
        .arg(dir.join("site.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout from the site")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(START_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("api listening on ") {
                return Some(url.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| {
        format!(
            "the site in {} did not start; see {}",
            dir.display(),
            dir.join("site.log").display()
        )
    })?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

pub fn run(
    args: DemoArgs,
    ui: &crate::UiOptions,
    paths: &crate::settings::Paths,
) -> Result<(), String> {
    let dir = args.data_dir.unwrap_or_else(default_data_dir);
    ferry_replicator::site::trust::private_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let inventory: Inventory =
        toml::from_str(INVENTORY).map_err(|e| format!("assets/demo.toml: {e}"))?;
    let secrets = load_or_make_secrets(&dir)?;
    if args.port_base > u16::MAX - 4 {
        return Err(format!(
            "--port-base {} leaves no room for four ports",
            args.port_base
        ));
    }
    // Each site's certificate, made here on first start so that each
    // site.toml can pin the other's: the demo pairs its sites by itself.
    let fingerprints = SITES
        .iter()
        .map(|name| {
            ferry_replicator::identity::Identity::load_or_create(&dir.join(name))
                .map(|identity| identity.fingerprint.to_string())
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (index, name) in SITES.iter().enumerate() {
        let site_dir = dir.join(name);
        std::fs::create_dir_all(&site_dir).map_err(|e| e.to_string())?;
        let config = site_config(index, &inventory, &secrets, args.port_base, &fingerprints);
        let text = toml::to_string(&config).map_err(|e| e.to_string())?;
        write_private(&site_dir.join("site.toml"), text.as_bytes()).map_err(|e| e.to_string())?;
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let mut children = Vec::new();
        let mut sites = Vec::new();
        // The recovery site first, so the protected site finds it listening.
        for (index, name) in SITES.iter().enumerate().rev() {
            let (child, url) = start_site(&exe, &dir.join(name)).await?;
            sites.push(DemoSite {
                name: name.to_string(),
                url,
                pid: child.id().unwrap_or(0),
                tokens: Tokens {
                    admin: secrets.tokens[index].admin.clone(),
                    operator: secrets.tokens[index].operator.clone(),
                    viewer: secrets.tokens[index].viewer.clone(),
                },
            });
            children.push(child);
        }
        sites.reverse();
        let file = DemoFile { sites };
        let json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        write_private(&dir.join("demo.json"), json.as_bytes()).map_err(|e| e.to_string())?;
        write_client_config(&dir, &file)?;
        let seeding = tokio::spawn(seed_quietly(file.sites.clone(), inventory));
        let outcome = if args.no_tui {
            println!("{json}");
            ferry_replicator::server::shutdown_signal().await;
            Ok(())
        } else {
            let endpoints = file
                .sites
                .iter()
                .map(|s| crate::feed::Endpoint {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    token: if ui.read_only {
                        s.tokens.viewer.clone()
                    } else {
                        s.tokens.admin.clone()
                    },
                    fingerprint: None,
                })
                .collect();
            let theme = crate::theme::Theme::load(
                &crate::theme::choose(ui.theme.as_deref(), None),
                &paths.themes_dir,
            )?;
            crate::tui::run(endpoints, theme, ui.read_only, ui.noc).await
        };
        seeding.abort();
        stop_all(children).await;
        outcome
    })
}

/// Seeds a new demo in the background; the sites run either way.
async fn seed_quietly(sites: Vec<DemoSite>, inventory: Inventory) {
    let network = |n: &NetworkConfig| seed::Network {
        name: n.name.clone(),
        test: n.test,
        subnet: n.subnet.clone(),
        gateway: n.gateway.clone(),
    };
    let layout = seed::Layout {
        folders: inventory.folders,
        resource_pools: inventory.resource_pools,
        protected_networks: inventory.protected_networks.iter().map(network).collect(),
        recovery_networks: inventory.recovery_networks.iter().map(network).collect(),
        vms: inventory
            .vms
            .iter()
            .map(|v| seed::Vm {
                name: v.name.clone(),
                folder: v.folder.clone(),
            })
            .collect(),
    };
    match seed::seed(sites, &layout).await {
        Ok(()) => tracing::info!("demo mappings, groups and plan in place"),
        Err(e) => tracing::warn!("demo mappings, groups and plan not made: {e}"),
    }
}

/// SIGTERM to every site still running, then a wait; a site that does not
/// stop in time is killed.
async fn stop_all(children: Vec<Child>) {
    for mut child in children {
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(STOP_TIMEOUT, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}
