//! The site's VMs as the API shows them, and their power.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::recovered::TestVm;
use super::replications::Replicated;
use super::{Site, SiteError};
use crate::guest::Guest;
use crate::inventory::VmRecord;
use crate::storage::TrackedVm;
use crate::store;
use crate::sync::lock;
use ferry_api::types::{DiskInfo, GuestInfo, PowerState, SiteEvent, VmInfo};

/// One VM while the site runs.
pub(crate) struct VmRuntime {
    pub record: VmRecord,
    pub disks: Arc<TrackedVm>,
    pub guest: Option<Guest>,
    pub replication: Option<Replicated>,
}

/// The VMs this site runs, and the test VMs booted on replicas.
#[derive(Default)]
pub(crate) struct Inventory {
    /// By id. A lock of its own: power, heartbeats and replication changes
    /// read and change one VM at a time and never wait on I/O under it.
    pub vms: Mutex<BTreeMap<String, VmRuntime>>,
    /// VMs booted on test copies, by id. Apart from `vms`: a test VM is not
    /// this site's VM, takes no replication and belongs to a run.
    pub test_vms: Mutex<BTreeMap<String, TestVm>>,
}

/// How often each running guest's heartbeat is streamed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

pub(super) fn describe(vm: &VmRuntime) -> VmInfo {
    let r = &vm.record;
    VmInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        folder: r.folder.clone(),
        resource_pool: r.resource_pool.clone(),
        power_state: if vm.guest.is_some() {
            PowerState::On
        } else {
            PowerState::Off
        },
        nics: r.nics.clone(),
        disks: r
            .disks
            .iter()
            .map(|d| DiskInfo {
                datastore: d.datastore.clone(),
                size_bytes: d.size_bytes,
            })
            .collect(),
        guest: vm.guest.as_ref().map(|g| GuestInfo {
            heartbeat_ms: g.status.heartbeat_ms.load(Ordering::Relaxed),
            last_seq: g.status.last_seq.load(Ordering::Relaxed),
            last_record_ms: Some(g.status.last_record_ms.load(Ordering::Relaxed))
                .filter(|&t| t > 0),
            ips: lock(&g.status.ips).clone(),
            boot_verification: g.status.boot_verification(),
        }),
        replicated: vm.replication.is_some(),
        // The site fills it in (see `lifecycle`): it needs the runs and
        // the peer's view, not just this VM.
        lifecycle: Default::default(),
    }
}

impl Site {
    pub fn vms(&self) -> Vec<VmInfo> {
        let vms = lock(&self.inventory.vms);
        vms.values().map(|vm| self.vm_info(vm)).collect()
    }

    pub fn vm(&self, id: &str) -> Result<VmInfo, SiteError> {
        lock(&self.inventory.vms)
            .get(id)
            .map(|vm| self.vm_info(vm))
            .ok_or_else(|| SiteError::NotFound(format!("no VM {id:?} at site {}", self.name)))
    }

    /// VMs here, and how many of them are protected (replicated, and not
    /// the old copy of a VM recovered at the peer).
    pub fn counts(&self) -> (usize, usize) {
        let vms = lock(&self.inventory.vms);
        let protected = vms
            .values()
            .filter(|v| v.replication.is_some())
            .filter(|v| self.lifecycle(&v.record.id, true).is_protected())
            .count();
        (vms.len(), protected)
    }

    /// Powers a VM on (booting its guest, which verifies its disk) or off (a
    /// clean guest shutdown). Asking for the state it is in changes nothing.
    pub async fn set_power(&self, id: &str, state: PowerState) -> Result<VmInfo, SiteError> {
        let on = state == PowerState::On;
        let (name, stopping) = {
            let mut vms = lock(&self.inventory.vms);
            let vm = vms.get_mut(id).ok_or_else(|| {
                SiteError::NotFound(format!("no VM {id:?} at site {}", self.name))
            })?;
            if vm.guest.is_some() == on {
                return Ok(describe(vm));
            }
            let stopping = if on {
                vm.guest = Some(Guest::boot(
                    vm.disks.clone(),
                    &vm.record.nics,
                    vm.record.guest.clone(),
                )?);
                None
            } else {
                vm.guest.take()
            };
            vm.record.power_on = on;
            (vm.record.name.clone(), stopping)
        };
        if let Some(guest) = stopping {
            guest.shut_down().await;
        }
        let owned = id.to_string();
        self.store
            .call(move |c| store::set_power(c, &owned, on))
            .await?;
        self.events.publish(SiteEvent::VmPower {
            vm_id: id.to_string(),
            vm: name,
            power_state: state,
        });
        self.vm(id)
    }
}

/// Streams every running guest's heartbeat every few seconds.
pub async fn heartbeats(site: Weak<Site>, stopped: impl Future<Output = ()>) {
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
        let Some(site) = site.upgrade() else { return };
        let beats: Vec<SiteEvent> = lock(&site.inventory.vms)
            .values()
            .filter_map(|vm| {
                let g = vm.guest.as_ref()?;
                Some(SiteEvent::VmHeartbeat {
                    vm_id: vm.record.id.clone(),
                    vm: vm.record.name.clone(),
                    heartbeat_ms: g.status.heartbeat_ms.load(Ordering::Relaxed),
                    last_seq: g.status.last_seq.load(Ordering::Relaxed),
                })
            })
            .collect();
        for beat in beats {
            site.events.publish(beat);
        }
    }
}
