//! Site processes for tests, on the test kit (`ferry-testkit`): configs in
//! temp dirs, `ferry site` on port 0, pairing, and an HTTP client with
//! deadlines.

use std::path::Path;
use std::time::Duration;

use ferry_api::Client;
use ferry_api::types::{ReplicationInfo, SiteInfo};
use ferry_replicator::access::Role;
use ferry_replicator::config::{GuestSeed, SiteConfig, VmSeed};
use ferry_testkit::{SiteConfigBuilder, config};
pub use ferry_testkit::{SiteProcess, eventually};
use serde_json::{Value, json};

pub const ADMIN: &str = "admin-token-for-tests";
pub const OPERATOR: &str = "operator-token-for-tests";
pub const VIEWER: &str = "viewer-token-for-tests";

/// A test site's config: `vms` guest VMs with small disks, each with an
/// address on `net`, tokens for every role, no peer yet, port 0.
pub fn site_config(name: &str, vms: usize) -> SiteConfigBuilder {
    SiteConfigBuilder::new(name)
        .token("admin", Role::Admin, ADMIN)
        .token("operator", Role::Operator, OPERATOR)
        .token("viewer", Role::Viewer, VIEWER)
        .vms((0..vms).map(|i| VmSeed {
            nics: vec![config::nic("net", &format!("10.0.0.{}/24", 10 + i))],
            guest: GuestSeed {
                records_per_second: 20.0,
                overwrite_kib_per_second: 256,
            },
            ..config::vm(&format!("vm-{i}"), 8)
        }))
}

/// The test kit's site process, as the e2e tests start it: `ferry site`.
pub trait SiteProcessExt: Sized {
    /// Starts `ferry site` on the config in `dir` and reads its addresses.
    fn start(dir: &Path) -> Self;
    /// A new site in a fresh `dir` with `vms` VMs, on port 0.
    fn create(dir: &Path, name: &str, vms: usize) -> Self;
    /// Rewrites the config to listen on the ports it has now, so a restart
    /// comes back where the peer expects it.
    fn pin_ports(&self);
}

impl SiteProcessExt for SiteProcess {
    fn start(dir: &Path) -> Self {
        SiteProcess::spawn(
            Path::new(env!("CARGO_BIN_EXE_ferry")),
            &["site", "--config"],
            dir,
            "info",
        )
    }

    fn create(dir: &Path, name: &str, vms: usize) -> Self {
        site_config(name, vms).write(dir);
        Self::start(dir)
    }

    fn pin_ports(&self) {
        let path = self.dir.join("site.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut config: SiteConfig = toml::from_str(&text).unwrap();
        config.listen.api = self
            .api
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string();
        config.listen.replication = self.replication.clone();
        std::fs::write(path, toml::to_string(&config).unwrap()).unwrap();
    }
}

/// Raw HTTP to a site, for tests of the API itself (statuses, bodies the
/// typed client would never send); `typed` is the client the TUI uses.
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub typed: Client,
}

impl Api {
    pub fn new(site: &SiteProcess) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: format!("{}/api/v1", site.api),
            typed: Client::new("site", &site.api, VIEWER, Duration::from_secs(10)).unwrap(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .send(reqwest::Method::GET, path, Some(VIEWER), None)
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn site(&self) -> SiteInfo {
        self.typed.site_info().await.unwrap()
    }

    pub async fn replications(&self) -> Vec<ReplicationInfo> {
        self.typed.replications().await.unwrap()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.send(method, path, Some(ADMIN), body).await;
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }
}

/// Pairs `a` and `b` with each other, each pinning the certificate the
/// other shows.
pub async fn pair(a: &SiteProcess, an: &str, b: &SiteProcess, bn: &str) {
    for (site, peer, peer_name) in [(a, b, bn), (b, a, an)] {
        let fingerprint = Api::new(peer).site().await.fingerprint;
        Api::new(site)
            .admin(
                reqwest::Method::PUT,
                "/site/peer",
                Some(json!({
                    "name": peer_name,
                    "url": peer.api,
                    "replication": peer.replication,
                    "fingerprint": fingerprint,
                })),
            )
            .await;
    }
}

/// The first of a run of free loopback ports (for the demo's --port-base):
/// below the ephemeral range, so no site on port 0 takes one of them
/// between here and the demo's start, and a different run for each demo of
/// this process (by a counter) and of other test processes (by pid).
pub fn free_port_base() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let slot = (std::process::id().wrapping_mul(31) + n * 7) % 750;
        let base = 20_000 + 16 * slot as u16;
        if (base..base + 8).all(free) {
            return base;
        }
    }
}

/// Collects the names of the events `api`'s site streams, until the task
/// is aborted.
pub async fn watch_events(
    api: &Api,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures_util::StreamExt;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stream = api.typed.events().await.unwrap();
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(event)) = stream.next().await {
                if let Some(event) = event {
                    seen.lock().unwrap().push(event.name().to_string());
                }
            }
        })
    };
    (seen, collector)
}
