//! The steps "Priority N: pre power-on callouts" and "Priority N: post
//! power-on callouts": each VM's own callouts.

use super::*;

impl Exec {
    pub(super) async fn vm_callouts(&self, i: usize, priority: u8, post: bool) {
        let vms: Vec<&VmPlan> = self
            .live()
            .into_iter()
            .filter(|v| v.settings.priority == priority)
            .collect();
        for vm in vms {
            let callouts = if post {
                &vm.settings.post_power_on
            } else {
                &vm.settings.pre_power_on
            };
            if callouts.is_empty() {
                continue;
            }
            self.sub(i, &vm.id, StepState::Running, "running");
            match self.callouts(i, Some(vm), callouts).await {
                Ok(out) => self.sub(i, &vm.id, StepState::Done, out),
                Err(e) => self.sub(i, &vm.id, StepState::Error, e.to_string()),
            }
        }
        self.run().with(|r| {
            for s in r.steps[i]
                .vms
                .iter_mut()
                .filter(|s| s.state == StepState::Pending)
            {
                s.state = StepState::Skipped;
            }
        });
        self.end_step_by_vms(i);
    }
}
