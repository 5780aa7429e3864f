//! A site as a child process: started on a config file, its addresses read
//! from the two lines it prints when listening, its stdout drained after,
//! its stderr kept in `site.log` next to the config. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A free loopback port, for a site config that must name its ports
/// before the site starts (the peer's config pins them).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Makes the site's certificate in `dir` (or loads it) before the site
/// starts, so its peer's config can pin it from the first connection;
/// returns its fingerprint.
pub fn site_fingerprint(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("the site's directory");
    ferry_replicator::identity::Identity::load_or_create(dir)
        .expect("the site's identity")
        .fingerprint
        .to_string()
}

/// A running site process.
pub struct SiteProcess {
    /// The directory of its `site.toml` and `site.log`.
    pub dir: PathBuf,
    pub child: Child,
    /// `https://127.0.0.1:port`, or `http://` for a plain loopback API.
    pub api: String,
    /// `127.0.0.1:port`.
    pub replication: String,
}

impl SiteProcess {
    /// Runs `program` with `args` then `dir/site.toml`, logging at `log`
    /// level, and waits for it to say where it listens. `ferry site
    /// --config` and `ferry-replicator --config` both print
    /// `api listening on …` then `replication listening on …`.
    pub fn spawn(program: &Path, args: &[&str], dir: &Path, log: &str) -> Self {
        let log_file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("site.log"))
            .expect("site.log");
        let mut child = Command::new(program)
            .args(args)
            .arg(dir.join("site.toml"))
            .env("FERRY_LOG", log)
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("the site starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut next = |prefix: &str| -> String {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("site in {} exited; see site.log", dir.display()))
                .expect("a line of the site's stdout");
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
                .to_string()
        };
        let api = next("api listening on ");
        let replication = next("replication listening on ");
        // Nothing more is read, but a full pipe would stall the site.
        std::thread::spawn(move || for _ in lines {});
        Self {
            dir: dir.to_path_buf(),
            child,
            api,
            replication,
        }
    }

    /// Asks the site to stop (SIGTERM) and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        self.child.wait().expect("the site is reaped")
    }

    /// Kills the site with no warning, as a crash would.
    pub fn kill9(&mut self) {
        self.child.kill().expect("the site is killed");
        self.child.wait().expect("the site is reaped");
    }
}

impl Drop for SiteProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
