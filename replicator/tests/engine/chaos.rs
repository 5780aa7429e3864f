//! A bad network between two real sites: site-a's peer replication address
//! is the test kit's chaos proxy in front of site-b's listener. One VM with
//! a busy guest replicates through latency and jitter, resets and refused
//! connections, a pause, a bandwidth cap it cannot keep up with, a one-way
//! partition and a corrupt byte. After each fault the link heals by itself
//! with delta cycles only (no full sync for a mere disconnect); the cap
//! raises the RPO alarm within its grace; the corrupt byte is refused by
//! TLS with an alarm at site-b; the replica's state is always whole, its
//! instance never goes back, and once the guest stops it equals the source
//! byte for byte.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_api::types::{LastSyncInfo, ReplicationInfo};
use ferry_replicator::access::Role;
use ferry_replicator::config::{GuestSeed, VmSeed};
use ferry_replicator::replication::schedule::grace;
use ferry_replicator::storage::ReplicaState;
use ferry_testkit::{
    Chaos, SiteConfigBuilder, SiteProcess, config, free_port, site_fingerprint, wait_until,
};
use serde_json::json;

use super::support::SiteApi;

const TOKEN: &str = "chaos-admin-token";
const RPO: u64 = 5;

struct Site {
    process: SiteProcess,
    api: String,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.process.terminate();
    }
}

struct Pair {
    // Dropped first, so the sites stop on a clean link.
    chaos: Chaos,
    a: Site,
    b: Site,
    vm_id: String,
    http: reqwest::blocking::Client,
    /// site-a's API through the typed client.
    site_a: SiteApi,
    /// Every instance reported so far, and whether it was a full sync.
    seen: Vec<(u64, bool)>,
    replica_instance: u64,
}

