//! Test copies belong to the test run that made them: another plan's test
//! of the same VMs cannot replace them, another plan's cleanup leaves
//! them, and a disaster recovery of VMs with a test copy still running
//! says so in its report.

use reqwest::Method;
use serde_json::{Value, json};

use super::runs::{protected_pair, run_to_end, tests_dir};
use super::support::{Api, SiteProcess, SiteProcessExt};

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name:?} in {run:#}"))
}

fn owner_run(b: &SiteProcess) -> String {
    let text = std::fs::read_to_string(b.dir.join("ds1/tests/site-a.vm-0/owner.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_copy_is_its_runs_until_its_own_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    let group = protected_pair(&a, &b, 1).await;
    let api_b = Api::new(&b);
    let plan = |name: &str| {
        let api = &api_b;
        let body = json!({"name": name, "groups": [group]});
        async move {
            let plan = api.admin(Method::POST, "/plans", Some(body)).await;
            plan["id"].as_str().unwrap().to_string()
        }
    };
    let (one, two) = (plan("One").await, plan("Two").await);

    let test = run_to_end(&api_b, &one, json!({"mode": "test"})).await;
    assert_eq!(test["state"], "succeeded", "{test:#}");
    let test_id = test["id"].as_str().unwrap().to_string();
    assert_eq!(owner_run(&b), test_id);

    // Plan Two's test may start (the group is free once One's test is
    // complete) but does not take One's test copy.
    let other = run_to_end(&api_b, &two, json!({"mode": "test"})).await;
    let copies = step(&other, "Create test copies of the replicas");
    let message = copies["vms"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("belongs to plan \"One\"'s test") && message.contains(&test_id),
        "{copies:#}"
    );
    assert_eq!(owner_run(&b), test_id, "One's copy is untouched");

    // Two's cleanup removes nothing of One's.
    let cleanup = run_to_end(&api_b, &two, json!({"mode": "cleanup"})).await;
    let discard = step(&cleanup, "Discard test copies");
    assert!(
        discard["vms"][0]["message"]
            .as_str()
            .unwrap()
            .contains("plan \"One\"'s test"),
        "{discard:#}"
    );
    assert_eq!(tests_dir(&b), vec!["site-a.vm-0".to_string()]);
    assert_eq!(owner_run(&b), test_id);

    // A disaster recovery of the VM while One's test copy runs says so.
    let dr = run_to_end(
        &api_b,
        &two,
        json!({"mode": "disaster_recovery", "confirm": "Two"}),
    )
    .await;
    let writable = step(&dr, "Make replicas writable");
    assert!(
        writable["vms"][0]["message"]
            .as_str()
            .unwrap()
            .contains("a test copy from plan \"One\"'s test"),
        "{writable:#}"
    );
    assert_eq!(dr["vms"][0]["result"], "warning", "{dr:#}");

    // One's own cleanup removes its copy.
    let cleanup = run_to_end(&api_b, &one, json!({"mode": "cleanup"})).await;
    assert_eq!(cleanup["state"], "succeeded", "{cleanup:#}");
    assert!(tests_dir(&b).is_empty(), "{:?}", tests_dir(&b));
}
