//! `GET /api/v1/vms/{id}/instances` on two real sites: the recovery site
//! lists a replica's kept instances newest first with the clean point
//! recommended; a VM it holds no replica of is a clear 404.

use std::time::Duration;

use reqwest::Method;

use ferry_api::types::InstanceInfo;
use ferry_replicator::config::{GuestSeed, VmSeed};
use serde_json::{Value, json};

use super::runs::{RPO, protected_pair, run_to_end, start};
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_site_lists_a_replicas_instances_and_refuses_an_unknown_vm() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    protected_pair(&a, &b, 1).await;
    let api_b = Api::new(&b);
    let listed = eventually("instances at site-b", Duration::from_secs(30), || {
        let api = &api_b;
        async move {
            let (status, body) = api
                .send(
                    Method::GET,
                    "/vms/site-a.vm-0/instances",
                    Some(VIEWER),
                    None,
                )
                .await;
            (status == 200 && body.as_array().is_some_and(|a| !a.is_empty())).then_some(body)
        }
    })
    .await;
    let newest = &listed[0];
    assert!(
        newest["id"].as_str().unwrap().parse::<u64>().is_ok(),
        "{newest}"
    );
    assert!(newest["point_time_ms"].as_u64().unwrap() > 0);
    assert_eq!(newest["suspicious"], false);
    assert_eq!(newest["recommended"], true);
    let typed = api_b.typed.instances("site-a.vm-0").await.unwrap();
    assert!(!typed.is_empty() && typed[0].recommended);
    let (status, body) = api_b
        .send(
            Method::GET,
            "/vms/nothing-here/instances",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no replica of \"nothing-here\""),
        "{body}"
    );
}

