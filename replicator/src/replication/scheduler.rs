//! The RPO scheduler: one task per replicated VM that runs its sync cycles
//! on time, retries with backoff when the peer is away, and publishes the
//! VM's [`ReplicationStatus`] on a watch channel for the API and the UI.
//!
//! Cycles run on blocking threads (they are file and socket I/O end to end);
//! a site-wide semaphore bounds how many run at once so a site with
//! hundreds of VMs does not thrash its disks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::bandwidth::Limiter;
use super::error::WireError;
use super::schedule::{
    TransferEstimate, ViolationTracker, capped_estimate, needed_rate, start_after_point,
    still_short,
};
use super::sender::{self, CycleProgress, CycleReport, SyncTarget};
use super::status::{
    BandwidthShort, LastSync, Progress, ReplicationStatus, StateInputs, derive_state,
};
use crate::storage::PointSource;

/// How often status is republished while nothing else happens (lag ages).
const TICK: Duration = Duration::from_secs(1);
/// While a cycle runs, progress is republished this often.
const PROGRESS_TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a VM replicates.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    pub rpo: Duration,
    pub target: SyncTarget,
}

enum Control {
    SyncNow,
    Pause,
    Resume,
    /// Boxed: the settings (with the retention policy) outweigh the rest.
    Configure(Box<ReplicationSettings>),
}

/// Starts replication tasks; shared by all of a site's VMs.
#[derive(Clone)]
pub struct Scheduler {
    cycles: Arc<Semaphore>,
    /// The site's bandwidth cap, drawn from by every cycle.
    limiter: Arc<Limiter>,
}

impl Scheduler {
    /// `max_cycles`: how many cycles may run at once across the site.
    pub fn new(max_cycles: usize) -> Self {
        Self {
            cycles: Arc::new(Semaphore::new(max_cycles.max(1))),
            limiter: Arc::new(Limiter::default()),
        }
    }

    /// The site's bandwidth cap (unlimited until given a policy).
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Starts replicating `vm`. `point_time_ms` is the consistency point of
    /// the newest instance the peer is known to hold, if any.
    pub fn spawn(
        &self,
        vm_id: String,
        vm: Arc<dyn PointSource>,
        settings: ReplicationSettings,
        paused: bool,
        point_time_ms: Option<u64>,
    ) -> ReplicationHandle {
        let mut status = ReplicationStatus::new(settings.rpo);
        status.point_time_ms = point_time_ms;
        let (status_tx, status_rx) = watch::channel(status);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            vm_id,
            vm,
            settings,
            cycles: self.cycles.clone(),
            limiter: self.limiter.clone(),
            write_rate: None,
            bandwidth_short: None,
            status: status_tx,
            control: control_rx,
            paused,
            sync_now: false,
            point_time_ms,
            link_down: false,
            last_error: None,
            retry_at: None,
            backoff: Duration::from_secs(1),
            estimate: TransferEstimate::default(),
            violation: ViolationTracker::default(),
            last_sync: None,
            progress: Arc::new(CycleProgress::default()),
            running: false,
        };
        ReplicationHandle {
            status: status_rx,
            control: control_tx,
            task: tokio::spawn(driver.run()),
        }
    }
}

/// Controls one VM's replication task. Dropping it stops the task after
/// any cycle in flight.
pub struct ReplicationHandle {
    pub status: watch::Receiver<ReplicationStatus>,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl ReplicationHandle {
    pub fn sync_now(&self) {
        let _ = self.control.send(Control::SyncNow);
    }
    pub fn pause(&self) {
        let _ = self.control.send(Control::Pause);
    }
    pub fn resume(&self) {
        let _ = self.control.send(Control::Resume);
    }
    pub fn configure(&self, settings: ReplicationSettings) {
        let _ = self.control.send(Control::Configure(Box::new(settings)));
    }

    /// Stops the task, waiting for a cycle in flight to finish.
    pub async fn stop(self) {
        drop(self.control);
        let _ = self.task.await;
    }
}

struct Driver {
    vm_id: String,
    vm: Arc<dyn PointSource>,
    settings: ReplicationSettings,
    cycles: Arc<Semaphore>,
    limiter: Arc<Limiter>,
    /// Bytes/s the VM dirties, from the last delta cycle.
    write_rate: Option<f64>,
    bandwidth_short: Option<BandwidthShort>,
    status: watch::Sender<ReplicationStatus>,
    control: mpsc::UnboundedReceiver<Control>,
    paused: bool,
    sync_now: bool,
    point_time_ms: Option<u64>,
    link_down: bool,
    last_error: Option<String>,
    /// After a failure: when to try again.
    retry_at: Option<Instant>,
    backoff: Duration,
    estimate: TransferEstimate,
    violation: ViolationTracker,
    last_sync: Option<LastSync>,
    progress: Arc<CycleProgress>,
    running: bool,
}

impl Driver {
    async fn run(mut self) {
        loop {
            self.publish();
            let now = Instant::now();
            let wake = self.next_cycle(now).min(now + TICK);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                control = self.control.recv() => match control {
                    None => return,
                    Some(control) => self.apply(control),
                },
            }
            let now = Instant::now();
            if !self.paused && (self.sync_now || now >= self.next_cycle(now)) {
                self.sync_now = false;
                self.cycle().await;
            }
        }
    }

