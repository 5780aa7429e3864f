//! What the sites say after a disaster, through the API: a plan whose
//! protected site died allows only disaster recovery and says why, and
//! the alarm that death raised is acknowledged once, by an operator,
//! audited, and seen acknowledged by every other client.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;

use super::runs::{protected_pair, start};
use super::support::*;
use ferry_api::types::SiteEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_protected_site_leaves_only_disaster_recovery_and_its_alarm_is_acked_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    let group = protected_pair(&a, &b, 1).await;
    let api_b = Api::new(&b);
    let plan = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({"name": "Apps", "groups": [group]})),
        )
        .await;
    let plan = plan["id"].as_str().unwrap().to_string();
    let ready = api_b.get(&format!("/plans/{plan}")).await;
    assert_eq!(
        ready["readiness"]["protected_site_reachable"], true,
        "{ready}"
    );
    assert_eq!(ready["allowed"].as_array().unwrap().len(), 3, "{ready}");

    a.kill9();
    let only_dr = eventually(
        "the plan to allow only disaster recovery",
        Duration::from_secs(20),
        || {
            let (api, plan) = (&api_b, &plan);
            async move {
                let p = api.get(&format!("/plans/{plan}")).await;
                (p["allowed"] == json!(["disaster_recovery"])).then_some(p)
            }
        },
    )
    .await;
    assert_eq!(
        only_dr["next"], "protected site site-a unreachable: only disaster recovery (d)",
        "{only_dr}"
    );
    assert_eq!(only_dr["readiness"]["protected_site_reachable"], false);
    let (status, refusal) = start(
        &api_b,
        &plan,
        ADMIN,
        json!({"mode": "planned_migration", "confirm": "Apps"}),
    )
    .await;
    assert_eq!(status, 409, "{refusal}");
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("only disaster recovery"),
        "{refusal}"
    );

    // The alarm site-b raised, acknowledged by an operator while a second
    // client watches the stream.
    let alarm = eventually("site-b's alarm", Duration::from_secs(10), || {
        let api = &api_b;
        async move {
            let alarms = api.get("/alarms").await;
            alarms
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["kind"] == "peer_unreachable")
                .cloned()
        }
    })
    .await;
    assert!(alarm.get("acked").is_none(), "{alarm}");
    let id = alarm["id"].as_i64().unwrap();
    let path = format!("/alarms/{id}/ack");
    let stream = api_b.typed.events().await.unwrap();
    let watcher = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(event)) = stream.next().await {
            if let Some(SiteEvent::Alarm(row)) = event
                && row.id == id
                && row.acked.is_some()
            {
                return row;
            }
        }
        panic!("the stream ended before the acknowledgement");
    });
    let (status, _) = api_b.send(Method::POST, &path, Some(VIEWER), None).await;
    assert_eq!(status, 403, "a viewer may not acknowledge");
    let (status, acked) = api_b.send(Method::POST, &path, Some(OPERATOR), None).await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acked"]["by"], "operator", "{acked}");
    let seen = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the acknowledgement on the stream")
        .unwrap();
    assert_eq!(seen.acked.unwrap().by, "operator");
    // Acknowledging again keeps the first acknowledgement.
    let (status, again) = api_b.send(Method::POST, &path, Some(ADMIN), None).await;
    assert_eq!((status, &again["acked"]["by"]), (200, &json!("operator")));
    let (status, _) = api_b
        .send(Method::POST, "/alarms/999999/ack", Some(OPERATOR), None)
        .await;
    assert_eq!(status, 404);
    let listed = api_b.get("/alarms").await;
    let kept = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(kept["acked"]["by"], "operator", "kept and marked: {kept}");
    let (_, audit) = api_b.send(Method::GET, "/audit", Some(ADMIN), None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "operator"
                && e["target"] == path.as_str()
                && e["status"] == 200),
        "{audit:#}"
    );
}
