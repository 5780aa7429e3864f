//! A run's bookkeeping (steps, sub-steps, VMs), prompts and callouts, and
//! the loop that runs the steps and records the end.

use super::error::CalloutError;
use super::*;

/// `HH:MM:SS` UTC of a time in ms since the epoch.
pub(super) fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}Z", s / 3600 % 24, s / 60 % 60, s % 60)
}

impl Exec {
    pub(super) fn run(&self) -> &ActiveRun {
        &self.active
    }

    pub(super) fn cancelled(&self) -> bool {
        self.active.cancel.load(Ordering::Relaxed)
    }

    pub(super) fn live(&self) -> Vec<&VmPlan> {
        let failed = lock(&self.failed);
        self.vms
            .iter()
            .filter(|v| !failed.contains(&v.id))
            .collect()
    }

    pub(super) fn fail_vm(&self, id: &str) {
        lock(&self.failed).insert(id.to_string());
    }

    pub(super) fn start_step(&self, i: usize) {
        self.run().with(|r| {
            r.steps[i].state = StepState::Running;
            r.steps[i].started_ms = Some(now_ms());
        });
    }

    pub(super) fn end_step(&self, i: usize, state: StepState, message: impl Into<String>) {
        let message = message.into();
        self.run().with(|r| {
            let step = &mut r.steps[i];
            step.state = state;
            step.ended_ms = Some(now_ms());
            if !message.is_empty() {
                step.message = message;
            }
        });
    }

    /// Ends a step with the summary of its VMs.
    pub(super) fn end_step_by_vms(&self, i: usize) {
        self.run().with(|r| {
            let step = &mut r.steps[i];
            for sub in step
                .vms
                .iter_mut()
                .filter(|s| s.state == StepState::Pending)
            {
                sub.state = StepState::Skipped;
                sub.message = "skipped: the VM failed an earlier step".into();
            }
            step.state = step.summary();
            step.ended_ms = Some(now_ms());
            let count = |s: StepState| step.vms.iter().filter(|v| v.state == s).count();
            step.message = format!(
                "{} done, {} warning, {} error, {} skipped",
                count(StepState::Done),
                count(StepState::Warning),
                count(StepState::Error),
                count(StepState::Skipped)
            );
        });
    }

    pub(super) fn sub(&self, i: usize, vm: &str, state: StepState, message: impl Into<String>) {
        let message = message.into();
        self.run().with(|r| {
            if let Some(s) = r.steps[i].vms.iter_mut().find(|s| s.vm_id == vm) {
                if state == StepState::Running {
                    s.started_ms = Some(now_ms());
                } else {
                    s.started_ms.get_or_insert(now_ms());
                    s.ended_ms = Some(now_ms());
                }
                s.state = state;
                s.message = message;
            }
            if matches!(state, StepState::Error | StepState::Warning)
                && let Some(v) = r.vm_mut(vm)
                && v.result != StepState::Error
            {
                v.result = state;
            }
        });
        if state == StepState::Error {
            self.fail_vm(vm);
        }
    }

    pub(super) fn vm_record(&self, vm: &str, f: impl FnOnce(&mut RunVm)) {
        self.run().with(|r| {
            if let Some(v) = r.vm_mut(vm) {
                f(v);
            }
        });
    }

    pub(super) fn env(&self, vm: Option<&VmPlan>) -> Vec<(&'static str, String)> {
        let r = self.active.snapshot();
        let mut env = vec![
            ("FERRY_RUN", r.id),
            ("FERRY_PLAN", r.plan_name),
            ("FERRY_MODE", format!("{:?}", self.mode).to_lowercase()),
            ("FERRY_SITE", self.site.name.clone()),
        ];
        if let Some(vm) = vm {
            env.push(("FERRY_VM", vm.name.clone()));
            env.push(("FERRY_VM_ID", vm.id.clone()));
        }
        env
    }

    /// Waits for an operator's acknowledgement (or a cancel).
    pub(super) async fn prompt(&self, step: usize, vm: Option<&VmPlan>, message: &str) -> bool {
        self.run().with(|r| {
            r.state = RunState::Waiting;
            r.steps[step].state = StepState::Waiting;
            r.message = format!("waiting for an operator: {message}");
            r.prompt = Some(PendingPrompt {
                step,
                message: message.to_string(),
                vm_id: vm.map(|v| v.id.clone()),
            });
        });
        loop {
            let acked = self.active.ack.notified();
            if self.cancelled() {
                self.run().with(|r| r.prompt = None);
                return false;
            }
            if lock(&self.active.run).prompt.is_none() {
                break;
            }
            // An ack and a cancel both notify `ack`; this future was made
            // before the checks above, so neither can slip past it.
            acked.await;
        }
        self.run().with(|r| {
            r.state = RunState::Running;
            r.steps[step].state = StepState::Running;
            r.message.clear();
        });
        true
    }

