//! A replicated QEMU VM's change tracking follows its power. While the VM
//! runs, its points are taken through the VM's own QMP session; while it is
//! off (powered off, or crashed), through a parked QEMU holding its disks
//! (see [`crate::compute::qemu::parked`]), so a cycle after a clean
//! shutdown (the last one of a planned migration) ships exactly the blocks
//! the guest wrote before it, and never the site's empty raw files.
//!
//! Every change of the QEMU behind the session waits for the point in
//! progress to end, so no point straddles two processes.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::{Site, SiteError, VmRuntime};
use crate::compute::qemu::parked::Parked;
use crate::compute::qemu::process;
use crate::compute::qemu::qmp::Qmp;
use crate::compute::qemu::source::QemuSource;
use crate::compute::qemu::tracking::QemuTracking;
use crate::compute::{ComputeError, ComputeKind};
use crate::storage::PointSource;

/// One replicated QEMU VM's tracking and what serves it now.
pub(crate) struct QemuFollow {
    vm: String,
    dir: PathBuf,
    /// The VM's qcow2 disks, in order.
    disks: Vec<PathBuf>,
    binary: String,
    tracking: Arc<QemuTracking>,
    session: watch::Sender<Option<Arc<Qmp>>>,
    parked: Mutex<Option<Parked>>,
}

impl QemuFollow {
    /// The sender's view of the VM's disks.
    pub fn source(&self) -> Arc<dyn PointSource> {
        Arc::new(QemuSource::new(
            self.tracking.clone(),
            tokio::runtime::Handle::current(),
        ))
    }

    /// Waits for a point in progress, and holds off the next, while the
    /// QEMU behind the session changes.
    pub async fn hold(&self) -> OwnedMutexGuard<()> {
        self.tracking.idle().await
    }

    /// The VM runs: its points go through `qmp` (`None`: no session).
    pub fn running(&self, qmp: Option<Arc<Qmp>>) {
        self.session.send_replace(qmp);
    }

    /// The VM is off: a parked QEMU holds its disks and serves its points.
    pub async fn park(&self) -> Result<(), ComputeError> {
        let mut parked = self.parked.lock().await;
        if parked.is_none() {
            let binary =
                process::find_binary(&self.binary).ok_or_else(|| ComputeError::MissingBinary {
                    vm: self.vm.clone(),
                    binary: self.binary.clone(),
                })?;
            *parked = Some(Parked::start(&self.vm, &binary, &self.dir, &self.disks).await?);
        }
        self.session.send_replace(parked.as_ref().map(Parked::qmp));
        Ok(())
    }

    /// The VM is about to run (or its replication ends): the parked QEMU
    /// quits, storing the bitmaps for the VM's own QEMU to load.
    pub async fn unpark(&self) {
        self.session.send_replace(None);
        if let Some(parked) = self.parked.lock().await.take() {
            parked.stop().await;
        }
    }
}

impl Site {
    /// The power-following tracking of `vm` when it is a QEMU VM on qcow2
    /// disks (anything else replicates from the site's block path); its
    /// session is the running VM's, or `None` until [`QemuFollow::park`].
    pub(super) fn qemu_follow(&self, vm: &VmRuntime) -> Option<Arc<QemuFollow>> {
        if self.compute.kind() != ComputeKind::Qemu {
            return None;
        }
        let spec = self.boot_spec(&vm.record, vm.disks.clone(), None).ok()?;
        let dir = std::path::absolute(&spec.dir).ok()?;
        let disks = spec
            .disk_files
            .iter()
            .map(|f| std::path::absolute(f.with_extension("qcow2")))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        if !disks.iter().all(|d| d.exists()) {
            return None;
        }
        let qmp = vm.machine.as_ref().and_then(|m| m.qmp());
        let (session, published) = watch::channel(qmp);
        let tracking = QemuTracking::new(&vm.record.id, &dir, published, vm.disks.geometries());
        Some(Arc::new(QemuFollow {
            vm: vm.record.id.clone(),
            dir,
            disks,
            binary: self.compute.config().qemu_binary.clone(),
            tracking: Arc::new(tracking),
            session,
            parked: Mutex::new(None),
        }))
    }

    /// The power-following tracking of `vm_id`'s replication, if it has one.
    pub(super) fn follow_of(&self, vm_id: &str) -> Option<Arc<QemuFollow>> {
        crate::sync::lock(&self.inventory.vms)
            .get(vm_id)
            .and_then(|v| v.replication.as_ref()?.follow.clone())
    }

    /// Parks a replicated QEMU VM that is not running, in the background
    /// (a replication starting for a VM that is off). A failure is logged:
    /// the cycles then fail naming it.
    pub(super) fn park_in_background(&self, follow: Arc<QemuFollow>) {
        tokio::spawn(async move {
            let _idle = follow.hold().await;
            if let Err(e) = follow.park().await {
                tracing::warn!("{e}");
            }
        });
    }

    /// After a VM of this site stopped (asked or not): park its disks, if
    /// it is a replicated QEMU VM.
    pub(super) async fn park_after_stop(&self, vm_id: &str) -> Result<(), SiteError> {
        if let Some(follow) = self.follow_of(vm_id) {
            let _idle = follow.hold().await;
            follow.park().await?;
        }
        Ok(())
    }
}
