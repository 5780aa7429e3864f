//! A run's record and how it changes: steps and per-VM sub-steps with
//! their states and times, the run's end state, RTO and data loss, and the
//! plan state a run leaves behind. Pure: the executor in `site::runs` does
//! the work and records it here.

use crate::model::{PlanState, Run, RunMode, RunState, RunVm, Step, StepState, SubStep};

impl Step {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: StepState::Pending,
            started_ms: None,
            ended_ms: None,
            message: String::new(),
            output: None,
            vms: Vec::new(),
        }
    }

    /// A step with one pending sub-step per VM.
    pub fn per_vm(name: impl Into<String>, vms: &[(String, String)]) -> Self {
        Self {
            vms: vms
                .iter()
                .map(|(id, name)| SubStep {
                    vm_id: id.clone(),
                    vm: name.clone(),
                    state: StepState::Pending,
                    started_ms: None,
                    ended_ms: None,
                    message: String::new(),
                })
                .collect(),
            ..Self::new(name)
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(
            self.state,
            StepState::Pending | StepState::Running | StepState::Waiting
        )
    }

    /// The state a step ends in from its sub-steps: error if any failed,
    /// warning if any warned, else done.
    pub fn summary(&self) -> StepState {
        if !self.vms.is_empty() && self.vms.iter().all(|v| v.state == StepState::Skipped) {
            StepState::Skipped
        } else if self.vms.iter().any(|v| v.state == StepState::Error) {
            StepState::Error
        } else if self.vms.iter().any(|v| v.state == StepState::Warning) {
            StepState::Warning
        } else {
            StepState::Done
        }
    }
}

impl Run {
    /// How the run ended, from its steps (when not cancelled or stopped).
    pub fn outcome(&self) -> RunState {
        if self.steps.iter().any(|s| s.state == StepState::Error)
            || self.vms.iter().any(|v| v.result == StepState::Error)
        {
            RunState::Failed
        } else if self.steps.iter().any(|s| s.state == StepState::Warning)
            || self.vms.iter().any(|v| v.result == StepState::Warning)
        {
            RunState::SucceededWithWarnings
        } else {
            RunState::Succeeded
        }
    }

    /// RTO: from the start to the last recovered VM's heartbeat.
    pub fn compute_rto(&mut self) {
        self.rto_seconds = self
            .vms
            .iter()
            .filter_map(|v| v.heartbeat_ms)
            .max()
            .map(|last| last.saturating_sub(self.started_ms) as f64 / 1000.0);
    }

    pub fn vm_mut(&mut self, vm_id: &str) -> Option<&mut RunVm> {
        self.vms.iter_mut().find(|v| v.vm_id == vm_id)
    }
}

impl RunVm {
    /// Data loss: the protected copy's last write minus the newest record
    /// the recovered guest verified (zero when nothing was lost). A guest
    /// that verified no record at all lost everything written since the
    /// recovered instance's consistency point.
    pub fn compute_data_loss(&mut self) {
        let kept = self.last_verified_ms.or(self.point_time_ms);
        self.data_loss_seconds = match (self.last_write_ms, kept) {
            (Some(write), Some(verified)) => Some(write.saturating_sub(verified) as f64 / 1000.0),
            (None, Some(_)) => Some(0.0),
            _ => None,
        };
    }
}

/// The plan state a finished run leaves. `promoted` says whether any VM was
/// made writable at the recovery site (after which going back is not
/// "nothing happened").
pub fn plan_state_after(mode: RunMode, state: RunState, promoted: bool) -> PlanState {
    let ok = matches!(state, RunState::Succeeded | RunState::SucceededWithWarnings);
    match mode {
        // Test VMs may exist whatever happened: cleanup is next.
        RunMode::Test => PlanState::TestComplete,
        RunMode::Cleanup if ok => PlanState::Ready,
        RunMode::Cleanup => PlanState::TestComplete,
        RunMode::PlannedMigration | RunMode::DisasterRecovery if ok => PlanState::RecoveryComplete,
        RunMode::PlannedMigration | RunMode::DisasterRecovery if promoted => PlanState::Interrupted,
        RunMode::PlannedMigration | RunMode::DisasterRecovery => PlanState::Ready,
        // A reprotect that succeeded hands the plan to the peer as `ready`.
        RunMode::Reprotect if ok => PlanState::Ready,
        RunMode::Reprotect => PlanState::Interrupted,
    }
}

/// The plan state while a run of `mode` is in progress.
pub fn plan_state_during(mode: RunMode) -> PlanState {
    match mode {
        RunMode::Test => PlanState::TestInProgress,
        RunMode::Cleanup => PlanState::CleanupInProgress,
        RunMode::PlannedMigration | RunMode::DisasterRecovery => PlanState::RecoveryInProgress,
        RunMode::Reprotect => PlanState::ReprotectInProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_sums_up_its_vms() {
        let mut step = Step::per_vm(
            "x",
            &[("a.1".into(), "1".into()), ("a.2".into(), "2".into())],
        );
        step.vms[0].state = StepState::Done;
        step.vms[1].state = StepState::Warning;
        assert_eq!(step.summary(), StepState::Warning);
        step.vms[1].state = StepState::Error;
        assert_eq!(step.summary(), StepState::Error);
    }

    #[test]
    fn plan_states_after_runs() {
        use RunMode::*;
        assert_eq!(
            plan_state_after(Test, RunState::Failed, false),
            PlanState::TestComplete
        );
        assert_eq!(
            plan_state_after(Cleanup, RunState::Succeeded, false),
            PlanState::Ready
        );
        assert_eq!(
            plan_state_after(PlannedMigration, RunState::Failed, false),
            PlanState::Ready
        );
        assert_eq!(
            plan_state_after(DisasterRecovery, RunState::Cancelled, true),
            PlanState::Interrupted
        );
        assert_eq!(
            plan_state_after(DisasterRecovery, RunState::SucceededWithWarnings, true),
            PlanState::RecoveryComplete
        );
    }

    #[test]
    fn data_loss_is_last_write_minus_last_verified() {
        let mut vm = RunVm {
            vm_id: "a.1".into(),
            vm: "1".into(),
            priority: 3,
            rpo_seconds: Some(15),
            point_time_ms: None,
            last_write_ms: Some(10_500),
            last_verified_ms: Some(4_000),
            data_loss_seconds: None,
            verified: Some(true),
            heartbeat_ms: None,
            result: StepState::Done,
            message: String::new(),
            instance: None,
            newest_point_ms: None,
            retention: None,
        };
        vm.compute_data_loss();
        assert_eq!(vm.data_loss_seconds, Some(6.5));
        vm.last_verified_ms = Some(11_000);
        vm.compute_data_loss();
        assert_eq!(vm.data_loss_seconds, Some(0.0));
        vm.last_verified_ms = None;
        vm.point_time_ms = Some(9_000);
        vm.compute_data_loss();
        assert_eq!(vm.data_loss_seconds, Some(1.5));
    }
}
