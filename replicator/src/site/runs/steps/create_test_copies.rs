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
            // An instance chosen at the start, else the newest.
            let chosen = lock(&self.active.run)
                .vms
                .iter()
                .find(|v| v.vm_id == vm.id)
                .and_then(|v| v.instance.as_deref()?.parse::<u64>().ok());
            let doing = match chosen {
                Some(k) => format!("rebuilding kept instance {k} from the replica's history"),
                None => "copying the newest complete instance".into(),
            };
            self.sub(i, &vm.id, StepState::Running, doing);
            match self.site.create_test_copy(&vm.id, &owner, chosen).await {
                Ok(point) => {
                    self.vm_record(&vm.id, |v| v.point_time_ms = Some(point));
                    let done = match chosen {
                        Some(k) => format!("instance {k}, of {}", clock(point)),
                        None => format!("instance of {}", clock(point)),
                    };
                    self.sub(i, &vm.id, StepState::Done, done);
                }
                Err(e) => self.sub(i, &vm.id, StepState::Error, e.to_string()),
            }
        }
        self.end_step_by_vms(i);
    }
}
