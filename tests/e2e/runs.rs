//! Recovery runs on two real sites, through the API: test and cleanup while
//! replication keeps running; planned migration with zero data loss, then
//! reprotect and failback; callouts that fail and time out; a prompt; a
//! cancel; a restart of the executing site mid-run; disaster recovery
//! after kill -9 of the protected site.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;

const RPO: u64 = 5;

fn mappings(from: &str, to: &str) -> Value {
    json!({
        "from_site": from, "to_site": to,
        "networks": [{"source": "net", "target": "net"}],
        "test_networks": [{"source": "net", "target": "bubble"}],
        "folders": [{"source": "f", "target": "f"}],
        "resource_pools": [{"source": "p", "target": "p"}],
        "ip_rules": [{"from_subnet": "10.0.0.0/24", "to_subnet": "10.7.0.0/24", "to_gateway": "10.7.0.1"}],
    })
}

/// Two paired sites; site-a's VMs replicate to site-b every RPO seconds;
/// mappings both ways; one protection group at site-b. Returns the group.
async fn protected_pair(a: &SiteProcess, b: &SiteProcess, vms: usize) -> String {
    pair(a, "site-a", b, "site-b").await;
    let (api_a, api_b) = (Api::new(a), Api::new(b));
    let ids: Vec<String> = (0..vms).map(|i| format!("site-a.vm-{i}")).collect();
    for id in &ids {
        api_a
            .admin(
                Method::PUT,
                &format!("/replications/{id}"),
                Some(json!({"rpo_seconds": RPO})),
            )
            .await;
    }
    api_b
        .admin(
            Method::POST,
            "/mappings",
            Some(mappings("site-a", "site-b")),
        )
        .await;
    api_a
        .admin(
            Method::POST,
            "/mappings",
            Some(mappings("site-b", "site-a")),
        )
        .await;
    // Every VM has a complete instance at site-b before anything runs.
    eventually("initial syncs", Duration::from_secs(60), || {
        let api = &api_a;
        async move {
            let reps = api.replications().await;
            (reps.len() == vms && reps.iter().all(|r| r.point_time_ms.is_some())).then_some(())
        }
    })
    .await;
    let group = eventually("the group", Duration::from_secs(20), || {
        let (api, ids) = (&api_b, ids.clone());
        async move {
            let (status, body) = api
                .send(
                    Method::POST,
                    "/protection-groups",
                    Some(ADMIN),
                    Some(json!({"name": "apps", "vms": ids})),
                )
                .await;
            (status == 201).then_some(body)
        }
    })
    .await;
    group["id"].as_str().unwrap().to_string()
}

async fn start(api: &Api, plan: &str, token: &str, body: Value) -> (u16, Value) {
    api.send(
        Method::POST,
        &format!("/plans/{plan}/runs"),
        Some(token),
        Some(body),
    )
    .await
}

async fn started(api: &Api, plan: &str, body: Value) -> String {
    let (status, run) = start(api, plan, ADMIN, body).await;
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().unwrap().to_string()
}

/// Follows a run to its end, acknowledging prompts; returns it.
async fn drive(api: &Api, run: &str) -> Value {
    eventually(
        &format!("run {run} to finish"),
        Duration::from_secs(120),
        || async move {
            let r = api.get(&format!("/runs/{run}")).await;
            match r["state"].as_str().unwrap() {
                "waiting" => {
                    api.admin(Method::POST, &format!("/runs/{run}/ack"), None)
                        .await;
                    None
                }
                "running" => None,
                _ => Some(r),
            }
        },
    )
    .await
}

async fn wait_state(api: &Api, run: &str, state: &str) -> Value {
    eventually(
        &format!("run {run} to be {state}"),
        Duration::from_secs(60),
        || async move {
            let r = api.get(&format!("/runs/{run}")).await;
            (r["state"] == state).then_some(r)
        },
    )
    .await
}

fn assert_steps(run: &Value, allowed: &[&str]) {
    for step in run["steps"].as_array().unwrap() {
        let state = step["state"].as_str().unwrap();
        assert!(
            allowed.contains(&state),
            "step {} is {state}: {}\n{run:#}",
            step["name"],
            step["message"]
        );
        assert!(step["started_ms"].is_u64() || state == "skipped", "{step}");
    }
}

fn write_at(path: &std::path::Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at).unwrap();
    file.sync_all().unwrap();
}

