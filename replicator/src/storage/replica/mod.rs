//! The replica of one VM at the recovery site: its disks, the number of the
//! complete instance they hold, and the redo log of the instance arriving.
//!
//! The base disks are only ever written by consolidation of a committed redo
//! log (or, before the first instance, by the initial sync), and
//! [`Replica::open`] replays an interrupted consolidation before anything
//! reads them, so every disk of the VM is always seen at the same complete
//! instance. Every file call goes through the replica's [`FileLayer`].

mod consolidate;
mod history;
mod retain;
mod scores;
mod scrub;
mod sums;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::content::{BlockHash, hash_block, zero_hash};
use super::durable;
use super::fs::{self as layer_fs, FileLayer, LayerFile, Open};
use super::geometry::Geometry;
use super::redo_log::{RedoHeader, RedoLogWriter};
use crate::crash::crash_point;
pub use consolidate::ConsolidateError;
pub use history::{InstanceError, KeptInstance};
pub use retain::{PruneReason, Pruned, Retention, budget_alarm};
pub use scores::ScoreRecord;
pub use scrub::{DiskScrub, ScrubOutcome, scrub};
pub use sums::BlockSums;

pub(super) const STATE_FILE: &str = "replica.state";
pub(super) const REDO_FILE: &str = "redo.log";
/// Present while an initial sync's disks hold writes whose fsync failed:
/// their page cache is not what the disk holds, so they are discarded.
const UNTRUSTED_FILE: &str = "disks.untrusted";

/// The complete instance the base disks hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaState {
    /// `None` until the first instance (the initial full sync) completes.
    pub instance: Option<u64>,
    /// The consistency point of that instance, ms since the Unix epoch.
    pub point_time_ms: u64,
    pub block_size: u32,
    pub disk_sizes: Vec<u64>,
}

impl ReplicaState {
    pub fn encode(&self) -> Vec<u8> {
        let sizes: Vec<String> = self.disk_sizes.iter().map(u64::to_string).collect();
        let body = format!(
            "ferry-replica 1\ninstance {}\npoint_time_ms {}\nblock_size {}\ndisks {}\n",
            self.instance.map_or("none".into(), |i| i.to_string()),
            self.point_time_ms,
            self.block_size,
            sizes.join(" ")
        );
        format!("{body}checksum {:016x}\n", xxh3_64(body.as_bytes())).into_bytes()
    }

    /// Parses `replica.state`; `None` when it is not whole and valid.
    pub fn decode(text: &str) -> Option<Self> {
        let (body, sum_line) = text.rsplit_once("checksum ")?;
        if u64::from_str_radix(sum_line.trim(), 16).ok()? != xxh3_64(body.as_bytes()) {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != "ferry-replica 1" {
            return None;
        }
        let mut field = |name: &str| lines.next()?.strip_prefix(name)?.strip_prefix(' ');
        let instance = match field("instance")? {
            "none" => None,
            n => Some(n.parse().ok()?),
        };
        let state = Self {
            instance,
            point_time_ms: field("point_time_ms")?.parse().ok()?,
            block_size: field("block_size")?.parse().ok()?,
            disk_sizes: field("disks")?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        };
        // Disks are divided into blocks of this size on open and by the
        // scrub: a size that cannot divide them is not a valid state.
        (state.disk_sizes.is_empty() || Geometry::is_block_size(state.block_size)).then_some(state)
    }
}

/// Start kernel writeback every this many bytes so the final fsync is short.
pub(super) const WRITEBACK_CHUNK: u64 = 8 << 20;

/// Receives one instance: through a redo log, or straight into the disks of
/// a replica that has no instance yet.
pub enum InstanceWriter {
    Redo(Box<RedoLogWriter>),
    Seed(SeedWriter),
}

/// Writes an initial sync straight into the replica's disks.
pub struct SeedWriter {
    disks: Vec<Box<dyn LayerFile>>,
    header: RedoHeader,
    records: u64,
    unsynced: u64,
}

impl SeedWriter {
    fn disk(&self, disk: u16) -> io::Result<&dyn LayerFile> {
        self.disks
            .get(usize::from(disk))
            .map(|d| &**d)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "block for disk {disk}, but the instance has {} disks",
                        self.disks.len()
                    ),
                )
            })
    }

    fn offset(&self, block: u64) -> u64 {
        block * u64::from(self.header.block_size)
    }
}

