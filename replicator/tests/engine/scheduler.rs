//! The RPO scheduler against a real receiver: cycles keep the lag under the
//! RPO while the guest writes, an unreachable peer shows as not active, and
//! pause and resume take effect.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_replicator::replication::scheduler::{ReplicationSettings, Scheduler};
use ferry_replicator::replication::status::{ReplicationState, ReplicationStatus};
use tokio::sync::watch;

use super::support::*;

async fn wait_status(
    status: &mut watch::Receiver<ReplicationStatus>,
    what: &str,
    deadline: Duration,
    check: impl Fn(&ReplicationStatus) -> bool,
) -> ReplicationStatus {
    let waited = tokio::time::timeout(deadline, status.wait_for(|s| check(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match waited {
        Ok(Ok(s)) => s,
        _ => panic!(
            "timed out waiting for {what}; last status {:?}",
            *status.borrow()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_keep_lag_under_rpo_and_report_outages() {
    let source = tempfile::tempdir().unwrap();
    let target_dir = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(target_dir.path());
    let vm = Arc::new(open_vm(source.path(), 2, 4 << 20));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (vm, stop) = (vm.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(3);
            let mut block = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                rng.fill(&mut block);
                let disk = rng.below(2) as usize;
                vm.disks()[disk]
                    .write_at(&block, rng.below(1023) * 4096)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let rpo = Duration::from_secs(5);
    let settings = ReplicationSettings {
        rpo,
        target: target(&receiver.addr),
    };
    let handle = Scheduler::new(4).spawn(VM.into(), vm.clone(), settings.clone(), false, None);
    let mut status = handle.status.clone();

    // Three instances in, with the lag never past the RPO once the first is.
    let mut worst = Duration::ZERO;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let s = status.borrow_and_update().clone();
        if let Some(lag) = s.lag {
            worst = worst.max(lag);
        }
        if s.last_sync.is_some_and(|l| l.instance >= 3) {
            assert_eq!(s.state, ReplicationState::Ok, "{s:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no third instance: {s:?}"
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), status.changed()).await;
    }
    assert!(worst < rpo, "lag reached {worst:?} with an RPO of {rpo:?}");

    // Pause and resume.
    handle.pause();
    wait_status(&mut status, "paused", Duration::from_secs(5), |s| {
        s.state == ReplicationState::Paused
    })
    .await;
    handle.resume();
    wait_status(&mut status, "resumed", Duration::from_secs(5), |s| {
        s.state != ReplicationState::Paused
    })
    .await;

    // The peer goes away: not active, and the violation follows after grace.
    drop(receiver);
    handle.sync_now();
    let s = wait_status(&mut status, "not active", Duration::from_secs(15), |s| {
        s.state == ReplicationState::NotActive
    })
    .await;
    assert!(s.last_error.is_some());
    wait_status(&mut status, "rpo violated", Duration::from_secs(20), |s| {
        s.rpo_violated
    })
    .await;

    // The peer comes back (on a new port): replication recovers by itself.
    let receiver = TestReceiver::start(target_dir.path());
    handle.configure(ReplicationSettings {
        rpo,
        target: target(&receiver.addr),
    });
    let s = wait_status(&mut status, "recovery", Duration::from_secs(20), |s| {
        s.state == ReplicationState::Ok && !s.rpo_violated
    })
    .await;
    assert!(s.lag.unwrap() < rpo);

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    handle.stop().await;
}
