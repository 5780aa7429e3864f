//! Following a run from a script: one progress line per step (and per VM
//! of a step) as its state changes, for stderr, and the final report (RTO,
//! per-VM data loss against the RPO, verification) for stdout; the exit
//! code says whether the run did what the script asked.

use ferry_api::types::{Run, RunState, StepState};

use crate::model::runs::{duration_text, elapsed_ms, loss_text, run_look, step_look};

/// What has been reported of a run so far, so each change is told once.
#[derive(Debug, Default)]
pub struct Follower {
    /// The state last told of each step, and of each of its VMs.
    steps: Vec<(StepState, Vec<StepState>)>,
    prompt: Option<String>,
}

impl Follower {
    /// Lines for what changed since the last call.
    pub fn lines(&mut self, run: &Run) -> Vec<String> {
        let mut out = Vec::new();
        for (i, step) in run.steps.iter().enumerate() {
            if self.steps.len() <= i {
                self.steps.push((StepState::Pending, Vec::new()));
            }
            let told = &mut self.steps[i];
            for (j, vm) in step.vms.iter().enumerate() {
                if told.1.len() <= j {
                    told.1.push(StepState::Pending);
                }
                // Per VM only what needs a reader's eye: the step's line
                // says how many went well.
                let worth_a_line = matches!(
                    vm.state,
                    StepState::Warning | StepState::Error | StepState::Skipped | StepState::Waiting
                );
                if told.1[j] != vm.state && worth_a_line {
                    told.1[j] = vm.state;
                    let (symbol, word, _) = step_look(vm.state);
                    out.push(format!(
                        "  {symbol} {word} {} — {}{}",
                        step.name,
                        vm.vm,
                        said(&vm.message)
                    ));
                }
            }
            if told.0 != step.state && is_news(step.state) {
                told.0 = step.state;
                let (symbol, word, _) = step_look(step.state);
                let took = step
                    .ended_ms
                    .and(elapsed_ms(step.started_ms, step.ended_ms, 0))
                    .map(|ms| format!(" ({})", duration_text(ms)))
                    .unwrap_or_default();
                out.push(format!(
                    "[{}/{}] {symbol} {word} {}{took}{}",
                    i + 1,
                    run.steps.len(),
                    step.name,
                    said(&step.message)
                ));
            }
        }
        let prompt = run.prompt.as_ref().map(|p| p.message.clone());
        if prompt != self.prompt {
            if let Some(message) = &prompt {
                out.push(format!(
                    "⏸ waiting for an operator: “{message}” — acknowledge in the TUI or with `ferry run ack {}`",
                    run.id
                ));
            }
            self.prompt = prompt;
        }
        out
    }
}

/// Pending is where every step starts: not worth a line.
fn is_news(state: StepState) -> bool {
    state != StepState::Pending
}

/// `: message` on one line (callout output may run over several).
fn said(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

/// How a finished run answers the script that waited for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded, and no VM lost more than its RPO.
    Good,
    /// Why not, in a sentence.
    Bad(String),
}

pub fn outcome(run: &Run) -> Outcome {
    match run.state {
        RunState::Succeeded | RunState::SucceededWithWarnings => {}
        RunState::Running | RunState::Waiting => {
            return Outcome::Bad(format!("run {} is still {}", run.id, run_look(run.state).1));
        }
        state => {
            return Outcome::Bad(format!(
                "the {} of plan {} {}{}",
                run.mode.label(),
                run.plan_name,
                run_look(state).1,
                said(&run.message)
            ));
        }
    }
    let over: Vec<String> = run
        .vms
        .iter()
        .filter(|v| match (v.data_loss_seconds, v.rpo_seconds) {
            (Some(loss), Some(rpo)) => loss > rpo as f64,
            _ => false,
        })
        .map(|v| format!("{} lost {}", v.vm, loss_text(v)))
        .collect();
    if over.is_empty() {
        Outcome::Good
    } else {
        Outcome::Bad(format!("data loss past the RPO: {}", over.join(", ")))
    }
}

/// The final report, for stdout.
pub fn report(run: &Run) -> String {
    let (symbol, word, _) = run_look(run.state);
    let mut out = format!(
        "{symbol} {} of plan {} {word} at {} in {}{}\n",
        run.mode.label(),
        run.plan_name,
        run.recovery_site,
        elapsed_ms(Some(run.started_ms), run.ended_ms, run.started_ms)
            .map_or("—".into(), duration_text),
        said(&run.message),
    );
    out.push_str(&format!(
        "RTO {}\n",
        run.rto_seconds
            .map_or("— (no VM was powered on)".into(), |r| format!("{r:.1} s"))
    ));
    let rows: Vec<Vec<String>> = run
        .vms
        .iter()
        .map(|v| {
            let (symbol, word, _) = step_look(v.result);
            let over =
                matches!((v.data_loss_seconds, v.rpo_seconds), (Some(l), Some(r)) if l > r as f64);
            vec![
                v.vm.clone(),
                v.priority.to_string(),
                format!("{symbol} {word}"),
                format!("{}{}", loss_text(v), if over { " ✖ past RPO" } else { "" }),
                match v.verified {
                    Some(true) => "✔ yes".into(),
                    Some(false) => "✖ NO".into(),
                    None => "—".into(),
                },
                v.message.clone(),
            ]
        })
        .collect();
    out.push_str(&super::table::render(
        &[
            "VM",
            "Priority",
            "Result",
            "Data loss",
            "Verified",
            "Message",
        ],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::runs::fixture;

    #[test]
    fn each_change_is_told_once() {
        let mut run = fixture::finished();
        let mut follower = Follower::default();
        let first = follower.lines(&run);
        assert!(first.iter().any(|l| l.starts_with("[1/")), "{first:#?}");
        assert!(follower.lines(&run).is_empty(), "nothing new, nothing said");
        run.steps[0].state = StepState::Error;
        let again = follower.lines(&run);
        assert_eq!(again.len(), 1, "{again:#?}");
        assert!(again[0].contains("✖ error"), "{again:#?}");
        run.steps[0].vms[0].state = StepState::Done;
        assert!(
            follower.lines(&run).is_empty(),
            "a VM that went well is told by its step"
        );
        run.steps[0].vms[0].state = StepState::Error;
        run.steps[0].vms[0].message = "no\nheartbeat".into();
        assert_eq!(
            follower.lines(&run),
            vec![format!(
                "  ✖ error {} — {}: no heartbeat",
                run.steps[0].name, run.steps[0].vms[0].vm
            )]
        );
    }

    #[test]
    fn a_failed_run_or_a_loss_past_the_rpo_is_bad() {
        let mut run = fixture::finished();
        run.state = RunState::Succeeded;
        for v in &mut run.vms {
            v.data_loss_seconds = Some(1.0);
            v.rpo_seconds = Some(15);
        }
        assert_eq!(outcome(&run), Outcome::Good);
        run.vms[0].data_loss_seconds = Some(20.0);
        let Outcome::Bad(why) = outcome(&run) else {
            panic!("a loss past the RPO passed");
        };
        assert!(
            why.starts_with("data loss past the RPO: db-01 lost 20.0 s of 15 s RPO"),
            "{why}"
        );
        run.state = RunState::Failed;
        run.message = "callout exited 3".into();
        assert_eq!(
            outcome(&run),
            Outcome::Bad(format!(
                "the {} of plan {} failed: callout exited 3",
                run.mode.label(),
                run.plan_name
            ))
        );
        assert!(report(&run).contains("✖ past RPO"));
    }
}
