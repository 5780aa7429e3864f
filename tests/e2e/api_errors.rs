//! Every bad request gets the right status and a `{"error","message"}` body
//! that says what and why, and changes nothing; every mutating call is in
//! the audit log, refused or not.

use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;

const VM: &str = "site-a.vm-0";

fn assert_error(what: &str, got: &(u16, Value), status: u16, code: &str, mentions: &[&str]) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: empty message");
    for word in mentions {
        assert!(
            message.contains(word),
            "{what}: {message:?} should mention {word:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_clearly_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    pair(&a, "site-a", &b, "site-b").await;
    let api = Api::new(&a);
    api.admin(
        Method::PUT,
        &format!("/replications/{VM}"),
        Some(json!({"rpo_seconds": 60})),
    )
    .await;
    let before = api.get(&format!("/replications/{VM}")).await;
    let path = format!("/replications/{VM}");

    let put = |token: Option<&'static str>, body: Value| {
        let api = &api;
        let path = path.clone();
        async move { api.send(Method::PUT, &path, token, Some(body)).await }
    };
    let ok_body = json!({"rpo_seconds": 30});

    assert_error(
        "no token",
        &api.send(Method::GET, "/vms", None, None).await,
        401,
        "unauthorized",
        &["Bearer"],
    );
    assert_error(
        "wrong token",
        &api.send(Method::GET, "/vms", Some("nope"), None).await,
        401,
        "unauthorized",
        &[],
    );
    assert_error(
        "viewer changes replication",
        &put(Some(VIEWER), ok_body.clone()).await,
        403,
        "forbidden",
        &["admin", "viewer"],
    );
    assert_error(
        "operator changes replication",
        &put(Some(OPERATOR), ok_body.clone()).await,
        403,
        "forbidden",
        &["admin"],
    );
    assert_error(
        "viewer powers off",
        &api.send(
            Method::POST,
            &format!("/vms/{VM}/power"),
            Some(VIEWER),
            Some(json!({"state": "off"})),
        )
        .await,
        403,
        "forbidden",
        &["operator"],
    );
    assert_error(
        "unknown VM",
        &api.send(Method::GET, "/vms/nope", Some(VIEWER), None).await,
        404,
        "not_found",
        &["nope"],
    );
    assert_error(
        "replicate an unknown VM",
        &api.send(
            Method::PUT,
            "/replications/nope",
            Some(ADMIN),
            Some(ok_body.clone()),
        )
        .await,
        404,
        "not_found",
        &["nope"],
    );
    assert_error(
        "unknown path",
        &api.send(Method::GET, "/nowhere", Some(VIEWER), None).await,
        404,
        "not_found",
        &[],
    );

    let raw = |body: &'static str| {
        let api = &api;
        let path = path.clone();
        async move {
            let response = api
                .client
                .put(format!("{}{path}", api.base))
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    assert_error(
        "malformed JSON",
        &raw("{\"rpo_seconds\": ").await,
        400,
        "malformed_json",
        &[],
    );
    assert_error(
        "wrong type",
        &put(Some(ADMIN), json!({"rpo_seconds": "soon"})).await,
        400,
        "invalid_body",
        &["rpo_seconds"],
    );
    assert_error(
        "unknown field",
        &put(Some(ADMIN), json!({"rpo_seconds": 60, "colour": 1})).await,
        400,
        "invalid_body",
        &["colour"],
    );
    assert_error(
        "RPO too short",
        &put(Some(ADMIN), json!({"rpo_seconds": 3})).await,
        422,
        "invalid_value",
        &["rpo_seconds", "5 s to 86400 s"],
    );
    assert_error(
        "RPO too long",
        &put(Some(ADMIN), json!({"rpo_seconds": 90000})).await,
        422,
        "invalid_value",
        &["rpo_seconds"],
    );
    assert_error(
        "escaping datastore",
        &put(
            Some(ADMIN),
            json!({"rpo_seconds": 60, "datastore": "../etc"}),
        )
        .await,
        422,
        "invalid_value",
        &["datastore"],
    );
    let huge = json!({"rpo_seconds": 60, "pad": "x".repeat(70 * 1024)});
    assert_error(
        "huge body",
        &put(Some(ADMIN), huge).await,
        413,
        "body_too_large",
        &["65536"],
    );
    assert_error(
        "bad power state",
        &api.send(
            Method::POST,
            &format!("/vms/{VM}/power"),
            Some(OPERATOR),
            Some(json!({"state": "sideways"})),
        )
        .await,
        400,
        "invalid_body",
        &["state"],
    );
    assert_error(
        "viewer reads the audit log",
        &api.send(Method::GET, "/audit", Some(VIEWER), None).await,
        403,
        "forbidden",
        &[],
    );

    // Nothing changed.
    let after = api.get(&format!("/replications/{VM}")).await;
    for field in ["rpo_seconds", "datastore", "paused", "compress"] {
        assert_eq!(before[field], after[field], "{field} changed");
    }
    assert!(!tmp.path().join("a/etc").exists() && !tmp.path().join("b/etc").exists());

    // The operator may power VMs; it is audited like everything else.
    let (status, vm) = api
        .send(
            Method::POST,
            &format!("/vms/{VM}/power"),
            Some(OPERATOR),
            Some(json!({"state": "off"})),
        )
        .await;
    assert_eq!((status, vm["power_state"].clone()), (200, json!("off")));

    let (status, audit) = api.send(Method::GET, "/audit", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let entries = audit.as_array().unwrap();
    let has = |actor: &str, status: u64| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["status"] == status
                && e["target"].as_str().is_some_and(|t| t.contains(VM))
        })
    };
    assert!(has("viewer", 403), "refused call audited: {audit}");
    assert!(has("admin", 422), "invalid call audited with its result");
    assert!(has("operator", 200), "power off audited");
    assert!(
        entries.iter().any(|e| e["result"]
            .as_str()
            .is_some_and(|r| r.contains("rpo_seconds"))),
        "the audit keeps why a call failed"
    );
}
