//! The step "Power off test VMs": the cleanup's first step.

use super::*;

impl Exec {
    pub(super) async fn power_off_test_vms(&self, i: usize) {
        for vm in &self.vms {
            let was_on = self.site.power_off_test_vm(&vm.id, &self.plan.id).await;
            self.sub(
                i,
                &vm.id,
                StepState::Done,
                if was_on {
                    "powered off"
                } else {
                    "was not running"
                },
            );
        }
        self.end_step_by_vms(i);
    }
}
