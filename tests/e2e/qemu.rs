//! Real VMs protected and recovered: both sites run their VMs on QEMU
//! (TCG, the real guest image). site-a's VM, with two qcow2 disks, writes
//! through its own kernel and replicates from QEMU's dirty bitmaps until
//! replication is `ok`. A test run boots a copy of the replica as a QEMU VM
//! whose kernel verifies the record log on every disk; after kill -9 of
//! site-a, disaster recovery boots the replica as a QEMU VM of site-b whose
//! in-guest verification passes, data loss within the RPO plus a cycle,
//! and the API describes it as a real VM.

use std::time::Duration;

use ferry_replicator::config::{Accelerator, ComputeConfig, ComputeKind, DiskSeed, VmSeed};
use reqwest::Method;
use serde_json::json;

use super::runs::*;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_and_disaster_recovery_boot_real_qemu_vms_that_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = ferry_testkit::QemuReaper(std::path::absolute(tmp.path()).unwrap());
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let qemu = || ComputeConfig {
        backend: ComputeKind::Qemu,
        accelerator: Accelerator::Tcg,
        guest_image: Some(ferry_testkit::guest_image()),
        ..ComputeConfig::default()
    };
    site_config("site-a", 0)
        .compute(qemu())
        .vm(VmSeed {
            disks: vec![
                DiskSeed {
                    datastore: "ds1".into(),
                    size_mib: 8,
                },
                DiskSeed {
                    datastore: "ds1".into(),
                    size_mib: 4,
                },
            ],
            nics: vec![ferry_testkit::config::nic("net", "10.0.0.10/24")],
            guest: ferry_replicator::config::GuestSeed {
                records_per_second: 20.0,
                overwrite_kib_per_second: 64,
            },
            ..ferry_testkit::config::vm("vm-0", 8)
        })
        .write(&dir_a);
    site_config("site-b", 0).compute(qemu()).write(&dir_b);
    let mut a = SiteProcess::start(&dir_a);
    let b = SiteProcess::start(&dir_b);
    pair(&a, "site-a", &b, "site-b").await;
    let api_a = Api::new(&a);
    api_a
        .admin(
            Method::PUT,
            "/replications/site-a.vm-0",
            Some(json!({"rpo_seconds": RPO})),
        )
        .await;
    for (api, from, to) in [
        (&api_a, "site-b", "site-a"),
        (&Api::new(&b), "site-a", "site-b"),
    ] {
        api.admin(Method::POST, "/mappings", Some(mappings(from, to)))
            .await;
    }
    // The guest boots, writes, and QEMU's tracking brings it to `ok`.
    eventually("replication ok", Duration::from_secs(240), || {
        let api = &api_a;
        async move {
            let r = api.get("/replications/site-a.vm-0").await;
            (r["state"] == "ok" && r["last_sync"]["instance"].as_u64() > Some(1)).then_some(())
        }
    })
    .await;
    let group = group_when_known(&Api::new(&b), "apps", json!(["site-a.vm-0"])).await;
    let group = group["id"].as_str().unwrap().to_string();
    let api_b = Api::new(&b);
    let plan = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({"name": "Real", "groups": [group]})),
        )
        .await;
    let plan = plan["id"].as_str().unwrap().to_string();

    // A test run: the copy boots as a QEMU VM and verifies in its kernel.
    let run = run_to_end(&api_b, &plan, json!({"mode": "test", "sync": true})).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let vm = &run["vms"][0];
    assert_eq!(vm["verified"], true, "{vm}");
    let cleanup = run_to_end(&api_b, &plan, json!({"mode": "cleanup"})).await;
    assert_eq!(cleanup["state"], "succeeded", "{cleanup:#}");

    // Disaster: site-a dies; its VM comes up at site-b as a real VM.
    a.kill9();
    let run = run_to_end(
        &api_b,
        &plan,
        json!({"mode": "disaster_recovery", "confirm": "Real"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded_with_warnings", "{run:#}");
    let vm = &run["vms"][0];
    assert_eq!(vm["verified"], true, "{vm}");
    let loss = vm["data_loss_seconds"].as_f64().unwrap();
    assert!(loss <= (RPO + 5) as f64, "data loss {loss} s: {vm}");
    let info = api_b.get("/vms/site-a.vm-0").await;
    assert_eq!(info["compute"], "qemu", "{info:#}");
    assert_eq!(info["accelerator"], "tcg", "{info:#}");
    assert_eq!(info["power_state"], "on", "{info:#}");
    assert!(info["pid"].as_u64().is_some(), "{info:#}");
    assert_eq!(info["guest"]["boot_verification"]["ok"], true, "{info:#}");
    assert!(info["console_tail"].as_str().is_some_and(|c| !c.is_empty()));
}

/// A planned migration of a real VM, then reprotect, then failback: the
/// protected VM shuts down cleanly through its agent, the last cycle ships
/// what it wrote before that (read through QEMU's bitmaps by a parked
/// QEMU, since the VM is off), and the guest at the other site finds every
/// record in its own kernel: zero data loss. Recovered, the VM runs on qcow2
/// overlays that QEMU tracks; reprotect seeds the way back with the old
/// VM's data and replicates the recovered VM's writes; the failback loses
/// nothing either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_migration_reprotect_and_failback_of_a_real_qemu_vm_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = ferry_testkit::QemuReaper(std::path::absolute(tmp.path()).unwrap());
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let qemu = || ComputeConfig {
        backend: ComputeKind::Qemu,
        accelerator: Accelerator::Tcg,
        guest_image: Some(ferry_testkit::guest_image()),
        ..ComputeConfig::default()
    };
    site_config("site-a", 0)
        .compute(qemu())
        .vm(VmSeed {
            nics: vec![ferry_testkit::config::nic("net", "10.0.0.10/24")],
            guest: ferry_replicator::config::GuestSeed {
                records_per_second: 20.0,
                overwrite_kib_per_second: 64,
            },
            ..ferry_testkit::config::vm("vm-0", 8)
        })
        .write(&dir_a);
    site_config("site-b", 0).compute(qemu()).write(&dir_b);
    let a = SiteProcess::start(&dir_a);
    let b = SiteProcess::start(&dir_b);
    pair(&a, "site-a", &b, "site-b").await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    api_a
        .admin(
            Method::PUT,
            "/replications/site-a.vm-0",
            Some(json!({"rpo_seconds": RPO})),
        )
        .await;
    for (api, from, to) in [(&api_a, "site-b", "site-a"), (&api_b, "site-a", "site-b")] {
        api.admin(Method::POST, "/mappings", Some(mappings(from, to)))
            .await;
    }
    eventually("replication ok", Duration::from_secs(240), || {
        let api = &api_a;
        async move {
            let r = api.get("/replications/site-a.vm-0").await;
            (r["state"] == "ok" && r["last_sync"]["instance"].as_u64() > Some(1)).then_some(())
        }
    })
    .await;
    let group = group_when_known(&api_b, "apps", json!(["site-a.vm-0"])).await;
    let group = group["id"].as_str().unwrap().to_string();
    let plan = api_b
        .admin(
            Method::POST,
            "/plans",
            Some(json!({"name": "Real", "groups": [group]})),
        )
        .await;
    let plan = plan["id"].as_str().unwrap().to_string();

    // Planned migration to site-b: clean shutdown, last cycle, real boot.
    let run = run_to_end(
        &api_b,
        &plan,
        json!({"mode": "planned_migration", "confirm": "Real"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let vm = &run["vms"][0];
    assert_eq!(vm["verified"], true, "{vm}");
    assert_eq!(
        vm["data_loss_seconds"], 0.0,
        "a planned migration loses nothing: {vm}"
    );
    let info = api_b.get("/vms/site-a.vm-0").await;
    assert_eq!(
        (&info["compute"], &info["power_state"]),
        (&json!("qemu"), &json!("on")),
        "{info:#}"
    );
    assert_eq!(api_a.get("/vms/site-a.vm-0").await["power_state"], "off");
    // The recovered VM writes into a qcow2 overlay over its replica.
    let home_b = dir_b.join("ds1/vms/site-a.vm-0");
    assert!(
        home_b.join("disk-0.qcow2").exists(),
        "no overlay in {}",
        home_b.display()
    );

    // Reprotect: site-b replicates back, seeded by the old VM's data.
    let run = run_to_end(
        &api_b,
        &plan,
        json!({"mode": "reprotect", "confirm": "Real"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    plan_at(&api_a, &plan, "site-a").await;
    // Two complete cycles back: the first compares hashes against the seed
    // (the overlay has no bitmap of the seed's instance), the next is a
    // delta from the bitmap the first one started.
    let reverse = eventually(
        "the reverse replication's delta",
        Duration::from_secs(240),
        || {
            let api = &api_b;
            async move {
                let r = api.get("/replications/site-a.vm-0").await;
                (r["state"] == "ok" && r["last_sync"]["full"] == false).then_some(r)
            }
        },
    )
    .await;
    assert_eq!(reverse["target_site"], "site-a", "{reverse:#}");

    // Failback: a planned migration back to site-a loses nothing.
    let run = run_to_end(
        &api_a,
        &plan,
        json!({"mode": "planned_migration", "confirm": "Real"}),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let vm = &run["vms"][0];
    assert_eq!(vm["verified"], true, "{vm}");
    assert_eq!(
        vm["data_loss_seconds"], 0.0,
        "the failback loses nothing: {vm}"
    );
    let info = api_a.get("/vms/site-a.vm-0").await;
    assert_eq!(
        (&info["compute"], &info["power_state"]),
        (&json!("qemu"), &json!("on")),
        "{info:#}"
    );
    assert_eq!(info["guest"]["boot_verification"]["ok"], true, "{info:#}");
    assert_eq!(api_b.get("/vms/site-a.vm-0").await["power_state"], "off");
}
