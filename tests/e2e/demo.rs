//! `ferry demo --no-tui`: two sites as children, demo.json, every demo VM
//! replicating, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_api::types::Role;

use super::support::*;

/// Starts `ferry demo --no-tui` in `dir`; returns it and what it printed
/// (the sites' names, URLs, pids and tokens).
pub fn start(dir: &Path) -> (Child, serde_json::Value) {
    let port_base = super::support::free_port_base();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // A test that fails before `stop` leaves no demo behind: when its
    // thread ends, the kernel sends the demo SIGTERM, and the demo stops
    // its sites.
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut demo = command
        .args([
            "demo",
            "--no-tui",
            "--port-base",
            &port_base.to_string(),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut json = String::new();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let end = line == "}";
        json.push_str(&line);
        if end {
            break;
        }
    }
    (demo, serde_json::from_str(&json).unwrap())
}

/// Stops a demo started by [`start`] as an operator would, with SIGTERM.
pub fn stop(demo: &mut Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(demo.id() as libc::pid_t, libc::SIGTERM);
    }
    demo.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_two_sites_and_stops_them_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, printed) = start(tmp.path());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("demo.json")).unwrap())
            .unwrap();
    assert_eq!(printed, written, "demo.json holds what was printed");
    // Secrets at rest: only their owner may read them.
    let mode = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    let dir = tmp.path();
    for file in ["demo.json", "secrets.json"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    for site in ["site-a", "site-b"] {
        for file in ["site.toml", "site.key", "site.db"] {
            assert_eq!(mode(&dir.join(site).join(file)), 0o600, "{site}/{file}");
        }
        assert_eq!(mode(&dir.join(site)), 0o700, "{site}");
    }
    assert_eq!(mode(dir), 0o700, "the demo's directory");
    let sites = printed["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2);
    assert_eq!(sites[0]["name"], "site-a");

    let site_a = &sites[0];
    let client = ferry_api::Client::new(
        "site-a",
        site_a["url"].as_str().unwrap(),
        site_a["tokens"]["viewer"].as_str().unwrap(),
        Duration::from_secs(10),
    )
    .unwrap();
    let count = eventually(
        "every demo VM replicated and ok",
        Duration::from_secs(90),
        || async {
            let reps = client.replications().await.ok()?;
            (reps.len() >= 10 && reps.iter().all(|r| r.state == "ok")).then_some(reps.len())
        },
    )
    .await;
    assert_eq!(count, 12);
    let rpos: std::collections::BTreeSet<u64> = {
        let reps = client.replications().await.unwrap();
        reps.iter().map(|r| r.rpo_seconds).collect()
    };
    assert_eq!(
        rpos.into_iter().collect::<Vec<_>>(),
        vec![15, 60, 300],
        "mixed RPOs"
    );

    // Each site says the role of the token that asks; started one after
    // the other, the sites waited for each other: no alarm says a peer is
    // unreachable.
    for site in sites {
        let name = site["name"].as_str().unwrap();
        let url = site["url"].as_str().unwrap();
        let client = |role: &str| {
            let token = site["tokens"][role].as_str().unwrap();
            ferry_api::Client::new(name, url, token, Duration::from_secs(10)).unwrap()
        };
        for (role, expected) in [
            ("viewer", Role::Viewer),
            ("operator", Role::Operator),
            ("admin", Role::Admin),
        ] {
            let info = client(role).site_info().await.unwrap();
            assert_eq!(info.role, expected, "{name}, the {role}'s token");
        }
        let alarms = client("viewer").alarms(500).await.unwrap();
        let false_alarms: Vec<_> = alarms
            .iter()
            .filter(|a| a.kind == "peer_unreachable" || a.severity == "critical")
            .collect();
        assert!(
            false_alarms.is_empty(),
            "{name} raised at demo start: {false_alarms:?}"
        );
    }

    let status = stop(&mut demo);
    assert!(status.success(), "demo exits cleanly on SIGTERM: {status}");
    for site in sites {
        let pid = site["pid"].as_i64().unwrap() as libc::pid_t;
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(
            !alive,
            "{} still running after the demo stopped",
            site["name"]
        );
    }
    assert!(
        tmp.path()
            .join("site-a/ds1/vms/site-a.db-01/tracking.ctk")
            .exists(),
        "change tracking saved"
    );
}
