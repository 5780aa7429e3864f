//! Trust between two real sites: each shows its certificate's fingerprint,
//! keeps its key private, pairs by pinning the other's, re-pairs only when
//! told to, and checks and audits every call the peer makes on the link.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ferry_replicator::identity::{Fingerprint, Identity};
use ferry_replicator::recovery::model::{Callout, PlanSpec, PlanState};
use ferry_replicator::replication::LinkTls;
use ferry_replicator::replication::connection::Connection;
use ferry_replicator::site::control::{ControlCall, ControlReply};
use ferry_replicator::site::protection::{StoredGroup, StoredPlan};
use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;

const VM: &str = "site-a.vm-0";

/// Makes `call` to `to` as the site whose files are in `as_dir`.
fn call_as(
    as_dir: &std::path::Path,
    to: &SiteProcess,
    pinned: &str,
    call: &ControlCall,
) -> ControlReply {
    let identity = Identity::load_or_create(as_dir).unwrap();
    let pinned: Fingerprint = pinned.parse().unwrap();
    let tls = LinkTls::new(&identity, Some(pinned)).unwrap();
    let mut conn = Connection::connect(&to.replication, &tls, "site-b").unwrap();
    let body = serde_json::to_vec(call).unwrap();
    let reply = conn.call(&body, Duration::from_secs(20)).unwrap();
    serde_json::from_slice(&reply).unwrap()
}

fn refused(reply: &ControlReply, what: &str) -> String {
    match reply {
        ControlReply::Error { message } => message.clone(),
        other => panic!("{what} was carried out: {other:?}"),
    }
}

