//! API calls that race (issue 12 item 7) on two real sites: a group edit
//! and two runs started at once over many rounds never leave a running run
//! without its group lock nor start two runs on one group; parallel creates
//! of one name make exactly one object.

use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

use super::runs::{drive, protected_pair, start};
use super::support::*;

const ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_edits_racing_run_starts_never_erase_a_runs_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    let group = protected_pair(&a, &b, 1).await;
    let api = Api::new(&b);
    let mut plans = Vec::new();
    for name in ["First", "Second"] {
        let plan = api
            .admin(
                Method::POST,
                "/plans",
                Some(json!({"name": name, "groups": [group]})),
            )
            .await;
        plans.push(plan["id"].as_str().unwrap().to_string());
    }
    for round in 0..ROUNDS {
        let rename = json!({"name": format!("apps-{round}"), "vms": ["site-a.vm-0"]});
        let path = format!("/protection-groups/{group}");
        let (first, second, (edited, edit)) = tokio::join!(
            start(&api, &plans[0], ADMIN, json!({"mode": "test"})),
            start(&api, &plans[1], ADMIN, json!({"mode": "test"})),
            api.send(Method::PUT, &path, Some(ADMIN), Some(rename)),
        );
        assert!(edited == 200 || edited == 409, "round {round}: {edit}");
        let runs: Vec<(usize, Value)> = [first, second]
            .into_iter()
            .enumerate()
            .filter_map(|(i, (status, run))| {
                assert!(status == 201 || status == 409, "round {round}: {run}");
                (status == 201).then_some((i, run))
            })
            .collect();
        assert!(
            runs.len() <= 1,
            "round {round}: two runs started on one group: {runs:?}"
        );
        // The group as it is now, then the run: a run still running at the
        // second read was running at the first, so it held the lock then.
        let seen = api.get(&path).await;
        for (_, run) in &runs {
            let id = run["id"].as_str().unwrap();
            let now = api.get(&format!("/runs/{id}")).await;
            if matches!(now["state"].as_str(), Some("running" | "waiting")) {
                assert_eq!(
                    seen["locked_by"], id,
                    "round {round}: run {id} runs without its lock: {seen}"
                );
            }
        }
        // Back to ready for the next round: the test ends, cleanup follows.
        for (i, run) in runs {
            drive(&api, run["id"].as_str().unwrap()).await;
            let (status, cleanup) = start(&api, &plans[i], ADMIN, json!({"mode": "cleanup"})).await;
            assert_eq!(status, 201, "round {round}: {cleanup}");
            drive(&api, cleanup["id"].as_str().unwrap()).await;
        }
        let after = api.get(&path).await;
        assert!(after["locked_by"].is_null(), "round {round}: {after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_of_one_name_make_exactly_one() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    let group = protected_pair(&a, &b, 1).await;
    let api = Arc::new(Api::new(&b));
    api.admin(Method::DELETE, &format!("/protection-groups/{group}"), None)
        .await;

    let body = json!({"name": "twins", "vms": ["site-a.vm-0"]});
    let groups = at_once(&api, "/protection-groups", body).await;
    let made: Vec<&Value> = groups
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, g)| g)
        .collect();
    let refused = groups.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((made.len(), refused), (1, CREATES - 1), "{groups:?}");
    let listed = api.get("/protection-groups").await;
    assert_eq!(named(&listed, "twins"), 1, "{listed}");

    let group = made[0]["id"].as_str().unwrap();
    let plans = at_once(&api, "/plans", json!({"name": "Twin", "groups": [group]})).await;
    let made = plans.iter().filter(|(s, _)| *s == 201).count();
    let refused = plans.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((made, refused), (1, CREATES - 1), "{plans:?}");
    let listed = api.get("/plans").await;
    assert_eq!(named(&listed, "Twin"), 1, "{listed}");
}

const CREATES: usize = 20;

/// `CREATES` POSTs of one body to `path`, all in flight at once.
async fn at_once(api: &Arc<Api>, path: &str, body: Value) -> Vec<(u16, Value)> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CREATES {
        let (api, path, body) = (api.clone(), path.to_string(), body.clone());
        set.spawn(async move { api.send(Method::POST, &path, Some(ADMIN), Some(body)).await });
    }
    set.join_all().await
}

fn named(listed: &Value, name: &str) -> usize {
    listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == name)
        .count()
}
