//! Scrub: reads a replica's base disks and compares every block with the
//! sums recorded for the instance they hold (`sums.rs`), so corruption at
//! rest is found before a recovery needs the replica.
//!
//! A scrub takes no lease and writes nothing, so replication never waits
//! for it. It reads in chunks and trusts a chunk only when the base was at
//! the same instance, with no consolidation running (`consolidating`
//! absent), both before and after the chunk was read: every write of a
//! consolidation to the base happens while its marker exists, and the
//! state names the new instance before the marker goes. A chunk that
//! raced a consolidation is read again against the new instance's sums.

use std::io;
use std::ops::Range;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::super::fs::{self as layer_fs, FileLayer, Open};
use super::super::geometry::Geometry;
use super::consolidate::MARK_FILE;
use super::sums::BlockSums;
use super::{ReplicaState, STATE_FILE};

/// Blocks read between two checks of the replica's instance.
const CHUNK_BLOCKS: u64 = 64;
/// Reads of one chunk before it is given up as always racing a cycle.
const CHUNK_TRIES: u32 = 8;

/// What a scrub found on one disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskScrub {
    pub blocks_checked: u64,
    /// Blocks that could not be read at one instance (cycles kept racing).
    pub blocks_skipped: u64,
    /// Runs of adjacent blocks whose bytes differ from their recorded sum.
    pub mismatches: Vec<Range<u64>>,
}

impl DiskScrub {
    pub fn mismatched_blocks(&self) -> u64 {
        self.mismatches.iter().map(|r| r.end - r.start).sum()
    }

    fn mismatch(&mut self, block: u64) {
        match self.mismatches.last_mut() {
            Some(run) if run.end == block => run.end += 1,
            _ => self.mismatches.push(block..block + 1),
        }
    }
}

/// A whole scrub of one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrubOutcome {
    /// Every disk read and compared (the instance may have moved on during
    /// the scrub: each chunk was compared at the instance it was read at).
    Checked {
        /// The instance the base held at the end.
        instance: u64,
        block_size: u32,
        disks: Vec<DiskScrub>,
    },
    /// The replica holds no complete instance yet: nothing to check.
    NoInstance,
    /// The instance the base holds has no recorded sums (a replica from
    /// before sums were kept, or a cycle whose sums could not be written):
    /// the next cycle cannot derive them either, so they are missing until
    /// a full sync.
    NotRecorded { instance: u64 },
}

/// The instance the base holds right now, if no consolidation runs.
fn steady(layer: &dyn FileLayer, dir: &Path) -> io::Result<Option<ReplicaState>> {
    if layer.exists(&dir.join(MARK_FILE))? {
        return Ok(None);
    }
    let bytes = match layer_fs::read_all(layer, &dir.join(STATE_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(ReplicaState::default())),
        Err(e) => return Err(e),
    };
    String::from_utf8(bytes)
        .ok()
        .and_then(|text| ReplicaState::decode(&text))
        .map(Some)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is corrupt", dir.join(STATE_FILE).display()),
            )
        })
}

/// Waits out nothing: a consolidation in progress makes the chunk be read
/// again, up to [`CHUNK_TRIES`] times.
struct Reader<'a> {
    layer: &'a dyn FileLayer,
    dir: &'a Path,
    sums: Option<BlockSums>,
}

impl Reader<'_> {
    /// Sums for the instance `state` names, reloaded when it moved on.
    fn sums_for(&mut self, state: &ReplicaState) -> io::Result<Option<&BlockSums>> {
        if !self.sums.as_ref().is_some_and(|s| s.describes(state)) {
            self.sums = BlockSums::load(self.layer, self.dir)?.filter(|s| s.describes(state));
        }
        Ok(self.sums.as_ref())
    }
}

