//! QEMU's own change tracking as the sync cycle's consistency points.
//!
//! For every disk `disk-N` of a running QEMU VM, a persistent dirty bitmap
//! `ferry-I` records the writes since the point of instance `I`. A point for
//! instance `J` is ONE QMP `transaction` over all disks: a new bitmap
//! `ferry-J` starts, the old one stops (its contents, copied into a disabled
//! `ferry-tmp`, are exactly the blocks changed between the two points), and
//! `blockdev-backup sync=none` into a scratch qcow2 backed by the disk makes
//! the scratch read as the disk at the point (copy-before-write) while the
//! guest keeps writing. The scratch is exported over NBD; `BLOCK_STATUS` on
//! `qemu:dirty-bitmap:ferry-tmp` lists the changed extents.
//!
//! The old bitmap goes only once the peer committed instance `J`; if the
//! cycle fails, `ferry-J` is merged back into it and it records again, so no
//! write is lost either way. The bitmap's name is the instance it is
//! relative to, so the state survives a site restart inside QEMU itself, and
//! a QEMU that crashed (bitmaps gone, or loaded `inconsistent`) simply has
//! no usable bitmap: the cycle is a full sync by hash compare.
//!
//! One deliberate difference from the reference recipe: `ferry-tmp` is
//! added and merged inside the same transaction, not before it, so a write
//! landing between the merge and the transaction cannot be missed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::nbd::{NbdClient, NbdError};
use super::qmp::{Action, BlockNode, Qmp, QmpError};
use crate::storage::{Bitmap, Geometry};

const TMP: &str = "ferry-tmp";

fn bitmap(instance: u64) -> String {
    format!("ferry-{instance}")
}

fn node(disk: usize) -> String {
    format!("disk-{disk}")
}

fn scratch(disk: usize) -> String {
    format!("ferry-scratch-{disk}")
}

fn job(disk: usize) -> String {
    format!("ferry-backup-{disk}")
}

fn export(disk: usize) -> String {
    format!("ferry-export-{disk}")
}

/// Why a point could not be taken, read or ended.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error(transparent)]
    Nbd(#[from] NbdError),
    #[error("VM {vm}: scratch image {}: {reason}", path.display())]
    Scratch {
        vm: String,
        path: PathBuf,
        reason: String,
    },
    #[error("VM {vm}: QEMU has no block node {node}")]
    NoDisk { vm: String, node: String },
    #[error("VM {vm}: QEMU is not running, no point can be taken")]
    NotRunning { vm: String },
}

impl From<TrackingError> for std::io::Error {
    fn from(e: TrackingError) -> Self {
        std::io::Error::other(e)
    }
}

/// Where a [`QemuTracking`] gets its QMP session.
enum Session {
    /// Published by the VM's supervisor: `None` while QEMU is not running,
    /// a new session after a restart.
    Published(watch::Receiver<Option<Arc<Qmp>>>),
    /// A socket of tracking's own, connected on demand.
    Socket {
        path: PathBuf,
        current: Mutex<Option<Arc<Qmp>>>,
    },
}

/// The change tracking of one running QEMU VM.
pub struct QemuTracking {
    vm: String,
    /// The VM's directory: scratch images and `nbd.sock` live here.
    dir: PathBuf,
    /// Where the QMP session comes from. Each point uses the session
    /// current when it starts.
    session: Session,
    geometries: Vec<Geometry>,
    qemu_img: PathBuf,
    /// One point at a time: the scratch nodes, jobs and exports have fixed
    /// names, and a new point must not start before the last one is torn down.
    cycle: Arc<Mutex<()>>,
}

impl QemuTracking {
    /// Tracks the disks `disk-0`.. of the VM `vm` (whose directory is
    /// `dir`) through the QMP session `session` publishes.
    pub fn new(
        vm: &str,
        dir: &Path,
        session: watch::Receiver<Option<Arc<Qmp>>>,
        geometries: Vec<Geometry>,
    ) -> Self {
        Self::with(vm, dir, Session::Published(session), geometries)
    }

    /// Tracks through a QMP socket of tracking's own (a second `-qmp` of
    /// the QEMU process: QEMU serves one client per QMP socket, and the
    /// supervisor's checks must not wait behind a cycle). Connected when a
    /// point needs it, again after QEMU restarted.
    pub fn on_socket(vm: &str, dir: &Path, socket: &Path, geometries: Vec<Geometry>) -> Self {
        let session = Session::Socket {
            path: socket.to_path_buf(),
            current: Mutex::new(None),
        };
        Self::with(vm, dir, session, geometries)
    }

