//! Kept instances: older instances of a replica as undo files beside the
//! base disks, which always hold the newest.
//!
//! `undo-<k>.log` (the redo log's layout, its header naming instance k)
//! holds instance k's bytes of every block a newer kept instance changed.
//! It is written and committed before consolidation touches the base, so a
//! crash never loses k; pruning merges an instance's undo file into its
//! older neighbour's before removing it, so a crash never loses either.
//! Instance k is read by applying every kept undo file from the newest down
//! to k over a copy of the base. The order of writes is in
//! `docs/storage.md`, "Kept instances".

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use super::super::durable;
use super::super::fs::{LayerFile, Open};
use super::super::redo_log::{self, CommittedLog, RedoHeader, RedoLogWriter};
use super::scores::ScoreRecord;
use super::{Replica, ReplicaState};
use crate::crash::crash_point;

/// Present when the replica keeps older instances (its retention policy
/// keeps more than the newest). Read at open, so that the recovery's
/// consolidation keeps the instance a crash interrupted too.
pub(super) const HISTORY_FILE: &str = "history";
/// An undo file being merged by pruning.
const MERGE_FILE: &str = "undo.merge";

/// One complete instance the replica can give back.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptInstance {
    pub instance: u64,
    pub point_time_ms: u64,
    pub disk_sizes: Vec<u64>,
    /// Its score, when it was scored (the initial sync is not).
    pub score: Option<ScoreRecord>,
}

/// Why an instance cannot be read or pruned.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("replica of VM {vm} keeps no instance {instance} (kept: {kept})")]
    NotKept {
        vm: String,
        instance: u64,
        kept: String,
    },
    #[error(
        "instance {instance} of VM {vm} is the newest, held by the base disks; it is never pruned"
    )]
    Newest { vm: String, instance: u64 },
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn undo_name(instance: u64) -> String {
    format!("undo-{instance}.log")
}

impl Replica {
    pub(crate) fn undo_path(&self, instance: u64) -> PathBuf {
        self.dir.join(undo_name(instance))
    }

    /// Whether consolidation keeps the instance it replaces: when the
    /// policy says so, and also while older instances are kept at all,
    /// since an undo file of k only stays whole if every later instance
    /// has one too (the caller prunes them by its policy).
    pub(super) fn keeps_history(&self) -> io::Result<bool> {
        Ok(self.history || !self.undo_instances()?.is_empty())
    }

    /// Turns keeping older instances on or off, durably. Turning it off
    /// keeps what is already kept: pruning is the caller's, and says so.
    pub fn keep_history(&mut self, on: bool) -> io::Result<()> {
        let path = self.dir.join(HISTORY_FILE);
        if on {
            durable::write_atomic_in(&*self.layer, &path, b"keep\n")?;
        } else {
            durable::remove_durably_in(&*self.layer, &path)?;
        }
        self.history = on;
        Ok(())
    }

