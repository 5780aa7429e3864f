//! Recovery runs on two real sites, through the API: test and cleanup while
//! replication keeps running, a prompt, the group lock; planned migration
//! with zero data loss, then reprotect and failback. The helpers here serve
//! `runs_faults` too.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use ferry_api::types::{Lifecycle, ReplicationInfo};

use super::support::*;

pub const RPO: u64 = 5;

pub fn mappings(from: &str, to: &str) -> Value {
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
pub async fn protected_pair(a: &SiteProcess, b: &SiteProcess, vms: usize) -> String {
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
    let group = group_when_known(&api_b, "apps", json!(ids)).await;
    group["id"].as_str().unwrap().to_string()
}

/// Creates the protection group `name` of `vms` at `api`'s site as soon as
/// the site has heard of their replications from its peer (until then it
/// refuses a group of VMs it does not know).
pub async fn group_when_known(api: &Api, name: &str, vms: Value) -> Value {
    eventually(
        &format!("the group {name}, once the site knows its VMs"),
        Duration::from_secs(20),
        || {
            let body = json!({"name": name, "vms": vms.clone()});
            async move {
                let (status, body) = api
                    .send(Method::POST, "/protection-groups", Some(ADMIN), Some(body))
                    .await;
                (status == 201).then_some(body)
            }
        },
    )
    .await
}

pub async fn start(api: &Api, plan: &str, token: &str, body: Value) -> (u16, Value) {
    api.send(
        Method::POST,
        &format!("/plans/{plan}/runs"),
        Some(token),
        Some(body),
    )
    .await
}

pub async fn started(api: &Api, plan: &str, body: Value) -> String {
    let (status, run) = start(api, plan, ADMIN, body).await;
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().unwrap().to_string()
}

/// Follows a run to its end, acknowledging prompts; returns it.
pub async fn drive(api: &Api, run: &str) -> Value {
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

/// Starts a run of `plan` and follows it to its end (see [`drive`]).
pub async fn run_to_end(api: &Api, plan: &str, body: Value) -> Value {
    let run = started(api, plan, body).await;
    drive(api, &run).await
}

pub async fn wait_state(api: &Api, run: &str, state: &str) -> Value {
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

pub fn assert_steps(run: &Value, allowed: &[&str]) {
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

pub fn write_at(path: &std::path::Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at).unwrap();
    file.sync_all().unwrap();
}

/// Waits for `plan` to be listed at `api`'s site with `site` as its
/// recovery site (after a reprotect moved it); returns it.
pub async fn plan_at(api: &Api, plan: &str, site: &str) -> Value {
    eventually(
        &format!("plan {plan} at {site}"),
        Duration::from_secs(10),
        || async move {
            let p = api.get(&format!("/plans/{plan}")).await;
            (p["recovery_site"] == site).then_some(p)
        },
    )
    .await
}

pub fn tests_dir(site: &SiteProcess) -> Vec<String> {
    std::fs::read_dir(site.dir.join("ds1/tests"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every replication `api`'s site sends has the lifecycle
/// `want` says (the site's word, streamed to every client).
pub async fn lifecycles(api: &Api, what: &str, want: impl Fn(&ReplicationInfo) -> bool) {
    eventually(what, Duration::from_secs(20), || {
        let want = &want;
        async move {
            let reps = api.replications().await;
            (!reps.is_empty() && reps.iter().all(want)).then_some(())
        }
    })
    .await;
}

/// The old copies' alarms at `api`'s site: RPO and error alarms of VMs
/// recovered elsewhere are all acknowledged, by the site itself.
async fn no_open_replication_alarms(api: &Api) {
    let alarms = api.get("/alarms").await;
    for a in alarms.as_array().unwrap() {
        if a["kind"] == "rpo_violated" || a["kind"] == "replication_error" {
            assert!(
                a["acked"]["by"].is_string(),
                "an open alarm on an ended replication: {a}"
            );
        }
    }
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
    // Site-a says its VMs are protected, with test copies at site-b.
    let with_copy = Lifecycle::TestCopy {
        site: "site-b".into(),
        run_id: Some(test.clone()),
    };
    lifecycles(&api_a, "test copies seen at site-a", |r| {
        r.lifecycle == with_copy && r.state != "ended"
    })
    .await;
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
    let run = run_to_end(&api_b, &plan, json!({"mode": "cleanup"})).await;
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
    let run = run_to_end(
        &api_b,
        &plan,
        json!({"mode": "planned_migration", "confirm": "Apps"}),
    )
    .await;
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
    // The old copies' replications ended: recovered at site-b by the run,
    // not failing, not counted as protected, their alarms cleared.
    let migration = run["id"].as_str().unwrap().to_string();
    let ended = Lifecycle::RecoveredAt {
        site: "site-b".into(),
        run_id: Some(migration.clone()),
    };
    lifecycles(&api_a, "site-a's replications ended", |r| {
        r.lifecycle == ended && r.state == "ended" && !r.rpo_violated
    })
    .await;
    assert!(
        vms_b.iter().all(|v| v["lifecycle"]["state"] == "recovered"
            && v["lifecycle"]["run_id"] == migration.as_str()),
        "{vms_b:?}"
    );
    assert_eq!(api_a.site().await.replicated_count, 0);
    no_open_replication_alarms(&api_a).await;

    // Reprotect: site-b replicates back, from the old disks as seeds.
    let run = run_to_end(
        &api_b,
        &plan,
        json!({"mode": "reprotect", "confirm": "Apps"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let moved = plan_at(&api_a, &plan, "site-a").await;
    assert_eq!(moved["state"], "ready");
    // The plan left behind at site-b shares the group that now recovers
    // the other way: its readiness says its VMs would be skipped, and a
    // test of it says it skipped them rather than a plain success.
    let left = eventually(
        "the other plan's readiness",
        Duration::from_secs(10),
        || {
            let (api, other) = (&api_b, &other);
            async move {
                let p = api.get(&format!("/plans/{other}")).await;
                (p["readiness"]["skipped"].as_array().map(Vec::len) == Some(2)).then_some(p)
            }
        },
    )
    .await;
    assert!(
        left["next"]
            .as_str()
            .unwrap()
            .contains("2 VMs would be skipped"),
        "{left}"
    );
    let run = run_to_end(&api_b, &other, json!({"mode": "test"})).await;
    assert_eq!(run["state"], "succeeded_with_warnings", "{run:#}");
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("2 of the plan's 2 VMs skipped"),
        "{run:#}"
    );
    run_to_end(&api_b, &other, json!({"mode": "cleanup"})).await;
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
    lifecycles(&api_b, "site-b's VMs protected", |r| {
        r.lifecycle == Lifecycle::Protected
    })
    .await;

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
    let run = run_to_end(
        &api_a,
        &plan,
        json!({"mode": "planned_migration", "confirm": "Apps"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    for vm in run["vms"].as_array().unwrap() {
        assert_eq!(vm["data_loss_seconds"], 0.0, "{vm}");
    }
    let back = Lifecycle::RecoveredAt {
        site: "site-a".into(),
        run_id: run["id"].as_str().map(str::to_string),
    };
    lifecycles(&api_b, "site-b's replications ended", |r| {
        r.lifecycle == back && r.state == "ended"
    })
    .await;
    no_open_replication_alarms(&api_b).await;
    let run = run_to_end(
        &api_a,
        &plan,
        json!({"mode": "reprotect", "confirm": "Apps"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let home = plan_at(&api_b, &plan, "site-b").await;
    assert_eq!(home["state"], "ready");
    assert_eq!(api_a.get("/vms").await.as_array().unwrap().len(), 2);
    lifecycles(&api_a, "site-a's VMs protected again", |r| {
        r.lifecycle == Lifecycle::Protected
    })
    .await;
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
        vec![
            "cleanup",
            "test",
            "reprotect",
            "planned_migration",
            "cleanup",
            "test"
        ]
    );
}
