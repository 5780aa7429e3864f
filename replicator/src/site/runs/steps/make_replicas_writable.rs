//! The step "Make replicas writable": each replica promoted into a VM of this
//! site; a test copy of the VM still present is named in the report.

use super::*;

impl Exec {
    pub(super) async fn make_replicas_writable(&self, i: usize) {
        for vm in self.live() {
            let (Some(info), Some(placeholder)) = (&vm.info, &vm.placeholder) else {
                self.sub(
                    i,
                    &vm.id,
                    StepState::Error,
                    "no placeholder: check the group's mappings",
                );
                continue;
            };
            self.sub(i, &vm.id, StepState::Running, "promoting the replica");
            let nics = self.addresses(vm, false);
            match self
                .site
                .promote(info, &placeholder.folder, &placeholder.resource_pool, nics)
                .await
            {
                Ok(point) => {
                    self.promoted.store(true, Ordering::Relaxed);
                    if let Some(point) = point {
                        self.vm_record(&vm.id, |v| v.point_time_ms = Some(point));
                    }
                    let done = match point {
                        Some(p) => format!(
                            "writable at {} from the instance of {}",
                            placeholder.datastore,
                            clock(p)
                        ),
                        None => "already promoted by an earlier run".into(),
                    };
                    // A test of the VM still running here is not this run's
                    // to stop: the report says so, for its cleanup.
                    match self.site.test_copy_owner(&vm.id) {
                        Some(test) => self.sub(
                            i,
                            &vm.id,
                            StepState::Warning,
                            format!(
                                "{done}; a test copy from {} is still here: clean it up",
                                test.describe()
                            ),
                        ),
                        None => self.sub(i, &vm.id, StepState::Done, done),
                    }
                }
                Err(e) => self.sub(i, &vm.id, StepState::Error, e.to_string()),
            }
        }
        self.end_step_by_vms(i);
    }
}