async fn audit(api: &Api) -> Vec<Value> {
    let (status, audit) = api.send(Method::GET, "/audit", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    audit.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn sites_pin_each_other_and_check_every_call_of_the_peer() {
    let work = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (work.path().join("a"), work.path().join("b"));
    let a = SiteProcess::create(&a_dir, "site-a", 1);
    let b = SiteProcess::create(&b_dir, "site-b", 0);
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));

    // A first start makes a private key; the API shows its fingerprint.
    let mode = std::fs::metadata(a_dir.join("site.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "site.key mode {mode:o}");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&a_dir.join("site.db")), 0o600, "site.db");
    assert_eq!(mode(&a_dir), 0o700, "the site's directory");
    assert_eq!(mode(&a_dir.join("ds1")), 0o700, "a datastore");
    let fa = api_a
        .site()
        .await
        .fingerprint
        .expect("site-a's fingerprint");
    let fb = api_b
        .site()
        .await
        .fingerprint
        .expect("site-b's fingerprint");
    assert_eq!(
        fa,
        Identity::load_or_create(&a_dir)
            .unwrap()
            .fingerprint
            .to_string()
    );

    pair(&a, "site-a", &b, "site-b").await;
    let info = api_a.site().await;
    assert_eq!(info.peer.unwrap().fingerprint.as_deref(), Some(fb.as_str()));

    // Re-pairing with another certificate is refused unless asked for.
    let stranger = Identity::ephemeral().unwrap().fingerprint.to_string();
    let repair = |fingerprint: &str, replace: bool| {
        json!({
            "name": "site-b",
            "url": b.api,
            "replication": b.replication,
            "fingerprint": fingerprint,
            "replace": replace,
        })
    };
    let (status, body) = api_a
        .send(
            Method::PUT,
            "/site/peer",
            Some(ADMIN),
            Some(repair(&stranger, false)),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("replace"),
        "{body}"
    );
    let repaired_ms = ferry_api::now_ms();
    api_a
        .admin(Method::PUT, "/site/peer", Some(repair(&stranger, true)))
        .await;
    // Now site-b's real certificate is refused by site-a, and an alarm says so.
    eventually("the link refused", Duration::from_secs(20), || async {
        let info = api_a.site().await;
        info.peer
            .and_then(|p| p.error)
            .filter(|e| e.contains("not the pinned"))
    })
    .await;
    // And an alarm says why, raised after the re-pairing: a site that
    // presents a certificate other than the pinned one (a man in the
    // middle, or a peer re-keyed) is never a silent failure.
    eventually(
        "an alarm for the refused certificate",
        Duration::from_secs(20),
        || async {
            let alarms = api_a.get("/alarms?limit=500").await;
            alarms.as_array().unwrap().iter().find_map(|alarm| {
                let message = alarm["message"].as_str()?;
                (message.contains("not the pinned") && alarm["at_ms"].as_u64()? >= repaired_ms)
                    .then(|| message.to_string())
            })
        },
    )
    .await;
    api_a
        .admin(Method::PUT, "/site/peer", Some(repair(&fb, true)))
        .await;
    let entries = audit(&api_a).await;
    assert!(
        entries.iter().any(|e| e["target"]
            .as_str()
            .is_some_and(|x| x.ends_with("/site/peer"))
            && e["status"] == 409),
        "the refused re-pairing is audited: {entries:?}"
    );

    // Calls of the peer outside a run it executes: refused and audited.
    let shut_down = ControlCall::ShutDown {
        vm_ids: vec![VM.into()],
        run: None,
    };
    let why = refused(
        &call_as(&b_dir, &a, &fa, &shut_down),
        "a shutdown without a run",
    );
    assert!(why.contains("run"), "{why}");
    let shut_down = ControlCall::ShutDown {
        vm_ids: vec![VM.into()],
        run: Some("run-that-does-not-exist".into()),
    };
    refused(
        &call_as(&b_dir, &a, &fa, &shut_down),
        "a shutdown for no run",
    );
    let demote = ControlCall::Demote {
        vm_ids: vec![VM.into()],
        run: Some("run-that-does-not-exist".into()),
    };
    refused(&call_as(&b_dir, &a, &fa, &demote), "a demotion for no run");
    let vm = api_a.get(&format!("/vms/{VM}")).await;
    assert_eq!(vm["power_state"], "on", "the VM kept running: {vm}");
    let entries = audit(&api_a).await;
    for action in ["control.shut_down", "control.demote"] {
        assert!(
            entries.iter().any(|e| e["action"] == action
                && e["status"] == 403
                && e["actor"].as_str().is_some_and(|x| x.contains(&fb))),
            "{action} refused and audited with the peer's identity: {entries:?}"
        );
    }

    // A plan adopted with a callout that the API would refuse: refused.
    let plan = StoredPlan {
        id: "plan-evil".into(),
        spec: PlanSpec {
            name: "evil".into(),
            description: String::new(),
            groups: vec!["group-evil".into()],
            vms: Vec::new(),
            pre_power_on: vec![Callout::Command {
                command: "   ".into(),
                timeout_seconds: 0,
            }],
            post_power_on: Vec::new(),
        },
        protected_site: "site-b".into(),
        recovery_site: "site-a".into(),
        state: PlanState::Ready,
        last_run: None,
        last_mode: None,
        updated_ms: 0,
    };
    let group = StoredGroup {
        id: "group-evil".into(),
        name: "evil".into(),
        protected_site: "site-b".into(),
        recovery_site: "site-a".into(),
        vms: vec![VM.into()],
        locked_by: None,
        updated_ms: 0,
    };
    let adopt = ControlCall::Adopt {
        plan: Box::new(plan),
        groups: vec![group],
    };
    let why = refused(
        &call_as(&b_dir, &a, &fa, &adopt),
        "an adopt with a bad callout",
    );
    assert!(why.contains("pre_power_on"), "{why}");
    let (status, _) = api_a
        .send(Method::GET, "/plans/plan-evil", Some(VIEWER), None)
        .await;
    assert_eq!(status, 404, "the adopted plan was stored");
    let entries = audit(&api_a).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "control.adopt" && e["status"] == 403),
        "the adopt is audited: {entries:?}"
    );
}
