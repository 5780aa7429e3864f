//! Long and capped links. A delta through the chaos proxy at 50 ms round
//! trip completes byte-exact; two VMs sending at once under the site's
//! bandwidth cap stay within it and share it; two real sites under a cap
//! too low for a VM's RPO raise the early warning naming both rates, and
//! the API refuses a bad cap naming the field.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_api::bandwidth::{BandwidthInfo, BandwidthPolicy, BandwidthWindow};
use ferry_replicator::access::Role;
use ferry_replicator::config::{GuestSeed, VmSeed};
use ferry_replicator::identity::Identity;
use ferry_replicator::replication::{CycleProgress, Limiter, run_cycle_limited};
use ferry_replicator::storage::TrackedVm;
use ferry_testkit::{Chaos, SiteConfigBuilder, SiteProcess, config, wait_until};
use serde_json::json;

use super::support::*;

const MIB: u64 = 1 << 20;

/// Overwrites the first `mib` MiB of disk 0 with fresh random data.
fn scribble(vm: &TrackedVm, mib: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut block = vec![0u8; MIB as usize];
    for i in 0..mib {
        rng.fill(&mut block);
        vm.disks()[0].write_at(&block, i * MIB).unwrap();
    }
}

#[test]
fn a_delta_over_a_50_ms_round_trip_lands_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(&tmp.path().join("ds"));
    let vm = open_vm(&tmp.path().join("vm"), 1, 64 * MIB);
    cycle(&vm, &receiver.addr).unwrap();
    let chaos = Chaos::start(&receiver.addr);
    chaos.set(|k| {
        k.latency = Duration::from_millis(25);
        k.jitter = Duration::from_millis(2);
        k.bandwidth = Some(100 * MIB);
    });
    scribble(&vm, 48, 7);
    let report = cycle(&vm, chaos.addr()).unwrap();
    assert!(!report.full, "a delta, not a full sync");
    assert_eq!(report.data_bytes, 48 * MIB);
    assert!(
        chaos.counts().bytes_up.load(Ordering::Relaxed) >= 48 * MIB,
        "the delta went through the proxy"
    );
    drop(chaos);
    let (instance, disks) = replica_contents(&receiver.replica_dir());
    assert_eq!(instance, Some(report.instance));
    assert_same(
        "replica after the long-link delta",
        &disks,
        &source_contents(&vm),
    );
}