    fn apply(&mut self, control: Control) {
        match control {
            Control::SyncNow => {
                self.sync_now = true;
                self.retry_at = None;
            }
            Control::Pause => self.paused = true,
            Control::Resume => self.paused = false,
            Control::Configure(settings) => {
                self.settings = *settings;
                self.retry_at = None;
            }
        }
    }

    fn lag(&self) -> Option<Duration> {
        self.point_time_ms
            .map(|point| Duration::from_millis(sender::now_ms().saturating_sub(point)))
    }

    /// When the next cycle is due, as seen at `now`.
    fn next_cycle(&self, now: Instant) -> Instant {
        if self.paused {
            return now + Duration::from_secs(3600);
        }
        if let Some(retry) = self.retry_at {
            return retry;
        }
        let Some(lag) = self.lag() else {
            return now;
        };
        let dirty = self.vm.dirty_bytes();
        let share = self.limiter.share_now(false);
        let estimate = capped_estimate(self.estimate.estimate(dirty), dirty, share);
        let start = start_after_point(self.settings.rpo, estimate);
        now + start.saturating_sub(lag)
    }

    /// Compares what the VM needs with its share of the cap in force.
    fn check_bandwidth(&mut self) {
        let Some(gets) = self.limiter.share_now(self.running) else {
            self.bandwidth_short = None;
            return;
        };
        let needed = needed_rate(self.write_rate, self.vm.dirty_bytes(), self.settings.rpo);
        let short = still_short(self.bandwidth_short.is_some(), needed, gets);
        self.bandwidth_short = short.then_some(BandwidthShort { needed, gets });
    }

    fn publish(&mut self) {
        self.check_bandwidth();
        let lag = self.lag();
        let violated = lag.is_some_and(|lag| self.violation.update(lag, self.settings.rpo));
        let running_full = self
            .running
            .then(|| self.progress.full.load(Ordering::Relaxed));
        let state = derive_state(&StateInputs {
            paused: self.paused,
            link_down: self.link_down,
            failing: self.last_error.is_some() && !self.link_down,
            running_full,
            has_instance: self.point_time_ms.is_some(),
            violated,
        });
        let progress = self.running.then(|| Progress {
            bytes_done: self.progress.bytes_done.load(Ordering::Relaxed),
            bytes_total: self.progress.bytes_total.load(Ordering::Relaxed),
        });
        self.status.send_replace(ReplicationStatus {
            state,
            rpo: self.settings.rpo,
            lag,
            point_time_ms: self.point_time_ms,
            rpo_violated: violated,
            progress,
            last_sync: self.last_sync,
            last_error: self.last_error.clone(),
            bandwidth_short: self.bandwidth_short,
        });
    }

    async fn cycle(&mut self) {
        let Ok(_permit) = self.cycles.clone().acquire_owned().await else {
            return;
        };
        self.progress = Arc::new(CycleProgress::default());
        self.running = true;
        self.publish();
        let job = {
            let (vm_id, vm, target) = (
                self.vm_id.clone(),
                self.vm.clone(),
                self.settings.target.clone(),
            );
            let (progress, limiter) = (self.progress.clone(), self.limiter.clone());
            tokio::task::spawn_blocking(move || {
                sender::run_cycle_limited(&vm_id, &*vm, &target, false, &progress, &limiter)
            })
        };
        tokio::pin!(job);
        let result = loop {
            tokio::select! {
                joined = &mut job => break joined,
                () = tokio::time::sleep(PROGRESS_TICK) => self.publish(),
            }
        };
        self.running = false;
        match result {
            Ok(Ok(report)) => self.succeeded(report),
            Ok(Err(e)) => self.failed(e),
            Err(panic) => self.failed(WireError::malformed(format!("cycle panicked: {panic}"))),
        }
    }

    fn succeeded(&mut self, report: CycleReport) {
        if self.link_down || self.last_error.is_some() {
            info!(vm = %self.vm_id, "replication recovered");
        }
        self.estimate.record(report.scanned_bytes, report.duration);
        if let Some(previous) = self.point_time_ms.filter(|_| !report.full) {
            let between = report.point_time_ms.saturating_sub(previous).max(1);
            self.write_rate = Some(report.scanned_bytes as f64 * 1000.0 / between as f64);
        }
        self.point_time_ms = Some(report.point_time_ms);
        self.last_sync = Some(LastSync {
            finished_at_ms: sender::now_ms(),
            duration: report.duration,
            bytes: report.data_bytes,
            full: report.full,
            instance: report.instance,
        });
        self.link_down = false;
        self.last_error = None;
        self.retry_at = None;
        self.backoff = Duration::from_secs(1);
    }

    fn failed(&mut self, error: WireError) {
        let link = error.is_link_failure();
        if self.last_error.is_none() {
            warn!(vm = %self.vm_id, "replication cycle failed: {error}");
        }
        self.link_down = link;
        self.last_error = Some(error.to_string());
        self.retry_at = Some(Instant::now() + self.backoff);
        let cap = (self.settings.rpo / 4).clamp(Duration::from_secs(1), MAX_BACKOFF);
        self.backoff = (self.backoff * 2).min(cap);
    }
}
