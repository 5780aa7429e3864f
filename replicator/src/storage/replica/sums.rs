//! Block sums at rest: the XXH3-64 of every block of the base disks at the
//! instance they hold, kept in `blocks.sum` beside the replica so that a
//! scrub can tell, long after a cycle, whether the disks still hold what
//! was received.
//!
//! The file names the instance (number and point time) and layout it
//! describes, and a scrub trusts it only when they equal `replica.state`'s:
//! so it may lag the state (a crash, a failed write) without ever lying.
//! Consolidation derives the new sums from the old ones and the redo log's
//! own record checksums (no block is read or hashed again), and writes
//! them after the base disks are durable and before `replica.state` names
//! the new instance.

use std::io;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

use super::super::durable;
use super::super::fs::{self as layer_fs, FileLayer, LayerFile};
use super::super::geometry::Geometry;
use super::super::redo_log::{CommittedLog, RedoHeader};
use super::{Replica, ReplicaState};

pub(super) const SUMS_FILE: &str = "blocks.sum";
const MAGIC: &[u8; 8] = b"FSUMS001";

/// Every block's sum at one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSums {
    pub instance: u64,
    pub point_time_ms: u64,
    pub block_size: u32,
    pub disk_sizes: Vec<u64>,
    /// Per disk, per block.
    pub sums: Vec<Vec<u64>>,
}

/// The sum of `len` zero bytes (a hole, or a zero record).
pub fn zero_sum(len: usize) -> u64 {
    xxh3_64(&vec![0u8; len])
}

impl BlockSums {
    /// Whether these sums describe the instance `state` names.
    pub fn describes(&self, state: &ReplicaState) -> bool {
        state.instance == Some(self.instance)
            && state.point_time_ms == self.point_time_ms
            && state.block_size == self.block_size
            && state.disk_sizes == self.disk_sizes
    }

