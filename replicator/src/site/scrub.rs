//! Scrubs of the replicas held at this site: on demand (`POST
//! /vms/{id}/scrub`) and every `[scrub] every_hours`. Each reads the newest
//! instance's base disks and compares every block with the sums recorded
//! when it arrived (`storage::replica::scrub`, which takes no lease, so
//! replication never waits for it); a difference raises a critical alarm
//! naming the VM, the disk and the block range.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use ferry_api::now_ms;
use ferry_api::scrub::{BlockRun, DiskScrubReport, ScrubReport, ScrubVerdict};
use tracing::{info, warn};

use super::notify::Severity;
use super::{Site, SiteError};
use crate::storage::fs;
use crate::storage::replica::{ScrubOutcome, scrub};
use crate::sync::lock;

/// The last report per VM, and the VMs being scrubbed now.
#[derive(Default)]
pub(crate) struct Scrubs {
    last: Mutex<HashMap<String, ScrubReport>>,
    running: Mutex<HashSet<String>>,
}

/// Lets a VM be scrubbed again when its scrub ends, however it ends.
struct Running<'a> {
    scrubs: &'a Scrubs,
    vm: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.scrubs.running).remove(&self.vm);
    }
}

/// The report of a scrub that ended with `outcome`.
fn report(vm_id: &str, outcome: ScrubOutcome, started: Instant) -> ScrubReport {
    let mut report = ScrubReport {
        vm_id: vm_id.to_string(),
        at_ms: now_ms(),
        duration_ms: started.elapsed().as_millis() as u64,
        verdict: ScrubVerdict::NoInstance,
        instance: None,
        block_size: 0,
        disks: Vec::new(),
    };
    match outcome {
        ScrubOutcome::NoInstance => {}
        ScrubOutcome::NotRecorded { instance } => {
            report.verdict = ScrubVerdict::NotRecorded;
            report.instance = Some(instance);
        }
        ScrubOutcome::Checked {
            instance,
            block_size,
            disks,
        } => {
            report.instance = Some(instance);
            report.block_size = block_size;
            report.disks = disks
                .iter()
                .enumerate()
                .map(|(i, d)| DiskScrubReport {
                    disk: i as u32,
                    blocks_checked: d.blocks_checked,
                    blocks_skipped: d.blocks_skipped,
                    mismatched_blocks: d.mismatched_blocks(),
                    mismatches: d
                        .mismatches
                        .iter()
                        .map(|r| BlockRun {
                            first: r.start,
                            last: r.end - 1,
                        })
                        .collect(),
                })
                .collect();
            report.verdict = if report.disks.iter().any(|d| d.mismatched_blocks > 0) {
                ScrubVerdict::Mismatch
            } else {
                ScrubVerdict::Clean
            };
        }
    }
    report
}

/// The alarm's text for a scrub that found differences.
pub fn mismatch_alarm(site: &str, report: &ScrubReport) -> Option<String> {
    if report.verdict != ScrubVerdict::Mismatch {
        return None;
    }
    let block = u64::from(report.block_size);
    let disks: Vec<String> = report
        .disks
        .iter()
        .filter(|d| d.mismatched_blocks > 0)
        .map(|d| {
            let runs: Vec<String> = d
                .mismatches
                .iter()
                .take(8)
                .map(|r| {
                    format!(
                        "blocks {}–{} (bytes {}–{})",
                        r.first,
                        r.last,
                        r.first * block,
                        (r.last + 1) * block - 1
                    )
                })
                .collect();
            let more = d.mismatches.len().saturating_sub(8);
            let more = if more > 0 {
                format!(" and {more} more runs")
            } else {
                String::new()
            };
            format!(
                "disk {}: {} block(s) differ: {}{more}",
                d.disk,
                d.mismatched_blocks,
                runs.join(", ")
            )
        })
        .collect();
    Some(format!(
        "scrub of the replica of VM {} at site {site} (instance {}): {}; the replica no longer \
         holds what was received there, so a recovery from it would read those bytes wrong",
        report.vm_id,
        report.instance.unwrap_or(0),
        disks.join("; ")
    ))
}

impl Site {
    /// Scrubs the replica of `vm_id` held here now, records the report and
    /// alarms on any difference.
    pub async fn scrub_replica(&self, vm_id: &str) -> Result<ScrubReport, SiteError> {
        let missing =
            || SiteError::NotFound(format!("no replica of {vm_id:?} at site {}", self.name));
        let datastore = self.replica_datastore(vm_id).ok_or_else(missing)?;
        let dir = self
            .replications
            .receiver
            .replica_dir(&datastore, vm_id)
            .map_err(|e| SiteError::invalid("vm_id", e.to_string()))?;
        if !dir.exists() {
            return Err(missing());
        }
        if !lock(&self.scrubs.running).insert(vm_id.to_string()) {
            return Err(SiteError::Conflict(format!(
                "the replica of {vm_id} is being scrubbed already"
            )));
        }
        let _running = Running {
            scrubs: &self.scrubs,
            vm: vm_id.to_string(),
        };
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || scrub(&*fs::real(), &dir))
            .await
            .map_err(|e| SiteError::Io(std::io::Error::other(e.to_string())))?
            .map_err(|e| {
                SiteError::Io(std::io::Error::new(
                    e.kind(),
                    format!("scrubbing the replica of {vm_id}: {e}"),
                ))
            })?;
        let report = report(vm_id, outcome, started);
        info!(vm = %vm_id, verdict = report.verdict.label(), "replica scrubbed");
        if let Some(message) = mismatch_alarm(&self.name, &report) {
            warn!("{message}");
            self.alarm("scrub_mismatch", Severity::Critical, Some(vm_id), message)
                .await;
        }
        lock(&self.scrubs.last).insert(vm_id.to_string(), report.clone());
        Ok(report)
    }

    /// The last scrub of the replica of `vm_id` since the site started.
    pub fn last_scrub(&self, vm_id: &str) -> Result<ScrubReport, SiteError> {
        lock(&self.scrubs.last).get(vm_id).cloned().ok_or_else(|| {
            SiteError::NotFound(format!(
                "the replica of {vm_id:?} has not been scrubbed since site {} started",
                self.name
            ))
        })
    }

    /// The VMs whose replicas this site holds, by their directories.
    fn held_replicas(&self) -> Vec<String> {
        let mut vms: Vec<String> = self
            .config
            .site
            .datastores
            .iter()
            .filter_map(|d| std::fs::read_dir(self.config.dir.join(&d.path).join("replicas")).ok())
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        vms.sort();
        vms.dedup();
        vms
    }
}

/// Scrubs every replica held here every `[scrub] every_hours`, one at a
/// time, until the site stops.
pub async fn periodic(site: Weak<Site>, stopped: impl std::future::Future<Output = ()>) {
    let hours = match site.upgrade() {
        Some(site) => site.config.site.scrub.every_hours,
        None => return,
    };
    if hours == 0 {
        return;
    }
    let every = Duration::from_secs(hours * 3600);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(every) => {}
        }
        let Some(site) = site.upgrade() else { return };
        for vm in site.held_replicas() {
            if let Err(e) = site.scrub_replica(&vm).await {
                warn!(%vm, "scheduled scrub failed: {e}");
            }
        }
    }
}