fn start(work: &Path) -> Pair {
    let ports = |_| (free_port(), free_port());
    let ((a_api, a_repl), (b_api, b_repl)) = (ports(0), ports(1));
    let (dir_a, dir_b) = (work.join("a"), work.join("b"));
    let (fp_a, fp_b) = (site_fingerprint(&dir_a), site_fingerprint(&dir_b));
    let chaos = Chaos::start(&format!("127.0.0.1:{b_repl}"));
    let site = |dir: &Path, name: &str, own: (u16, u16), peer: (&str, u16, &str, &str), vms| {
        SiteConfigBuilder::new(name)
            .listen(
                &format!("127.0.0.1:{}", own.0),
                &format!("127.0.0.1:{}", own.1),
            )
            .peer(
                peer.0,
                &format!("http://127.0.0.1:{}", peer.1),
                peer.2,
                peer.3,
            )
            .token("admin", Role::Admin, TOKEN)
            .vms(vms)
            .write(dir);
        let process = SiteProcess::spawn(
            Path::new(env!("CARGO_BIN_EXE_ferry-replicator")),
            &["--config"],
            dir,
            "warn",
        );
        let api = format!("http://127.0.0.1:{}", own.0);
        Site { process, api }
    };
    let vm = VmSeed {
        guest: GuestSeed {
            records_per_second: 20.0,
            overwrite_kib_per_second: 256,
        },
        replication: Some(config::replication(RPO)),
        ..config::vm("vm-0", 8)
    };
    let b = site(
        &dir_b,
        "site-b",
        (b_api, b_repl),
        ("site-a", a_api, &format!("127.0.0.1:{a_repl}"), &fp_a),
        Vec::new(),
    );
    // site-a reaches site-b's replication listener only through the proxy.
    let a = site(
        &dir_a,
        "site-a",
        (a_api, a_repl),
        ("site-b", b_api, chaos.addr(), &fp_b),
        vec![vm],
    );
    let site_a = SiteApi::new(&a.api, TOKEN);
    let mut pair = Pair {
        chaos,
        a,
        b,
        vm_id: String::new(),
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        site_a,
        seen: Vec::new(),
        replica_instance: 0,
    };
    pair.vm_id = wait_until(
        "site-a lists its replication",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            pair.replication()
                .map(|r| r.vm_id)
                .ok_or_else(|| "none yet".to_string())
        },
    );
    pair
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Pair {
    fn replication(&self) -> Option<ReplicationInfo> {
        self.site_a.first_replication()
    }

    fn replica_dir(&self) -> PathBuf {
        self.b.process.dir.join("ds1/replicas").join(&self.vm_id)
    }

    /// Reads site-b's `replica.state` as a recovery would: it must always
    /// be whole, and its instance must never go back.
    fn check_replica_state(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.replica_dir().join("replica.state")) else {
            return;
        };
        let state = ReplicaState::decode(&text).expect("replica.state is torn");
        let at = state.instance.unwrap_or(0);
        assert!(
            at >= self.replica_instance,
            "replica went back from {} to {at}",
            self.replica_instance
        );
        self.replica_instance = at;
    }

    /// Notes the newest cycle; every one after the initial sync is a delta.
    fn note(&mut self, last: &LastSyncInfo) {
        if self.seen.last().is_none_or(|(i, _)| *i != last.instance) {
            assert!(
                !last.full || self.seen.is_empty(),
                "instance {} was a full sync after {:?}",
                last.instance,
                self.seen
            );
            self.seen.push((last.instance, last.full));
        }
        self.check_replica_state();
    }

    /// Waits for a cycle that started after now to finish; returns it.
    fn next_cycle(&mut self, what: &str, deadline: Duration) -> LastSyncInfo {
        let after = now_ms();
        let started = Instant::now();
        loop {
            if let Some(last) = self.replication().and_then(|r| r.last_sync) {
                self.note(&last);
                if last.finished_at.saturating_sub(last.duration_ms) >= after {
                    return last;
                }
            }
            assert!(
                started.elapsed() < deadline,
                "{what}: no cycle within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the replication until `check` holds.
    fn until(
        &mut self,
        what: &str,
        deadline: Duration,
        check: impl Fn(&ReplicationInfo) -> bool,
    ) -> ReplicationInfo {
        let started = Instant::now();
        loop {
            if let Some(r) = self.replication() {
                if let Some(last) = &r.last_sync {
                    self.note(last);
                }
                if check(&r) {
                    return r;
                }
            }
            assert!(
                started.elapsed() < deadline,
                "{what}: not within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_bad_link_heals_by_itself_and_never_exposes_a_torn_instance() {
    let work = tempfile::tempdir().unwrap();
    let mut pair = start(work.path());
    let first = pair.until("the initial sync", Duration::from_secs(30), |r| {
        r.last_sync.is_some()
    });
    assert!(
        first.last_sync.unwrap().full,
        "the first instance is a full sync"
    );
    pair.next_cycle("a delta on a clean link", Duration::from_secs(15));

    // Latency and jitter: slower, still deltas.
    pair.chaos.set(|k| {
        k.latency = Duration::from_millis(40);
        k.jitter = Duration::from_millis(20);
    });
    pair.next_cycle("a delta at 80 ms round trip", Duration::from_secs(15));
    pair.chaos.heal();

    // Flapping: every connection reset and new ones refused for a while;
    // the sender backs off and retries until the link is back.
    let connections = pair.chaos.counts().connections.load(Ordering::Relaxed);
    pair.chaos.set(|k| k.refuse = true);
    pair.chaos.reset_all();
    wait_until(
        "the sender retries the refused link",
        Duration::from_secs(15),
        Duration::from_millis(20),
        || match pair.chaos.counts().connections.load(Ordering::Relaxed) >= connections + 2 {
            true => Ok(()),
            false => Err("not yet".to_string()),
        },
    );
    pair.chaos.heal();
    pair.next_cycle("a delta after the flap", Duration::from_secs(20));

    // A pause: nothing moves until the lag passes half the RPO.
    pair.chaos.set(|k| k.paused = true);
    pair.until("lag under a paused link", Duration::from_secs(15), |r| {
        r.lag_seconds.is_some_and(|l| l > RPO as f64 / 2.0)
    });
    pair.chaos.heal();
    pair.next_cycle("a delta after the pause", Duration::from_secs(20));

    // A cap the guest's writes cannot fit: the RPO alarm is raised once the
    // lag is past the RPO by its grace (plus the site's publish period).
    pair.chaos.set(|k| k.bandwidth = Some(16 << 10));
    let limit = RPO as f64 + grace(Duration::from_secs(RPO)).as_secs_f64() + 2.0;
    let violated = pair.until(
        "the RPO alarm under the cap",
        Duration::from_secs(30),
        |r| r.rpo_violated,
    );
    let lag = violated.lag_seconds.unwrap_or(f64::MAX);
    assert!(
        lag <= limit,
        "RPO alarm raised at a lag of {lag} s, past {limit} s"
    );
    let alarms_at_a = pair
        .http
        .get(format!("{}/api/v1/alarms", pair.a.api))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    assert!(
        alarms_at_a.contains("rpo_violated") && alarms_at_a.contains(&pair.vm_id),
        "no RPO alarm naming the VM at site-a: {alarms_at_a}"
    );
    pair.chaos.heal();
    // The cycle stuck behind the cap goes through once the cap is gone.
    pair.until("the RPO alarm clears", Duration::from_secs(30), |r| {
        !r.rpo_violated
    });
    pair.next_cycle("a delta after the cap", Duration::from_secs(20));

    // A one-way partition: the sender's bytes vanish, it hears nothing;
    // the partition ends with the middlebox dropping its connections.
    pair.chaos.set(|k| k.drop_up = true);
    pair.until("lag under a partition", Duration::from_secs(15), |r| {
        r.lag_seconds.is_some_and(|l| l > RPO as f64 / 2.0)
    });
    pair.chaos.reset_all();
    pair.chaos.heal();
    pair.next_cycle("a delta after the partition", Duration::from_secs(20));

    // A corrupt byte: TLS refuses the session and site-b raises an alarm;
    // the cycle is retried and nothing corrupt lands (checked below).
    pair.chaos.set(|k| k.corrupt_up = 1);
    wait_until(
        "a byte corrupted",
        Duration::from_secs(15),
        Duration::from_millis(20),
        || match pair.chaos.counts().corrupted.load(Ordering::Relaxed) {
            1 => Ok(()),
            _ => Err("not yet".to_string()),
        },
    );
    let alarms_at_b = || {
        pair.http
            .get(format!("{}/api/v1/alarms", pair.b.api))
            .bearer_auth(TOKEN)
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    wait_until(
        "site-b's alarm for the refused session",
        Duration::from_secs(15),
        Duration::from_millis(50),
        // The only refusal of the scenario: the reset and partition end
        // sessions, but only a tampered record fails decryption.
        || match alarms_at_b().contains("cannot decrypt") {
            true => Ok(()),
            false => Err("no alarm yet".to_string()),
        },
    );
    pair.next_cycle("a delta after the corrupt byte", Duration::from_secs(20));

    // The guest stops; a cycle started after that brings the replica to
    // the source byte for byte.
    let powered = pair
        .http
        .post(format!("{}/api/v1/vms/{}/power", pair.a.api, pair.vm_id))
        .bearer_auth(TOKEN)
        .json(&json!({"state": "off"}))
        .send()
        .unwrap();
    assert!(powered.status().is_success(), "{:?}", powered.text());
    pair.next_cycle("the last delta", Duration::from_secs(20));
    let source = std::fs::read(
        pair.a
            .process
            .dir
            .join("ds1/vms")
            .join(&pair.vm_id)
            .join("disk-0.raw"),
    )
    .unwrap();
    let replica = std::fs::read(pair.replica_dir().join("disk-0.raw")).unwrap();
    assert_eq!(source.len(), replica.len());
    let first = source.iter().zip(&replica).position(|(a, b)| a != b);
    assert_eq!(first, None, "the replica differs from the source");
    let full = pair.seen.iter().filter(|(_, full)| *full).count();
    assert_eq!(full, 1, "full syncs: {:?}", pair.seen);
    eprintln!(
        "chaos: {} instances, {} connections, {} bytes up",
        pair.seen.len(),
        pair.chaos.counts().connections.load(Ordering::Relaxed),
        pair.chaos.counts().bytes_up.load(Ordering::Relaxed)
    );
}
