//! A simulated file system for fault tests: it keeps, per file, the bytes
//! that are durable apart from the writes not yet synced, and per
//! directory the durable entries apart from the current ones, so that a
//! power loss can be played out as the storage contract allows.
//!
//! It injects: a crash at the n-th call (that call and every later one
//! fail, as for a dead process), power loss (every unsynced write dropped,
//! the last one torn, a random subset kept, or all kept when only the
//! process died), EIO on write or fsync, ENOSPC, and short writes. An
//! fsync that fails behaves as on Linux: the writes it covered stay visible
//! (the page cache) but are no longer pending, so a later fsync does not
//! make them durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileLayer, LayerFile, Open};

/// What survives a power loss of the writes not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// Only the process died: the page cache, and so every write, survives.
    KeepAll,
    /// Every write not yet synced is lost.
    DropUnsynced,
    /// Every unsynced write survives but the last, which lands half.
    TearLast,
    /// Each unsynced write survives or not, chosen by the seed.
    Random(u64),
}

/// Faults armed on the layer. A path pattern matches when the path
/// contains it.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The n-th call (1-based) fails and the layer is dead from then on.
    pub crash_at: Option<u64>,
    /// fsync (file or directory) of matching paths fails with EIO this many times.
    pub fail_sync: Option<(String, u32)>,
    /// Writes to matching paths fail with EIO this many times.
    pub fail_write: Option<(String, u32)>,
    /// Pages (4 KiB) that matching files may still allocate, by writes
    /// into holes or by reservations; past them a call fails with ENOSPC
    /// and allocates nothing, until the fault is cleared.
    pub space: Option<(String, u64)>,
    /// Every write lands at most this many bytes.
    pub short_writes: Option<usize>,
}

/// Counts of what the layer saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub calls: u64,
    pub faults: u64,
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Node {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// Pages holding data or reserved (not holes), for the space fault.
    allocated: BTreeSet<u64>,
}

const PAGE: u64 = 4096;

fn pages(offset: u64, len: u64) -> Range<u64> {
    offset / PAGE..(offset + len).div_ceil(PAGE)
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<u64, Node>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    next: u64,
    faults: Faults,
    dead: bool,
    counts: Counts,
}

/// The simulated file system; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimFs(Arc<Mutex<State>>);

fn fault(code: i32, what: &str) -> io::Error {
    io::Error::new(
        io::Error::from_raw_os_error(code).kind(),
        format!("{what} (simulated)"),
    )
}

fn matches(rule: &Option<(String, u32)>, path: &Path) -> bool {
    rule.as_ref()
        .is_some_and(|(p, _)| path.to_string_lossy().contains(p.as_str()))
}

fn apply(bytes: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let start = *offset as usize;
            if bytes.len() < start + data.len() {
                bytes.resize(start + data.len(), 0);
            }
            bytes[start..start + data.len()].copy_from_slice(data);
        }
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

impl State {
    /// Counts a call and fails it when the layer is dead or dies here.
    fn enter(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other("the process is dead (simulated crash)"));
        }
        self.counts.calls += 1;
        if self.faults.crash_at == Some(self.counts.calls) {
            self.dead = true;
            self.counts.faults += 1;
            return Err(io::Error::other("crash (simulated)"));
        }
        Ok(())
    }

    fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.entry(id).or_default()
    }

    fn take(rule: &mut Option<(String, u32)>) {
        if let Some((_, n)) = rule {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *rule = None;
            }
        }
    }

    fn sync_fault(&mut self, path: &Path) -> io::Result<()> {
        if matches(&self.faults.fail_sync, path) {
            Self::take(&mut self.faults.fail_sync);
            self.counts.faults += 1;
            return Err(fault(libc::EIO, "fsync failed"));
        }
        Ok(())
    }

    /// Allocates the pages of a range of `id`, or fails with ENOSPC.
    fn allocate(&mut self, id: u64, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        let node = self.nodes.entry(id).or_default();
        let need: Vec<u64> = pages(offset, len)
            .filter(|p| !node.allocated.contains(p))
            .collect();
        if let Some((p, left)) = &mut self.faults.space
            && path.to_string_lossy().contains(p.as_str())
        {
            if (need.len() as u64) > *left {
                self.counts.faults += 1;
                return Err(fault(libc::ENOSPC, "no space left on device"));
            }
            *left -= need.len() as u64;
        }
        node.allocated.extend(need);
        Ok(())
    }
}

impl SimFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms `faults` (replacing the ones armed) and revives the layer.
    pub fn arm(&self, faults: Faults) {
        let mut state = self.lock();
        state.faults = faults;
        state.dead = false;
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    /// Calls made so far (what `crash_at` counts).
    pub fn calls(&self) -> u64 {
        self.lock().counts.calls
    }

    /// The machine stops and starts again: names and bytes become what was
    /// durable plus what `loss` lets survive; faults are cleared.
    pub fn power_loss(&self, loss: PowerLoss) {
        let mut state = self.lock();
        let mut rng = match loss {
            PowerLoss::Random(seed) => seed | 1,
            _ => 1,
        };
        if loss != PowerLoss::KeepAll {
            state.names = state.durable_names.clone();
        }
        let live: Vec<u64> = state.names.values().copied().collect();
        state.nodes.retain(|id, _| live.contains(id));
        for node in state.nodes.values_mut() {
            let mut bytes = node.durable.clone();
            let last = node.pending.len().saturating_sub(1);
            for (i, op) in node.pending.iter().enumerate() {
                let keep = match loss {
                    PowerLoss::KeepAll => true,
                    PowerLoss::DropUnsynced => false,
                    PowerLoss::TearLast if i == last => {
                        if let Pending::Write { offset, data } = op {
                            let half = Pending::Write {
                                offset: *offset,
                                data: data[..data.len() / 2].to_vec(),
                            };
                            apply(&mut bytes, &half);
                        }
                        false
                    }
                    PowerLoss::TearLast => true,
                    PowerLoss::Random(_) => {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng & 1 == 1
                    }
                };
                if keep {
                    apply(&mut bytes, op);
                }
            }
            if loss == PowerLoss::KeepAll {
                bytes = node.current.clone();
            }
            node.current = bytes.clone();
            node.durable = bytes;
            node.pending.clear();
        }
        state.durable_names = state.names.clone();
        state.faults = Faults::default();
        state.dead = false;
    }

    /// The current bytes of `path` (what a read sees), if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = *state.names.get(path)?;
        state.nodes.get(&id).map(|n| n.current.clone())
    }
}

