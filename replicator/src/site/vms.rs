//! The site's VMs as the API shows them, and their power through the
//! site's compute backend.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::notify::Severity;
use super::recovered::TestVm;
use super::replications::Replicated;
use super::{Site, SiteError};
use crate::compute::{BootSpec, ComputeEvent, Machine};
use crate::inventory::VmRecord;
use crate::storage::TrackedVm;
use crate::store;
use crate::sync::lock;
use ferry_api::types::{DiskInfo, GuestInfo, PowerState, SiteEvent, VmInfo};

/// One VM while the site runs.
pub(crate) struct VmRuntime {
    pub record: VmRecord,
    pub disks: Arc<TrackedVm>,
    /// The running VM, whichever backend runs it.
    pub machine: Option<Machine>,
    /// Why the VM is not running though it should be (it crashed, or its
    /// last power-on failed): shown until it is powered on again.
    pub problem: Option<String>,
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
    /// VMs being powered on or off now. A QEMU VM takes seconds to start
    /// or stop, awaited outside `vms`; this keeps a second request for the
    /// same VM from starting a second process meanwhile.
    pub changing: Mutex<BTreeSet<String>>,
}

/// Removes a VM from [`Inventory::changing`] however its change ends.
struct Changing<'a>(&'a Mutex<BTreeSet<String>>, String);

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        lock(self.0).remove(&self.1);
    }
}

/// How often each running guest's heartbeat is streamed.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How many console lines `GET /vms/{id}` shows, and `GET /vms` per VM.
const CONSOLE_LINES: usize = 20;
const LIST_CONSOLE_LINES: usize = 5;

pub(super) fn describe(vm: &VmRuntime, site: &Site) -> VmInfo {
    let r = &vm.record;
    let (memory_mib, vcpus) = r.size(&site.config.site.compute);
    let m = vm.machine.as_ref();
    VmInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        folder: r.folder.clone(),
        resource_pool: r.resource_pool.clone(),
        power_state: match (m, &vm.problem) {
            (Some(_), _) => PowerState::On,
            (None, Some(_)) if r.power_on => PowerState::Crashed,
            (None, _) => PowerState::Off,
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
        guest: m.map(|m| {
            let g = m.status();
            GuestInfo {
                heartbeat_ms: g.heartbeat_ms.load(Ordering::Relaxed),
                last_seq: g.last_seq.load(Ordering::Relaxed),
                last_record_ms: Some(g.last_record_ms.load(Ordering::Relaxed)).filter(|&t| t > 0),
                ips: lock(&g.ips).clone(),
                boot_verification: g.boot_verification(),
            }
        }),
        replicated: vm.replication.is_some(),
        compute: site.compute.kind(),
        memory_mib,
        vcpus,
        pid: m.and_then(Machine::pid),
        accelerator: m.and_then(Machine::accelerator).map(str::to_string),
        problem: vm.problem.clone(),
        console_tail: None,
        // The site fills it in (see `lifecycle`): it needs the runs and
        // the peer's view, not just this VM.
        lifecycle: Default::default(),
    }
}

impl Site {
    /// Every VM; a QEMU VM's with the newest few lines of its console, so
    /// a list shows what a real VM last said.
    pub fn vms(&self) -> Vec<VmInfo> {
        lock(&self.inventory.vms)
            .values()
            .map(|v| {
                let mut info = self.vm_info(v);
                info.console_tail = v
                    .machine
                    .as_ref()
                    .and_then(|m| m.console_tail(LIST_CONSOLE_LINES));
                info
            })
            .collect()
    }

