//! `ferry pair` between two real sites: refused without a confirmation,
//! refused when a fingerprint is not the one expected, done when both are
//! named (each site pins the other's certificate and the link connects),
//! and re-pairing with a new certificate refused without `--replace`, then
//! done with it, audited and alarmed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ferry_api::types::PeerStatus;

use super::support::{ADMIN, Api, SiteProcess, SiteProcessExt, eventually};

/// `ferry pair --site A --token … --site B --token … ARGS`, no terminal.
fn pair(home: &Path, a: &SiteProcess, b: &SiteProcess, args: &[&str]) -> Output {
    let config = home.join("ferry.toml");
    std::fs::write(&config, "").unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "pair", "--site", &a.api, "--token", ADMIN, "--site", &b.api, "--token", ADMIN,
        ])
        .args(args)
        .env("FERRY_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pairing_shows_both_fingerprints_and_pins_only_what_was_confirmed() {
    let home = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&home.path().join("a"), "site-a", 0);
    let b = SiteProcess::create(&home.path().join("b"), "site-b", 0);
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let fa = api_a.site().await.fingerprint.unwrap();
    let fb = api_b.site().await.fingerprint.unwrap();

    let out = pair(home.path(), &a, &b, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no terminal, no --yes: {}",
        said(&out)
    );
    assert!(
        said(&out).contains(&fa) && said(&out).contains(&fb),
        "{}",
        said(&out)
    );
    let out = pair(home.path(), &a, &b, &["--yes"]);
    assert_eq!(out.status.code(), Some(2), "--yes alone: {}", said(&out));
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = pair(
        home.path(),
        &a,
        &b,
        &[
            "--yes",
            "--expect-fingerprint",
            &fa,
            "--expect-peer-fingerprint",
            &wrong,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains(&format!(
        "presents the certificate {fb}, not the expected {wrong}"
    )));
    assert!(api_a.site().await.peer.is_none() && api_b.site().await.peer.is_none());

    let out = pair(
        home.path(),
        &a,
        &b,
        &[
            "--yes",
            "--expect-fingerprint",
            &fa,
            "--expect-peer-fingerprint",
            &fb,
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    for (api, peer_fp) in [(&api_a, &fb), (&api_b, &fa)] {
        eventually(
            "each site connected to the other over the pinned link",
            Duration::from_secs(30),
            || async {
                let peer = api.site().await.peer?;
                (peer.fingerprint.as_ref() == Some(peer_fp) && peer.status == PeerStatus::Connected)
                    .then_some(())
            },
        )
        .await;
    }

    // A site with another certificate under site-b's name: pinning it
    // needs --replace, and the replacement is audited and alarmed.
    let c = SiteProcess::create(&home.path().join("c"), "site-b", 0);
    let fc = Api::new(&c).site().await.fingerprint.unwrap();
    let named = [
        "--yes",
        "--expect-fingerprint",
        &fa,
        "--expect-peer-fingerprint",
        &fc,
    ];
    let out = pair(home.path(), &a, &c, &named);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("needs --replace"), "{}", said(&out));
    assert_eq!(
        api_a.site().await.peer.unwrap().fingerprint,
        Some(fb.clone())
    );
    let out = pair(home.path(), &a, &c, &[&named[..], &["--replace"]].concat());
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(
        api_a.site().await.peer.unwrap().fingerprint,
        Some(fc.clone())
    );
    let audit = api_a.admin(reqwest::Method::GET, "/audit", None).await;
    let pairings = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "/site/peer" && e["status"] == 200)
        .count();
    assert!(pairings >= 2, "{audit}");
    let alarms = api_a.typed.alarms(50).await.unwrap();
    assert!(
        alarms
            .iter()
            .any(|e| e.kind == "peer_certificate_replaced" && e.message.contains(&fc)),
        "{alarms:?}"
    );
}