    fn with(vm: &str, dir: &Path, session: Session, geometries: Vec<Geometry>) -> Self {
        Self {
            vm: vm.to_string(),
            dir: dir.to_path_buf(),
            session,
            geometries,
            qemu_img: PathBuf::from("qemu-img"),
            cycle: Arc::new(Mutex::new(())),
        }
    }

    /// Uses `qemu_img` (default: `qemu-img` on the PATH) to create scratches.
    pub fn with_qemu_img(mut self, qemu_img: PathBuf) -> Self {
        self.qemu_img = qemu_img;
        self
    }

    /// Tracking through one fixed session (tests, benches).
    pub fn with_session(vm: &str, dir: &Path, qmp: Arc<Qmp>, geometries: Vec<Geometry>) -> Self {
        let (_, session) = watch::channel(Some(qmp));
        Self::new(vm, dir, session, geometries)
    }

    /// Waits for a point in progress to end and keeps the next from
    /// starting while held: the QEMU behind the session is about to change.
    pub async fn idle(&self) -> OwnedMutexGuard<()> {
        self.cycle.clone().lock_owned().await
    }

    pub fn geometries(&self) -> &[Geometry] {
        &self.geometries
    }

    async fn qmp(&self) -> Result<Arc<Qmp>, TrackingError> {
        match &self.session {
            Session::Published(session) => {
                session
                    .borrow()
                    .clone()
                    .ok_or_else(|| TrackingError::NotRunning {
                        vm: self.vm.clone(),
                    })
            }
            Session::Socket { path, current } => {
                let mut current = current.lock().await;
                if let Some(qmp) = current.as_ref().filter(|q| !q.is_closed()) {
                    return Ok(qmp.clone());
                }
                let qmp = Arc::new(Qmp::connect(&self.vm, path).await?);
                *current = Some(qmp.clone());
                Ok(qmp)
            }
        }
    }

    async fn nodes(&self, qmp: &Qmp) -> Result<Vec<BlockNode>, TrackingError> {
        let nodes = qmp.block_nodes().await?;
        for disk in 0..self.geometries.len() {
            if !nodes.iter().any(|n| n.node_name == node(disk)) {
                return Err(TrackingError::NoDisk {
                    vm: self.vm.clone(),
                    node: node(disk),
                });
            }
        }
        Ok(nodes)
    }

    /// True when every disk has an intact bitmap recording since the point
    /// of `base`: a delta from `base` is then exact. False after a QEMU
    /// crash (bitmaps gone or inconsistent), or for a replica at no instance.
    pub async fn tracks_since(&self, base: Option<u64>) -> Result<bool, TrackingError> {
        let Some(base) = base else {
            return Ok(false);
        };
        let name = bitmap(base);
        let nodes = self.nodes(&*self.qmp().await?).await?;
        Ok((0..self.geometries.len()).all(|disk| {
            nodes
                .iter()
                .filter(|n| n.node_name == node(disk))
                .flat_map(|n| &n.dirty_bitmaps)
                .any(|b| b.name == name && b.recording && !b.inconsistent)
        }))
    }