fn tests_dir(site: &SiteProcess) -> Vec<String> {
    std::fs::read_dir(site.dir.join("ds1/tests"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_cleanup_migration_reprotect_and_failback() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 2);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    let group = protected_pair(&a, &b, 2).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let plan = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({
                "name": "Apps", "groups": [group],
                "pre_power_on": [{"kind": "prompt", "message": "Tell the app owners"}],
                "vms": [
                    {"vm_id": "site-a.vm-0", "priority": 1},
                    {"vm_id": "site-a.vm-1", "priority": 2,
                     "post_power_on": [{"kind": "command", "command": "echo up $FERRY_VM"}]},
                ],
            })),
        )
        .await;
    let plan = plan["id"].as_str().unwrap().to_string();
    let other = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({"name": "Same group", "groups": [group]})),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_string();

    let (events, watching) = watch_events(&api_b).await;

    // Test, by an operator; the prompt waits; the group is locked meanwhile.
    let before_points: Vec<u64> = api_a
        .replications()
        .await
        .iter()
        .map(|r| r.point_time_ms.unwrap())
        .collect();
    let (status, run) = start(&api_b, &plan, OPERATOR, json!({"mode": "test"})).await;
    assert_eq!(status, 201, "{run}");
    let test = run["id"].as_str().unwrap().to_string();
    let waiting = wait_state(&api_b, &test, "waiting").await;
    assert_eq!(waiting["prompt"]["message"], "Tell the app owners");
    let (status, refusal) = start(&api_b, &other, OPERATOR, json!({"mode": "test"})).await;
    assert_eq!(status, 409, "{refusal}");
    assert!(
        refusal["message"].as_str().unwrap().contains(&test),
        "{refusal}"
    );
    let run = drive(&api_b, &test).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_steps(&run, &["done"]);
    for vm in run["vms"].as_array().unwrap() {
        assert_eq!(vm["verified"], true, "{vm}");
        assert!(vm["data_loss_seconds"].as_f64().unwrap() >= 0.0);
        assert!(vm["heartbeat_ms"].is_u64());
    }
    assert!(run["rto_seconds"].as_f64().unwrap() > 0.0);
    let post = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Priority 2: post power-on callouts")
        .unwrap();
    assert_eq!(post["vms"][0]["message"], "up vm-1\n");
    let ips = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Priority 1: IP customization")
        .unwrap();
    assert!(
        ips["vms"][0]["message"]
            .as_str()
            .unwrap()
            .contains("bubble 10.7.0.10/24"),
        "{ips}"
    );
    assert_eq!(
        api_b.get(&format!("/plans/{plan}")).await["state"],
        "test_complete"
    );
    assert_eq!(tests_dir(&b).len(), 2);
    eventually(
        "run and plan events on the stream",
        Duration::from_secs(10),
        || {
            let events = events.clone();
            async move {
                let seen = events.lock().unwrap();
                (seen.iter().filter(|e| *e == "run").count() >= 3
                    && seen.iter().any(|e| e == "plan"))
                .then_some(())
            }
        },
    )
    .await;
    watching.abort();
    // Replication never stopped: new instances arrived during and after.
    eventually(
        "new instances after the test",
        Duration::from_secs(30),
        || {
            let (api, before) = (&api_a, before_points.clone());
            async move {
                let now: Vec<u64> = api
                    .replications()
                    .await
                    .iter()
                    .map(|r| r.point_time_ms.unwrap())
                    .collect();
                now.iter().zip(&before).all(|(n, b)| n > b).then_some(())
            }
        },
    )
    .await;
    // A test complete plan allows cleanup only.
    let (status, _) = start(&api_b, &plan, OPERATOR, json!({"mode": "test"})).await;
    assert_eq!(status, 409);
    let cleanup = started(&api_b, &plan, json!({"mode": "cleanup"})).await;
    let run = drive(&api_b, &cleanup).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert!(
        tests_dir(&b).is_empty(),
        "test copies left: {:?}",
        tests_dir(&b)
    );
    assert_eq!(api_b.get(&format!("/plans/{plan}")).await["state"], "ready");

    // Planned migration: refused without the name typed or as operator.
    let (status, body) = start(&api_b, &plan, ADMIN, json!({"mode": "planned_migration"})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("confirm")),
        "{body}"
    );
    let (status, _) = start(
        &api_b,
        &plan,
        OPERATOR,
        json!({"mode": "planned_migration", "confirm": "Apps"}),
    )
    .await;
    assert_eq!(status, 403);
    let migration = started(
        &api_b,
        &plan,
        json!({"mode": "planned_migration", "confirm": "Apps"}),
    )
    .await;
    let run = drive(&api_b, &migration).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    for vm in run["vms"].as_array().unwrap() {
        assert_eq!(vm["verified"], true, "{vm}");
        assert_eq!(
            vm["data_loss_seconds"], 0.0,
            "a planned migration loses nothing: {vm}"
        );
    }
    let vms_b: Vec<Value> = api_b.get("/vms").await.as_array().unwrap().clone();
    assert_eq!(vms_b.len(), 2);
    assert!(vms_b.iter().all(|v| v["power_state"] == "on"), "{vms_b:?}");
    assert!(
        api_a
            .get("/vms")
            .await
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["power_state"] == "off")
    );
    assert_eq!(
        api_b.get(&format!("/plans/{plan}")).await["state"],
        "recovery_complete"
    );

    // Reprotect: site-b replicates back, from the old disks as seeds.
    let reprotect = started(
        &api_b,
        &plan,
        json!({"mode": "reprotect", "confirm": "Apps"}),
    )
    .await;
    let run = drive(&api_b, &reprotect).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let moved = eventually("the plan at site-a", Duration::from_secs(10), || {
        let api = &api_a;
        let path = format!("/plans/{plan}");
        async move {
            let p = api.get(&path).await;
            (p["recovery_site"] == "site-a").then_some(p)
        }
    })
    .await;
    assert_eq!(moved["state"], "ready");
    assert!(api_a.get("/vms").await.as_array().unwrap().is_empty());
    let synced = eventually("reverse initial syncs", Duration::from_secs(60), || {
        let api = &api_b;
        async move {
            let reps = api.replications().await;
            (reps.len() == 2 && reps.iter().all(|r| r.point_time_ms.is_some())).then_some(reps)
        }
    })
    .await;
    for r in &synced {
        assert_eq!(r.target_site.as_deref(), Some("site-a"));
    }

    // The reversed group has placeholders at site-a (mappings site-b → site-a).
    eventually("placeholders at site-a", Duration::from_secs(10), || {
        let api = &api_a;
        let path = format!("/protection-groups/{group}");
        async move {
            let g = api.get(&path).await;
            let ok = g["vms"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["status"] == "ok");
            if !ok {
                eprintln!("{g}");
            }
            ok.then_some(())
        }
    })
    .await;

    // Failback: a planned migration back and a reprotect, from site-a.
    let back = started(
        &api_a,
        &plan,
        json!({"mode": "planned_migration", "confirm": "Apps"}),
    )
    .await;
    let run = drive(&api_a, &back).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    for vm in run["vms"].as_array().unwrap() {
        assert_eq!(vm["data_loss_seconds"], 0.0, "{vm}");
    }
    let again = started(
        &api_a,
        &plan,
        json!({"mode": "reprotect", "confirm": "Apps"}),
    )
    .await;
    let run = drive(&api_a, &again).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let home = eventually("the plan back at site-b", Duration::from_secs(10), || {
        let api = &api_b;
        let path = format!("/plans/{plan}");
        async move {
            let p = api.get(&path).await;
            (p["recovery_site"] == "site-b").then_some(p)
        }
    })
    .await;
    assert_eq!(home["state"], "ready");
    assert_eq!(api_a.get("/vms").await.as_array().unwrap().len(), 2);
    // History: every run at site-b, newest first.
    let history = api_b.get("/runs").await;
    let modes: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mode"].as_str().unwrap())
        .collect();
    assert_eq!(
        modes,
        vec!["reprotect", "planned_migration", "cleanup", "test"]
    );
}

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
    let run = started(&api_b, &callouts, json!({"mode": "test", "sync": false})).await;
    let run = drive(&api_b, &run).await;
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
    let dr = started(
        &api_b,
        &prompted,
        json!({"mode": "disaster_recovery", "confirm": "Prompted"}),
    )
    .await;
    let run = drive(&api_b, &dr).await;
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
    let reprotect = started(
        &api_b,
        &prompted,
        json!({"mode": "reprotect", "confirm": "Prompted"}),
    )
    .await;
    let run = drive(&api_b, &reprotect).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert!(api_a.get("/vms").await.as_array().unwrap().is_empty());
    eventually("the plan at site-a", Duration::from_secs(10), || {
        let api = &api_a;
        let path = format!("/plans/{prompted}");
        async move { (api.get(&path).await["recovery_site"] == "site-a").then_some(()) }
    })
    .await;
}
