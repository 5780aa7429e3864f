//! Recovery runs when things go wrong, on two real sites through the API:
//! callouts that fail and time out, a replica that fails its guest's
//! verification, a cancel at a prompt, a restart of the executing site
//! mid-run, and disaster recovery after kill -9 of the protected site,
//! then its return and a reprotect.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::runs::*;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callouts_cancel_restart_and_disaster_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = SiteProcess::create(&tmp.path().join("a"), "site-a", 2);
    let mut b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    a.pin_ports();
    b.pin_ports();
    let group = protected_pair(&a, &b, 2).await;
    let mut api_b = Api::new(&b);

    // Callouts: one fails, one times out; both are errors with output kept.
    // And vm-1's replica is damaged: its guest fails verification, which is
    // an error, never a success.
    let api_a = Api::new(&a);
    api_a
        .admin(Method::POST, "/replications/site-a.vm-1/pause", None)
        .await;
    eventually(
        "vm-1 paused between cycles",
        Duration::from_secs(30),
        || {
            let api = &api_a;
            async move {
                let r = api.get("/replications/site-a.vm-1").await;
                (r["state"] == "paused" && r["progress"].is_null()).then_some(())
            }
        },
    )
    .await;
    let damaged = b.dir.join("ds1/replicas/site-a.vm-1/disk-0.raw");
    let at = 4096 + 2 * 512 + 100;
    let original = std::fs::read(&damaged).unwrap()[at..at + 8].to_vec();
    write_at(&damaged, at as u64, b"DAMAGED!");
    let callouts = api_b
        .admin(Method::POST, "/plans", Some(json!({
            "name": "Callouts", "groups": [group],
            "vms": [
                {"vm_id": "site-a.vm-0", "pre_power_on": [{"kind": "command", "command": "echo checking; exit 3"}]},
            ],
            "post_power_on": [{"kind": "command", "command": "sleep 30", "timeout_seconds": 1}],
        })))
        .await;
    let callouts = callouts["id"].as_str().unwrap().to_string();
    let run = run_to_end(&api_b, &callouts, json!({"mode": "test", "sync": false})).await;
    assert_eq!(run["state"], "failed", "{run:#}");
    let steps = run["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["name"] != "Synchronize storage"));
    let step = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap().clone();
    let msg = step("Priority 3: pre power-on callouts")["vms"][0]["message"].clone();
    let msg = msg.as_str().unwrap();
    assert!(
        msg.contains("exit status: 3") && msg.contains("checking"),
        "{msg}"
    );
    let post = step("Plan callouts after power-on");
    assert_eq!(post["state"], "error");
    assert!(
        post["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 1 s"),
        "{post}"
    );
    let power = step("Priority 3: power on");
    let vm1 = power["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vm_id"] == "site-a.vm-1")
        .unwrap();
    assert_eq!(vm1["state"], "error", "{vm1}");
    assert!(
        vm1["message"]
            .as_str()
            .unwrap()
            .contains("disk verification failed"),
        "{vm1}"
    );
    let result = run["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vm_id"] == "site-a.vm-1")
        .unwrap();
    assert_eq!(
        (result["verified"].clone(), result["result"].clone()),
        (json!(false), json!("error"))
    );
    write_at(&damaged, at as u64, &original);
    api_a
        .admin(Method::POST, "/replications/site-a.vm-1/resume", None)
        .await;
    let cleanup = started(&api_b, &callouts, json!({"mode": "cleanup"})).await;
    assert_eq!(drive(&api_b, &cleanup).await["state"], "succeeded");

    // Cancel while a prompt waits.
    let prompted = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({
                "name": "Prompted", "groups": [group],
                "pre_power_on": [{"kind": "prompt", "message": "Go?"}],
            })),
        )
        .await;
    let prompted = prompted["id"].as_str().unwrap().to_string();
    let run = started(&api_b, &prompted, json!({"mode": "test"})).await;
    wait_state(&api_b, &run, "waiting").await;
    api_b
        .admin(Method::POST, &format!("/runs/{run}/cancel"), None)
        .await;
    let cancelled = wait_state(&api_b, &run, "cancelled").await;
    assert!(
        cancelled["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["state"] == "skipped")
    );
    let plan = api_b.get(&format!("/plans/{prompted}")).await;
    assert_eq!(plan["state"], "test_complete");
    let cleanup = started(&api_b, &prompted, json!({"mode": "cleanup"})).await;
    assert_eq!(drive(&api_b, &cleanup).await["state"], "succeeded");

    // The executing site restarts mid-run: interrupted, steps intact.
    let run = started(&api_b, &prompted, json!({"mode": "test"})).await;
    wait_state(&api_b, &run, "waiting").await;
    assert!(b.terminate().success());
    b = SiteProcess::start(&tmp.path().join("b"));
    api_b = Api::new(&b);
    let interrupted = api_b.get(&format!("/runs/{run}")).await;
    assert_eq!(interrupted["state"], "interrupted", "{interrupted:#}");
    assert!(
        interrupted["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["state"] == "done")
    );
    let plan = api_b.get(&format!("/plans/{prompted}")).await;
    assert_eq!(plan["state"], "interrupted");
    assert_eq!(plan["allowed"], json!(["cleanup"]));
    assert!(plan["next"].as_str().unwrap().contains("cleanup"), "{plan}");
    let cleanup = started(&api_b, &prompted, json!({"mode": "cleanup", "force": true})).await;
    assert_eq!(drive(&api_b, &cleanup).await["state"], "succeeded");

    // Disaster: site-a dies; recover from the newest complete instances.
    eventually(
        "site-b to see site-a again",
        Duration::from_secs(20),
        || {
            let api = &api_b;
            async move {
                (api.site().await.peer.map(|p| p.status)
                    == Some(ferry_replicator::api::types::PeerStatus::Connected))
                .then_some(())
            }
        },
    )
    .await;
    a.kill9();
    let run = run_to_end(
        &api_b,
        &prompted,
        json!({"mode": "disaster_recovery", "confirm": "Prompted"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded_with_warnings", "{run:#}");
    assert_steps(&run, &["done", "warning"]);
    for vm in run["vms"].as_array().unwrap() {
        assert_eq!(vm["verified"], true, "{vm}");
        let loss = vm["data_loss_seconds"].as_f64().unwrap();
        assert!(
            loss <= (RPO + 5) as f64,
            "data loss {loss} s is above the RPO plus a cycle: {vm}"
        );
    }
    assert_eq!(
        api_b.get(&format!("/plans/{prompted}")).await["state"],
        "recovery_complete"
    );

    // Site-a comes back with its old VMs running; reprotect stops them,
    // makes their disks seeds and hands the plan to site-a.
    a = SiteProcess::start(&tmp.path().join("a"));
    let api_a = Api::new(&a);
    assert!(
        api_a
            .get("/vms")
            .await
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["power_state"] == "on")
    );
    let run = run_to_end(
        &api_b,
        &prompted,
        json!({"mode": "reprotect", "confirm": "Prompted"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert!(api_a.get("/vms").await.as_array().unwrap().is_empty());
    plan_at(&api_a, &prompted, "site-a").await;
}
