//! `GET /api/v1/vms/{id}/instances` on two real sites: the recovery site
//! lists a replica's kept instances newest first with the clean point
//! recommended; a VM it holds no replica of is a clear 404.

use std::time::Duration;

use reqwest::Method;

use super::runs::protected_pair;
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