    /// The instances of every `undo-<k>.log`, committed or not, oldest first.
    fn undo_files(&self) -> io::Result<Vec<u64>> {
        let mut kept: Vec<u64> = self
            .layer
            .list(&self.dir)?
            .iter()
            .filter_map(|name| {
                name.strip_prefix("undo-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        kept.sort_unstable();
        Ok(kept)
    }

    /// The instances of committed undo files, oldest first.
    fn undo_instances(&self) -> io::Result<Vec<u64>> {
        let newest = self.state.instance;
        let mut kept = self.undo_files()?;
        kept.retain(|k| newest.is_some_and(|m| *k < m));
        Ok(kept)
    }

    fn read_undo(&self, instance: u64) -> io::Result<Option<CommittedLog>> {
        match redo_log::read_committed(&*self.layer, &self.undo_path(instance)) {
            Ok(Some(log)) if log.header.instance == instance => Ok(Some(log)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every complete instance, newest (the base) first.
    pub fn kept(&self) -> io::Result<Vec<KeptInstance>> {
        let Some(newest) = self.state.instance else {
            return Ok(Vec::new());
        };
        let mut out = vec![KeptInstance {
            instance: newest,
            point_time_ms: self.state.point_time_ms,
            disk_sizes: self.state.disk_sizes.clone(),
            score: self.score(newest),
        }];
        for k in self.undo_instances()?.into_iter().rev() {
            if let Some(log) = self.read_undo(k)? {
                out.push(KeptInstance {
                    instance: k,
                    point_time_ms: log.header.point_time_ms,
                    disk_sizes: log.header.disk_sizes.clone(),
                    score: self.score(k),
                });
            }
        }
        Ok(out)
    }

    fn not_kept(&self, instance: u64) -> InstanceError {
        let kept = self.kept().map_or_else(
            |e| format!("unreadable: {e}"),
            |k| {
                k.iter()
                    .map(|k| k.instance.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        InstanceError::NotKept {
            vm: self.vm(),
            instance,
            kept,
        }
    }

    /// Consolidation step 4a: before the base leaves instance N, its bytes
    /// of every block `log` changes (and, for a disk that shrinks, of the
    /// blocks past its new size) become `undo-<N>.log`, committed. Called
    /// only while the base is wholly at N (no consolidation marker).
    pub(super) fn write_undo(&self, log: &CommittedLog) -> Result<(), (PathBuf, io::Error)> {
        let Some(at) = self.state.instance else {
            return Ok(());
        };
        // Always written afresh: one a crash left here may belong to a log
        // that was never applied.
        let path = self.undo_path(at);
        let old = &self.state;
        let header = RedoHeader {
            instance: at,
            point_time_ms: old.point_time_ms,
            block_size: old.block_size,
            disk_sizes: old.disk_sizes.clone(),
        };
        let mut blocks: Vec<(u16, u64)> = Vec::new();
        let mut seen = HashSet::new();
        let in_old = |disk: u16, block: u64| {
            old.disk_sizes
                .get(usize::from(disk))
                .is_some_and(|&size| block * u64::from(old.block_size) < size)
        };
        for r in &log.records {
            if in_old(r.disk, r.block) && seen.insert((r.disk, r.block)) {
                blocks.push((r.disk, r.block));
            }
        }
        let bs = u64::from(old.block_size);
        for (disk, &old_size) in old.disk_sizes.iter().enumerate() {
            let new_size = log.header.disk_sizes.get(disk).copied().unwrap_or(0);
            for block in new_size / bs..old_size.div_ceil(bs) {
                if seen.insert((disk as u16, block)) {
                    blocks.push((disk as u16, block));
                }
            }
        }
        let mut writer = RedoLogWriter::create(self.layer.clone(), &path, &header)
            .map_err(|e| (path.clone(), e))?;
        let disks = self.read_disks(old).map_err(|e| (self.dir.clone(), e))?;
        let mut buf = vec![0u8; old.block_size as usize];
        for (disk, block) in blocks {
            let offset = block * bs;
            let len = (old.disk_sizes[usize::from(disk)] - offset).min(bs) as usize;
            let buf = &mut buf[..len];
            read_block(disks[usize::from(disk)].as_deref(), buf, offset)
                .map_err(|e| (self.disk_path(usize::from(disk)), e))?;
            if buf.iter().all(|&b| b == 0) {
                writer.append_zero(disk, block, len as u32)
            } else {
                writer.append_data(disk, block, buf)
            }
            .map_err(|e| (path.clone(), e))?;
        }
        writer.commit().map_err(|e| (path.clone(), e))?;
        crash_point("keep.before-mark");
        Ok(())
    }

    /// The base disks of `state`, for reading; a missing one reads as zeros.
    fn read_disks(&self, state: &ReplicaState) -> io::Result<Vec<Option<Box<dyn LayerFile>>>> {
        (0..state.disk_sizes.len())
            .map(|i| match self.layer.open(&self.disk_path(i), Open::Read) {
                Ok(file) => Ok(Some(file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Drops kept instance `instance` (never the newest): its undo file is
    /// merged into the next older kept one's (blocks that one lacks), which
    /// is renamed into place, before it is removed.
    pub fn prune(&mut self, instance: u64) -> Result<(), InstanceError> {
        if self.state.instance == Some(instance) {
            return Err(InstanceError::Newest {
                vm: self.vm(),
                instance,
            });
        }
        let kept = self.undo_instances()?;
        if !kept.contains(&instance) || self.read_undo(instance)?.is_none() {
            return Err(self.not_kept(instance));
        }
        let older = kept.iter().rev().find(|&&k| k < instance).copied();
        if let Some(older) = older {
            self.merge_into(older, instance)?;
        }
        durable::remove_durably_in(&*self.layer, &self.undo_path(instance))?;
        durable::remove_durably_in(&*self.layer, &self.score_path(instance))?;
        Ok(())
    }

    /// Rewrites `undo-<older>` with `undo-<newer>`'s blocks that it lacks.
    fn merge_into(&self, older: u64, newer: u64) -> io::Result<()> {
        let (Some(base), Some(next)) = (self.read_undo(older)?, self.read_undo(newer)?) else {
            return Ok(());
        };
        let merge = self.dir.join(MERGE_FILE);
        let mut writer = RedoLogWriter::create(self.layer.clone(), &merge, &base.header)?;
        let mut seen = HashSet::new();
        let mut buf = Vec::new();
        let disks = base.header.disk_sizes.len();
        for (log, record) in base
            .records
            .iter()
            .map(|r| (&base, r))
            .chain(next.records.iter().map(|r| (&next, r)))
        {
            if usize::from(record.disk) >= disks || !seen.insert((record.disk, record.block)) {
                continue;
            }
            if record.data_at.is_some() {
                log.read_data(record, &mut buf)?;
                writer.append_data(record.disk, record.block, &buf)?;
            } else {
                writer.append_zero(record.disk, record.block, record.len)?;
            }
        }
        writer.commit()?;
        crash_point("prune.merged");
        self.layer.rename(&merge, &self.undo_path(older))?;
        self.layer.sync_dir(&self.dir)?;
        crash_point("prune.before-remove");
        Ok(())
    }

    /// Writes kept instance `instance` as `disk-<i>.raw` files in `target`
    /// (created; made durable): a sparse copy of the base, then every kept
    /// undo file from the newest down to `instance`, then each disk cut to
    /// that instance's size.
    pub fn materialize(&self, instance: u64, target: &Path) -> Result<(), InstanceError> {
        let newest = self.state.instance.ok_or_else(|| self.not_kept(instance))?;
        let mut undos = Vec::new();
        if instance != newest {
            let kept = self.undo_instances()?;
            if !kept.contains(&instance) {
                return Err(self.not_kept(instance));
            }
            for k in kept.into_iter().rev().filter(|&k| k >= instance) {
                undos.push(self.read_undo(k)?.ok_or_else(|| self.not_kept(k))?);
            }
        }
        let sizes = undos
            .last()
            .map_or(&self.state.disk_sizes, |u| &u.header.disk_sizes)
            .clone();
        self.layer.create_dir_all(target)?;
        let mut disks = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let path = target.join(format!("disk-{i}.raw"));
            let copy = self.layer.open(&path, Open::Truncate)?;
            let base_size = self.state.disk_sizes.get(i).copied().unwrap_or(0);
            copy.set_len(size.max(base_size))?;
            if base_size > 0 {
                copy_sparse(&*self.layer.open(&self.disk_path(i), Open::Read)?, &*copy)?;
            }
            disks.push(copy);
        }
        let mut buf = Vec::new();
        for undo in &undos {
            let bs = u64::from(undo.header.block_size);
            for record in &undo.records {
                let Some(disk) = disks.get(usize::from(record.disk)) else {
                    continue;
                };
                undo.read_data(record, &mut buf)?;
                disk.write_all_at(&buf, record.block * bs)?;
            }
        }
        for (disk, &size) in disks.iter().zip(&sizes) {
            disk.set_len(size)?;
            disk.sync_all()?;
        }
        self.layer.sync_dir(target)?;
        Ok(())
    }

    /// At open: removes a merge a crash interrupted, undo files that were
    /// never committed, and scores of instances no longer kept.
    pub(super) fn clean_history(&self) -> io::Result<()> {
        let names = self.layer.list(&self.dir)?;
        if names.iter().any(|n| n == MERGE_FILE) {
            durable::remove_durably_in(&*self.layer, &self.dir.join(MERGE_FILE))?;
        }
        let newest = self.state.instance;
        let mut kept = HashSet::new();
        for k in self.undo_files()? {
            // An undo file of the base's own instance belongs to a
            // consolidation that never started: it is written afresh.
            if newest.is_some_and(|m| k < m) && self.read_undo(k)?.is_some() {
                kept.insert(k);
            } else {
                durable::remove_durably_in(&*self.layer, &self.undo_path(k))?;
            }
        }
        for name in &names {
            let Some(k) = name
                .strip_prefix("score-")
                .and_then(|k| k.parse::<u64>().ok())
            else {
                continue;
            };
            if newest.is_some_and(|m| k < m) && !kept.contains(&k) {
                durable::remove_durably_in(&*self.layer, &self.score_path(k))?;
            }
        }
        Ok(())
    }
}

/// Reads `buf.len()` bytes at `offset`; past the file's end, or without a
/// file, zeros.
fn read_block(file: Option<&dyn LayerFile>, buf: &mut [u8], offset: u64) -> io::Result<()> {
    buf.fill(0);
    let Some(file) = file else { return Ok(()) };
    let readable = file.size()?.saturating_sub(offset).min(buf.len() as u64) as usize;
    file.read_exact_at(&mut buf[..readable], offset)
}

/// Copies the data ranges of `from` into `to` (holes stay holes).
fn copy_sparse(from: &dyn LayerFile, to: &dyn LayerFile) -> io::Result<()> {
    let size = from.size()?;
    let mut buf = vec![0u8; 1 << 20];
    for range in from.data_ranges(size)? {
        let mut at = range.start;
        while at < range.end {
            let n = (range.end - at).min(buf.len() as u64) as usize;
            from.read_exact_at(&mut buf[..n], at)?;
            to.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
    }
    Ok(())
}
