//! The step "Discard test copies": each of this plan's test copies
//! removed (another plan's test copy of a VM is left to that plan's
//! cleanup, and said so); anything of this plan left behind is named.

use super::*;

impl Exec {
    pub(super) async fn discard_test_copies(&self, i: usize) {
        let theirs = |id: &str| {
            self.site
                .test_copy_owner(id)
                .filter(|o| !o.allows(&self.plan.id))
        };
        for vm in &self.vms {
            if let Some(other) = theirs(&vm.id) {
                let note = format!("no test copy of this plan; {}'s is left", other.describe());
                self.sub(i, &vm.id, StepState::Skipped, note);
                continue;
            }
            match self.site.discard_test_vm(&vm.id, &self.plan.id).await {
                Ok(()) => self.sub(i, &vm.id, StepState::Done, "test copy removed"),
                Err(e) if self.force => self.sub(
                    i,
                    &vm.id,
                    StepState::Warning,
                    format!("could not remove: {e}"),
                ),
                Err(e) => self.sub(i, &vm.id, StepState::Error, e.to_string()),
            }
        }
        let left: Vec<String> = self
            .site
            .leftover_test_copies()
            .into_iter()
            .filter(|id| self.vms.iter().any(|v| &v.id == id) && theirs(id).is_none())
            .collect();
        self.end_step_by_vms(i);
        if !left.is_empty() {
            self.end_step(
                i,
                if self.force {
                    StepState::Warning
                } else {
                    StepState::Error
                },
                format!("left behind: {}", left.join(", ")),
            );
        }
    }
}
