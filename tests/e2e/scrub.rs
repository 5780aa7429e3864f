//! Scrub on two real sites: the recovery site reads a replica back and
//! compares it with the block sums recorded when each instance arrived. A
//! clean replica scrubs clean; a byte changed at rest in the replica's disk
//! file is reported by disk and block range and raises a critical alarm
//! naming the VM; viewers cannot start a scrub; an unknown VM is a 404.

use std::os::unix::fs::FileExt;
use std::time::Duration;

use ferry_api::Call;
use ferry_api::scrub::{BlockRun, ScrubReport, ScrubVerdict};
use reqwest::Method;

use super::runs::protected_pair;
use super::support::*;

const VM: &str = "site-a.vm-0";

async fn scrub(api: &Api) -> ScrubReport {
    let (status, body) = api
        .send(
            Method::POST,
            &format!("/vms/{VM}/scrub"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_changed_at_rest_in_a_replica_is_found_by_scrub_and_alarmed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SiteProcess::create(&tmp.path().join("a"), "site-a", 1);
    let b = SiteProcess::create(&tmp.path().join("b"), "site-b", 0);
    protected_pair(&a, &b, 1).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    // Paused, so no cycle rewrites the byte this test changes.
    api_a
        .admin(Method::POST, &format!("/replications/{VM}/pause"), None)
        .await;
    eventually("replication paused", Duration::from_secs(30), || {
        let api = &api_a;
        async move {
            let r = api.typed.replication(VM).await.ok()?;
            (r.state == "paused").then_some(())
        }
    })
    .await;

    let clean = scrub(&api_b).await;
    assert_eq!(clean.verdict, ScrubVerdict::Clean, "{clean:?}");
    assert!(clean.instance.is_some());
    assert!(clean.disks[0].blocks_checked > 0, "{clean:?}");
    assert_eq!(clean.disks[0].mismatched_blocks, 0);

    let disk = b.dir.join("ds1/replicas").join(VM).join("disk-0.raw");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .unwrap();
    let block = u64::from(clean.block_size);
    let offset = 3 * block + 100;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[!byte[0]], offset).unwrap();
    file.sync_all().unwrap();

    let found = api_b
        .typed
        .send_as::<ScrubReport>(&Call::ScrubReplica { vm_id: VM.into() })
        .await;
    assert!(found.is_err(), "a viewer cannot start a scrub: {found:?}");
    let found = scrub(&api_b).await;
    assert_eq!(found.verdict, ScrubVerdict::Mismatch, "{found:?}");
    assert_eq!(
        found.disks[0].mismatches,
        vec![BlockRun { first: 3, last: 3 }]
    );
    assert_eq!(found.disks[0].mismatched_blocks, 1);
    assert_eq!(api_b.typed.scrub_report(VM).await.unwrap(), found);

    let alarms = api_b.typed.alarms(20).await.unwrap();
    let alarm = alarms
        .iter()
        .find(|a| a.kind == "scrub_mismatch")
        .unwrap_or_else(|| panic!("no scrub alarm in {alarms:?}"));
    assert_eq!(alarm.severity, "critical");
    assert_eq!(alarm.vm_id.as_deref(), Some(VM));
    for part in [VM, "disk 0", "blocks 3–3", &format!("bytes {}–", 3 * block)] {
        assert!(
            alarm.message.contains(part),
            "{part:?} not in {}",
            alarm.message
        );
    }

    let (status, body) = api_b
        .send(
            Method::POST,
            "/vms/nothing-here/scrub",
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (_, audit) = api_b
        .send(Method::GET, "/audit?limit=50", Some(ADMIN), None)
        .await;
    let audited = audit.as_array().unwrap().iter().any(|e| {
        e["target"] == format!("/vms/{VM}/scrub") && e["actor"] == "operator" && e["status"] == 200
    });
    assert!(audited, "the scrub is audited: {audit}");
}