impl InstanceWriter {
    pub fn append_data(&mut self, disk: u16, block: u64, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Redo(log) => log.append_data(disk, block, data),
            Self::Seed(seed) => {
                let offset = seed.offset(block);
                let file = seed.disk(disk)?;
                file.write_all_at(data, offset)?;
                let writeback = seed.unsynced + data.len() as u64 >= WRITEBACK_CHUNK;
                if writeback {
                    file.start_writeback(0, 0);
                }
                seed.records += 1;
                seed.unsynced = if writeback {
                    0
                } else {
                    seed.unsynced + data.len() as u64
                };
                crash_point("seed.append");
                Ok(())
            }
        }
    }

    pub fn append_zero(&mut self, disk: u16, block: u64, len: u32) -> io::Result<()> {
        match self {
            Self::Redo(log) => log.append_zero(disk, block, len),
            Self::Seed(seed) => {
                seed.disk(disk)?
                    .punch_hole(seed.offset(block), u64::from(len))?;
                seed.records += 1;
                Ok(())
            }
        }
    }

    pub fn records(&self) -> u64 {
        match self {
            Self::Redo(log) => log.records(),
            Self::Seed(seed) => seed.records,
        }
    }
}

/// One VM's replica directory.
pub struct Replica {
    pub(super) layer: Arc<dyn FileLayer>,
    pub(super) dir: PathBuf,
    pub(super) state: ReplicaState,
    /// A committed instance whose consolidation could not start; the base
    /// disks still hold `state` untouched. No new instance is taken.
    deferred: Option<ConsolidateError>,
    /// Consolidation keeps the instance it replaces as an undo file.
    history: bool,
    /// Instances retention dropped since the caller last took them.
    pruned: Vec<Pruned>,
}