    /// Takes the point of `instance` across all disks in one transaction.
    /// `base`: the delta is relative to it (its bitmap must exist, see
    /// [`QemuTracking::tracks_since`]); `None` takes a point of every block.
    pub async fn take_point(
        &self,
        instance: u64,
        base: Option<u64>,
    ) -> Result<QemuPoint, TrackingError> {
        let guard = Some(self.cycle.clone().lock_owned().await);
        let qmp = self.qmp().await?;
        let nodes = self.nodes(&qmp).await?;
        self.clear_leftovers(&qmp, &nodes, instance).await?;
        let parts = PointParts {
            vm: self.vm.clone(),
            dir: self.dir.clone(),
            qmp,
            disks: self.geometries.len(),
            instance,
            base,
            _cycle: guard,
        };
        if let Err(e) = self.set_up(&parts, &nodes).await {
            parts.tear_down().await;
            return Err(e);
        }
        let socket = self.dir.join("nbd.sock");
        let geometries = self.geometries.clone();
        let opened = tokio::task::spawn_blocking(move || open_readers(&socket, &geometries, base))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()));
        match opened {
            Ok(Ok((readers, blocks))) => Ok(QemuPoint {
                parts: Some(parts),
                readers,
                blocks,
            }),
            Ok(Err(e)) => {
                parts.tear_down().await;
                Err(e.into())
            }
            Err(e) => {
                parts.tear_down().await;
                Err(TrackingError::Scratch {
                    vm: self.vm.clone(),
                    path: self.dir.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Removes what a cycle that never ended (a site crash) left in QEMU,
    /// and a bitmap of `instance` from an earlier failed attempt (its writes
    /// were merged back into its base then).
    async fn clear_leftovers(
        &self,
        qmp: &Arc<Qmp>,
        nodes: &[BlockNode],
        instance: u64,
    ) -> Result<(), TrackingError> {
        let leftover = (0..self.geometries.len())
            .any(|disk| nodes.iter().any(|n| n.node_name == scratch(disk)));
        if leftover {
            let parts = PointParts {
                vm: self.vm.clone(),
                dir: self.dir.clone(),
                qmp: qmp.clone(),
                disks: self.geometries.len(),
                instance,
                base: None,
                // The caller holds the cycle lock already.
                _cycle: None,
            };
            parts.tear_down().await;
        }
        let stale = [TMP.to_string(), bitmap(instance)];
        for disk in 0..self.geometries.len() {
            for n in nodes.iter().filter(|n| n.node_name == node(disk)) {
                for b in n.dirty_bitmaps.iter().filter(|b| stale.contains(&b.name)) {
                    qmp.bitmap_remove(&node(disk), &b.name).await?;
                }
            }
        }
        Ok(())
    }

    async fn set_up(&self, parts: &PointParts, nodes: &[BlockNode]) -> Result<(), TrackingError> {
        let qmp = &parts.qmp;
        let mut actions = Vec::new();
        for (disk, geometry) in self.geometries.iter().enumerate() {
            let path = self.dir.join(format!("{}.qcow2", scratch(disk)));
            self.create_scratch(&path, geometry.disk_size).await?;
            qmp.blockdev_add(json!({
                "driver": "qcow2",
                "node-name": scratch(disk),
                "file": { "driver": "file", "filename": path.to_string_lossy() },
                "backing": node(disk),
            }))
            .await?;
            // Bitmaps persist only in qcow2; on raw they last as long as QEMU.
            let qcow2 = nodes
                .iter()
                .any(|n| n.node_name == node(disk) && n.drv == "qcow2");
            if let Some(base) = parts.base {
                actions.extend([
                    Action::BlockDirtyBitmapAdd {
                        node: node(disk),
                        name: TMP.into(),
                        granularity: Some(geometry.block_size),
                        persistent: false,
                        disabled: true,
                    },
                    Action::BlockDirtyBitmapMerge {
                        node: node(disk),
                        target: TMP.into(),
                        bitmaps: vec![bitmap(base)],
                    },
                    Action::BlockDirtyBitmapDisable {
                        node: node(disk),
                        name: bitmap(base),
                    },
                ]);
            }
            actions.extend([
                Action::BlockDirtyBitmapAdd {
                    node: node(disk),
                    name: bitmap(parts.instance),
                    granularity: Some(geometry.block_size),
                    persistent: qcow2,
                    disabled: false,
                },
                Action::BlockdevBackup {
                    job_id: job(disk),
                    device: node(disk),
                    target: scratch(disk),
                    sync: "none".into(),
                },
            ]);
        }
        qmp.transaction(&actions).await?;
        let socket = self.dir.join("nbd.sock");
        if let Err(e) = qmp.nbd_server_start(&socket).await {
            // One NBD server per QEMU process, started by the first point.
            if !matches!(&e, QmpError::Command { desc, .. } if desc.contains("already running")) {
                return Err(e.into());
            }
        }
        let bitmaps: &[&str] = if parts.base.is_some() { &[TMP] } else { &[] };
        for disk in 0..self.geometries.len() {
            qmp.block_export_add(&export(disk), &scratch(disk), &node(disk), bitmaps)
                .await?;
        }
        Ok(())
    }

    async fn create_scratch(&self, path: &Path, size: u64) -> Result<(), TrackingError> {
        let failed = |reason: String| TrackingError::Scratch {
            vm: self.vm.clone(),
            path: path.to_path_buf(),
            reason,
        };
        let _ = tokio::fs::remove_file(path).await;
        let out = tokio::process::Command::new(&self.qemu_img)
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg(size.to_string())
            .output()
            .await
            .map_err(|e| failed(format!("{}: {e}", self.qemu_img.display())))?;
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(())
    }
}

/// Connects to every disk's export and lists the blocks of the point.
fn open_readers(
    socket: &Path,
    geometries: &[Geometry],
    base: Option<u64>,
) -> Result<(Vec<NbdClient>, Vec<Bitmap>), NbdError> {
    let context = format!("qemu:dirty-bitmap:{TMP}");
    let mut readers = Vec::new();
    let mut blocks = Vec::new();
    for (disk, g) in geometries.iter().enumerate() {
        let contexts: &[&str] = if base.is_some() { &[&context] } else { &[] };
        let mut reader = NbdClient::connect(socket, &node(disk), contexts)?;
        let point = match base {
            None => Bitmap::full(g.block_count()),
            Some(_) => {
                let mut dirty = Bitmap::new(g.block_count());
                let bs = u64::from(g.block_size);
                for e in reader
                    .block_status(&context)?
                    .iter()
                    .filter(|e| e.flags & 1 != 0)
                {
                    let end = (e.offset + e.length).div_ceil(bs).min(g.block_count());
                    for block in e.offset / bs..end {
                        dirty.set(block);
                    }
                }
                dirty
            }
        };
        readers.push(reader);
        blocks.push(point);
    }
    Ok((readers, blocks))
}

/// What a point holds in QEMU, and how to end it.
struct PointParts {
    vm: String,
    dir: PathBuf,
    qmp: Arc<Qmp>,
    disks: usize,
    instance: u64,
    base: Option<u64>,
    /// Held until the point is torn down (see [`QemuTracking::cycle`]).
    _cycle: Option<OwnedMutexGuard<()>>,
}

impl PointParts {
    /// Removes the exports, jobs and scratches, whichever exist. Best
    /// effort: what fails here is found and removed by the next point.
    async fn tear_down(&self) {
        for disk in 0..self.disks {
            let _ = self.qmp.block_export_del(&export(disk)).await;
            let _ = self.qmp.block_job_cancel(&job(disk)).await;
            let _ = self.qmp.blockdev_del(&scratch(disk)).await;
            let path = self.dir.join(format!("{}.qcow2", scratch(disk)));
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    /// Ends the point. `shipped`: the peer committed the instance, so the
    /// base bitmap goes; otherwise the point's bitmap folds back into it.
    async fn finish(self, shipped: bool) -> Result<(), TrackingError> {
        self.tear_down().await;
        let keep = bitmap(self.instance);
        if shipped {
            let nodes = self.qmp.block_nodes().await?;
            for disk in 0..self.disks {
                for n in nodes.iter().filter(|n| n.node_name == node(disk)) {
                    for b in &n.dirty_bitmaps {
                        if b.name.starts_with("ferry-") && b.name != keep {
                            self.qmp.bitmap_remove(&node(disk), &b.name).await?;
                        }
                    }
                }
            }
            return Ok(());
        }
        let Some(base) = self.base else {
            return Ok(());
        };
        // The point's bitmap stays too: if the peer did commit the instance
        // after all, a delta from it is exact.
        let actions: Vec<Action> = (0..self.disks)
            .flat_map(|disk| {
                [
                    Action::BlockDirtyBitmapEnable {
                        node: node(disk),
                        name: bitmap(base),
                    },
                    Action::BlockDirtyBitmapMerge {
                        node: node(disk),
                        target: bitmap(base),
                        bitmaps: vec![keep.clone()],
                    },
                    Action::BlockDirtyBitmapRemove {
                        node: node(disk),
                        name: TMP.into(),
                    },
                ]
            })
            .collect();
        self.qmp.transaction(&actions).await.map_err(|e| {
            tracing::warn!(vm = %self.vm, error = %e, "folding a failed point back");
            e.into()
        })
    }
}

/// A consistency point of all of a VM's disks, readable through NBD.
pub struct QemuPoint {
    /// `None` once finished.
    parts: Option<PointParts>,
    readers: Vec<NbdClient>,
    /// Per disk, the blocks of the point: the changed ones for a delta,
    /// every block for a full sync.
    blocks: Vec<Bitmap>,
}

impl QemuPoint {
    pub fn blocks(&self, disk: usize) -> &Bitmap {
        &self.blocks[disk]
    }

    pub fn instance(&self) -> u64 {
        self.parts.as_ref().map_or(0, |p| p.instance)
    }

    /// Reads `buf.len()` bytes at `offset` of `disk` as it was at the point.
    /// Blocking: call it from a blocking thread.
    pub fn read(&mut self, disk: usize, offset: u64, buf: &mut [u8]) -> Result<(), NbdError> {
        self.readers[disk].read(offset, buf)
    }

    /// Ends the point (see [`PointParts::finish`]).
    pub async fn finish(mut self, shipped: bool) -> Result<(), TrackingError> {
        for reader in self.readers.drain(..) {
            let _ = reader.disconnect();
        }
        match self.parts.take() {
            Some(parts) => parts.finish(shipped).await,
            None => Ok(()),
        }
    }
}

impl Drop for QemuPoint {
    /// A point dropped unfinished counts as not shipped; its end runs as a
    /// task, and the next point waits for it (the cycle lock).
    fn drop(&mut self) {
        self.readers.clear();
        if let Some(parts) = self.parts.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let vm = parts.vm.clone();
                if let Err(e) = parts.finish(false).await {
                    tracing::warn!(%vm, error = %e, "ending an abandoned point");
                }
            });
        }
    }
}

#[cfg(test)]
#[path = "tracking_tests.rs"]
mod tests;
