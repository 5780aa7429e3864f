//! `GET /api/v1/vms/{id}/instances` on two real sites: the recovery site
//! lists a replica's kept instances newest first with the clean point
//! recommended; a VM it holds no replica of is a clear 404.

use std::time::Duration;

use reqwest::Method;

use serde_json::json;

use super::runs::{RPO, protected_pair};
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
