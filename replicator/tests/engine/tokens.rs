//! API tokens managed by `ferry-replicator token` while the site runs: a
//! made token works at once, `token list` never shows a secret, and a
//! revoked token (made by the CLI or set in site.toml) is refused on the
//! very next call, without a restart.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry_replicator::access::Role;
use ferry_testkit::{SiteConfigBuilder, SiteProcess, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_ferry-replicator");
const BOOT: &str = "token-from-site-toml";

/// Runs `ferry-replicator --config DIR/site.toml token ARGS`; its stdout,
/// or a panic with its stderr.
fn token(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(dir.join("site.toml"))
        .arg("token")
        .args(args)
        .output()
        .expect("ferry-replicator runs");
    assert!(
        out.status.success(),
        "token {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn status(site: &SiteProcess, secret: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/site", site.api))
        .bearer_auth(secret)
        .timeout(Duration::from_secs(10))
        .send()
        .expect("the site answers")
        .status()
        .as_u16()
}

#[test]
fn tokens_are_made_listed_and_revoked_on_a_running_site() {
    let dir = tempfile::tempdir().unwrap();
    SiteConfigBuilder::new("site-t")
        .token("boot", Role::Admin, BOOT)
        .write(dir.path());
    let site = SiteProcess::spawn(Path::new(BIN), &["--config"], dir.path(), "warn");
    assert_eq!(status(&site, BOOT), 200);

    let secret = token(
        dir.path(),
        &["create", "--role", "operator", "--name", "ci"],
    );
    let secret = secret.trim();
    assert_eq!(secret.len(), 64, "a 32-byte token in hex: {secret:?}");
    assert_eq!(status(&site, secret), 200, "a new token works at once");

    let listed = wait_until(
        "token list to show when ci was last used",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let list = token(dir.path(), &["list"]);
            let ci = list.lines().find(|l| l.starts_with("ci ")).unwrap_or("");
            // created and last used are both dates once it was used.
            (ci.matches(':').count() >= 4)
                .then_some(list.clone())
                .ok_or(list)
        },
    );
    assert!(!listed.contains(secret), "list shows no secret: {listed}");
    let ci = listed.lines().find(|l| l.starts_with("ci ")).unwrap();
    assert!(
        ci.contains("operator") && ci.contains("cli") && ci.ends_with("active"),
        "{ci}"
    );
    let boot = listed.lines().find(|l| l.starts_with("boot ")).unwrap();
    assert!(
        boot.contains("admin") && boot.contains("site.toml"),
        "{boot}"
    );

    token(dir.path(), &["revoke", "ci"]);
    assert_eq!(
        status(&site, secret),
        401,
        "revoked: refused on the next call"
    );
    token(dir.path(), &["revoke", "boot"]);
    assert_eq!(
        status(&site, BOOT),
        401,
        "a site.toml token is revocable too"
    );
    let listed = token(dir.path(), &["list"]);
    assert!(
        listed.lines().filter(|l| l.contains("revoked 20")).count() == 2,
        "{listed}"
    );

    // The name of a revoked token can be given to a new one; a name in use
    // cannot.
    let again = token(dir.path(), &["create", "--role", "viewer", "--name", "ci"]);
    assert_eq!(status(&site, again.trim()), 200);
    assert_eq!(status(&site, secret), 401);
    let clash = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("site.toml"))
        .args(["token", "create", "--role", "admin", "--name", "ci"])
        .output()
        .unwrap();
    assert!(!clash.status.success());
    assert!(String::from_utf8_lossy(&clash.stderr).contains("exists already"));
}
