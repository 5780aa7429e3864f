//! The step "Discard test copies": each test copy removed; anything left
//! behind is named.

use super::*;

impl Exec {
    pub(super) async fn discard_test_copies(&self, i: usize) {
        for vm in &self.vms {
            match self.site.discard_test_vm(&vm.id).await {
                Ok(()) => self.sub(i, &vm.id, StepState::Done, "test copy removed"),
                Err(e) if self.force => self.sub(
                    i,
                    &vm.id,
                    StepState::Warning,
                    format!("could not remove: {e}"),
                ),
                Err(e) => self.sub(i, &vm.id, StepState::Error, e),
            }
        }
        let left: Vec<String> = self
            .site
            .leftover_test_copies()
            .into_iter()
            .filter(|id| self.vms.iter().any(|v| &v.id == id))
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
