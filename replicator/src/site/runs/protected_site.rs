//! What a run asks of the protected site: synchronize, shut down, and
//! how its failures count in each mode.

use super::error::StopRun;
use super::*;
use crate::site::control::PeerCallError;

impl Exec {
    /// Marks the live VMs running in step `i` and asks the protected site
    /// to do `call` to them.
    pub(super) async fn ask_protected_site(
        &self,
        i: usize,
        doing: &str,
        call: impl FnOnce(Vec<String>) -> ControlCall,
        timeout: Duration,
    ) -> Result<Vec<VmOutcome>, PeerCallError> {
        let ids: Vec<String> = self.live().iter().map(|v| v.id.clone()).collect();
        for id in &ids {
            self.sub(i, id, StepState::Running, doing);
        }
        self.call_peer(call(ids), timeout).await
    }

    pub(super) async fn call_peer(
        &self,
        call: ControlCall,
        timeout: Duration,
    ) -> Result<Vec<VmOutcome>, PeerCallError> {
        match self.site.call_peer(&call, timeout).await? {
            ControlReply::Vms { vms } => Ok(vms),
            ControlReply::Done => Ok(Vec::new()),
            other => Err(PeerCallError::Unexpected(Box::new(other))),
        }
    }

    /// A protected-site failure: stops a planned migration; a warning for a
    /// disaster recovery (the site may be gone).
    pub(super) fn protected_site_failure(&self) -> StepState {
        if self.mode == RunMode::DisasterRecovery {
            StepState::Warning
        } else {
            StepState::Error
        }
    }

    pub(super) async fn sync(&self, i: usize, last: bool) -> Result<(), StopRun> {
        let call = |vm_ids| ControlCall::Sync {
            vm_ids,
            timeout_seconds: SYNC_TIMEOUT.as_secs(),
        };
        let timeout = SYNC_TIMEOUT + Duration::from_secs(5);
        match self
            .ask_protected_site(i, "synchronizing", call, timeout)
            .await
        {
            Ok(outcomes) => {
                for o in outcomes {
                    match (o.point_time_ms, o.error) {
                        (Some(point), _) => {
                            if last {
                                self.vm_record(&o.vm_id, |v| v.point_time_ms = Some(point));
                            }
                            self.sub(
                                i,
                                &o.vm_id,
                                StepState::Done,
                                format!(
                                    "instance of {} complete at {}",
                                    clock(point),
                                    self.site.name
                                ),
                            );
                        }
                        (None, Some(e)) => {
                            let state = if self.mode == RunMode::Test {
                                StepState::Warning
                            } else {
                                self.protected_site_failure()
                            };
                            self.sub(i, &o.vm_id, state, e);
                        }
                        (None, None) => {}
                    }
                }
                self.end_step_by_vms(i);
                self.stop_migration_on_error(i, "the protected site could not synchronize")
            }
            Err(e) => self.peer_down(i, e),
        }
    }

    /// A planned migration stops at a protected-site error, before anything
    /// changes at the recovery site: nothing may be lost.
    pub(super) fn stop_migration_on_error(
        &self,
        i: usize,
        why: &'static str,
    ) -> Result<(), StopRun> {
        if self.mode == RunMode::PlannedMigration
            && lock(&self.active.run).steps[i].state == StepState::Error
        {
            return Err(StopRun::MigrationStopped { why });
        }
        Ok(())
    }

    /// The protected site did not answer at all.
    pub(super) fn peer_down(&self, i: usize, e: PeerCallError) -> Result<(), StopRun> {
        let state = match self.mode {
            RunMode::Test | RunMode::DisasterRecovery => StepState::Warning,
            _ => StepState::Error,
        };
        self.run().with(|r| {
            for s in r.steps[i].vms.iter_mut() {
                s.state = StepState::Skipped;
            }
        });
        let down = StopRun::PeerDown {
            site: self.plan.protected_site.clone(),
            source: e,
        };
        if state == StepState::Error {
            self.end_step(i, state, down.to_string());
            Err(down)
        } else {
            self.end_step(i, state, format!("{down}; skipped"));
            Ok(())
        }
    }

    pub(super) async fn shut_down(&self, i: usize) -> Result<(), StopRun> {
        let run = Some(lock(&self.active.run).id.clone());
        let call = move |vm_ids| ControlCall::ShutDown { vm_ids, run };
        match self
            .ask_protected_site(i, "shutting down", call, CALL_TIMEOUT)
            .await
        {
            Ok(outcomes) => {
                for o in outcomes {
                    match o.error {
                        None => {
                            self.vm_record(&o.vm_id, |v| {
                                if o.last_write_ms.is_some() {
                                    v.last_write_ms = o.last_write_ms;
                                }
                            });
                            self.sub(i, &o.vm_id, StepState::Done, "shut down cleanly");
                        }
                        Some(e) => self.sub(i, &o.vm_id, self.protected_site_failure(), e),
                    }
                }
                self.end_step_by_vms(i);
                self.stop_migration_on_error(i, "a protected VM could not be shut down")
            }
            Err(e) => self.peer_down(i, e),
        }
    }
}