    pub fn encode(&self) -> Vec<u8> {
        let blocks: usize = self.sums.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(32 + 8 * (self.disk_sizes.len() + blocks));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.instance.to_le_bytes());
        out.extend_from_slice(&self.point_time_ms.to_le_bytes());
        out.extend_from_slice(&self.block_size.to_le_bytes());
        out.extend_from_slice(&(self.disk_sizes.len() as u32).to_le_bytes());
        for size in &self.disk_sizes {
            out.extend_from_slice(&size.to_le_bytes());
        }
        for sum in self.sums.iter().flatten() {
            out.extend_from_slice(&sum.to_le_bytes());
        }
        let check = xxh3_64(&out);
        out.extend_from_slice(&check.to_le_bytes());
        out
    }

    /// Parses `blocks.sum`; `None` when it is not whole and valid.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, check) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxh3_64(body).to_le_bytes() != check || body.get(..8)? != MAGIC {
            return None;
        }
        let mut at = 8;
        let mut take = |n: usize| {
            let field = body.get(at..at + n)?;
            at += n;
            Some(field)
        };
        let u64_of = |b: &[u8]| b.try_into().ok().map(u64::from_le_bytes);
        let u32_of = |b: &[u8]| b.try_into().ok().map(u32::from_le_bytes);
        let instance = u64_of(take(8)?)?;
        let point_time_ms = u64_of(take(8)?)?;
        let block_size = u32_of(take(4)?)?;
        if !Geometry::is_block_size(block_size) {
            return None;
        }
        let disks = u32_of(take(4)?)? as usize;
        if disks > body.len() / 8 {
            return None;
        }
        let disk_sizes: Vec<u64> = (0..disks)
            .map(|_| u64_of(take(8)?))
            .collect::<Option<_>>()?;
        let mut sums = Vec::with_capacity(disks);
        for &size in &disk_sizes {
            let count = usize::try_from(Geometry::new(size, block_size).block_count()).ok()?;
            if count > body.len() / 8 {
                return None;
            }
            sums.push(
                (0..count)
                    .map(|_| u64_of(take(8)?))
                    .collect::<Option<Vec<u64>>>()?,
            );
        }
        (at == body.len()).then_some(Self {
            instance,
            point_time_ms,
            block_size,
            disk_sizes,
            sums,
        })
    }

    /// Reads `blocks.sum` in `dir`; `None` when missing or not valid.
    pub fn load(layer: &dyn FileLayer, dir: &Path) -> io::Result<Option<Self>> {
        match layer_fs::read_all(layer, &dir.join(SUMS_FILE)) {
            Ok(bytes) => Ok(Self::decode(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The sums of `len`-byte blocks read from `file` (`size` bytes long; past
/// it, zeros).
fn read_sum(file: &dyn LayerFile, g: Geometry, block: u64, buf: &mut Vec<u8>) -> io::Result<u64> {
    let len = g.block_len(block);
    buf.resize(len, 0);
    let start = g.block_offset(block);
    let size = file.size()?;
    let readable = size.saturating_sub(start).min(len as u64) as usize;
    file.read_exact_at(&mut buf[..readable], start)?;
    buf[readable..].fill(0);
    Ok(xxh3_64(buf))
}

impl Replica {
    /// Records the sums of an initial sync's disks, read back after their
    /// fsync succeeded (so the page cache holds what the disk holds).
    /// Best effort: without them a scrub says the instance has none.
    pub(super) fn record_seed_sums(&self, disks: &[Box<dyn LayerFile>], header: &RedoHeader) {
        let sums = disks
            .iter()
            .zip(&header.disk_sizes)
            .map(|(file, &size)| {
                let g = Geometry::new(size, header.block_size);
                let mut buf = Vec::new();
                (0..g.block_count())
                    .map(|block| read_sum(&**file, g, block, &mut buf))
                    .collect::<io::Result<Vec<u64>>>()
            })
            .collect::<io::Result<Vec<_>>>();
        self.store_sums(sums.map(|sums| BlockSums {
            instance: header.instance,
            point_time_ms: header.point_time_ms,
            block_size: header.block_size,
            disk_sizes: header.disk_sizes.clone(),
            sums,
        }));
    }

    /// Records the sums of the instance `log` makes, from the base's sums
    /// and the log's record checksums; the blocks at a disk's old and new
    /// end (whose length a resize changes) are read from the base, which
    /// is durable at the new instance by now; without the base's sums,
    /// from every block of the base. Best effort, as above.
    pub(super) fn record_log_sums(&self, log: &CommittedLog, disks: &[Box<dyn LayerFile>]) {
        let header = &log.header;
        let previous = match BlockSums::load(&*self.layer, &self.dir) {
            Ok(Some(sums)) if sums.instance == header.instance => {
                // A retry after a crash: already recorded for this log.
                if sums.point_time_ms == header.point_time_ms {
                    return;
                }
                None
            }
            Ok(Some(sums)) if sums.describes(&self.state) => Some(sums),
            _ => None,
        };
        let Some(mut sums) = previous.filter(|s| s.block_size == header.block_size) else {
            // Nothing to derive from (a replica from before sums, or a
            // write of them that failed): read the base back once, as the
            // initial sync does, now that it is durable.
            self.record_seed_sums(disks, header);
            return;
        };
        let updated = (|| {
            sums.sums.resize(header.disk_sizes.len(), Vec::new());
            let mut buf = Vec::new();
            let mut ends = Vec::new();
            for (i, &size) in header.disk_sizes.iter().enumerate() {
                let g = Geometry::new(size, header.block_size);
                let old = sums.disk_sizes.get(i).copied().unwrap_or(0);
                let old_g = Geometry::new(old, header.block_size);
                let disk = &mut sums.sums[i];
                let count = usize::try_from(g.block_count()).map_err(io::Error::other)?;
                let zero = zero_sum(header.block_size as usize);
                disk.resize(count, zero);
                if old != size {
                    ends.push((i, g, old_g.block_count().saturating_sub(1)));
                    ends.push((i, g, g.block_count().saturating_sub(1)));
                }
            }
            for record in &log.records {
                let Some(disk) = sums.sums.get_mut(usize::from(record.disk)) else {
                    continue;
                };
                let Some(slot) = usize::try_from(record.block)
                    .ok()
                    .and_then(|b| disk.get_mut(b))
                else {
                    continue;
                };
                *slot = if record.data_at.is_some() {
                    record.data_sum
                } else {
                    zero_sum(record.len as usize)
                };
            }
            for (i, g, block) in ends {
                if block < g.block_count() {
                    sums.sums[i][block as usize] = read_sum(&*disks[i], g, block, &mut buf)?;
                }
            }
            sums.instance = header.instance;
            sums.point_time_ms = header.point_time_ms;
            sums.disk_sizes = header.disk_sizes.clone();
            Ok(sums)
        })();
        self.store_sums(updated);
    }

    /// Writes the sums atomically; on any failure removes the old file, so
    /// the sums of an older instance are never taken for the new one's.
    fn store_sums(&self, sums: io::Result<BlockSums>) {
        let path = self.dir.join(SUMS_FILE);
        let stored =
            sums.and_then(|sums| durable::write_atomic_in(&*self.layer, &path, &sums.encode()));
        if let Err(e) = stored {
            tracing::warn!(vm = %self.vm(), "block sums not recorded: {e}");
            // Still safe if this fails too: the file names an older instance.
            let _ = durable::remove_durably_in(&*self.layer, &path);
        }
    }
}
