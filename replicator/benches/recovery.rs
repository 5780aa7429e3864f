//! Recovery benchmark, real processes on loopback.
//!
//! `cargo bench -p ferry-replicator --bench recovery`. Knobs:
//! `FERRY_RECOVERY_VMS` (100), `FERRY_RECOVERY_RPO` (30).
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
use serde_json::{Value, json};

fn call(
    client: &reqwest::blocking::Client,
    method: reqwest::Method,
    port: u16,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client
        .request(method, format!("http://127.0.0.1:{port}/api/v1{path}"))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send() {
        Ok(r) => (r.status().as_u16(), r.json().unwrap_or(Value::Null)),
        Err(e) => (0, Value::String(e.to_string())),
    }
}

fn wait_run(client: &reqwest::blocking::Client, port: u16, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (_, run) = call(
            client,
            reqwest::Method::GET,
            port,
            &format!("/runs/{id}"),
            None,
        );
        if !matches!(run["state"].as_str(), Some("running" | "waiting") | None) {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "run {id} did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn step_ms(run: &Value, name: &str) -> u64 {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap_or_default().starts_with(name))
        .map(|s| s["ended_ms"].as_u64().unwrap_or(0) - s["started_ms"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// From the run's start to the last VM's power-on.
fn last_power_on_s(run: &Value) -> f64 {
    let start = run["started_ms"].as_u64().unwrap();
    let last = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().unwrap_or_default().ends_with("power on"))
        .flat_map(|s| s["vms"].as_array().unwrap().iter())
        .filter_map(|v| v["ended_ms"].as_u64())
        .max()
        .unwrap_or(start);
    (last - start) as f64 / 1000.0
}

fn main() {
    let count = env_or("FERRY_RECOVERY_VMS", 100);
    let rpo = env_or("FERRY_RECOVERY_RPO", 30);
    let work = tempfile::tempdir().expect("temp dir");
    let (mut site_a, _site_b, a, b) =
        start_pair_with_ports(work.path(), "recovery", vms(count, 4, true, 16, rpo));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let warm = Instant::now();
    let ids: Vec<String> = (0..count).map(|i| format!("site-a.vm-{i:04}")).collect();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    call(
        &client,
        post.clone(),
        b.api,
        "/mappings",
        Some(json!({
            "from_site": "site-a", "to_site": "site-b",
            "networks": [{"source": "net", "target": "net"}],
            "test_networks": [{"source": "net", "target": "bubble"}],
            "folders": [{"source": "f", "target": "f"}],
            "resource_pools": [{"source": "p", "target": "p"}],
        })),
    );
    let group = loop {
        let (status, g) = call(
            &client,
            post.clone(),
            b.api,
            "/protection-groups",
            Some(json!({"name": "all", "vms": ids})),
        );
        if status == 201 {
            break g["id"].as_str().unwrap().to_string();
        }
        assert!(warm.elapsed() < Duration::from_secs(600), "group: {g}");
        std::thread::sleep(Duration::from_millis(500));
    };
    loop {
        let reps = replications(&client, a.api);
        if reps.len() as u64 == count && reps.iter().all(|r| r["point_time_ms"].is_u64()) {
            break;
        }
        assert!(
            warm.elapsed() < Duration::from_secs(600),
            "initial syncs did not finish"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let settings: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"vm_id": id, "priority": i % 5 + 1}))
        .collect();
    let (_, plan) = call(
        &client,
        post.clone(),
        b.api,
        "/plans",
        Some(json!({"name": "bench", "groups": [group], "vms": settings})),
    );
    let plan = plan["id"].as_str().expect("plan").to_string();
    println!(
        "recovery: {count} VMs x 4 MiB over 5 priorities, RPO {rpo} s; protected in {:.1} s",
        warm.elapsed().as_secs_f64()
    );

    let (_, run) = call(
        &client,
        post.clone(),
        b.api,
        &format!("/plans/{plan}/runs"),
        Some(json!({"mode": "test", "sync": false})),
    );
    let run = wait_run(&client, b.api, run["id"].as_str().expect("run"));
    let copies = step_ms(&run, "Create test copies") as f64 / 1000.0;
    let total = last_power_on_s(&run);
    println!(
        "test run: {} in {:.2} s; start to last power-on {total:.2} s, of which copying {count} replicas {copies:.2} s, orchestration {:.2} s; RTO {:.2} s",
        run["state"],
        (run["ended_ms"].as_u64().unwrap() - run["started_ms"].as_u64().unwrap()) as f64 / 1000.0,
        total - copies,
        run["rto_seconds"].as_f64().unwrap_or(f64::NAN)
    );
    let (_, cleanup) = call(
        &client,
        post.clone(),
        b.api,
        &format!("/plans/{plan}/runs"),
        Some(json!({"mode": "cleanup"})),
    );
    let cleanup = wait_run(&client, b.api, cleanup["id"].as_str().expect("run"));
    println!(
        "cleanup: {} in {:.2} s",
        cleanup["state"],
        (cleanup["ended_ms"].as_u64().unwrap() - cleanup["started_ms"].as_u64().unwrap()) as f64
            / 1000.0
    );

    // Let the guests write a while, then the disaster.
    std::thread::sleep(Duration::from_secs(rpo / 2 + 3));
    site_a.child.kill().expect("kill -9");
    let _ = site_a.child.wait();
    let (status, dr) = call(
        &client,
        post,
        b.api,
        &format!("/plans/{plan}/runs"),
        Some(json!({"mode": "disaster_recovery", "confirm": "bench"})),
    );
    assert_eq!(status, 201, "{dr}");
    let dr = wait_run(&client, b.api, dr["id"].as_str().expect("run"));
    let losses: Vec<f64> = dr["vms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["data_loss_seconds"].as_f64())
        .collect();
    let verified = dr["vms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["verified"] == true)
        .count();
    let within = losses.iter().filter(|&&l| l <= rpo as f64).count();
    println!(
        "disaster recovery: {} ; start to last power-on {:.2} s; RTO {:.2} s; {verified}/{count} guests verified; data loss max {:.1} s, mean {:.1} s, {within}/{} within the RPO of {rpo} s",
        dr["state"],
        last_power_on_s(&dr),
        dr["rto_seconds"].as_f64().unwrap_or(f64::NAN),
        losses.iter().cloned().fold(0.0, f64::max),
        losses.iter().sum::<f64>() / losses.len().max(1) as f64,
        losses.len()
    );
    println!("one VM: {}", dr["vms"][0]);
    let _ = call(&client, get, b.api, "/runs", None);
}