    /// Runs callouts in order; Err is the first failure.
    pub(super) async fn callouts(
        &self,
        step: usize,
        vm: Option<&VmPlan>,
        callouts: &[Callout],
    ) -> Result<String, CalloutError> {
        let mut outputs = Vec::new();
        for callout in callouts {
            match callout {
                Callout::Command {
                    command,
                    timeout_seconds,
                } => {
                    let out = run_command(command, *timeout_seconds, &self.env(vm))
                        .await
                        .map_err(|source| CalloutError::Command {
                            command: command.clone(),
                            source,
                        })?;
                    outputs.push(out);
                }
                Callout::Prompt { message } => {
                    if !self.prompt(step, vm, message).await {
                        return Err(CalloutError::Cancelled);
                    }
                    outputs.push(format!("acknowledged: {message}"));
                }
            }
        }
        Ok(tail(outputs.join("\n").as_bytes()))
    }

    pub(super) async fn execute(self) {
        let mut stopped: Option<String> = None;
        for (i, kind) in self.kinds.clone().into_iter().enumerate() {
            if self.cancelled() {
                stopped = Some(format!(
                    "cancelled before \"{}\"",
                    lock(&self.active.run).steps[i].name
                ));
                break;
            }
            if matches!(kind, Kind::Heartbeats { .. }) {
                continue;
            }
            self.start_step(i);
            if let Err(e) = self.step(i, kind).await {
                stopped = Some(e.to_string());
                break;
            }
            if !lock(&self.active.run).steps[i].is_finished() {
                self.end_step_by_vms(i);
            }
        }
        self.finish(stopped).await;
    }

    pub(super) async fn finish(self, stopped: Option<String>) {
        let cancelled = self.cancelled();
        let promoted = self.promoted.load(Ordering::Relaxed);
        let run = {
            let mut run = self.active.snapshot();
            let r = &mut run;
            for s in r.steps.iter_mut().filter(|s| !s.is_finished()) {
                s.state = StepState::Skipped;
                for v in s.vms.iter_mut().filter(|v| v.state == StepState::Pending) {
                    v.state = StepState::Skipped;
                }
            }
            for v in r.vms.iter_mut().filter(|v| v.result == StepState::Pending) {
                v.result = StepState::Skipped;
            }
            r.compute_rto();
            r.state = if cancelled {
                RunState::Cancelled
            } else if stopped.is_some() {
                RunState::Failed
            } else {
                r.outcome()
            };
            // A run that left VMs of its plan out is no plain success.
            if r.state == RunState::Succeeded && !r.skipped.is_empty() {
                r.state = RunState::SucceededWithWarnings;
            }
            r.ended_ms = Some(now_ms());
            r.prompt = None;
            r.message = match (&stopped, r.state) {
                (Some(why), _) => why.clone(),
                (None, RunState::Succeeded) => format!("{} complete", r.mode.label()),
                (None, state) => {
                    let first = r
                        .steps
                        .iter()
                        .find(|s| matches!(s.state, StepState::Error | StepState::Warning))
                        .map(|s| format!(": first at \"{}\": {}", s.name, s.message))
                        .unwrap_or_default();
                    format!("{} {}{first}", r.mode.label(), state.label())
                }
            };
            if !r.skipped.is_empty() {
                let mut why: Vec<&str> = r.skipped.iter().map(|v| v.why.as_str()).collect();
                why.dedup();
                r.message = format!(
                    "{}; {} of the plan's {} VMs skipped: {}",
                    r.message,
                    r.skipped.len(),
                    r.skipped.len() + r.vms.len(),
                    why.join("; ")
                );
            }
            run
        };
        let mut plan_state = plan_state_after(self.mode, run.state, promoted);
        let handed_over = self.mode == RunMode::Reprotect
            && run.steps.last().is_some_and(|s| s.state == StepState::Done);
        if self.mode == RunMode::Reprotect && !handed_over {
            plan_state = PlanState::Interrupted;
        }
        let site = self.site.clone();
        if let Err(e) = site
            .end_run(&run, &self.plan, plan_state, handed_over)
            .await
        {
            warn!(run = %run.id, "recording the end of the run failed: {e}");
        }
        self.active.changed.notify_one();
        let severity = match run.state {
            RunState::Succeeded => Severity::Info,
            RunState::SucceededWithWarnings | RunState::Cancelled => Severity::Warning,
            _ => Severity::Critical,
        };
        site.alarm(
            "run_finished",
            severity,
            None,
            format!(
                "{} of plan {:?}: {}",
                run.mode.label(),
                run.plan_name,
                run.message
            ),
        )
        .await;
        info!(run = %run.id, state = ?run.state, "run finished");
    }
}