impl FileLayer for SimFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn LayerFile>> {
        let mut state = self.lock();
        state.enter()?;
        let id = match (state.names.get(path).copied(), how) {
            (Some(id), _) => id,
            (None, Open::Read) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} not found (simulated)", path.display()),
                ));
            }
            (None, _) => {
                state.next += 1;
                let id = state.next;
                state.names.insert(path.to_path_buf(), id);
                id
            }
        };
        if how == Open::Truncate {
            let node = state.node(id);
            node.current.clear();
            node.allocated.clear();
            node.pending.push(Pending::SetLen(0));
        }
        state.node(id);
        Ok(Box::new(SimFile {
            fs: self.clone(),
            id,
            path: path.to_path_buf(),
            writable: how != Open::Read,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.enter()?;
        let id = state
            .names
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "rename source missing"))?;
        state.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.enter()?;
        state
            .names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file (simulated)"))
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.enter()?;
        state.names.retain(|p, _| !p.starts_with(dir));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.enter()?;
        state.sync_fault(dir)?;
        // A subdirectory of `dir` with no name left under it was removed:
        // syncing `dir` makes that removal durable, as rmdir's entry is.
        let gone: Vec<PathBuf> = state
            .durable_names
            .keys()
            .filter_map(|p| {
                p.strip_prefix(dir)
                    .ok()?
                    .components()
                    .next()
                    .map(|c| dir.join(c))
            })
            .filter(|sub| {
                sub.parent() == Some(dir)
                    && !state.names.contains_key(sub)
                    && !state.names.keys().any(|p| p.starts_with(sub))
            })
            .collect();
        state
            .durable_names
            .retain(|p, _| !gone.iter().any(|g| p.starts_with(g)));
        let in_dir = |p: &Path| p.parent() == Some(dir);
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        state.durable_names.retain(|p, _| !in_dir(p));
        state.durable_names.extend(current);
        Ok(())
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit and always durable here.
        self.lock().enter()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut state = self.lock();
        state.enter()?;
        Ok(state.names.contains_key(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut state = self.lock();
        state.enter()?;
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }
}

struct SimFile {
    fs: SimFs,
    id: u64,
    path: PathBuf,
    writable: bool,
}

impl SimFile {
    fn write_op(&self, op: Pending) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let mut state = self.fs.lock();
        let node = state.node(self.id);
        apply(&mut node.current, &op);
        node.pending.push(op);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.enter()?;
        let failed = state.sync_fault(&self.path);
        let node = state.node(self.id);
        if failed.is_ok() {
            node.durable = node.current.clone();
        }
        // After a failed fsync the pages are clean but not on disk.
        node.pending.clear();
        failed
    }
}

impl LayerFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut state = self.fs.lock();
        state.enter()?;
        let node = state.node(self.id);
        let start = (offset as usize).min(node.current.len());
        let n = buf.len().min(node.current.len() - start);
        buf[..n].copy_from_slice(&node.current[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let n = {
            let mut state = self.fs.lock();
            state.enter()?;
            if matches(&state.faults.fail_write, &self.path) {
                State::take(&mut state.faults.fail_write);
                state.counts.faults += 1;
                return Err(fault(libc::EIO, "write failed"));
            }
            let n = state
                .faults
                .short_writes
                .unwrap_or(usize::MAX)
                .min(buf.len());
            state.allocate(self.id, &self.path, offset, n as u64)?;
            n
        };
        self.write_op(Pending::Write {
            offset,
            data: buf[..n].to_vec(),
        })?;
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        let mut state = self.fs.lock();
        state.enter()?;
        Ok(state.node(self.id).current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        {
            let mut state = self.fs.lock();
            state.enter()?;
            let kept = len.div_ceil(PAGE);
            state.node(self.id).allocated.retain(|&p| p < kept);
        }
        self.write_op(Pending::SetLen(len))
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        let end = {
            let mut state = self.fs.lock();
            state.enter()?;
            let node = state.node(self.id);
            let whole = (offset.div_ceil(PAGE))..((offset + len) / PAGE);
            node.allocated.retain(|p| !whole.contains(p));
            node.current.len() as u64
        };
        // KEEP_SIZE: nothing past the end is touched.
        let len = len.min(end.saturating_sub(offset));
        self.write_op(Pending::Write {
            offset,
            data: vec![0; len as usize],
        })
    }

    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.enter()?;
        state.allocate(self.id, &self.path, offset, len)
    }

    fn data_ranges(&self, end: u64) -> io::Result<Vec<Range<u64>>> {
        // As a file system without SEEK_DATA: everything may hold data.
        self.fs.lock().enter()?;
        Ok(std::iter::once(0..end).collect())
    }

    fn start_writeback(&self, _offset: u64, _len: u64) {}
}