    /// One VM, with the tail of its console when it has one.
    pub fn vm(&self, id: &str) -> Result<VmInfo, SiteError> {
        let vms = lock(&self.inventory.vms);
        let vm = vms
            .get(id)
            .ok_or_else(|| SiteError::NotFound(format!("no VM {id:?} at site {}", self.name)))?;
        let mut info = self.vm_info(vm);
        info.console_tail = match &vm.machine {
            Some(m) => m.console_tail(CONSOLE_LINES),
            None => self.console_of(&vm.record),
        };
        Ok(info)
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

    /// What a VM of this site needs to boot.
    pub(super) fn boot_spec(
        &self,
        record: &VmRecord,
        disks: Arc<TrackedVm>,
        nics: Option<Vec<crate::config::NicSeed>>,
    ) -> Result<BootSpec, SiteError> {
        let first = record
            .disks
            .first()
            .ok_or_else(|| SiteError::invalid("disks", "a VM needs a disk"))?;
        let dir = self.vm_dir(&first.datastore, &record.id)?;
        let disk_files = record
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Ok(self
                    .vm_dir(&d.datastore, &record.id)?
                    .join(format!("disk-{i}.raw")))
            })
            .collect::<Result<Vec<_>, SiteError>>()?;
        let (memory_mib, vcpus) = record.size(&self.config.site.compute);
        Ok(BootSpec {
            vm_id: record.id.clone(),
            dir,
            disks,
            disk_files,
            nics: nics.unwrap_or_else(|| record.nics.clone()),
            guest: record.guest.clone(),
            memory_mib,
            vcpus,
        })
    }

    /// The console of a VM that is not running (why it crashed).
    fn console_of(&self, record: &VmRecord) -> Option<String> {
        let first = record.disks.first()?;
        let file = self
            .vm_dir(&first.datastore, &record.id)
            .ok()?
            .join(crate::compute::qemu::CONSOLE_LOG);
        file.exists()
            .then(|| crate::compute::qemu::process::tail(&file, CONSOLE_LINES))
    }

    /// Powers a VM on (its guest verifies its disks) or off (a clean
    /// shutdown, then a hard stop after the configured timeout). Asking
    /// for the state it is in changes nothing; a power-on that fails
    /// leaves the VM off with the cause as its problem.
    pub async fn set_power(&self, id: &str, state: PowerState) -> Result<VmInfo, SiteError> {
        if state == PowerState::Crashed {
            return Err(SiteError::invalid(
                "state",
                "`crashed` is reported, never asked for: ask for `on` or `off`",
            ));
        }
        let on = state == PowerState::On;
        let (name, spec, stopping) = {
            let mut vms = lock(&self.inventory.vms);
            let vm = vms.get_mut(id).ok_or_else(|| {
                SiteError::NotFound(format!("no VM {id:?} at site {}", self.name))
            })?;
            if vm.machine.is_some() == on && (on || vm.problem.is_none()) {
                return Ok(describe(vm, self));
            }
            if !lock(&self.inventory.changing).insert(id.to_string()) {
                return Err(SiteError::Conflict(format!(
                    "VM {} is being powered on or off already",
                    vm.record.name
                )));
            }
            let spec = if on {
                Some(self.boot_spec(&vm.record, vm.disks.clone(), None))
            } else {
                None
            };
            (vm.record.name.clone(), spec, vm.machine.take())
        };
        let _changing = Changing(&self.inventory.changing, id.to_string());
        // A replicated QEMU VM's tracking moves between the VM's QEMU and
        // a parked one with its power, never in the middle of a point.
        let follow = self.follow_of(id);
        let _idle = match &follow {
            Some(f) => Some(f.hold().await),
            None => None,
        };
        if let Some(machine) = stopping {
            let how = machine.power_off(self.compute.shutdown_timeout()).await?;
            tracing::info!(vm = %id, "powered off: {how}");
            if let Some(f) = &follow {
                f.park().await?;
            }
        }
        let mut problem = None;
        if let Some(spec) = spec {
            let spec = spec?;
            if let Some(f) = &follow {
                f.unpark().await;
            }
            match self.compute.power_on(spec).await {
                Ok(machine) => {
                    if let Some(f) = &follow {
                        f.running(machine.qmp());
                    }
                    self.with_vm(id, |vm| vm.machine = Some(machine))
                }
                Err(e) => problem = Some(e),
            }
        }
        if let Some(e) = problem {
            if let Some(f) = &follow
                && let Err(park) = f.park().await
            {
                tracing::warn!(vm = %id, "after a failed power-on: {park}");
            }
            let message = e.to_string();
            self.with_vm(id, |vm| vm.problem = Some(message.clone()));
            self.alarm("vm_power_on_failed", Severity::Critical, Some(id), message)
                .await;
            return Err(e.into());
        }
        self.with_vm(id, |vm| {
            vm.problem = None;
            vm.record.power_on = on;
        });
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

    fn with_vm(&self, id: &str, change: impl FnOnce(&mut VmRuntime)) {
        if let Some(vm) = lock(&self.inventory.vms).get_mut(id) {
            change(vm);
        }
    }

    /// An exit the backend reports unasked: the VM is `crashed`, with an
    /// event and an alarm naming the cause.
    pub(super) async fn machine_exited(&self, event: ComputeEvent) {
        let ComputeEvent::Exited { vm_id, boot, cause } = event;
        let crashed = {
            let mut vms = lock(&self.inventory.vms);
            match vms.get_mut(&vm_id) {
                Some(vm) if vm.machine.as_ref().is_some_and(|m| m.boot() == boot) => {
                    // Whoever waits for this guest's report wakes to find
                    // it gone.
                    if let Some(m) = vm.machine.take() {
                        m.status().beat.notify_waiters();
                    }
                    vm.problem = Some(cause.clone());
                    Some(vm.record.name.clone())
                }
                _ => None,
            }
        };
        let test = crashed.is_none() && {
            let mut tests = lock(&self.inventory.test_vms);
            tests.get_mut(&vm_id).is_some_and(|t| {
                let hit = t.machine.as_ref().is_some_and(|m| m.boot() == boot);
                if hit && let Some(m) = t.machine.take() {
                    m.status().beat.notify_waiters();
                }
                hit
            })
        };
        if crashed.is_some()
            && let Err(e) = self.park_after_stop(&vm_id).await
        {
            tracing::warn!(vm = %vm_id, "after a crash: {e}");
        }
        if let Some(name) = &crashed {
            self.events.publish(SiteEvent::VmPower {
                vm_id: vm_id.clone(),
                vm: name.clone(),
                power_state: PowerState::Crashed,
            });
        }
        if crashed.is_some() || test {
            let what = if test { "test VM" } else { "VM" };
            self.alarm(
                "vm_crashed",
                Severity::Critical,
                Some(&vm_id),
                format!("{what} {vm_id} stopped without being asked: {cause}"),
            )
            .await;
        }
    }
}

/// Turns the backend's unasked reports into VM states, events and alarms.
pub async fn supervise(
    site: Weak<Site>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<ComputeEvent>,
) {
    while let Some(event) = events.recv().await {
        let Some(site) = site.upgrade() else { return };
        site.machine_exited(event).await;
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
                let g = vm.machine.as_ref()?.status();
                Some(SiteEvent::VmHeartbeat {
                    vm_id: vm.record.id.clone(),
                    vm: vm.record.name.clone(),
                    heartbeat_ms: g.heartbeat_ms.load(Ordering::Relaxed),
                    last_seq: g.last_seq.load(Ordering::Relaxed),
                })
            })
            .collect();
        for beat in beats {
            site.events.publish(beat);
        }
    }
}