impl Replica {
    /// Opens (creating if needed) the replica in `dir`, finishing or
    /// discarding whatever a crash left behind.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_in(layer_fs::real(), dir)
    }

    /// [`Replica::open`] through `layer`. A consolidation that cannot start
    /// (the log fails its checksums, no space for it) leaves the replica
    /// open at its last complete instance with [`Replica::deferred`] set;
    /// one that failed after touching the base disks fails the open.
    pub fn open_in(layer: Arc<dyn FileLayer>, dir: &Path) -> io::Result<Self> {
        layer.create_dir_all(dir)?;
        let state_path = dir.join(STATE_FILE);
        let state = match layer_fs::read_all(&*layer, &state_path) {
            Ok(bytes) => String::from_utf8(bytes)
                .ok()
                .and_then(|text| ReplicaState::decode(&text))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is corrupt", state_path.display()),
                    )
                })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => ReplicaState::default(),
            Err(e) => return Err(e),
        };
        let mut replica = Self {
            layer,
            dir: dir.to_path_buf(),
            state,
            deferred: None,
            history: false,
            pruned: Vec::new(),
        };
        replica.history = replica
            .layer
            .exists(&replica.dir.join(history::HISTORY_FILE))?;
        durable::remove_durably_in(&*replica.layer, &state_path.with_extension("tmp"))?;
        if replica.layer.exists(&replica.dir.join(UNTRUSTED_FILE))? {
            replica.discard_seed()?;
        }
        match replica.consolidate() {
            Ok(()) => {}
            Err(e) if !e.base_touched => replica.deferred = Some(e),
            Err(e) => return Err(e.into()),
        }
        replica.clean_history()?;
        Ok(replica)
    }

    /// What retention dropped since the last call, for the caller's
    /// events and alarms ([`budget_alarm`]).
    pub fn take_pruned(&mut self) -> Vec<Pruned> {
        std::mem::take(&mut self.pruned)
    }

    /// Reads the replica in `dir` without recovery and without writing,
    /// for listings while a session may be running: a crash leftover is
    /// not finished here, and an instance pruned meanwhile is skipped.
    pub fn inspect(dir: &Path) -> io::Result<Self> {
        let layer = layer_fs::real();
        let bytes = layer_fs::read_all(&*layer, &dir.join(STATE_FILE))?;
        let state = String::from_utf8(bytes)
            .ok()
            .and_then(|text| ReplicaState::decode(&text))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is corrupt", dir.join(STATE_FILE).display()),
                )
            })?;
        Ok(Self {
            layer,
            dir: dir.to_path_buf(),
            state,
            deferred: None,
            history: false,
            pruned: Vec::new(),
        })
    }

    pub fn state(&self) -> &ReplicaState {
        &self.state
    }

    /// Why a committed instance waits unapplied (the caller raises an
    /// alarm with it); `None` when nothing waits.
    pub fn deferred(&self) -> Option<&ConsolidateError> {
        self.deferred.as_ref()
    }

    pub fn disk_path(&self, disk: usize) -> PathBuf {
        self.dir.join(format!("disk-{disk}.raw"))
    }

    pub(super) fn redo_path(&self) -> PathBuf {
        self.dir.join(REDO_FILE)
    }

    /// The VM id: the replica directory's name.
    pub(super) fn vm(&self) -> String {
        self.dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// Starts receiving instance `header.instance`: into a fresh redo log
    /// when the replica holds a complete instance to protect; straight into
    /// the disks when it holds none yet (the initial sync), which writes each
    /// byte once and lets an interrupted initial sync resume where it was,
    /// since the next full sync only sends the blocks that still differ.
    pub fn begin(&mut self, header: &RedoHeader) -> io::Result<InstanceWriter> {
        if let Some(deferred) = &self.deferred {
            // A new log would replace the committed one still unapplied.
            return Err(io::Error::other(deferred.to_string()));
        }
        if self.state.instance.is_some_and(|i| header.instance <= i) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "instance {} is not newer than the replica's instance {}",
                    header.instance,
                    self.state.instance.unwrap_or(0)
                ),
            ));
        }
        if self.state.instance.is_none() {
            return Ok(InstanceWriter::Seed(SeedWriter {
                disks: self.open_disks(&header.disk_sizes)?,
                header: header.clone(),
                records: 0,
                unsynced: 0,
            }));
        }
        RedoLogWriter::create(self.layer.clone(), &self.redo_path(), header)
            .map(|log| InstanceWriter::Redo(Box::new(log)))
    }

    /// Makes the received instance complete: commits the redo log, or for an
    /// initial sync syncs the disks and records the instance.
    pub fn commit(&mut self, writer: InstanceWriter) -> io::Result<()> {
        match writer {
            InstanceWriter::Redo(log) => (*log).commit(),
            InstanceWriter::Seed(seed) => {
                let synced = seed
                    .disks
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, disk)| disk.sync_all().map_err(|e| (self.disk_path(i), e)))
                    .and_then(|()| {
                        self.layer
                            .sync_dir(&self.dir)
                            .map_err(|e| (self.dir.clone(), e))
                    });
                if let Err((file, cause)) = synced {
                    return Err(self.distrust_seed(&file, cause));
                }
                self.record_seed_sums(&seed.disks, &seed.header);
                crash_point("seed.before-state");
                self.record_instance(&seed.header)
            }
        }
    }

    /// An fsync of the initial sync failed: the kernel may have marked
    /// pages clean that never reached the disk, and hashing them would
    /// report blocks as present that are not. The disks are discarded
    /// (truncated: the next full sync sends everything), under a durable
    /// marker so that a failure half way is finished at the next open.
    fn distrust_seed(&mut self, file: &Path, cause: io::Error) -> io::Error {
        let marker = self.dir.join(UNTRUSTED_FILE);
        let text = format!("fsync of {} failed: {cause}\n", file.display());
        let discarded = durable::write_atomic_in(&*self.layer, &marker, text.as_bytes())
            .and_then(|()| self.discard_seed());
        let outcome = match discarded {
            Ok(()) => "its disks were discarded; the next full sync resends them".to_string(),
            Err(e) => format!("discarding its disks failed too ({e}); retried at the next open"),
        };
        io::Error::new(
            cause.kind(),
            format!(
                "initial sync of VM {}: fsync of {} failed: {cause}; {outcome}",
                self.vm(),
                file.display()
            ),
        )
    }

    /// Truncates every disk of an initial sync that cannot be trusted,
    /// then removes the marker.
    fn discard_seed(&mut self) -> io::Result<()> {
        let mut i = 0;
        while self.layer.exists(&self.disk_path(i))? {
            let disk = self.layer.open(&self.disk_path(i), Open::Write)?;
            disk.set_len(0)?;
            disk.sync_all()?;
            i += 1;
        }
        self.layer.sync_dir(&self.dir)?;
        durable::remove_durably_in(&*self.layer, &self.dir.join(UNTRUSTED_FILE))
    }

    pub(super) fn record_instance(&mut self, header: &RedoHeader) -> io::Result<()> {
        let state = ReplicaState {
            instance: Some(header.instance),
            point_time_ms: header.point_time_ms,
            block_size: header.block_size,
            disk_sizes: header.disk_sizes.clone(),
        };
        durable::write_atomic_in(&*self.layer, &self.dir.join(STATE_FILE), &state.encode())?;
        self.state = state;
        Ok(())
    }

    /// Opens every disk (creating missing ones), sized to `sizes`.
    pub(super) fn open_disks(&self, sizes: &[u64]) -> io::Result<Vec<Box<dyn LayerFile>>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let file = self.layer.open(&self.disk_path(i), Open::Write)?;
                if file.size()? != size {
                    file.set_len(size)?;
                }
                Ok(file)
            })
            .collect()
    }

    /// Hashes blocks `blocks` of `disk` as laid out by `geometry` (the
    /// sender's), into `out`. Blocks past the end of the replica's disk, and
    /// blocks in holes, hash as zeros without being read.
    pub fn hash_blocks(
        &self,
        disk: usize,
        geometry: Geometry,
        blocks: std::ops::Range<u64>,
        out: &mut Vec<BlockHash>,
    ) -> io::Result<()> {
        // Without an instance the disks may still hold a seed, or what an
        // interrupted initial sync wrote: hashed all the same.
        let file = match self.layer.open(&self.disk_path(disk), Open::Read) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let size = match &file {
            Some(file) => file.size()?,
            None => 0,
        };
        let span_start = geometry.block_offset(blocks.start);
        let span_end = geometry.block_offset(blocks.end).min(geometry.disk_size);
        let data = match &file {
            Some(file) => file.data_ranges(size.min(span_end))?,
            None => Vec::new(),
        };
        let mut ranges = data.into_iter().filter(|r| r.end > span_start).peekable();
        let mut buf = vec![0u8; geometry.block_size as usize];
        for block in blocks {
            let len = geometry.block_len(block);
            let start = geometry.block_offset(block);
            let end = start + len as u64;
            while ranges.peek().is_some_and(|r| r.end <= start) {
                ranges.next();
            }
            let has_data = ranges.peek().is_some_and(|r| r.start < end);
            match (&file, has_data) {
                (Some(file), true) => {
                    let buf = &mut buf[..len];
                    let readable = size.saturating_sub(start).min(len as u64) as usize;
                    file.read_exact_at(&mut buf[..readable], start)?;
                    buf[readable..].fill(0);
                    out.push(hash_block(buf));
                }
                _ => out.push(zero_hash(len)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn header(instance: u64) -> RedoHeader {
        RedoHeader {
            instance,
            point_time_ms: 1000 + instance,
            block_size: 4096,
            disk_sizes: vec![64 * 1024, 32 * 1024],
        }
    }

    #[test]
    fn commit_then_consolidate_moves_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = Replica::open(dir.path()).unwrap();
        assert_eq!(replica.state().instance, None);
        let log = replica.begin(&header(1)).unwrap();
        assert!(
            matches!(log, InstanceWriter::Seed(_)),
            "no instance to protect yet"
        );
        replica.commit(log).unwrap();
        let mut log = replica.begin(&header(2)).unwrap();
        assert!(matches!(log, InstanceWriter::Redo(_)));
        log.append_data(1, 2, &[9; 4096]).unwrap();
        replica.commit(log).unwrap();
        replica.consolidate().unwrap();
        assert_eq!(replica.state().instance, Some(2));
        let bytes = fs::read(replica.disk_path(1)).unwrap();
        assert_eq!(bytes.len(), 32 * 1024);
        assert!(bytes[8192..12288].iter().all(|&b| b == 9));
        assert!(!dir.path().join(REDO_FILE).exists());
        assert!(replica.begin(&header(2)).is_err(), "not newer");
    }

    #[test]
    fn uncommitted_log_is_discarded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = Replica::open(dir.path()).unwrap();
        let log = replica.begin(&header(1)).unwrap();
        replica.commit(log).unwrap();
        let mut log = replica.begin(&header(2)).unwrap();
        log.append_data(0, 0, &[9; 4096]).unwrap();
        drop(log);
        let replica = Replica::open(dir.path()).unwrap();
        assert_eq!(replica.state().instance, Some(1));
        assert!(
            fs::read(replica.disk_path(0))
                .unwrap()
                .iter()
                .all(|&b| b == 0)
        );
        assert!(!dir.path().join(REDO_FILE).exists());
    }

    #[test]
    fn state_survives_reopen_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = Replica::open(dir.path()).unwrap();
        let log = replica.begin(&header(4)).unwrap();
        replica.commit(log).unwrap();
        let reopened = Replica::open(dir.path()).unwrap();
        assert_eq!(reopened.state(), replica.state());
        let path = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("instance 4", "instance 5");
        fs::write(&path, text).unwrap();
        assert!(Replica::open(dir.path()).is_err());
    }

    #[test]
    fn hashes_treat_holes_and_missing_disks_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = Replica::open(dir.path()).unwrap();
        let mut log = replica.begin(&header(1)).unwrap();
        log.append_data(0, 1, &[3; 4096]).unwrap();
        replica.commit(log).unwrap();
        let g = Geometry::new(64 * 1024, 4096);
        let mut hashes = Vec::new();
        replica.hash_blocks(0, g, 0..16, &mut hashes).unwrap();
        assert_eq!(hashes[0], zero_hash(4096));
        assert_eq!(hashes[1], hash_block(&[3; 4096]));
        let mut missing = Vec::new();
        replica.hash_blocks(5, g, 0..2, &mut missing).unwrap();
        assert_eq!(missing, vec![zero_hash(4096); 2]);
    }
}
