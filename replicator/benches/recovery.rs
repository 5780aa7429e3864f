//! Recovery benchmark, real processes on loopback.
//!
//! `cargo bench -p ferry-replicator --bench recovery`. Knobs:
//! `FERRY_RECOVERY_VMS` (100), `FERRY_RECOVERY_RPO` (30),
//! `FERRY_RECOVERY_COMPUTE=qemu` (real QEMU VMs, TCG, 3 by default: the
//! test run is left out so that no more than N VMs run at once, and after the
//! disaster each recovered VM's boot time and resident memory are shown).
//!
//! A plan of N VMs over 5 priorities whose guests beat at once:
//! 1. a test run (no pre-sync): orchestration overhead from the run's start
//!    to the last power-on, the time spent copying replicas, and the RTO;
//! 2. cleanup;
//! 3. a disaster recovery after kill -9 of the protected site: RTO and
//!    each VM's data loss against its RPO.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferry_api::Call;
use ferry_api::types::{
    GroupSpec, MappingSpec, Pair, Plan, PlanSpec, PlanVm, ProtectionGroup, Run, RunMode, RunRequest,
};
use ferry_replicator::config::{Accelerator, ComputeConfig, ComputeKind};
use ferry_testkit::QemuReaper;

fn start_run(api: &Api, plan: &str, request: RunRequest) -> Run {
    let call = Call::StartRun {
        plan_id: plan.to_string(),
        request,
    };
    api.block(|c| c.send_as::<Run>(&call))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn wait_run(api: &Api, id: &str) -> Run {
    let start = Instant::now();
    loop {
        if let Ok(run) = api.block(|c| c.run(id))
            && run.state.is_finished()
        {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "run {id} did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn step_ms(run: &Run, name: &str) -> u64 {
    run.steps
        .iter()
        .find(|s| s.name.starts_with(name))
        .map(|s| s.ended_ms.unwrap_or(0) - s.started_ms.unwrap_or(0))
        .unwrap_or(0)
}

/// From the run's start to the last VM's power-on.
fn last_power_on_s(run: &Run) -> f64 {
    let start = run.started_ms;
    let last = run
        .steps
        .iter()
        .filter(|s| s.name.ends_with("power on"))
        .flat_map(|s| s.vms.iter())
        .filter_map(|v| v.ended_ms)
        .max()
        .unwrap_or(start);
    (last - start) as f64 / 1000.0
}

fn run_seconds(run: &Run) -> f64 {
    (run.ended_ms.unwrap_or(run.started_ms) - run.started_ms) as f64 / 1000.0
}

fn pairs(source: &str, target: &str) -> Vec<Pair> {
    vec![Pair {
        source: source.into(),
        target: target.into(),
    }]
}

/// Each recovered VM's boot: from its power-on to its first heartbeat.
fn boot_seconds(run: &Run, vm_id: &str) -> Option<f64> {
    let vm = run.vms.iter().find(|v| v.vm_id == vm_id)?;
    let started = run
        .steps
        .iter()
        .filter(|s| s.name.ends_with("power on"))
        .flat_map(|s| s.vms.iter())
        .find(|v| v.vm_id == vm_id)?
        .started_ms?;
    Some(vm.heartbeat_ms?.checked_sub(started)? as f64 / 1000.0)
}

/// The resident memory (VmRSS, MiB) of every QEMU whose command line names
/// a path under `dir`.
fn qemu_rss_mib(dir: &std::path::Path) -> Vec<(u32, f64)> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !(cmdline.contains("qemu-system") && cmdline.contains(&needle)) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        {
            found.push((pid, kib / 1024.0));
        }
    }
    found
}

fn main() {
    let qemu = std::env::var("FERRY_RECOVERY_COMPUTE").is_ok_and(|v| v == "qemu");
    let count = env_or("FERRY_RECOVERY_VMS", if qemu { 3 } else { 100 });
    let rpo = env_or("FERRY_RECOVERY_RPO", 30);
    let (size_mib, compute) = match qemu {
        true => (
            64,
            ComputeConfig {
                backend: ComputeKind::Qemu,
                accelerator: Accelerator::Tcg,
                guest_image: Some(ferry_testkit::guest_image()),
                ..ComputeConfig::default()
            },
        ),
        false => (4, ComputeConfig::default()),
    };
    let work = tempfile::tempdir().expect("temp dir");
    // A QEMU VM outlives its site on purpose: these end each site's VMs.
    let dir_b = std::path::absolute(work.path().join("recovery-b")).expect("path");
    let _reap_b = qemu.then(|| QemuReaper(dir_b.clone()));
    let reap_a = qemu
        .then(|| QemuReaper(std::path::absolute(work.path().join("recovery-a")).expect("path")));
    let (mut site_a, _site_b, a, b) = start_pair_on(
        work.path(),
        "recovery",
        vms(count, size_mib, true, 16, rpo),
        &compute,
    );
    let protected = Api::new("site-a", &a, Duration::from_secs(60));
    let api = Api::new("site-b", &b, Duration::from_secs(60));
    let warm = Instant::now();
    let ids: Vec<String> = (0..count).map(|i| format!("site-a.vm-{i:04}")).collect();
    let mappings = Call::SaveMappings {
        id: None,
        spec: MappingSpec {
            from_site: "site-a".into(),
            to_site: "site-b".into(),
            networks: pairs("net", "net"),
            test_networks: pairs("net", "bubble"),
            folders: pairs("f", "f"),
            resource_pools: pairs("p", "p"),
            ..MappingSpec::default()
        },
    };
    let _ = api.block(|c| c.send(&mappings));
    let group = Call::SaveGroup {
        id: None,
        spec: GroupSpec {
            name: "all".into(),
            vms: ids.clone(),
        },
    };
    // site-b refuses a group of VMs it has not yet heard of from its peer.
    let group = loop {
        match api.block(|c| c.send_as::<ProtectionGroup>(&group)) {
            Ok(g) => break g.id,
            Err(e) => assert!(warm.elapsed() < Duration::from_secs(600), "group: {e}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    loop {
        let reps = protected.replications();
        if reps.len() as u64 == count && reps.iter().all(|r| r.point_time_ms.is_some()) {
            break;
        }
        assert!(
            warm.elapsed() < Duration::from_secs(600),
            "initial syncs did not finish"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let plan = Call::SavePlan {
        id: None,
        spec: PlanSpec {
            name: "bench".into(),
            description: String::new(),
            groups: vec![group],
            vms: ids
                .iter()
                .enumerate()
                .map(|(i, id)| PlanVm {
                    priority: (i % 5 + 1) as u8,
                    ..PlanVm::new(id)
                })
                .collect(),
            pre_power_on: Vec::new(),
            post_power_on: Vec::new(),
        },
    };
    let plan = api
        .block(|c| c.send_as::<Plan>(&plan))
        .unwrap_or_else(|e| panic!("plan: {e}"))
        .id;
    println!(
        "recovery: {count} {}VMs x {size_mib} MiB over 5 priorities, RPO {rpo} s; protected in {:.1} s",
        if qemu { "QEMU (TCG) " } else { "" },
        warm.elapsed().as_secs_f64()
    );

    let request = |mode, confirm: Option<&str>, sync| RunRequest {
        mode,
        confirm: confirm.map(str::to_string),
        sync,
        force: None,
        instances: Default::default(),
        at_ms: None,
    };
    if !qemu {
        let run = start_run(&api, &plan, request(RunMode::Test, None, Some(false)));
        let run = wait_run(&api, &run.id);
        let copies = step_ms(&run, "Create test copies") as f64 / 1000.0;
        let total = last_power_on_s(&run);
        println!(
            "test run: {} in {:.2} s; start to last power-on {total:.2} s, of which copying {count} replicas {copies:.2} s, orchestration {:.2} s; RTO {:.2} s",
            run.state.label(),
            run_seconds(&run),
            total - copies,
            run.rto_seconds.unwrap_or(f64::NAN)
        );
        let cleanup = start_run(&api, &plan, request(RunMode::Cleanup, None, None));
        let cleanup = wait_run(&api, &cleanup.id);
        println!(
            "cleanup: {} in {:.2} s",
            cleanup.state.label(),
            run_seconds(&cleanup)
        );
    }

    // Let the guests write a while, then the disaster.
    std::thread::sleep(Duration::from_secs(rpo / 2 + 3));
    site_a.child.kill().expect("kill -9");
    let _ = site_a.child.wait();
    drop(reap_a); // and kill -9 of its QEMU VMs
    // A fresh client: the old one's pooled connection may have been closed
    // by site-b while idle, and a POST is not retried on it.
    let api = Api::new("site-b", &b, Duration::from_secs(60));
    let dr = start_run(
        &api,
        &plan,
        request(RunMode::DisasterRecovery, Some("bench"), None),
    );
    let dr = wait_run(&api, &dr.id);
    let losses: Vec<f64> = dr.vms.iter().filter_map(|v| v.data_loss_seconds).collect();
    let verified = dr.vms.iter().filter(|v| v.verified == Some(true)).count();
    let within = losses.iter().filter(|&&l| l <= rpo as f64).count();
    println!(
        "disaster recovery: {} ; start to last power-on {:.2} s; RTO {:.2} s; {verified}/{count} guests verified; data loss max {:.1} s, mean {:.1} s, {within}/{} within the RPO of {rpo} s",
        dr.state.label(),
        last_power_on_s(&dr),
        dr.rto_seconds.unwrap_or(f64::NAN),
        losses.iter().cloned().fold(0.0, f64::max),
        losses.iter().sum::<f64>() / losses.len().max(1) as f64,
        losses.len()
    );
    if qemu {
        for vm in &dr.vms {
            println!(
                "  {} priority {}: boot (power-on to first heartbeat) {:.1} s, heartbeat {:.1} s after the run's start, data loss {:.1} s",
                vm.vm_id,
                vm.priority,
                boot_seconds(&dr, &vm.vm_id).unwrap_or(f64::NAN),
                vm.heartbeat_ms
                    .map_or(f64::NAN, |h| h.saturating_sub(dr.started_ms) as f64
                        / 1000.0),
                vm.data_loss_seconds.unwrap_or(f64::NAN)
            );
        }
        for (pid, rss) in qemu_rss_mib(&dir_b) {
            println!("  QEMU pid {pid} at site-b: VmRSS {rss:.0} MiB");
        }
    }
    if let Some(vm) = dr.vms.first() {
        println!("one VM: {}", serde_json::to_string(vm).unwrap_or_default());
    }
    let _ = api.block(|c| c.runs());
}
