//! A replica on the simulated file system, a model of the source VM at each
//! instance, and a sender that drives the replica as the receiver does
//! (full syncs by hash comparison, deltas of the changed blocks).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::fs::sim::SimFs;
use crate::storage::{Geometry, RedoHeader, Replica, hash_block, is_zero};

pub const BLOCK: u32 = 4096;

/// A tiny deterministic generator (xorshift64), so a seed replays a run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The source VM: `instances[i]` is every disk's bytes at instance `i`
/// (`instances[0]` is all zeros, before the first).
pub struct Model {
    pub instances: Vec<Vec<Vec<u8>>>,
}

impl Model {
    /// `sizes` disks, `count` instances after the empty one, each changing
    /// (data or zeros) some random blocks of the one before.
    pub fn new(seed: u64, sizes: &[u64], count: usize) -> Self {
        let mut rng = Rng::new(seed);
        let mut instances: Vec<Vec<Vec<u8>>> =
            vec![sizes.iter().map(|&s| vec![0u8; s as usize]).collect()];
        for n in 1..=count {
            let mut disks: Vec<Vec<u8>> = instances[n - 1].clone();
            for disk in &mut disks {
                let g = Geometry::new(disk.len() as u64, BLOCK);
                for block in 0..g.block_count() {
                    // Half the blocks at the first instance, a quarter later.
                    if rng.below(if n == 1 { 2 } else { 4 }) != 0 {
                        continue;
                    }
                    let start = g.block_offset(block) as usize;
                    let bytes = &mut disk[start..start + g.block_len(block)];
                    let fill = if n > 1 && rng.below(3) == 0 {
                        0
                    } else {
                        rng.next()
                    };
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = if fill == 0 {
                            0
                        } else {
                            (fill >> (i % 8)) as u8 ^ i as u8
                        };
                    }
                }
            }
            instances.push(disks);
        }
        Self { instances }
    }

    pub fn sizes(&self) -> Vec<u64> {
        self.instances[0].iter().map(|d| d.len() as u64).collect()
    }
}

/// The replica under test.
pub struct World {
    pub fs: SimFs,
    pub dir: PathBuf,
    pub model: Model,
    /// The newest instance whose commit returned: it must never be lost.
    pub acked: u64,
    /// Data blocks sent so far.
    pub sent: u64,
    /// The replica keeps older instances (its `history` file is durable).
    pub history: bool,
    /// Older instances that must still be kept: each one whose successor's
    /// commit returned with history on, until its pruning starts.
    pub must_keep: std::collections::BTreeSet<u64>,
}

impl World {
    pub fn new(model: Model) -> Self {
        Self {
            fs: SimFs::new(),
            dir: PathBuf::from("/ds/replicas/vm-1"),
            model,
            acked: 0,
            sent: 0,
            history: false,
            must_keep: Default::default(),
        }
    }

    pub fn open(&self) -> io::Result<Replica> {
        Replica::open_in(Arc::new(self.fs.clone()), &self.dir)
    }

    /// One session sending `instance`: a full sync (blocks whose hash
    /// differs from the replica's) or a delta from `instance - 1`.
    pub fn sync(&mut self, instance: u64, full: bool) -> io::Result<()> {
        let mut replica = self.open()?;
        let target = &self.model.instances[instance as usize];
        let before = &self.model.instances[instance as usize - 1];
        let header = RedoHeader {
            instance,
            point_time_ms: 1000 * instance,
            block_size: BLOCK,
            disk_sizes: self.model.sizes(),
        };
        let mut sends = Vec::new();
        for (disk, bytes) in target.iter().enumerate() {
            let g = Geometry::new(bytes.len() as u64, BLOCK);
            let mut hashes = Vec::new();
            if full {
                replica.hash_blocks(disk, g, 0..g.block_count(), &mut hashes)?;
            }
            for block in 0..g.block_count() {
                let range = g.block_offset(block) as usize
                    ..(g.block_offset(block) as usize + g.block_len(block));
                let data = &bytes[range.clone()];
                let differs = if full {
                    hashes[block as usize] != hash_block(data)
                } else {
                    before[disk][range] != *data
                };
                if differs {
                    sends.push((disk as u16, block, data));
                }
            }
        }
        let mut writer = replica.begin(&header)?;
        for (disk, block, data) in sends {
            if is_zero(data) {
                writer.append_zero(disk, block, data.len() as u32)?;
            } else {
                writer.append_data(disk, block, data)?;
                self.sent += 1;
            }
        }
        replica.commit(writer)?;
        self.acked = self.acked.max(instance);
        if self.history && instance > 1 {
            self.must_keep.insert(instance - 1);
        }
        replica.consolidate()?;
        Ok(())
    }

    /// Brings the replica to `instance` (from none, or from the one before).
    pub fn catch_up_to(&mut self, instance: u64) {
        let start = self
            .open()
            .expect("open")
            .state()
            .instance
            .map_or(1, |i| i + 1);
        for n in start..=instance {
            self.sync(n, n == 1).expect("sync without faults");
        }
    }

    /// Brings the replica to the newest instance as a sender would: a full
    /// sync without an instance, deltas after.
    pub fn catch_up(&mut self) -> io::Result<()> {
        let last = self.model.instances.len() as u64 - 1;
        loop {
            let at = self.open()?.state().instance;
            match at {
                None => self.sync(1, true)?,
                Some(i) if i < last => self.sync(i + 1, false)?,
                Some(_) => return Ok(()),
            }
        }
    }

    /// Opens the replica and checks every disk byte for byte against the
    /// model at the instance it claims; returns that instance.
    pub fn check(&self) -> Result<Option<u64>, String> {
        let replica = self.open().map_err(|e| format!("open failed: {e}"))?;
        let Some(at) = replica.state().instance else {
            return if self.acked == 0 {
                Ok(None)
            } else {
                Err(format!(
                    "no instance, but instance {} was acknowledged",
                    self.acked
                ))
            };
        };
        if at < self.acked {
            return Err(format!(
                "at instance {at}, but {} was acknowledged",
                self.acked
            ));
        }
        for (disk, want) in self.model.instances[at as usize].iter().enumerate() {
            let got = self
                .fs
                .contents(&replica.disk_path(disk))
                .unwrap_or_default();
            if got != *want {
                let first = got.iter().zip(want).position(|(a, b)| a != b);
                return Err(format!(
                    "disk {disk} differs from instance {at} (length {} vs {}, first difference at {first:?})",
                    got.len(),
                    want.len()
                ));
            }
        }
        Ok(Some(at))
    }

    pub fn disk(&self, disk: usize) -> Vec<u8> {
        self.fs
            .contents(&Path::new(&self.dir).join(format!("disk-{disk}.raw")))
            .unwrap_or_default()
    }
}