/// A retention policy set with the replication at the protected site is
/// checked there (the error names the field), kept, and carried to the
/// recovery site, whose replica then keeps older instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_policy_set_at_the_protected_site_keeps_instances_at_the_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    protected_pair(&a, &b, 1).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let path = "/replications/site-a.vm-0";

    // 12 an hour needs an instance every 300 s: an RPO of 900 s cannot.
    let (status, body) = api_a
        .send(
            Method::PUT,
            path,
            Some(ADMIN),
            Some(json!({"rpo_seconds": 900, "retention": {"per_period": 12, "thin_days": 1}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("every 300 s"),
        "{body}"
    );
    assert!(body.to_string().contains("retention.per_period"), "{body}");
    let unchanged = api_a.replications().await;
    assert_eq!(
        unchanged[0].rpo_seconds, RPO,
        "a refused change changes nothing"
    );
    assert!(unchanged[0].retention.newest_only());

    let set = api_a
        .admin(
            Method::PUT,
            path,
            Some(json!({"rpo_seconds": RPO, "retention": {"keep_all_seconds": 600}})),
        )
        .await;
    assert_eq!(set["retention"]["keep_all_seconds"], 600, "{set}");
    // An RPO change alone is checked against the policy in force.
    let (status, body) = api_a
        .send(
            Method::PUT,
            path,
            Some(ADMIN),
            Some(json!({"rpo_seconds": 900})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("retention.keep_all_seconds"),
        "{body}"
    );

    let kept = eventually(
        "three kept instances at site-b",
        Duration::from_secs(60),
        || {
            let api = &api_b;
            async move {
                let kept = api.typed.instances("site-a.vm-0").await.ok()?;
                (kept.len() >= 3).then_some(kept)
            }
        },
    )
    .await;
    let ids: Vec<u64> = kept.iter().map(|k| k.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(kept[0].recommended && !kept[0].suspicious);
}

/// Sets a policy that keeps every instance of the last 10 minutes and
/// waits until site-b keeps at least `count`; returns them, newest first.
async fn keep_instances(api_a: &Api, api_b: &Api, count: usize) -> Vec<InstanceInfo> {
    api_a
        .admin(
            Method::PUT,
            "/replications/site-a.vm-0",
            Some(json!({"rpo_seconds": RPO, "retention": {"keep_all_seconds": 600}})),
        )
        .await;
    eventually("kept instances at site-b", Duration::from_secs(60), || {
        let api = api_b;
        async move {
            let kept = api.typed.instances("site-a.vm-0").await.ok()?;
            (kept.len() >= count).then_some(kept)
        }
    })
    .await
}

/// A test run at an older kept instance: a bad choice is refused naming
/// the VM and the instance, a good one boots that instance (its guest
/// verifies), the report says which instance and what it gives up, and
/// the replica's history is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_run_recovers_a_chosen_older_instance_and_leaves_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    let group = protected_pair(&a, &b, 1).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let kept = keep_instances(&api_a, &api_b, 3).await;
    let plan = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({"name": "Back in time", "groups": [group]})),
        )
        .await;
    let plan = plan["id"].as_str().unwrap().to_string();

    let refused = |body: Value, field: &'static str, says: &'static str| {
        let (api, plan) = (&api_b, &plan);
        async move {
            let (status, reply) = start(api, plan, OPERATOR, body).await;
            assert_eq!(status, 422, "{reply}");
            assert_eq!(reply["field"], field, "{reply}");
            let message = reply["message"].as_str().unwrap();
            assert!(message.contains(says), "{message}");
        }
    };
    refused(
        json!({"mode": "test", "instances": {"site-a.vm-0": "999999"}}),
        "instances",
        "VM vm-0: instance 999999 does not exist yet",
    )
    .await;
    refused(
        json!({"mode": "test", "instances": {"site-a.vm-0": "banana"}}),
        "instances",
        "not an instance id",
    )
    .await;
    refused(
        json!({"mode": "test", "instances": {"site-a.vm-9": "1"}}),
        "instances",
        "not in this plan",
    )
    .await;
    refused(
        json!({"mode": "test", "at_ms": ferry_api::now_ms() + 3_600_000}),
        "at_ms",
        "in the future",
    )
    .await;
    refused(
        json!({"mode": "test", "at_ms": 1000}),
        "at_ms",
        "keeps no instance at or before 1000",
    )
    .await;
    assert_eq!(
        api_b.get(&format!("/plans/{plan}")).await["state"],
        "ready",
        "a refused run changes nothing"
    );

    let older = &kept[kept.len() - 2];
    let run = run_to_end(
        &api_b,
        &plan,
        json!({"mode": "test", "sync": false, "instances": {"site-a.vm-0": older.id}}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let vm = &run["vms"][0];
    assert_eq!(vm["instance"], older.id.as_str(), "{vm}");
    assert_eq!(vm["point_time_ms"], older.point_time_ms, "{vm}");
    assert!(
        vm["newest_point_ms"].as_u64().unwrap() >= kept[0].point_time_ms,
        "{vm}"
    );
    assert_eq!(
        vm["verified"], true,
        "the older instance boots and verifies: {vm}"
    );
    let still = api_b.typed.instances("site-a.vm-0").await.unwrap();
    assert!(
        still.iter().any(|k| k.id == older.id),
        "the chosen instance is still kept"
    );
    api_b
        .admin(
            Method::POST,
            &format!("/plans/{plan}/runs"),
            Some(json!({"mode": "cleanup"})),
        )
        .await;
}

/// The demo attack end to end: on a demo site an admin starts it, the
/// recovery site raises `clean_point`, the instances after the clean point
/// are all marked suspicious, and a test run at the recommended instance
/// boots a guest that verifies. A VM with a quiet workload (records only),
/// so its baseline is low and the attack stands out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_attack_is_flagged_and_the_recommended_point_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    site_config("site-a", 0)
        .demo(true)
        .vms([VmSeed {
            nics: vec![ferry_testkit::config::nic("net", "10.0.0.10/24")],
            guest: GuestSeed {
                records_per_second: 5.0,
                overwrite_kib_per_second: 0,
            },
            ..ferry_testkit::config::vm("vm-0", 32)
        }])
        .write(&dir_a);
    let a = SiteProcess::start(&dir_a);
    let b = SiteProcess::create(&dir_b, "site-b", 0);
    let group = protected_pair(&a, &b, 1).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    // The baseline learns over its first cycles before anything alarms.
    let before = keep_instances(&api_a, &api_b, 11).await;
    let plan = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({"name": "Clean point", "groups": [group]})),
        )
        .await;
    let plan = plan["id"].as_str().unwrap().to_string();

    // Not for an operator, and not on a site that is no demo.
    let (status, body) = api_a
        .send(
            Method::POST,
            "/vms/site-a.vm-0/attack",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api_b
        .send(Method::POST, "/vms/site-a.vm-0/attack", Some(ADMIN), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a demo site"),
        "{body}"
    );

    ferry_api::Client::new("site-a", &a.api, ADMIN, Duration::from_secs(10))
        .unwrap()
        .send(&ferry_api::call::Call::SimulateAttack {
            vm_id: "site-a.vm-0".into(),
        })
        .await
        .unwrap();
    let alarm = eventually(
        "the clean_point alarm at site-b",
        Duration::from_secs(60),
        || {
            let api = &api_b;
            async move {
                let alarms = api.get("/alarms").await;
                alarms
                    .as_array()?
                    .iter()
                    .find(|a| a["kind"] == "clean_point" && a["vm_id"] == "site-a.vm-0")
                    .cloned()
            }
        },
    )
    .await;
    let kept = api_b.typed.instances("site-a.vm-0").await.unwrap();
    let recommended = kept.iter().find(|k| k.recommended).unwrap();
    let first_bad: u64 = kept
        .iter()
        .filter(|k| k.suspicious)
        .map(|k| k.id.parse().unwrap())
        .min()
        .unwrap();
    let clean: u64 = recommended.id.parse().unwrap();
    assert_eq!(first_bad, clean + 1, "{kept:?}");
    assert!(
        kept.iter()
            .all(|k| k.suspicious == (k.id.parse::<u64>().unwrap() > clean)),
        "every instance after the clean point is suspicious: {kept:?}"
    );
    assert!(clean >= before[0].id.parse().unwrap(), "{kept:?}");
    assert!(
        alarm["message"].as_str().unwrap().contains(&format!(
            "instance {first_bad} looks like an encryption attack"
        )),
        "{alarm}"
    );

    let run = run_to_end(
        &api_b,
        &plan,
        json!({"mode": "test", "sync": false, "instances": {"site-a.vm-0": recommended.id}}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["vms"][0]["instance"], recommended.id.as_str());
    assert_eq!(run["vms"][0]["verified"], true, "{run:#}");
}
