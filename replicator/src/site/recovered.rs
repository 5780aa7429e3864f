//! What a recovery run does to VMs and disks at the recovery site (the
//! protected site's part is in [`super::protected`]): writable test copies
//! of replicas (sparse copies, taken while the replica is held at a complete
//! instance, so replication keeps running), test VMs booted on them, and
//! promotion: a replica's disks become a VM of this site, and the replica
//! is fenced from further cycles.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::test_copy_owner::TestCopyOwner;
use super::work_error::VmWorkError;
use super::{Site, SiteError, VmRuntime};
use crate::compute::{BootSpec, Machine, qemu};
use crate::config::{GuestSeed, NicSeed};
use crate::guest::{GuestStatus, Verification};
use crate::inventory::{VmDisk, VmRecord};
use crate::storage::durable::{data_ranges, fsync_dir};
use crate::storage::promote::PromoteError;
use crate::storage::{DEFAULT_BLOCK_SIZE, Geometry, Replica, TrackedVm};
use crate::storage::{fs, promote};
use crate::store;
use crate::sync::lock;
use ferry_api::types::{PowerState, VmInfo};

/// How long to wait for a cycle in progress before holding a replica.
const HOLD_TIMEOUT: Duration = Duration::from_secs(120);

/// A VM booted on a test copy of its replica.
pub(crate) struct TestVm {
    pub dir: PathBuf,
    pub disks: Arc<TrackedVm>,
    pub machine: Option<Machine>,
}

pub(super) fn disk_files(dir: &Path) -> Vec<PathBuf> {
    (0..)
        .map(|i| dir.join(format!("disk-{i}.raw")))
        .take_while(|p| p.exists())
        .collect()
}

/// Copies `from` to `to`, data ranges only, so holes stay holes; fsynced.
fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = std::fs::File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = std::fs::File::create(to)?;
    dst.set_len(len)?;
    let mut buf = vec![0u8; 1 << 20];
    for range in data_ranges(&src, len)? {
        src.seek(SeekFrom::Start(range.start))?;
        dst.seek(SeekFrom::Start(range.start))?;
        let mut left = range.end - range.start;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            src.read_exact(&mut buf[..n])?;
            dst.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    dst.sync_all()
}

fn open_layout(dir: &Path, files: &[PathBuf]) -> std::io::Result<TrackedVm> {
    let layout = files
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p)?.len();
            Ok((p.clone(), Geometry::new(size, DEFAULT_BLOCK_SIZE)))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    TrackedVm::open(dir, &layout)
}

impl Site {
    /// Where this site keeps the replica of `vm_id`: the datastore the
    /// peer replicates it to, or else any datastore that has it.
    pub(crate) fn replica_datastore(&self, vm_id: &str) -> Option<String> {
        let from_view = self.peer_view().and_then(|v| {
            v.replications
                .iter()
                .find(|r| r.vm_id == vm_id)
                .map(|r| r.datastore.clone())
        });
        from_view.or_else(|| {
            self.config.site.datastores.iter().find_map(|d| {
                self.config
                    .dir
                    .join(&d.path)
                    .join("replicas")
                    .join(vm_id)
                    .exists()
                    .then(|| d.name.clone())
            })
        })
    }

    fn no_replica(&self, vm_id: &str) -> VmWorkError {
        VmWorkError::NoReplica {
            vm: vm_id.to_string(),
            site: self.name.clone(),
        }
    }

    fn test_dir(&self, datastore: &str, vm_id: &str) -> Option<PathBuf> {
        self.config
            .datastore_path(datastore)
            .map(|p| p.join("tests").join(vm_id))
    }

