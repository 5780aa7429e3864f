//! Consolidation: a committed redo log applied to a replica's base disks.
//!
//! Before the first byte touches the base, the whole log is verified (every
//! data record against its checksum) and the space every data record needs
//! is reserved; only then is a durable marker written and the base
//! overwritten. So a consolidation that cannot start leaves the base at the
//! last complete instance, which stays readable; one that fails after the
//! marker is known (across a crash, by the marker) to have left the base
//! mixed, and the replica is unusable until a retry finishes it.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io;
use std::path::{Path, PathBuf};

use super::super::durable;
use super::super::fs::{LayerFile, Open};
use super::super::redo_log::{self, CommittedLog};
use super::{REDO_FILE, Replica, WRITEBACK_CHUNK};
use crate::crash::crash_point;

/// Present from the first write of a consolidation to the base disks until
/// the log is removed: the base may hold part of the log's instance.
pub(super) const MARK_FILE: &str = "consolidating";

/// A consolidation that did not finish: which VM, which file, why.
#[derive(Debug, thiserror::Error)]
#[error(
    "replica of VM {vm}: consolidating instance {instance} failed at {}: {cause}; {}",
    file.display(),
    if *base_touched {
        "its base disks hold part of that instance and it is unusable until the consolidation finishes".to_string()
    } else {
        format!("it stays at instance {}", at.map_or("none".into(), |i| i.to_string()))
    }
)]
pub struct ConsolidateError {
    pub vm: String,
    /// The instance of the committed log (0 when the log could not be read).
    pub instance: u64,
    /// The complete instance the base disks hold when `!base_touched`.
    pub at: Option<u64>,
    pub file: PathBuf,
    #[source]
    pub cause: io::Error,
    /// The base disks may hold part of the log's instance.
    pub base_touched: bool,
}

impl From<ConsolidateError> for io::Error {
    fn from(e: ConsolidateError) -> Self {
        io::Error::new(e.cause.kind(), e.to_string())
    }
}

impl Replica {
    /// Applies a committed redo log to the base disks and removes it; removes
    /// an uncommitted one. Idempotent: safe to run again after a crash at any
    /// point inside it.
    pub fn consolidate(&mut self) -> Result<(), ConsolidateError> {
        let path = self.dir.join(REDO_FILE);
        let mark = self.dir.join(MARK_FILE);
        let layer = self.layer.clone();
        let fail = |replica: &Self, file: &Path, cause, instance, touched| ConsolidateError {
            vm: replica.vm(),
            instance,
            at: replica.state.instance,
            file: file.to_path_buf(),
            cause,
            base_touched: touched,
        };
        let exists = |p: &Path| layer.exists(p);
        let marked = exists(&mark).map_err(|e| fail(self, &mark, e, 0, true))?;
        if !exists(&path).map_err(|e| fail(self, &path, e, 0, marked))? {
            return self.finish(&path, &mark, marked, 0);
        }
        let log = match redo_log::read_committed(&*layer, &path) {
            Ok(Some(log)) if self.state.instance.is_none_or(|i| log.header.instance > i) => log,
            Ok(_) => return self.finish(&path, &mark, marked, 0),
            Err(e) => return Err(fail(self, &path, e, 0, marked)),
        };
        let instance = log.header.instance;
        log.verify()
            .map_err(|e| fail(self, &path, e, instance, marked))?;
        self.reserve(&log)
            .map_err(|(file, e)| fail(self, &file, e, instance, marked))?;
        let previous = self.state.instance;
        let keep = self
            .keeps_history()
            .map_err(|e| fail(self, &self.dir, e, instance, marked))?;
        if !marked && keep {
            self.write_undo(&log)
                .map_err(|(file, e)| fail(self, &file, e, instance, false))?;
        }
        self.record_score(&log)
            .map_err(|e| fail(self, &self.score_path(instance), e, instance, marked))?;
        if !marked {
            durable::write_atomic_in(&*layer, &mark, instance.to_string().as_bytes())
                .map_err(|e| fail(self, &mark, e, instance, false))?;
        }
        self.apply(&log)
            .map_err(|(file, e)| fail(self, &file, e, instance, true))?;
        crash_point("consolidate.before-remove");
        self.finish(&path, &mark, true, instance)?;
        if let Some(previous) = previous.filter(|_| !keep) {
            // Not kept: its score goes with it.
            durable::remove_durably_in(&*layer, &self.score_path(previous))
                .map_err(|e| fail(self, &self.score_path(previous), e, instance, false))?;
        }
        if keep {
            // The instance is complete whatever pruning does; a prune that
            // fails is retried after the next cycle.
            match self.retain(self.state.point_time_ms) {
                Ok(pruned) => self.pruned.extend(pruned),
                Err(e) => tracing::warn!(vm = %self.vm(), "pruning kept instances failed: {e}"),
            }
        }
        Ok(())
    }

