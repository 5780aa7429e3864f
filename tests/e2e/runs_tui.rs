//! A test failover of the demo's plan, started from the real TUI in a real
//! terminal (tmux) with `ferry demo`: t on the plans view, y to confirm,
//! then the run view follows the run to its end; the recovery site's API
//! says it succeeded.

use super::terminal::Tmux;
use std::path::Path;
use std::time::Duration;

/// site-b's URL and admin token from the demo's `demo.json`.
fn recovery_site(dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(dir.join("demo.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let site = &json["sites"][1];
    assert_eq!(site["name"], "site-b");
    (
        site["url"].as_str().unwrap().to_string(),
        site["tokens"]["admin"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_test_failover_started_and_watched_in_the_tui() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let port_base = super::support::free_port_base();
    let tmux = Tmux::ferry(
        "ferry-runs",
        tmp.path(),
        &format!("demo --data-dir {} --port-base {port_base}", data.display()),
        (160, 48),
    );

    // The demo makes its plan at site-b once site-b sees site-a's VMs.
    tmux.wait_within("the demo up", Duration::from_secs(60), |s| {
        s.contains("site-a ● connected") && s.contains("site-b ● connected")
    });
    tmux.keys(&["6"]);
    tmux.wait_within("the demo's plan, ready", Duration::from_secs(90), |s| {
        s.contains("Recovery plans: 1") && s.contains("Three-tier") && s.contains("ready")
    });

    tmux.keys(&["t"]);
    tmux.wait_within("the question", Duration::from_secs(10), |s| {
        s.contains("Start a test of plan Three-tier at site-b?")
    });
    tmux.keys(&["y"]);
    tmux.wait_within("the run view", Duration::from_secs(15), |s| {
        s.contains("test of Three-tier") && s.contains("Steps:")
    });
    let screen = tmux.wait_within("the test to succeed", Duration::from_secs(240), |s| {
        s.contains("✔ succeeded") || s.contains("✖ failed") || s.contains("interrupted")
    });
    assert!(
        screen.contains("✔ succeeded"),
        "the run ended badly:\n{screen}"
    );
    assert!(
        screen.contains("RTO ") && screen.contains("VMs"),
        "{screen}"
    );
    assert!(screen.contains("db-01"), "per-VM results shown:\n{screen}");

    // The site that ran it agrees.
    let (url, token) = recovery_site(&data);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let runs = runtime.block_on(async {
        let site = ferry_api::Client::new("site-b", &url, &token, Duration::from_secs(10)).unwrap();
        site.runs().await.unwrap()
    });
    // As JSON, the way a script reads it.
    let runs: Vec<serde_json::Value> =
        serde_json::from_value(serde_json::to_value(runs).unwrap()).unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run["mode"], "test");
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["plan_name"], "Three-tier");
    assert_eq!(run["vms"].as_array().unwrap().len(), 12);
    assert!(run["rto_seconds"].as_f64().is_some(), "{run:#}");

    // History lists it; e exports it to the current directory.
    tmux.keys(&["Escape", "7"]);
    tmux.wait_within("the history", Duration::from_secs(10), |s| {
        s.contains("History: 1 runs") && s.contains("✔ succeeded")
    });
    tmux.keys(&["e"]);
    let id = run["id"].as_str().unwrap();
    tmux.wait_within("the export", Duration::from_secs(10), |s| {
        s.contains(&format!("exported run {id}"))
    });
    let md = std::fs::read_to_string(tmp.path().join(format!("ferry-run-{id}.md"))).unwrap();
    assert!(md.contains("| Result | succeeded |"), "{md}");

    // The plan says what its run did; c cleans the test up.
    tmux.keys(&["6"]);
    tmux.wait_within("the plan's run under it", Duration::from_secs(10), |s| {
        s.contains("test complete") && s.contains("run ✔ succeeded test")
    });
    tmux.keys(&["c"]);
    tmux.wait_within("the cleanup question", Duration::from_secs(10), |s| {
        s.contains("Clean up plan Three-tier's test?")
    });
    tmux.keys(&["y"]);
    tmux.wait_within("the cleanup done", Duration::from_secs(60), |s| {
        s.contains("cleanup of Three-tier") && s.contains("✔ succeeded")
    });

    tmux.keys(&["q"]);
    let screen = tmux.wait_within("ferry to exit", Duration::from_secs(40), |s| {
        s.contains("FERRY-EXITED")
    });
    assert!(screen.contains("FERRY-EXITED 0"), "exit status:\n{screen}");
}