/// Scrubs the replica in `dir`. Errors are the file system's (a disk that
/// cannot be read, a corrupt `replica.state`); differences are results.
pub fn scrub(layer: &dyn FileLayer, dir: &Path) -> io::Result<ScrubOutcome> {
    let mut reader = Reader {
        layer,
        dir,
        sums: None,
    };
    let mut disks: Vec<DiskScrub> = Vec::new();
    let mut buf = Vec::new();
    let mut last = None;
    let mut disk = 0usize;
    let mut first = 0u64;
    loop {
        let mut tries = 0;
        let (state, sums) = loop {
            tries += 1;
            let Some(state) = steady(layer, dir)? else {
                if tries >= CHUNK_TRIES {
                    break (None, None);
                }
                std::thread::yield_now();
                continue;
            };
            let Some(instance) = state.instance else {
                return Ok(ScrubOutcome::NoInstance);
            };
            let Some(sums) = reader.sums_for(&state)?.cloned() else {
                // A consolidation writes the next instance's sums under its
                // marker, before the state names it: only a steady state
                // without its sums has none.
                if steady(layer, dir)?.as_ref() == Some(&state) {
                    return Ok(ScrubOutcome::NotRecorded { instance });
                }
                if tries >= CHUNK_TRIES {
                    break (None, None);
                }
                continue;
            };
            let Some(&size) = sums.disk_sizes.get(disk) else {
                break (Some(state), Some((sums, Vec::new())));
            };
            let g = Geometry::new(size, sums.block_size);
            let end = (first + CHUNK_BLOCKS).min(g.block_count()).max(first);
            let read = read_chunk(layer, dir, disk, g, first..end, &mut buf)?;
            if steady(layer, dir)?.as_ref() == Some(&state) {
                break (Some(state), Some((sums, read)));
            }
            if tries >= CHUNK_TRIES {
                break (None, None);
            }
        };
        let Some(state) = state else {
            // Cycles kept racing this chunk: counted, not compared.
            let Some(known) = reader.sums.as_ref() else {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "a consolidation is in progress (or unfinished) on this replica",
                ));
            };
            let Some(&size) = known.disk_sizes.get(disk) else {
                break;
            };
            let count = Geometry::new(size, known.block_size).block_count();
            let end = (first + CHUNK_BLOCKS).min(count).max(first);
            disks.resize(disks.len().max(disk + 1), DiskScrub::default());
            disks[disk].blocks_skipped += end - first;
            (disk, first) = next(disk, end, count);
            continue;
        };
        let Some((sums, read)) = sums else { continue };
        last = Some((state.instance.unwrap_or(0), sums.block_size));
        if disk >= sums.disk_sizes.len() {
            disks.truncate(sums.disk_sizes.len());
            break;
        }
        disks.resize(disks.len().max(disk + 1), DiskScrub::default());
        let found = &mut disks[disk];
        for (block, sum) in (first..).zip(read) {
            found.blocks_checked += 1;
            if sums.sums[disk].get(block as usize) != Some(&sum) {
                found.mismatch(block);
            }
        }
        let count = Geometry::new(sums.disk_sizes[disk], sums.block_size).block_count();
        (disk, first) = next(disk, (first + CHUNK_BLOCKS).min(count).max(first), count);
    }
    let (instance, block_size) = last.unwrap_or((0, 0));
    Ok(ScrubOutcome::Checked {
        instance,
        block_size,
        disks,
    })
}

/// Where the scrub goes after block `end` of `disk` (of `count` blocks).
fn next(disk: usize, end: u64, count: u64) -> (usize, u64) {
    if end >= count {
        (disk + 1, 0)
    } else {
        (disk, end)
    }
}

/// The sums of `blocks` of disk `disk` as its file holds them now (a
/// missing file, or bytes past its end, read as zeros).
fn read_chunk(
    layer: &dyn FileLayer,
    dir: &Path,
    disk: usize,
    g: Geometry,
    blocks: Range<u64>,
    buf: &mut Vec<u8>,
) -> io::Result<Vec<u64>> {
    let path = dir.join(format!("disk-{disk}.raw"));
    let file = match layer.open(&path, Open::Read) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let size = match &file {
        Some(file) => file.size()?,
        None => 0,
    };
    let mut out = Vec::with_capacity((blocks.end - blocks.start) as usize);
    for block in blocks {
        let len = g.block_len(block);
        buf.resize(len, 0);
        let start = g.block_offset(block);
        let readable = size.saturating_sub(start).min(len as u64) as usize;
        if let Some(file) = &file {
            file.read_exact_at(&mut buf[..readable], start)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        buf[readable..].fill(0);
        out.push(xxh3_64(buf));
    }
    Ok(out)
}