#[test]
fn two_vms_under_the_cap_stay_within_it_and_share_it() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(&tmp.path().join("ds"));
    let cap = 8;
    let limiter = Limiter::new(BandwidthPolicy {
        mib_per_second: Some(cap),
        windows: Vec::new(),
    })
    .unwrap();
    let vms: Vec<_> = ["vm-a", "vm-b"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let vm = open_vm(&tmp.path().join(name), 1, 24 * MIB);
            scribble(&vm, 24, i as u64);
            (name.to_string(), vm, CycleProgress::default())
        })
        .collect();
    let target = target(&receiver.addr);
    let started = Instant::now();
    let (mid_shares, reports) = std::thread::scope(|scope| {
        let cycles: Vec<_> = vms
            .iter()
            .map(|(name, vm, progress)| {
                let (target, limiter) = (&target, &limiter);
                scope.spawn(move || run_cycle_limited(name, vm, target, false, progress, limiter))
            })
            .collect();
        // Half way through (by the cap), each VM's share of what was sent.
        wait_for("both VMs are sending", Duration::from_secs(60), || {
            vms.iter()
                .all(|(_, _, p)| p.bytes_done.load(Ordering::Relaxed) >= 8 * MIB)
                || cycles.iter().any(|c| c.is_finished())
        });
        let shares: Vec<u64> = vms
            .iter()
            .map(|(_, _, p)| p.bytes_done.load(Ordering::Relaxed))
            .collect();
        let reports: Vec<_> = cycles
            .into_iter()
            .map(|c| c.join().unwrap().unwrap())
            .collect();
        (shares, reports)
    });
    let took = started.elapsed().as_secs_f64();
    let sent: u64 = reports.iter().map(|r| r.wire_bytes).sum();
    // 48 MiB at 8 MiB/s: at least 6 s less the first frames, which go
    // before their wait (one each). Generous: the limiter must hold the
    // rate under the cap, and a loaded machine may fall well below it.
    let rate = sent as f64 / MIB as f64 / took;
    assert!(
        rate <= f64::from(cap) * 1.15,
        "{rate:.2} MiB/s over a cap of {cap} MiB/s"
    );
    assert!(
        rate >= f64::from(cap) * 0.4,
        "{rate:.2} MiB/s under a cap of {cap} MiB/s"
    );
    let (low, high) = (
        mid_shares[0].min(mid_shares[1]),
        mid_shares[0].max(mid_shares[1]),
    );
    assert!(
        low * 10 >= high * 6,
        "unfair shares half way through: {mid_shares:?} bytes"
    );
    for ((name, vm, _), report) in vms.iter().zip(&reports) {
        let dir = receiver.datastore.join("replicas").join(name);
        let (instance, disks) = replica_contents(&dir);
        assert_eq!(instance, Some(report.instance));
        assert_same(name, &disks, &source_contents(vm));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Site(SiteProcess);

impl Drop for Site {
    fn drop(&mut self) {
        self.0.terminate();
    }
}

const TOKEN: &str = "wan-admin-token";

#[test]
fn a_cap_too_low_for_the_rpo_warns_with_both_rates_and_a_bad_cap_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_ports, b_ports) = ((free_port(), free_port()), (free_port(), free_port()));
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let fingerprint = |dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        Identity::load_or_create(dir)
            .unwrap()
            .fingerprint
            .to_string()
    };
    let (fp_a, fp_b) = (fingerprint(&dir_a), fingerprint(&dir_b));
    let site =
        |dir: &Path, name: &str, own: (u16, u16), peer: (&str, (u16, u16), &str), vms, cap| {
            SiteConfigBuilder::new(name)
                .listen(
                    &format!("127.0.0.1:{}", own.0),
                    &format!("127.0.0.1:{}", own.1),
                )
                .peer(
                    peer.0,
                    &format!("http://127.0.0.1:{}", peer.1.0),
                    &format!("127.0.0.1:{}", peer.1.1),
                    peer.2,
                )
                .token("admin", Role::Admin, TOKEN)
                .vms(vms)
                .bandwidth(cap)
                .write(dir);
            Site(SiteProcess::spawn(
                Path::new(env!("CARGO_BIN_EXE_ferry-replicator")),
                &["--config"],
                dir,
                "warn",
            ))
        };
    // 1 MiB/s on every day, all day: a VM whose 16 MiB disk must reach the
    // peer within a 5 s RPO, and whose guest rewrites 2 MiB/s, cannot.
    let cap = BandwidthPolicy {
        mib_per_second: None,
        windows: vec![BandwidthWindow {
            days: "daily".into(),
            from: "00:00".into(),
            to: "24:00".into(),
            mib_per_second: Some(1),
        }],
    };
    let vm = VmSeed {
        guest: GuestSeed {
            records_per_second: 20.0,
            overwrite_kib_per_second: 2048,
        },
        replication: Some(config::replication(5)),
        ..config::vm("vm-0", 16)
    };
    let _b = site(
        &dir_b,
        "site-b",
        b_ports,
        ("site-a", a_ports, &fp_a),
        Vec::new(),
        BandwidthPolicy::default(),
    );
    let _a = site(
        &dir_a,
        "site-a",
        a_ports,
        ("site-b", b_ports, &fp_b),
        vec![vm],
        cap.clone(),
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let api = format!("http://127.0.0.1:{}/api/v1", a_ports.0);
    let alarm = wait_until(
        "site-a warns that the cap cannot meet the RPO",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let text = http
                .get(format!("{api}/alarms"))
                .bearer_auth(TOKEN)
                .send()
                .and_then(|r| r.text())
                .map_err(|e| e.to_string())?;
            match text.contains("bandwidth_short") {
                true => Ok(text),
                false => Err(text),
            }
        },
    );
    assert!(
        alarm.contains("vm-0: the bandwidth cap cannot meet its RPO of 5 s: it needs")
            && alarm.contains("and gets 1.0 MiB/s"),
        "{alarm}"
    );
    // The cap in force and the rate, as the API shows them.
    let info: BandwidthInfo = http
        .get(format!("{api}/site/bandwidth"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info.policy, cap);
    assert_eq!(info.now.mib_per_second, Some(1));
    assert_eq!(info.now.window, Some(0));
    assert!(
        info.rate_bytes_per_second <= 2 * MIB,
        "{} B/s sent under a 1 MiB/s cap",
        info.rate_bytes_per_second
    );
    // A bad cap is refused naming the field, and changes nothing.
    let refused = http
        .put(format!("{api}/site/bandwidth"))
        .bearer_auth(TOKEN)
        .json(&json!({"windows": [{"days": "mon-fri", "from": "18:00", "to": "08:00", "mib_per_second": 5}]}))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let body = refused.text().unwrap();
    assert!(
        body.contains("windows[0].to") && body.contains("not after 18:00"),
        "{body}"
    );
    let zero = http
        .put(format!("{api}/site/bandwidth"))
        .bearer_auth(TOKEN)
        .json(&json!({"mib_per_second": 0}))
        .send()
        .unwrap();
    assert_eq!(zero.status().as_u16(), 422);
    assert!(zero.text().unwrap().contains("mib_per_second"));
    let unchanged: BandwidthInfo = http
        .get(format!("{api}/site/bandwidth"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(unchanged.policy, cap);
    // A good one is in force at once, and audited.
    let lifted = http
        .put(format!("{api}/site/bandwidth"))
        .bearer_auth(TOKEN)
        .json(&json!({"mib_per_second": 500}))
        .send()
        .unwrap();
    assert!(lifted.status().is_success(), "{:?}", lifted.text());
    let lifted: BandwidthInfo = lifted.json().unwrap();
    assert_eq!(lifted.now.mib_per_second, Some(500));
    let audit = http
        .get(format!("{api}/audit"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(audit.contains("/site/bandwidth"), "{audit}");
}
