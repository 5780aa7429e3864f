//! The step "Create test copies of the replicas": each live VM's newest
//! complete instance copied for a test.

use super::*;

impl Exec {
    pub(super) async fn create_test_copies(&self, i: usize) {
        for vm in self.live() {
            self.sub(
                i,
                &vm.id,
                StepState::Running,
                "copying the newest complete instance",
            );
            match self.site.create_test_copy(&vm.id).await {
                Ok(point) => {
                    self.vm_record(&vm.id, |v| v.point_time_ms = Some(point));
                    self.sub(
                        i,
                        &vm.id,
                        StepState::Done,
                        format!("instance of {}", clock(point)),
                    );
                }
                Err(e) => self.sub(i, &vm.id, StepState::Error, e),
            }
        }
        self.end_step_by_vms(i);
    }
}
