//! The step "Turn the disks at <protected> into seeds": the protected site
//! stops replicating and keeps its disks as the seed of the way back.

use super::*;
use crate::site::runs::error::StopRun;

impl Exec {
    pub(super) async fn turn_disks_into_seeds(&self, i: usize) -> Result<(), StopRun> {
        let run = Some(lock(&self.active.run).id.clone());
        let demote = move |vm_ids| ControlCall::Demote { vm_ids, run };
        let doing = "stopping replication, turning the disks into a seed";
        match self
            .ask_protected_site(i, doing, demote, CALL_TIMEOUT)
            .await
        {
            Ok(outcomes) => {
                for o in outcomes {
                    match o.error {
                        None => {
                            self.vm_record(&o.vm_id, |v| {
                                v.message = o.datastore.clone().unwrap_or_default()
                            });
                            self.sub(
                                i,
                                &o.vm_id,
                                StepState::Done,
                                format!(
                                    "seed in {} at {}",
                                    o.datastore.unwrap_or_default(),
                                    self.plan.protected_site
                                ),
                            );
                        }
                        Some(e) => self.sub(i, &o.vm_id, StepState::Error, e),
                    }
                }
                self.end_step_by_vms(i);
                Ok(())
            }
            Err(e) => {
                self.end_step(
                    i,
                    StepState::Error,
                    format!("site {} did not answer: {e}", self.plan.protected_site),
                );
                Err(e.into())
            }
        }
    }
}