    /// Makes a writable copy of the replica's newest complete instance for
    /// `owner`'s test and returns that instance's consistency point.
    /// Another plan's test copy of the VM is not replaced.
    pub(crate) async fn create_test_copy(
        &self,
        vm_id: &str,
        owner: &TestCopyOwner,
        instance: Option<u64>,
    ) -> Result<u64, VmWorkError> {
        let datastore = self
            .replica_datastore(vm_id)
            .ok_or_else(|| self.no_replica(vm_id))?;
        let target = self
            .test_dir(&datastore, vm_id)
            .ok_or_else(|| VmWorkError::NoDatastore(datastore.clone()))?;
        if let Some(other) = TestCopyOwner::read(&target).filter(|o| !o.allows(&owner.plan_id)) {
            return Err(VmWorkError::TestCopyTaken {
                owner: other.describe(),
            });
        }
        let owner = owner.clone();
        let hold = self
            .replications
            .receiver
            .hold(&datastore, vm_id, HOLD_TIMEOUT)
            .await?;
        tokio::task::spawn_blocking(move || {
            let replica = Replica::open(&hold.dir)?;
            if replica.state().instance.is_none() {
                return Err(VmWorkError::NoInstance);
            }
            let mut point = replica.state().point_time_ms;
            if target.exists() {
                std::fs::remove_dir_all(&target)?;
            }
            std::fs::create_dir_all(&target)?;
            match instance.filter(|&k| Some(k) != replica.state().instance) {
                // An older instance: the base copied, then rolled back
                // through the undo files into the copy; the replica and
                // its history are only read.
                Some(k) => {
                    point = replica
                        .kept()?
                        .iter()
                        .find(|kept| kept.instance == k)
                        .map(|kept| kept.point_time_ms)
                        .ok_or(VmWorkError::NotKept(k))?;
                    replica
                        .materialize(k, &target)
                        .map_err(|source| VmWorkError::Rebuild {
                            instance: k,
                            source,
                        })?;
                }
                None => {
                    for (i, file) in disk_files(&hold.dir).iter().enumerate() {
                        copy_sparse(file, &target.join(format!("disk-{i}.raw")))
                            .map_err(|source| VmWorkError::CopyDisk { disk: i, source })?;
                    }
                }
            }
            owner.write(&target)?;
            fsync_dir(&target)?;
            drop(hold);
            Ok(point)
        })
        .await?
    }

    /// Boots a test VM on its test copy through the site's compute
    /// backend; returns what its guest verified within `timeout`.
    pub(crate) async fn boot_test_vm(
        &self,
        vm_id: &str,
        nics: &[NicSeed],
        size: (u32, u32),
        timeout: Duration,
    ) -> Result<Verification, VmWorkError> {
        let datastore = self
            .replica_datastore(vm_id)
            .ok_or_else(|| self.no_replica(vm_id))?;
        let dir = self
            .test_dir(&datastore, vm_id)
            .ok_or_else(|| VmWorkError::NoDatastore(datastore.clone()))?;
        let files = disk_files(&dir);
        if files.is_empty() {
            return Err(VmWorkError::NoTestCopy(vm_id.to_string()));
        }
        let disks = Arc::new(open_layout(&dir, &files)?);
        let spec = BootSpec {
            vm_id: vm_id.to_string(),
            dir: dir.clone(),
            disks: disks.clone(),
            disk_files: files,
            nics: nics.to_vec(),
            guest: GuestSeed::default(),
            memory_mib: size.0,
            vcpus: size.1,
        };
        let machine = self
            .compute
            .power_on(spec)
            .await
            .map_err(VmWorkError::Boot)?;
        let verified = machine.boot_verified(timeout).await;
        lock(&self.inventory.test_vms).insert(
            vm_id.to_string(),
            TestVm {
                dir,
                disks,
                machine: Some(machine),
            },
        );
        Ok(verified?)
    }

    /// Memory and vCPUs for a copy of the protected VM `info` describes,
    /// this site's defaults where it has none.
    pub(crate) fn size_of(&self, info: Option<&VmInfo>) -> (u32, u32) {
        let c = &self.config.site.compute;
        let pick = |own: u32, default: u32| if own == 0 { default } else { own };
        info.map_or((c.memory_mib, c.vcpus), |i| {
            (pick(i.memory_mib, c.memory_mib), pick(i.vcpus, c.vcpus))
        })
    }

    /// The guest status of a test or recovered VM.
    pub(crate) fn guest_status(&self, vm_id: &str) -> Option<Arc<GuestStatus>> {
        if let Some(t) = lock(&self.inventory.test_vms).get(vm_id) {
            return t.machine.as_ref().map(|m| m.status().clone());
        }
        lock(&self.inventory.vms)
            .get(vm_id)
            .and_then(|v| v.machine.as_ref().map(|m| m.status().clone()))
    }

    /// The run that made `vm_id`'s test copy, if there is one that says.
    /// Looked for in every datastore: a promoted replica no longer says
    /// where it was.
    pub(crate) fn test_copy_owner(&self, vm_id: &str) -> Option<TestCopyOwner> {
        self.config
            .site
            .datastores
            .iter()
            .find_map(|d| TestCopyOwner::read(&self.test_dir(&d.name, vm_id)?))
    }