    /// Removes the log, then the marker.
    fn finish(
        &self,
        path: &Path,
        mark: &Path,
        marked: bool,
        instance: u64,
    ) -> Result<(), ConsolidateError> {
        let remove = |file: &Path| {
            durable::remove_durably_in(&*self.layer, file).map_err(|cause| ConsolidateError {
                vm: self.vm(),
                instance,
                at: self.state.instance,
                file: file.to_path_buf(),
                cause,
                base_touched: false,
            })
        };
        remove(path)?;
        if marked {
            remove(mark)?;
        }
        Ok(())
    }

    /// Reserves the space of every data record (runs of adjacent blocks
    /// merged), so that the apply cannot run out of space half way.
    fn reserve(&self, log: &CommittedLog) -> Result<(), (PathBuf, io::Error)> {
        let block_size = u64::from(log.header.block_size);
        let mut runs: Vec<(u16, u64, u64)> = Vec::new();
        for record in log.records.iter().filter(|r| r.data_at.is_some()) {
            let start = record.block * block_size;
            let end = start + u64::from(record.len);
            match runs.last_mut() {
                Some((disk, _, run_end)) if *disk == record.disk && *run_end == start => {
                    *run_end = end;
                }
                _ => runs.push((record.disk, start, end)),
            }
        }
        let mut open: BTreeMap<u16, Option<Box<dyn LayerFile>>> = BTreeMap::new();
        for (disk, start, end) in runs {
            let path = self.disk_path(usize::from(disk));
            let file = match open.entry(disk) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    // A disk the instance adds is not created before the
                    // marker: the base must still read as instance N.
                    let exists = self
                        .layer
                        .exists(&path)
                        .map_err(|err| (path.clone(), err))?;
                    let file = exists
                        .then(|| self.layer.open(&path, Open::Write))
                        .transpose()
                        .map_err(|err| (path.clone(), err))?;
                    e.insert(file)
                }
            };
            if let Some(file) = file {
                file.reserve(start, end - start)
                    .map_err(|err| (path, err))?;
            }
        }
        Ok(())
    }

    /// Writes every record to the base disks, makes them durable and records
    /// the log's instance.
    fn apply(&mut self, log: &CommittedLog) -> Result<(), (PathBuf, io::Error)> {
        let header = &log.header;
        let disks = self
            .open_disks(&header.disk_sizes)
            .map_err(|e| (self.dir.clone(), e))?;
        let half = log.records.len() / 2;
        let mut buf = Vec::with_capacity(header.block_size as usize);
        let mut unsynced = 0u64;
        for (n, record) in log.records.iter().enumerate() {
            let i = usize::from(record.disk);
            let disk = &disks[i];
            let offset = record.block * u64::from(header.block_size);
            let at_disk = |e| (self.disk_path(i), e);
            if record.data_at.is_some() {
                log.read_data(record, &mut buf)
                    .map_err(|e| (self.dir.join(REDO_FILE), e))?;
                disk.write_all_at(&buf, offset).map_err(at_disk)?;
                unsynced += buf.len() as u64;
                if unsynced >= WRITEBACK_CHUNK {
                    // Overlap writeback with the rest of the apply.
                    disk.start_writeback(0, 0);
                    unsynced = 0;
                }
            } else {
                disk.punch_hole(offset, u64::from(record.len))
                    .map_err(at_disk)?;
            }
            if n == half {
                crash_point("consolidate.mid");
            }
        }
        for (i, disk) in disks.iter().enumerate() {
            // A failure leaves the log in place: the retry writes every
            // block again, so none is trusted to the page cache.
            disk.sync_all().map_err(|e| (self.disk_path(i), e))?;
        }
        if !disks.is_empty() {
            self.layer
                .sync_dir(&self.dir)
                .map_err(|e| (self.dir.clone(), e))?;
        }
        self.record_log_sums(log, &disks);
        crash_point("consolidate.before-state");
        self.record_instance(header)
            .map_err(|e| (self.dir.join(super::STATE_FILE), e))
    }
}
