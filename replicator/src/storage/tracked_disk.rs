//! A source disk behind the replicated block path: every write marks the
//! blocks it touches, and while a consistency point is frozen, the old
//! contents of a frozen block are copied aside before a write overwrites it
//! (copy-before-write), so the sender always reads the disk as it was at the
//! point.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::bitmap::Bitmap;
use super::geometry::Geometry;

/// A sparse raw disk file with change tracking.
pub struct TrackedDisk {
    file: File,
    /// Named in read errors, so an alarm says which file failed.
    path: PathBuf,
    geometry: Geometry,
    /// Writes hold this lock across the data write itself, so a freeze (which
    /// takes the locks of all of a VM's disks) never sees a write half done:
    /// every write is either wholly before or wholly after the point.
    state: Mutex<TrackState>,
}

struct TrackState {
    /// Blocks written since the last freeze.
    dirty: Bitmap,
    frozen: Option<Frozen>,
    /// Writes applied since open; lets tests name exactly which writes a
    /// consistency point contains.
    writes_applied: u64,
}

/// The blocks of one consistency point, while the sender ships them.
struct Frozen {
    /// Every block of the point, kept so a failed cycle can hand them back.
    all: Bitmap,
    /// Blocks of the point the sender has not read yet. Only these need
    /// copy-before-write.
    unread: Bitmap,
    /// Old contents of unread blocks that were overwritten after the point.
    saved: HashMap<u64, Box<[u8]>>,
}

/// What a freeze captured of one disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrozenDisk {
    pub blocks: u64,
    pub writes_applied: u64,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the state half-updated in a
    // way that matters more than stopping would: the worst case is a block
    // marked dirty twice. Keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TrackedDisk {
    /// Opens (creating if needed) a sparse disk file of `geometry.disk_size`,
    /// starting with `dirty` as the blocks not yet replicated.
    pub fn open(path: &Path, geometry: Geometry, dirty: Option<Bitmap>) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != geometry.disk_size {
            file.set_len(geometry.disk_size)?;
        }
        let dirty = dirty
            .filter(|b| b.len() == geometry.block_count())
            .unwrap_or_else(|| Bitmap::new(geometry.block_count()));
        Ok(Self {
            file,
            path: path.to_path_buf(),
            geometry,
            state: Mutex::new(TrackState {
                dirty,
                frozen: None,
                writes_applied: 0,
            }),
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Writes `data` at `offset` through change tracking.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > self.geometry.disk_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write of {} bytes at {offset} is beyond the disk's {} bytes",
                    data.len(),
                    self.geometry.disk_size
                ),
            ));
        }
        let mut state = lock(&self.state);
        let touched = self.geometry.blocks_touched(offset, data.len());
        if let Some(frozen) = &mut state.frozen {
            for block in touched.clone() {
                if frozen.unread.get(block) && !frozen.saved.contains_key(&block) {
                    let mut old = vec![0; self.geometry.block_len(block)].into_boxed_slice();
                    self.file
                        .read_exact_at(&mut old, self.geometry.block_offset(block))?;
                    frozen.saved.insert(block, old);
                }
            }
        }
        for block in touched {
            state.dirty.set(block);
        }
        self.file.write_all_at(data, offset)?;
        state.writes_applied += 1;
        Ok(())
    }

    /// Reads current contents (not the frozen view).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Dirty blocks not yet in any shipped point, including a point in flight.
    pub fn unreplicated(&self) -> Bitmap {
        let state = lock(&self.state);
        let mut blocks = state.dirty.clone();
        if let Some(frozen) = &state.frozen {
            blocks.union_with(&frozen.all);
        }
        blocks
    }

    /// Number of blocks dirtied since the last freeze.
    pub fn dirty_blocks(&self) -> u64 {
        lock(&self.state).dirty.count()
    }

    /// Locks the tracking state; [`super::TrackedVm`] holds all of a VM's
    /// locks at once to freeze them together.
    pub(super) fn lock_state(&self) -> DiskLock<'_> {
        DiskLock(lock(&self.state))
    }

    /// The blocks of the frozen point, in order.
    pub fn frozen_blocks(&self) -> Bitmap {
        let state = lock(&self.state);
        state
            .frozen
            .as_ref()
            .map(|f| f.all.clone())
            .unwrap_or_else(|| Bitmap::new(self.geometry.block_count()))
    }

    /// Reads blocks `first..first+count` as they were at the frozen point into
    /// `buf`, and releases them from copy-before-write. Each block must be
    /// frozen and not read before.
    ///
    /// The file is read without the lock, then validated under it: a write that
    /// raced the read saved the old block first, so the saved copy wins.
    pub fn read_frozen(&self, first: u64, count: u64, buf: &mut [u8]) -> io::Result<()> {
        let offset = self.geometry.block_offset(first);
        self.file.read_exact_at(buf, offset).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: reading {} bytes at offset {offset}: {e}",
                    self.path.display(),
                    buf.len()
                ),
            )
        })?;
        let mut state = lock(&self.state);
        let frozen = state.frozen.as_mut().ok_or_else(|| {
            io::Error::other("read of a frozen block while no consistency point is frozen")
        })?;
        for block in first..first + count {
            if !frozen.unread.get(block) {
                return Err(io::Error::other(format!(
                    "block {block} is not an unread block of the frozen point"
                )));
            }
            frozen.unread.clear(block);
            if let Some(old) = frozen.saved.remove(&block) {
                let at = (self.geometry.block_offset(block) - offset) as usize;
                buf[at..at + old.len()].copy_from_slice(&old);
            }
        }
        Ok(())
    }
}

/// The held tracking lock of one disk.
pub(super) struct DiskLock<'a>(MutexGuard<'a, TrackState>);

impl DiskLock<'_> {
    /// Freezes the point: `full` takes every block, otherwise the dirty ones.
    pub(super) fn freeze(&mut self, full: bool) -> FrozenDisk {
        let state = &mut *self.0;
        let len = state.dirty.len();
        let dirty = std::mem::replace(&mut state.dirty, Bitmap::new(len));
        let all = if full { Bitmap::full(len) } else { dirty };
        let blocks = all.count();
        state.frozen = Some(Frozen {
            unread: all.clone(),
            all,
            saved: HashMap::new(),
        });
        FrozenDisk {
            blocks,
            writes_applied: state.writes_applied,
        }
    }

    /// Ends the point. When it was not shipped, its blocks become dirty again.
    pub(super) fn thaw(&mut self, shipped: bool) {
        if let Some(frozen) = self.0.frozen.take()
            && !shipped
        {
            self.0.dirty.union_with(&frozen.all);
        }
    }

    pub(super) fn is_frozen(&self) -> bool {
        self.0.frozen.is_some()
    }
}
