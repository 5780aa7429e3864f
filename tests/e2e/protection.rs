//! Mappings, protection groups and plans through the API of two real sites:
//! every validation rule answers with its status, error code and field and
//! changes nothing; objects live at their recovery site, are visible from
//! both, and survive a restart.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

use super::runs::group_when_known;
use super::support::*;

const MAPPINGS: &str = "/mappings/site-a-to-site-b";

/// Sends as admin and expects a refusal with `status`, `code` and `field`.
async fn refused(
    api: &Api,
    method: Method,
    path: &str,
    body: Value,
    status: u16,
    code: &str,
    field: Option<&str>,
) -> String {
    let (got, reply) = api
        .send(method.clone(), path, Some(ADMIN), Some(body))
        .await;
    assert_eq!(got, status, "{method} {path}: {reply}");
    assert_eq!(reply["error"], code, "{method} {path}: {reply}");
    if let Some(field) = field {
        assert_eq!(reply["field"], field, "{method} {path}: {reply}");
    }
    let message = reply["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{method} {path}: empty message");
    message
}

fn mapping(networks: Value) -> Value {
    json!({
        "from_site": "site-a",
        "to_site": "site-b",
        "networks": networks,
        "test_networks": [{"source": "net", "target": "bubble"}],
        "folders": [{"source": "f", "target": "f"}],
        "resource_pools": [{"source": "p", "target": "p"}],
        "datastores": [{"source": "ds1", "target": "ds1"}],
        "ip_rules": [{"from_subnet": "10.0.0.0/24", "to_subnet": "10.9.0.0/24", "to_gateway": "10.9.0.1", "dns": ["10.9.0.53"]}],
    })
}

