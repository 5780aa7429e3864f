//! The demo's simulated encryption attack: one VM's built-in guest starts
//! overwriting its disks with random data, so a new user sees the
//! `clean_point` alarm at the recovery site within one cycle and can
//! recover to the instance before it. Demo sites only (`demo = true` in
//! site.toml, which `ferry demo` writes): on any other site it is refused.

use super::notify::Severity;
use super::{Site, SiteError};
use crate::compute::Machine;
use crate::sync::lock;
use ferry_api::types::VmInfo;

impl Site {
    /// Starts the attack on `vm_id`'s guest; asking again changes nothing.
    pub async fn simulate_attack(&self, vm_id: &str) -> Result<VmInfo, SiteError> {
        if !self.config.site.demo {
            return Err(SiteError::Conflict(format!(
                "site {} is not a demo site: the simulated attack destroys a VM's data, so only `ferry demo` sites allow it",
                self.name
            )));
        }
        let name = {
            let vms = lock(&self.inventory.vms);
            let vm = vms.get(vm_id).ok_or_else(|| {
                SiteError::NotFound(format!("no VM {vm_id:?} at site {}", self.name))
            })?;
            match &vm.machine {
                Some(Machine::Builtin(machine)) => {
                    machine
                        .status()
                        .attacked
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Some(Machine::Qemu(_)) => {
                    return Err(SiteError::Conflict(format!(
                        "VM {} runs on QEMU: the simulated attack is a mode of the built-in guest",
                        vm.record.name
                    )));
                }
                None => {
                    return Err(SiteError::Conflict(format!(
                        "VM {} is powered off: power it on to attack its guest",
                        vm.record.name
                    )));
                }
            }
            vm.record.name.clone()
        };
        self.alarm(
            "simulated_attack",
            Severity::Warning,
            Some(vm_id),
            format!("VM {name}: simulated attack started: its guest overwrites its disks with random data"),
        )
        .await;
        self.vm(vm_id)
    }
}
