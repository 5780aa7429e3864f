//! `ferry demo`: runs two demo sites under a data directory (their configs
//! written by the entry point, with the replicator's `demo_pair`) as
//! child processes of this binary, writes `demo.json` with
//! their URLs, pids and tokens, and stops them cleanly on SIGINT or SIGTERM.
//! A site that dies is left dead: killing site-a is how a disaster is
//! simulated. A new demo gets mappings, two protection groups and a plan
//! ([`seed`]).

mod seed;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The demo inventory: the entry point writes the pair's site configs from
/// it, and the seeding takes its names.
pub const INVENTORY: &str = include_str!("../../assets/demo.toml");
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the demo could not start its sites or open the UI.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("assets/demo.toml: {0}")]
    Inventory(toml::de::Error),
    #[error("--vms {count}: the demo has 1 to {max} VMs")]
    VmCount { count: usize, max: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}: {error}", path.display())]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start {}: {error}", exe.display())]
    Spawn { exe: PathBuf, error: std::io::Error },
    #[error("no stdout from the site")]
    NoStdout,
    #[error("the site in {} did not start; see {}", dir.display(), dir.join("site.log").display())]
    NotStarted { dir: PathBuf },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Theme(#[from] crate::theme::ThemeError),
    #[error(transparent)]
    Draw(#[from] crate::tui::DrawError),
}

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
    /// What runs the VMs: `builtin` (the built-in guest, instant) or `qemu`
    /// (each VM a real Linux under qemu-system-x86_64, 128 MiB each; builds
    /// the guest image first). Use a fresh --data-dir when switching.
    #[arg(long, value_enum, default_value_t = DemoCompute::Builtin)]
    pub compute: DemoCompute,
    /// How many of the demo's 12 VMs to run (1-12), a spread over the
    /// tiers. Default: all 12 built-in guests, or 3 QEMU VMs: a TCG guest
    /// takes about 240 MiB and a core for seconds at boot, and a machine of
    /// two shared cores boots three within a minute and keeps them and
    /// their replication going.
    #[arg(long)]
    pub vms: Option<usize>,
}

/// How many QEMU VMs the demo runs unless `--vms` says (see [`DemoArgs::vms`]).
pub const QEMU_DEMO_VMS: usize = 3;

/// `--compute`: the backend the demo's sites run their VMs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoCompute {
    Builtin,
    Qemu,
}

impl DemoArgs {
    /// Where the demo keeps its sites: `--data-dir` or the platform's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            directories::ProjectDirs::from("dev", "ferry", "ferry")
                .map(|d| d.data_dir().join("demo"))
                .unwrap_or_else(|| std::env::temp_dir().join("ferry-demo"))
        })
    }

    pub fn port_base(&self) -> u16 {
        self.port_base
    }

    /// The demo inventory with the VMs this demo runs: `--vms`, or the
    /// default for its compute backend.
    pub fn inventory(&self) -> Result<String, DemoError> {
        let count = match (self.vms, self.compute) {
            (Some(n), _) => n,
            (None, DemoCompute::Qemu) => QEMU_DEMO_VMS,
            (None, DemoCompute::Builtin) => usize::MAX,
        };
        inventory_of(INVENTORY, count)
    }
}

/// `inventory` (assets/demo.toml's text) keeping `count` of its VMs: the
/// first of each tier, then the second of each, and so on, in the file's
/// order, so a small demo still has a database, an app and a web server
/// and a VM's dependency (the second of a tier on the first) is kept.
pub fn inventory_of(inventory: &str, count: usize) -> Result<String, DemoError> {
    let mut table: toml::Table = toml::from_str(inventory).map_err(DemoError::Inventory)?;
    let vms = table
        .get("vms")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    if count == 0 || (count != usize::MAX && count > vms.len()) {
        return Err(DemoError::VmCount {
            count,
            max: vms.len(),
        });
    }
    if count >= vms.len() {
        return Ok(inventory.to_string());
    }
    let tier = |v: &toml::Value| {
        v.get("name")
            .and_then(|n| n.as_str())
            .and_then(|n| n.split('-').next())
            .unwrap_or_default()
            .to_string()
    };
    // Each VM's rank within its tier, then the tiers in the file's order.
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut order: Vec<(usize, usize)> = vms
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let rank = seen.entry(tier(v)).or_default();
            *rank += 1;
            (*rank, i)
        })
        .collect();
    order.sort();
    let mut keep: Vec<usize> = order.into_iter().take(count).map(|(_, i)| i).collect();
    keep.sort_unstable();
    let kept: Vec<toml::Value> = keep.into_iter().map(|i| vms[i].clone()).collect();
    table.insert("vms".into(), toml::Value::Array(kept));
    Ok(table.to_string())
}

