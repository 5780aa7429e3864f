//! Site processes for tests: config files in temp dirs, `ferry site` on port
//! 0, pairing, and an HTTP client with deadlines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_replicator::access::hash_token;
use ferry_replicator::api::types::{ReplicationInfo, SiteInfo};
use serde_json::{Value, json};

pub const ADMIN: &str = "admin-token-for-tests";
pub const OPERATOR: &str = "operator-token-for-tests";
pub const VIEWER: &str = "viewer-token-for-tests";

/// A site.toml for tests: `vms` guest VMs with small disks, no peer yet.
pub fn site_toml(name: &str, api: &str, replication: &str, vms: usize) -> String {
    let mut text = format!(
        r#"name = "{name}"
folders = ["f"]
resource_pools = ["p"]
[listen]
api = "{api}"
replication = "{replication}"
[[datastores]]
name = "ds1"
path = "ds1"
[[networks]]
name = "net"
[[networks]]
name = "bubble"
test = true
[[tokens]]
name = "admin"
role = "admin"
hash = "{}"
[[tokens]]
name = "operator"
role = "operator"
hash = "{}"
[[tokens]]
name = "viewer"
role = "viewer"
hash = "{}"
"#,
        hash_token(ADMIN),
        hash_token(OPERATOR),
        hash_token(VIEWER)
    );
    for i in 0..vms {
        text.push_str(&format!(
            r#"[[vms]]
name = "vm-{i}"
folder = "f"
resource_pool = "p"
power_on = true
disks = [{{ datastore = "ds1", size_mib = 8 }}]
nics = [{{ network = "net", ip = "10.0.0.{}/24" }}]
guest = {{ records_per_second = 20.0, overwrite_kib_per_second = 256 }}
"#,
            10 + i
        ));
    }
    text
}

pub struct SiteProcess {
    pub dir: PathBuf,
    pub child: Child,
    pub api: String,
    pub replication: String,
}

impl SiteProcess {
    /// Starts `ferry site` on the config in `dir` and reads its addresses.
    pub fn start(dir: &Path) -> Self {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("site.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["site", "--config"])
            .arg(dir.join("site.toml"))
            .env("FERRY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = |prefix: &str| -> String {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("site in {} exited; see site.log", dir.display()))
                .unwrap();
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
                .to_string()
        };
        let api = next("api listening on ");
        let replication = next("replication listening on ");
        std::thread::spawn(move || for _ in lines {});
        Self {
            dir: dir.to_path_buf(),
            child,
            api,
            replication,
        }
    }

    /// A new site in a fresh `dir` with `vms` VMs, on port 0.
    pub fn create(dir: &Path, name: &str, vms: usize) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("site.toml"),
            site_toml(name, "127.0.0.1:0", "127.0.0.1:0", vms),
        )
        .unwrap();
        Self::start(dir)
    }

    /// Rewrites the config to listen on the ports it has now, so a restart
    /// comes back where the peer expects it.
    pub fn pin_ports(&self) {
        let path = self.dir.join("site.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let api = self.api.trim_start_matches("http://");
        let text = text
            .replacen("api = \"127.0.0.1:0\"", &format!("api = \"{api}\""), 1)
            .replacen(
                "replication = \"127.0.0.1:0\"",
                &format!("replication = \"{}\"", self.replication),
                1,
            );
        std::fs::write(path, text).unwrap();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        self.child.wait().unwrap()
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for SiteProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(site: &SiteProcess) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: format!("{}/api/v1", site.api),
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
        serde_json::from_value(self.get("/site").await).unwrap()
    }

    pub async fn replications(&self) -> Vec<ReplicationInfo> {
        serde_json::from_value(self.get("/replications").await).unwrap()
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

/// Polls `check` every 100 ms until it returns `Some`, or panics at the
/// deadline saying what it waited for.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first of a run of free loopback ports (for the demo's --port-base).
pub fn free_port_base() -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    port.min(u16::MAX - 8)
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
    let stream = api
        .client
        .get(format!("{}/events", api.base))
        .bearer_auth(VIEWER)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut body = stream.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                for line in String::from_utf8_lossy(&chunk).lines() {
                    if let Some(name) = line.strip_prefix("event: ") {
                        seen.lock().unwrap().push(name.to_string());
                    }
                }
            }
        })
    };
    (seen, collector)
}
