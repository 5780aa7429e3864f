//! What a recovery run asks of the protected site, answered through the
//! control calls: synchronize and wait, shut down, and demotion for
//! reprotect, where a VM's disks become the seed of the reverse replica.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_api::types::PowerState;
use tracing::warn;

use super::Site;
use super::recovered::disk_files;
use super::work_error::VmWorkError;
use crate::compute::qemu;
use crate::replication::sender::now_ms;
use crate::storage::durable::fsync_dir;
use crate::store;
use crate::sync::lock;

/// How often a sync that waits asks again for a cycle, in case the first
/// ask met one already running.
const NUDGE_EVERY: Duration = Duration::from_secs(2);

impl Site {
    /// Starts a cycle of `vm_id` and waits until an instance whose point is
    /// after this call is complete at the peer; returns that point.
    pub(crate) async fn sync_and_wait(
        &self,
        vm_id: &str,
        timeout: Duration,
    ) -> Result<u64, VmWorkError> {
        let asked = now_ms();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut nudged = tokio::time::Instant::now();
        self.sync_now(vm_id)?;
        loop {
            // Seen before the status is read, so a change after the read
            // wakes the wait below.
            let mut status = self.replication_status(vm_id);
            if let Some(s) = status.as_mut() {
                s.borrow_and_update();
            }
            let info = self
                .replication_info(vm_id)
                .ok_or_else(|| VmWorkError::NotReplicated(vm_id.to_string()))?;
            if let Some(point) = info.point_time_ms
                && point >= asked
            {
                return Ok(point);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(VmWorkError::NotSynchronized {
                    seconds: timeout.as_secs(),
                    state: info.state,
                    last_error: info.last_error,
                });
            }
            if nudged.elapsed() > NUDGE_EVERY {
                let _ = self.sync_now(vm_id);
                nudged = tokio::time::Instant::now();
            }
            let wake = deadline.min(nudged + NUDGE_EVERY);
            match status.as_mut() {
                Some(status) => {
                    tokio::select! {
                        changed = status.changed() => {
                            // The replication ended: wait for the next one
                            // (or the deadline) rather than spin.
                            if changed.is_err() {
                                tokio::time::sleep_until(wake).await;
                            }
                        }
                        () = tokio::time::sleep_until(wake) => {}
                    }
                }
                None => tokio::time::sleep_until(wake).await,
            }
        }
    }

    /// Shuts a protected VM down cleanly; returns its guest's last write.
    pub(crate) async fn shut_down_vm(&self, vm_id: &str) -> Result<Option<u64>, VmWorkError> {
        let status = self.guest_status(vm_id);
        self.set_power(vm_id, PowerState::Off).await?;
        Ok(status
            .map(|s| s.last_record_ms.load(Ordering::Relaxed))
            .filter(|&t| t > 0))
    }

    /// Reprotect at the old protected site: the VM (powered off) leaves
    /// this site's inventory and its disks become the seed of the replica
    /// the recovery site will send to. Returns the seed's datastore.
    pub(crate) async fn demote(&self, vm_id: &str) -> Result<String, VmWorkError> {
        let Some(vm) = lock(&self.inventory.vms)
            .get(vm_id)
            .map(|v| v.record.clone())
        else {
            // Demoted before: the seed is where a replica would be.
            return self
                .replica_datastore(vm_id)
                .ok_or_else(|| VmWorkError::NoVmOrSeed {
                    vm: vm_id.to_string(),
                    site: self.name.clone(),
                });
        };
        if self.guest_status(vm_id).is_some() {
            // Back after a disaster with its VMs running: this copy is stale
            // (the recovered one is newer), so it stops before it is a seed.
            warn!(vm = %vm_id, "powering off the old copy before it becomes a seed");
            self.shut_down_vm(vm_id).await?;
        }
        if self.replication_info(vm_id).is_some() {
            self.stop_replication(vm_id).await?;
        }
        let runtime = lock(&self.inventory.vms).remove(vm_id);
        if let Some(runtime) = runtime {
            drop(runtime.disks);
        }
        let datastore = vm.disks[0].datastore.clone();
        let home = self.vm_dir(&datastore, vm_id)?;
        let seed = self.replications.receiver.replica_dir(&datastore, vm_id)?;
        self.replications.receiver.fence(vm_id, false);
        let id = vm_id.to_string();
        self.store.call(move |c| store::delete_vm(c, &id)).await?;
        // A QEMU VM's data is in its qcow2 disks (the raw files beside
        // them are empty, or the base under an overlay): the seed is that
        // data written raw, so the way back ships only differing blocks.
        std::fs::create_dir_all(&seed).map_err(VmWorkError::CreateSeed)?;
        let files = disk_files(&home);
        for (i, file) in files.iter().enumerate() {
            let qcow2 = file.with_extension("qcow2");
            if qcow2.exists() {
                qemu::process::convert_to_raw(vm_id, i, &qcow2, &file.with_extension("seed"))
                    .await
                    .map_err(|source| VmWorkError::WriteSeed { disk: i, source })?;
            }
        }
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for (i, file) in files.iter().enumerate() {
                let converted = file.with_extension("seed");
                let from = if converted.exists() { &converted } else { file };
                std::fs::rename(from, seed.join(format!("disk-{i}.raw")))?;
            }
            fsync_dir(&seed)?;
            std::fs::remove_dir_all(&home)?;
            Ok(())
        })
        .await?
        .map_err(VmWorkError::Seed)?;
        Ok(datastore)
    }
}