/// One site of the pair whose config the entry point has written.
pub struct PairSite {
    pub name: String,
    /// Holds the site's site.toml; its log and database go beside it.
    pub dir: PathBuf,
    pub tokens: Tokens,
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

/// `ferry.toml` beside `demo.json`: both sites with their admin tokens, so
/// scripts and a second TUI can say `ferry --config <dir>/ferry.toml status`
/// (or set `FERRY_CONFIG`). Readable by its owner only: it holds tokens.
fn write_client_config(dir: &Path, demo: &DemoFile) -> Result<(), DemoError> {
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
    write_private(&path, text.as_bytes()).map_err(|error| DemoError::File { path, error })
}

/// Writes a file only its owner can read: the demo's files hold tokens.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

async fn start_site(exe: &Path, dir: &Path) -> Result<(Child, String), DemoError> {
    let log = std::fs::File::create(dir.join("site.log"))?;
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
        .map_err(|error| DemoError::Spawn {
            exe: exe.to_path_buf(),
            error,
        })?;
    let stdout = child.stdout.take().ok_or(DemoError::NoStdout)?;
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
    .ok_or_else(|| DemoError::NotStarted {
        dir: dir.to_path_buf(),
    })?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

/// Starts `sites` (the protected site first), writes demo.json and
/// ferry.toml, seeds a new demo and opens the UI (or, with `--no-tui`, waits
/// for `shutdown`); then stops the sites.
pub fn run(
    args: DemoArgs,
    sites: Vec<PairSite>,
    shutdown: impl Future<Output = ()>,
    ui: &crate::UiOptions,
    paths: &crate::settings::Paths,
) -> Result<(), DemoError> {
    let dir = args.data_dir();
    let layout: seed::Layout = toml::from_str(&args.inventory()?).map_err(DemoError::Inventory)?;
    let exe = std::env::current_exe()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut children = Vec::new();
        let mut started = Vec::new();
        // The recovery site first, so the protected site finds it listening.
        for site in sites.into_iter().rev() {
            let (child, url) = start_site(&exe, &site.dir).await?;
            started.push(DemoSite {
                name: site.name,
                url,
                pid: child.id().unwrap_or(0),
                tokens: site.tokens,
            });
            children.push(child);
        }
        started.reverse();
        let file = DemoFile { sites: started };
        let json = serde_json::to_string_pretty(&file)?;
        let path = dir.join("demo.json");
        write_private(&path, json.as_bytes()).map_err(|error| DemoError::File { path, error })?;
        write_client_config(&dir, &file)?;
        let seeding = tokio::spawn(seed_quietly(file.sites.clone(), layout));
        let outcome = if args.no_tui {
            println!("{json}");
            shutdown.await;
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
            Ok(crate::tui::run(endpoints, theme, ui.read_only, ui.noc).await?)
        };
        seeding.abort();
        stop_all(children).await;
        outcome
    })
}

/// Seeds a new demo in the background; the sites run either way.
async fn seed_quietly(sites: Vec<DemoSite>, layout: seed::Layout) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        let layout: seed::Layout = toml::from_str(text).unwrap();
        layout.vms.into_iter().map(|v| v.name).collect()
    }

    #[test]
    fn a_smaller_demo_keeps_a_spread_over_the_tiers() {
        assert_eq!(
            names(&inventory_of(INVENTORY, 3).unwrap()),
            ["db-01", "app-01", "web-01"]
        );
        assert_eq!(
            names(&inventory_of(INVENTORY, 5).unwrap()),
            ["db-01", "db-02", "app-01", "app-02", "web-01"]
        );
        assert_eq!(
            names(&inventory_of(INVENTORY, usize::MAX).unwrap()).len(),
            12
        );
        for bad in [0, 13] {
            let e = inventory_of(INVENTORY, bad).unwrap_err().to_string();
            assert!(e.contains("1 to 12 VMs"), "{e}");
        }
    }
}