/// Everything a site holds of protection, for before/after comparisons.
async fn snapshot(api: &Api) -> Value {
    let mut groups = api.get("/protection-groups").await;
    // Per-VM status is derived live; the stored objects are what must not change.
    for g in groups.as_array_mut().unwrap() {
        g["updated_ms"] = Value::Null;
    }
    json!({
        "mappings": api.get("/mappings").await,
        "groups": groups,
        "plans": api.get("/plans").await,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_groups_and_plans_are_validated_shared_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 3);
    let mut b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    b.pin_ports();
    pair(&a, "site-a", &b, "site-b").await;
    let (api_a, mut api_b) = (Api::new(&a), Api::new(&b));
    for vm in ["site-a.vm-0", "site-a.vm-1"] {
        api_a
            .admin(
                Method::PUT,
                &format!("/replications/{vm}"),
                Some(json!({"rpo_seconds": 60})),
            )
            .await;
    }

    // Inventory of each site, as the TUI lists targets from it.
    let inventory = api_b.get("/inventory").await;
    assert_eq!(inventory["site"], "site-b");
    assert!(
        inventory["networks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "bubble" && n["test"] == true)
    );

    // A group before any mapping: created, but its VMs lack placeholders.
    let group = group_when_known(&api_b, "tier-1", json!(["site-a.vm-0", "site-a.vm-1"])).await;
    let group_id = group["id"].as_str().unwrap().to_string();
    assert_eq!(group["recovery_site"], "site-b");
    assert_eq!(group["protected_site"], "site-a");
    for vm in group["vms"].as_array().unwrap() {
        assert_eq!(vm["status"], "mapping missing: folder", "{vm}");
        assert!(vm["placeholder"].is_null());
    }

    // Mapping validation: each rule, at the right site, with its field.
    let before = snapshot(&api_b).await;
    let good_networks = json!([{"source": "net", "target": "net"}]);
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            mapping(json!([{"source": "net", "target": "nowhere"}])),
            422,
            "invalid_value",
            Some("networks[0].target"),
        ),
        (
            mapping(json!([{"source": "ghost", "target": "net"}])),
            422,
            "invalid_value",
            Some("networks[0].source"),
        ),
        (
            mapping(json!([{"source": "net", "target": "bubble"}])),
            422,
            "invalid_value",
            Some("networks[0].target"),
        ),
        (
            mapping(
                json!([{"source": "net", "target": "net"}, {"source": "net", "target": "net"}]),
            ),
            422,
            "invalid_value",
            Some("networks[1].source"),
        ),
        (
            {
                let mut m = mapping(good_networks.clone());
                m["test_networks"][0]["target"] = json!("net");
                m
            },
            422,
            "invalid_value",
            Some("test_networks[0].target"),
        ),
        (
            {
                let mut m = mapping(good_networks.clone());
                m["ip_rules"][0]["to_subnet"] = json!("10.9.0.0/16");
                m
            },
            422,
            "invalid_value",
            Some("ip_rules[0].to_subnet"),
        ),
        (
            {
                let mut m = mapping(good_networks.clone());
                m["ip_rules"][0]["to_gateway"] = json!("10.8.0.1");
                m
            },
            422,
            "invalid_value",
            Some("ip_rules[0].to_gateway"),
        ),
        (
            {
                let mut m = mapping(good_networks.clone());
                m["ip_overrides"] =
                    json!([{"vm_id": "site-a.vm-0", "nics": [{"nic": 3, "ipv4": "10.9.0.5/24"}]}]);
                m
            },
            422,
            "invalid_value",
            Some("ip_overrides[0].nics[0].nic"),
        ),
        (
            {
                let mut m = mapping(good_networks.clone());
                m["from_site"] = json!("site-x");
                m
            },
            422,
            "invalid_value",
            Some("from_site"),
        ),
        (
            {
                let mut m = mapping(good_networks.clone());
                m["surprise"] = json!(1);
                m
            },
            400,
            "invalid_body",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        refused(&api_b, Method::PUT, MAPPINGS, body, status, code, field).await;
    }
    let wrong = refused(
        &api_a,
        Method::PUT,
        MAPPINGS,
        mapping(good_networks.clone()),
        409,
        "wrong_site",
        None,
    )
    .await;
    assert!(wrong.contains("site-b"), "{wrong}");
    for token in [VIEWER, OPERATOR] {
        let (status, _) = api_b
            .send(
                Method::PUT,
                MAPPINGS,
                Some(token),
                Some(mapping(good_networks.clone())),
            )
            .await;
        assert_eq!(status, 403);
    }
    assert_eq!(
        snapshot(&api_b).await,
        before,
        "refused mapping changes changed something"
    );

    // Folders and pools mapped, networks not: the kind that is missing shows.
    api_b
        .admin(Method::PUT, MAPPINGS, Some(mapping(json!([]))))
        .await;
    let g = eventually(
        "status mapping missing: network",
        Duration::from_secs(10),
        || {
            let api = &api_b;
            let path = format!("/protection-groups/{group_id}");
            async move {
                let g = api.get(&path).await;
                (g["vms"][0]["status"] == "mapping missing: network").then_some(g)
            }
        },
    )
    .await;
    assert!(g["vms"][0]["placeholder"].is_null());
    // Fixing the mapping clears it and creates the placeholders.
    let saved = api_b
        .admin(Method::PUT, MAPPINGS, Some(mapping(good_networks.clone())))
        .await;
    assert_eq!(saved["owner"], "site-b");
    let g = api_b.get(&format!("/protection-groups/{group_id}")).await;
    for vm in g["vms"].as_array().unwrap() {
        assert_eq!(vm["status"], "ok", "{vm}");
        assert_eq!(vm["placeholder"]["networks"], json!(["net"]));
        assert_eq!(vm["placeholder"]["folder"], "f");
    }

    // Group validation.
    let before = snapshot(&api_b).await;
    let group_cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"name": "", "vms": ["site-a.vm-2"]}),
            422,
            "invalid_value",
            Some("name"),
        ),
        (
            json!({"name": "g2", "vms": []}),
            422,
            "invalid_value",
            Some("vms"),
        ),
        (
            json!({"name": "g2", "vms": ["site-a.vm-2"]}),
            422,
            "invalid_value",
            Some("vms[0]"),
        ),
        (
            json!({"name": "g2", "vms": ["site-a.vm-0"]}),
            409,
            "conflict",
            None,
        ),
        (
            json!({"name": "TIER-1", "vms": ["site-a.vm-1"]}),
            409,
            "conflict",
            None,
        ),
        (
            json!({"name": "g2", "vms": ["site-a.vm-1", "site-a.vm-1"]}),
            422,
            "invalid_value",
            Some("vms[1]"),
        ),
    ];
    for (body, status, code, field) in group_cases {
        refused(
            &api_b,
            Method::POST,
            "/protection-groups",
            body,
            status,
            code,
            field,
        )
        .await;
    }
    let msg = refused(
        &api_a,
        Method::POST,
        "/protection-groups",
        json!({"name": "g3", "vms": ["site-a.vm-0"]}),
        422,
        "invalid_value",
        Some("vms[0]"),
    )
    .await;
    assert!(msg.contains("runs at this site"), "{msg}");
    assert_eq!(
        snapshot(&api_b).await,
        before,
        "refused group changes changed something"
    );

    // Plan validation.
    let plan = |vms: Value| {
        json!({"name": "Tier one", "groups": [group_id], "vms": vms,
        "pre_power_on": [{"kind": "prompt", "message": "Tell the DBAs"}]})
    };
    let plan_cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"name": "x", "groups": ["pg-nope"]}),
            "groups[0]",
            "no protection group",
        ),
        (
            plan(json!([{"vm_id": "site-a.vm-0", "priority": 6}])),
            "vms[0].priority",
            "1..=5",
        ),
        (
            plan(
                json!([{"vm_id": "site-a.vm-0", "depends_on": ["site-a.vm-1"]}, {"vm_id": "site-a.vm-1", "depends_on": ["site-a.vm-0"]}]),
            ),
            "vms[0].depends_on",
            "vm-0 → vm-1 → vm-0",
        ),
        (
            plan(json!([{"vm_id": "site-a.vm-0", "priority": 2, "depends_on": ["site-a.vm-1"]}])),
            "vms[0].depends_on",
            "vm-0 (priority 2) → vm-1 (priority 3)",
        ),
        (
            plan(
                json!([{"vm_id": "site-a.vm-0", "post_power_on": [{"kind": "command", "command": "true", "timeout_seconds": 0}]}]),
            ),
            "vms[0].post_power_on[0].timeout_seconds",
            "outside",
        ),
        (
            plan(json!([{"vm_id": "site-a.vm-2"}])),
            "vms[0].vm_id",
            "not in any",
        ),
    ];
    for (body, field, words) in plan_cases {
        let msg = refused(
            &api_b,
            Method::POST,
            "/plans",
            body,
            422,
            "invalid_value",
            Some(field),
        )
        .await;
        assert!(msg.contains(words), "{field}: {msg:?} should say {words:?}");
    }
    assert_eq!(
        snapshot(&api_b).await,
        before,
        "refused plans changed something"
    );

    let created = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(plan(json!([
                {"vm_id": "site-a.vm-1", "priority": 1, "heartbeat_timeout_seconds": 60},
                {"vm_id": "site-a.vm-0", "power_on": false, "ip_customization": {"mode": "off"},
                 "pre_power_on": [{"kind": "command", "command": "echo hi"}]},
            ]))),
        )
        .await;
    let plan_id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "ready");
    assert_eq!(created["recovery_site"], "site-b");
    assert_eq!(created["start_order"][0], json!(["site-a.vm-1"]));
    assert_eq!(created["start_order"][2], json!(["site-a.vm-0"]));
    assert_eq!(created["vms"][1]["pre_power_on"][0]["timeout_seconds"], 300);
    assert_eq!(created["vms"][0]["heartbeat_timeout_seconds"], 60);
    assert!(
        created["allowed"]
            .as_array()
            .unwrap()
            .contains(&json!("test"))
    );

    // Visible from the protected site too, which refuses to change it.
    let seen = eventually("site-a to list the plan", Duration::from_secs(10), || {
        let api = &api_a;
        let path = format!("/plans/{plan_id}");
        async move {
            let (status, body) = api.send(Method::GET, &path, Some(VIEWER), None).await;
            (status == 200).then_some(body)
        }
    })
    .await;
    assert_eq!(seen["name"], "Tier one");
    refused(
        &api_a,
        Method::DELETE,
        &format!("/plans/{plan_id}"),
        Value::Null,
        409,
        "wrong_site",
        None,
    )
    .await;
    refused(
        &api_a,
        Method::DELETE,
        &format!("/protection-groups/{group_id}"),
        Value::Null,
        409,
        "wrong_site",
        None,
    )
    .await;
    // A group in a plan cannot be deleted; the refusal names the plan.
    let msg = refused(
        &api_b,
        Method::DELETE,
        &format!("/protection-groups/{group_id}"),
        Value::Null,
        409,
        "conflict",
        None,
    )
    .await;
    assert!(msg.contains("Tier one"), "{msg}");

    // Every change is audited, refusals included.
    let (_, audit) = api_b.send(Method::GET, "/audit", Some(ADMIN), None).await;
    let actions: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {}", e["action"], e["target"], e["status"]))
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a.contains("/plans") && a.ends_with("422")),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.contains("/mappings") && a.ends_with("403")),
        "{actions:?}"
    );

    // Everything survives a restart of the recovery site.
    let before = snapshot(&api_b).await;
    assert!(b.terminate().success());
    b = SiteProcess::start(&tmp.path().join("b"));
    api_b = Api::new(&b);
    // Once it has reached its peer again: a plan's readiness (and so what
    // it allows) says whether the protected site answers.
    eventually(
        "site-b to reach site-a again",
        Duration::from_secs(20),
        || {
            let api = &api_b;
            async move {
                (api.site().await.peer.map(|p| p.status)
                    == Some(ferry_api::types::PeerStatus::Connected))
                .then_some(())
            }
        },
    )
    .await;
    assert_eq!(snapshot(&api_b).await, before);

    // Updating and deleting, at the owner.
    let mut spec = plan(json!([]));
    spec["name"] = json!("Tier one, renamed");
    let updated = api_b
        .admin(Method::PUT, &format!("/plans/{plan_id}"), Some(spec))
        .await;
    assert_eq!(
        updated["start_order"][2],
        json!(["site-a.vm-0", "site-a.vm-1"])
    );
    api_b
        .admin(Method::DELETE, &format!("/plans/{plan_id}"), None)
        .await;
    api_b
        .admin(
            Method::DELETE,
            &format!("/protection-groups/{group_id}"),
            None,
        )
        .await;
    api_b.admin(Method::DELETE, MAPPINGS, None).await;
    let after = snapshot(&api_b).await;
    assert_eq!(after["plans"], json!([]));
    assert_eq!(after["groups"], json!([]));
}