    /// Powers off `plan_id`'s test VM, keeping its test copy; false if it
    /// was not running (or is another plan's).
    pub(crate) async fn power_off_test_vm(&self, vm_id: &str, plan_id: &str) -> bool {
        if self
            .test_copy_owner(vm_id)
            .is_some_and(|o| !o.allows(plan_id))
        {
            return false;
        }
        let machine = lock(&self.inventory.test_vms)
            .get_mut(vm_id)
            .and_then(|t| t.machine.take());
        match machine {
            Some(machine) => {
                if let Err(e) = machine.power_off(self.compute.shutdown_timeout()).await {
                    tracing::warn!(vm = %vm_id, "powering off a test VM: {e}");
                }
                true
            }
            None => false,
        }
    }

    /// Powers off `plan_id`'s test VM and removes its test copy; another
    /// plan's is left as it is, and named in the error.
    pub(crate) async fn discard_test_vm(
        &self,
        vm_id: &str,
        plan_id: &str,
    ) -> Result<(), VmWorkError> {
        if let Some(other) = self.test_copy_owner(vm_id).filter(|o| !o.allows(plan_id)) {
            return Err(VmWorkError::TestCopyKept {
                owner: other.describe(),
            });
        }
        let test = lock(&self.inventory.test_vms).remove(vm_id);
        let dir = match test {
            Some(mut t) => {
                if let Some(machine) = t.machine.take() {
                    machine.power_off(self.compute.shutdown_timeout()).await?;
                }
                drop(t.disks);
                Some(t.dir)
            }
            None => self
                .replica_datastore(vm_id)
                .and_then(|ds| self.test_dir(&ds, vm_id)),
        };
        if let Some(dir) = dir
            && dir.exists()
        {
            std::fs::remove_dir_all(&dir).map_err(|source| VmWorkError::Remove {
                dir: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Test copies on disk, whether or not a run knows of them.
    pub(crate) fn leftover_test_copies(&self) -> Vec<String> {
        let mut found = Vec::new();
        for d in &self.config.site.datastores {
            let tests = self.config.dir.join(&d.path).join("tests");
            if let Ok(entries) = std::fs::read_dir(tests) {
                for entry in entries.flatten() {
                    found.push(entry.file_name().to_string_lossy().to_string());
                }
            }
        }
        found
    }

    /// Makes the replica of `vm` a VM of this site, placed and addressed as
    /// given, powered off. Returns the recovered instance's consistency
    /// point, or `None` when an earlier attempt already promoted it.
    ///
    /// Idempotent across a crash or an error at every step (see
    /// [`crate::storage::promote`]): the decision is made durable in the
    /// VM's home, the VM is recorded, and only then do the disks move.
    pub(crate) async fn promote(
        &self,
        vm: &VmInfo,
        folder: &str,
        resource_pool: &str,
        nics: Vec<NicSeed>,
    ) -> Result<Option<u64>, VmWorkError> {
        if lock(&self.inventory.vms).contains_key(&vm.id) {
            return Ok(None);
        }
        // A promote left half done is resumed where its marker is, even
        // once the replica directory is gone.
        let datastore = self
            .promoting_datastore(&vm.id)
            .or_else(|| self.replica_datastore(&vm.id))
            .ok_or_else(|| self.no_replica(&vm.id))?;
        self.replications.receiver.fence(&vm.id, true);
        let hold = self
            .replications
            .receiver
            .hold(&datastore, &vm.id, HOLD_TIMEOUT)
            .await?;
        let home = self.vm_dir(&datastore, &vm.id)?;
        let disks: Vec<VmDisk> = vm
            .disks
            .iter()
            .map(|d| VmDisk {
                datastore: datastore.clone(),
                size_bytes: d.size_bytes,
            })
            .collect();
        let count = disks.len();
        let id = vm.id.clone();
        let recorded = self
            .store
            .call(move |c| Ok(store::list_vms(c)?.into_iter().any(|v| v.id == id)))
            .await?;
        let layer = fs::real();
        let (replica_dir, at) = (hold.dir.clone(), home.clone());
        let point = tokio::task::spawn_blocking(move || {
            // The record follows the marker: recorded without a marker is
            // promoted whole, by an attempt that failed after its last step.
            if recorded && promote::in_progress(&*layer, &at)?.is_none() {
                return Ok(None);
            }
            promote::prepare(&layer, &replica_dir, &at).map(Some)
        })
        .await??;
        let record = VmRecord {
            id: vm.id.clone(),
            name: vm.name.clone(),
            folder: folder.to_string(),
            resource_pool: resource_pool.to_string(),
            power_on: false,
            disks,
            nics,
            guest: GuestSeed::default(),
            // Sized as at the protected site (0: this site's default).
            memory_mib: vm.memory_mib,
            vcpus: vm.vcpus,
        };
        let stored = record.clone();
        self.store
            .call(move |c| {
                if store::list_vms(c)?.iter().any(|v| v.id == stored.id) {
                    return Ok(());
                }
                store::insert_vm(c, &stored)
            })
            .await?;
        let at = home.clone();
        tokio::task::spawn_blocking(move || {
            let done = promote::place(&*fs::real(), &hold.dir, &at, count);
            drop(hold);
            done
        })
        .await??;
        // Before the marker goes: a crash in between is resumed with them.
        self.track_recovered_disks(&vm.id, &datastore, count)
            .await?;
        promote::unmark(&*fs::real(), &home)?;
        let disks = Arc::new(self.open_disks(&record)?);
        lock(&self.inventory.vms).insert(
            vm.id.clone(),
            VmRuntime {
                record,
                disks,
                machine: None,
                problem: None,
                replication: None,
            },
        );
        Ok(point)
    }

    /// A QEMU site runs a recovered VM on qcow2 overlays over the replica's
    /// raw disks (any earlier overlay replaced): QEMU tracks the guest's
    /// writes in them with persistent bitmaps, so a reprotect replicates
    /// them, while the raw files stay as they were received.
    async fn track_recovered_disks(
        &self,
        vm_id: &str,
        datastore: &str,
        count: usize,
    ) -> Result<(), SiteError> {
        if self.compute.kind() != crate::compute::ComputeKind::Qemu {
            return Ok(());
        }
        let home = self.vm_dir(datastore, vm_id)?;
        for i in 0..count {
            let raw = home.join(format!("disk-{i}.raw"));
            qemu::process::create_overlay(vm_id, i, &raw, &raw.with_extension("qcow2")).await?;
        }
        fsync_dir(&home)?;
        Ok(())
    }

    /// The datastore holding a promote of `vm_id` left half done.
    fn promoting_datastore(&self, vm_id: &str) -> Option<String> {
        self.config.site.datastores.iter().find_map(|d| {
            let home = self.vm_dir(&d.name, vm_id).ok()?;
            home.join(promote::MARKER).exists().then(|| d.name.clone())
        })
    }

    /// At start, before any VM's disks are opened: finishes each promote
    /// whose VM was recorded (a QEMU site's overlays included), and fences every replica with a promote
    /// still undecided by a run, so no cycle lands in it meanwhile.
    pub(super) async fn resume_promotes(&self, records: &[VmRecord]) -> Result<(), VmWorkError> {
        for d in &self.config.site.datastores {
            let Some(root) = self.config.datastore_path(&d.name) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(root.join("vms")) else {
                continue;
            };
            for entry in entries.flatten() {
                let home = entry.path();
                if !home.join(promote::MARKER).exists() {
                    continue;
                }
                let id = entry.file_name().to_string_lossy().to_string();
                self.replications.receiver.fence(&id, true);
                if let Some(record) = records.iter().find(|r| r.id == id) {
                    let replica = self.replications.receiver.replica_dir(&d.name, &id)?;
                    let count = record.disks.len();
                    let finishing = |source: PromoteError| VmWorkError::FinishPromote {
                        vm: id.clone(),
                        source,
                    };
                    promote::place(&*fs::real(), &replica, &home, count).map_err(finishing)?;
                    self.track_recovered_disks(&id, &d.name, count)
                        .await
                        .map_err(|e| VmWorkError::FinishPromoteTracking {
                            vm: id.clone(),
                            source: e,
                        })?;
                    promote::unmark(&*fs::real(), &home).map_err(finishing)?;
                }
            }
        }
        Ok(())
    }

    /// Powers on a recovered VM; returns what its guest verified on boot
    /// (a QEMU guest reports it within `timeout`).
    pub(crate) async fn power_on_recovered(
        &self,
        vm_id: &str,
        timeout: Duration,
    ) -> Result<Verification, VmWorkError> {
        self.set_power(vm_id, PowerState::On).await?;
        let status = self
            .guest_status(vm_id)
            .ok_or(VmWorkError::StoppedAtPowerOn)?;
        if let Some(v) = status.boot_verification() {
            return Ok(v);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let beat = status.beat.notified();
            tokio::pin!(beat);
            beat.as_mut().enable();
            if let Some(v) = status.boot_verification() {
                return Ok(v);
            }
            if self.guest_status(vm_id).is_none() {
                let why = self.vm(vm_id).ok().and_then(|v| v.problem);
                return Err(VmWorkError::StoppedBeforeReport {
                    why: why.unwrap_or_else(|| "powered off".into()),
                });
            }
            tokio::select! {
                () = beat => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(VmWorkError::NoBootReport {
                        seconds: timeout.as_secs(),
                    });
                }
            }
        }
    }
}
