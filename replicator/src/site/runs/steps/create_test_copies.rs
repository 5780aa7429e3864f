//! The step "Create test copies of the replicas": each live VM's newest
//! complete instance copied for a test.

use super::*;
use crate::site::test_copy_owner::TestCopyOwner;

impl Exec {
    pub(super) async fn create_test_copies(&self, i: usize) {
        let owner = TestCopyOwner {
            run_id: self.run().snapshot().id,
            plan_id: self.plan.id.clone(),
            plan_name: self.plan.spec.name.clone(),
        };
        for vm in self.live() {
            self.sub(
                i,
                &vm.id,
                StepState::Running,
                "copying the newest complete instance",
            );
            match self.site.create_test_copy(&vm.id, &owner).await {
                Ok(point) => {
                    self.vm_record(&vm.id, |v| v.point_time_ms = Some(point));
                    self.sub(
                        i,
                        &vm.id,
                        StepState::Done,
                        format!("instance of {}", clock(point)),
                    );
                }
                Err(e) => self.sub(i, &vm.id, StepState::Error, e.to_string()),
            }
        }
        self.end_step_by_vms(i);
    }
}
