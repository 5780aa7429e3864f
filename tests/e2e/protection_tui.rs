//! Mappings, a protection group and a recovery plan built through the real
//! `ferry` TUI in a real terminal (tmux) against two real sites, then read
//! back through the API of both sites.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::support::*;
use super::terminal::Tmux;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_and_a_plan_built_in_the_tui_are_what_the_api_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 3);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    pair(&a, "site-a", &b, "site-b").await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    for vm in 0..3 {
        api_a
            .admin(
                Method::PUT,
                &format!("/replications/site-a.vm-{vm}"),
                Some(json!({"rpo_seconds": 300})),
            )
            .await;
    }

    let term = Tmux::ferry(
        "ferry-protection",
        tmp.path(),
        &format!(
            "--site {} --token {ADMIN} --site {} --token {ADMIN}",
            a.api, b.api
        ),
        (160, 48),
    );

    // Mappings, site-a → site-b: pick each target from site-b's objects.
    term.keys(&["4"]);
    term.wait_for("both sites' inventories", |s| {
        s.contains("site-a → site-b") && s.contains("datastore ds1") && s.contains("network   net")
    });
    for _ in 0..5 {
        term.keys(&["Enter"]);
        term.wait_for("the target picker", |s| s.contains("lands on"));
        term.keys(&["Down", "Enter"]);
        term.wait_for("the picker to close", |s| !s.contains("lands on"));
        term.keys(&["j"]);
    }
    term.wait_for("every pair mapped", |s| {
        s.contains("● unsaved") && s.contains("→ bubble")
    });
    term.keys(&["C-s"]);
    term.wait_for("the mappings saved", |s| {
        s.contains("saved mappings site-a-to-site-b")
    });

    // A protection group of vm-0 and vm-1, recovered at site-b.
    term.keys(&["5", "n"]);
    term.wait_for("the new group form", |s| s.contains("New protection group"));
    term.text("Tier1");
    term.keys(&["Enter"]);
    term.wait_for("the group editor", |s| {
        s.contains("Group Tier1") && s.contains("vm-2")
    });
    term.keys(&["Space", "j", "Space"]);
    // site-b learns of site-a's replications from its peer a moment after
    // they are set up; until then it refuses the group, naming the VM.
    let start = Instant::now();
    loop {
        term.keys(&["C-s"]);
        let screen = term.wait_for("an answer to the save", |s| {
            s.contains("saved group Tier1") || s.contains("not saved")
        });
        if screen.contains("saved group Tier1") {
            break;
        }
        assert!(
            screen.contains("is not replicated") && start.elapsed() < Duration::from_secs(20),
            "the group was refused:\n{screen}"
        );
        // Any key clears the status line: wait for that before retrying,
        // so the next answer is not mistaken for this one.
        term.keys(&["k"]);
        term.wait_for("the status cleared", |s| !s.contains("not saved"));
    }
    term.keys(&["Escape"]);
    term.wait_for("the groups list", |s| s.contains("Protection groups: 1"));

    // A plan: both VMs at priority 2, vm-1 after vm-0, a prompt before
    // vm-1 powers on, a 120 s heartbeat timeout.
    term.keys(&["6", "n"]);
    term.wait_for("the new plan form", |s| s.contains("New recovery plan"));
    term.text("Recover-1");
    term.keys(&["Enter"]);
    term.wait_for("the groups picker", |s| {
        s.contains("Protection groups in the plan")
    });
    term.keys(&["Space", "Enter"]);
    term.wait_for("the plan editor", |s| {
        s.contains("Plan Recover-1") && s.contains("Priority 3")
    });
    term.keys(&["K", "j", "K"]);
    term.wait_for("both at priority 2", |s| {
        s.contains("Priority 2") && !s.contains("Priority 3")
    });
    term.keys(&["d"]);
    term.wait_for("the dependency picker", |s| s.contains("vm-1 starts after"));
    term.keys(&["Space", "Enter"]);
    term.wait_for("the start order", |s| s.contains("P2 1.vm-0 → 2.vm-1"));
    term.keys(&["c"]);
    term.wait_for("the callout text area", |s| s.contains("Callouts, vm-1's"));
    term.text("pre prompt: check the storage array");
    term.keys(&["Escape"]);
    term.wait_for("the callout kept", |s| {
        s.contains("? check the storage array")
    });
    term.keys(&["t"]);
    term.wait_for("the heartbeat form", |s| s.contains("heartbeat timeout"));
    term.keys(&["BSpace", "BSpace", "BSpace"]);
    term.text("120");
    term.keys(&["Enter"]);
    term.wait_for("the heartbeat kept", |s| s.contains("120 s"));
    term.keys(&["C-s"]);
    term.wait_for("the plan saved", |s| s.contains("saved plan Recover-1"));

    // Read back through the API, from the recovery site and its peer.
    let groups = api_b.get("/protection-groups").await;
    let group = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Tier1")
        .unwrap_or_else(|| panic!("no group Tier1: {groups}"));
    let members: Vec<&str> = group["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vm_id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["site-a.vm-0", "site-a.vm-1"], "{group}");
    assert_eq!(group["recovery_site"], "site-b");
    let plan = eventually(
        "the plan at both sites",
        Duration::from_secs(10),
        || async {
            let plans = api_a.get("/plans").await;
            plans
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "Recover-1")
                .cloned()
        },
    )
    .await;
    let plans_b = api_b.get("/plans").await;
    assert!(
        plans_b
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == plan["id"]),
        "{plans_b}"
    );
    assert_eq!(plan["groups"], json!([group["id"]]));
    assert_eq!(
        plan["start_order"][1],
        json!(["site-a.vm-0", "site-a.vm-1"]),
        "{plan}"
    );
    let vm1 = plan["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vm_id"] == "site-a.vm-1")
        .unwrap();
    assert_eq!(vm1["priority"], 2);
    assert_eq!(vm1["depends_on"], json!(["site-a.vm-0"]));
    assert_eq!(vm1["heartbeat_timeout_seconds"], 120);
    assert_eq!(
        vm1["pre_power_on"],
        json!([{"kind": "prompt", "message": "check the storage array"}])
    );
    let mappings = api_b.get("/mappings/site-a-to-site-b").await;
    assert_eq!(
        mappings["test_networks"],
        json!([{"source": "net", "target": "bubble"}])
    );

    // Nothing is unsaved: q quits at once and restores the terminal.
    term.keys(&["Escape", "q"]);
    let screen = term.wait_for("ferry to exit", |s| s.contains("FERRY-EXITED"));
    assert!(screen.contains("FERRY-EXITED 0"), "{screen}");
}
