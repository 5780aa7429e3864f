//! Two real sites: replication through the API reaches `ok` inside the RPO,
//! survives a clean restart without a full sync and a kill -9 with a full
//! sync of only the changed blocks, and a dead peer shows as unreachable.

use std::time::Duration;

use ferry_replicator::api::types::PeerStatus;
use reqwest::Method;
use serde_json::json;

use super::support::*;

const VMS: [&str; 3] = ["site-a.vm-0", "site-a.vm-1", "site-a.vm-2"];

/// Waits until every VM has a new instance past `after` that is a delta
/// (`full == false`) or a full sync (`full == true`); returns the instances.
async fn next_instances(
    api: &Api,
    after: &[u64],
    full: bool,
    deadline: Duration,
) -> Vec<(u64, u64)> {
    eventually("a new instance of every VM", deadline, || async {
        let reps = api.replications().await;
        let mut out = Vec::new();
        for (vm, min) in VMS.iter().zip(after) {
            let r = reps.iter().find(|r| r.vm_id == *vm)?;
            let last = r.last_sync?;
            if last.instance <= *min {
                return None;
            }
            if full && !last.full {
                // A delta that landed just before the kill: wait for the next.
                return None;
            }
            assert_eq!(last.full, full, "{vm}: {r:?}");
            out.push((last.instance, last.bytes));
        }
        Some(out)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_through_the_api_survives_restarts_and_outages() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = SiteProcess::create(&tmp.path().join("a"), "site-a", 3);
    let mut b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    a.pin_ports();
    b.pin_ports();
    pair(&a, "site-a", &b, "site-b").await;
    let api = Api::new(&a);

    // Live events: collect the names of what streams by.
    let (seen, collector) = watch_events(&api).await;

    for vm in VMS {
        api.admin(
            Method::PUT,
            &format!("/replications/{vm}"),
            Some(json!({"rpo_seconds": 5})),
        )
        .await;
    }
    eventually(
        "every VM ok inside its RPO",
        Duration::from_secs(60),
        || async {
            let reps = api.replications().await;
            (reps.len() == 3
                && reps.iter().all(|r| {
                    r.state == "ok"
                        && r.last_sync.is_some()
                        && r.lag_seconds.is_some_and(|l| l < 5.0)
                }))
            .then_some(())
        },
    )
    .await;
    eventually(
        "replication events on the stream",
        Duration::from_secs(10),
        || async {
            seen.lock()
                .unwrap()
                .iter()
                .any(|e| e == "replication")
                .then_some(())
        },
    )
    .await;
    collector.abort();
    let info = eventually("peer connected", Duration::from_secs(10), || async {
        let info = api.site().await;
        (info.peer.as_ref().map(|p| p.status) == Some(PeerStatus::Connected)).then_some(info)
    })
    .await;
    assert_eq!((info.vm_count, info.replicated_count), (3, 3));

    // A clean stop and start: replication resumes with deltas.
    let reps = api.replications().await;
    let initial: Vec<u64> = VMS
        .iter()
        .map(|vm| {
            let r = reps.iter().find(|r| r.vm_id == *vm).unwrap();
            r.last_sync.unwrap().instance
        })
        .collect();
    let instances: Vec<u64> = next_instances(&api, &initial, false, Duration::from_secs(30))
        .await
        .iter()
        .map(|i| i.0)
        .collect();
    assert!(
        a.terminate().success(),
        "SIGTERM should stop the site cleanly"
    );
    a = SiteProcess::start(&tmp.path().join("a"));
    let reps = api.replications().await;
    assert_eq!(reps.len(), 3, "replication settings survive the restart");
    assert!(reps.iter().all(|r| r.rpo_seconds == 5));
    next_instances(&api, &instances, false, Duration::from_secs(30)).await;

    // kill -9: the next cycle is a full sync that sends only the blocks that
    // differ. vm-0 is powered off and its last writes shipped first, so for
    // it nothing differs and nothing may travel; the running guests' hot
    // regions do differ and do travel.
    let (status, _) = api
        .send(
            Method::POST,
            &format!("/vms/{}/power", VMS[0]),
            Some(OPERATOR),
            Some(json!({"state": "off"})),
        )
        .await;
    assert_eq!(status, 200);
    let settled = api.replications().await;
    let mut after: Vec<u64> = VMS
        .iter()
        .map(|vm| {
            settled
                .iter()
                .find(|r| r.vm_id == *vm)
                .unwrap()
                .last_sync
                .unwrap()
                .instance
        })
        .collect();
    api.admin(
        Method::POST,
        &format!("/replications/{}/sync", VMS[0]),
        None,
    )
    .await;
    let quiet = eventually(
        "vm-0's final writes shipped",
        Duration::from_secs(20),
        || async {
            let reps = api.replications().await;
            let r = reps.iter().find(|r| r.vm_id == VMS[0])?;
            let last = r.last_sync?;
            (last.instance > after[0] && r.progress.is_none()).then_some(last.instance)
        },
    )
    .await;
    after[0] = quiet;
    a.kill9();
    a = SiteProcess::start(&tmp.path().join("a"));
    let full = next_instances(&api, &after, true, Duration::from_secs(30)).await;
    assert_eq!(
        full[0].1, 0,
        "vm-0 changed nothing, so its full sync sends nothing"
    );
    for (instance, bytes) in &full[1..] {
        assert!(*instance > 0);
        assert!(
            *bytes < 8 << 20,
            "a full sync after kill -9 sent {bytes} bytes: more than the disk"
        );
    }

    // The peer dies: unreachable within 10 s, and back when it returns.
    b.kill9();
    eventually("peer unreachable", Duration::from_secs(10), || async {
        let peer = api.site().await.peer?;
        (peer.status == PeerStatus::Unreachable).then_some(())
    })
    .await;
    let _b = SiteProcess::start(&tmp.path().join("b"));
    eventually(
        "peer back and replication ok",
        Duration::from_secs(30),
        || async {
            let peer = api.site().await.peer?;
            let reps = api.replications().await;
            (peer.status == PeerStatus::Connected && reps.iter().all(|r| r.state == "ok"))
                .then_some(())
        },
    )
    .await;
    drop(a);
}

#[test]
fn a_bad_config_names_the_file_and_key_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let mut empty_disk = site_config("a", 1).build();
    empty_disk.vms[0].disks[0].size_mib = 0;
    let mut outside = site_config("a", 0).build();
    outside.datastores[0].name = "../up".into();
    let cases = [
        (
            toml::to_string(&empty_disk).unwrap(),
            "vms[0].disks[0].size_mib",
        ),
        (toml::to_string(&outside).unwrap(), "datastores[0].name"),
        (
            site_config("a", 0)
                .listen("not an address", "127.0.0.1:0")
                .to_toml(),
            "listen.api",
        ),
        ("name = [".to_string(), "site.toml"),
    ];
    for (text, key) in cases {
        let file = tmp.path().join("site.toml");
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["site", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}: should fail");
        assert!(stderr.contains("site.toml"), "{key}: {stderr}");
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
        assert!(
            !tmp.path().join("site.db").exists(),
            "{key}: nothing may be created"
        );
    }
}
