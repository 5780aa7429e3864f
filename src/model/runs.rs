//! Recovery runs as the TUI shows them: every site's runs merged once by
//! id (the executing site's copy wins), newest first, and the words and
//! symbols each state reads as.

use ferry_api::types::{Run, RunState, RunVm, StepState};

use super::Model;

/// A run and the index of the site that holds it: cancel and acknowledge
/// go there, even after a reprotect moved its plan to the other site.
#[derive(Debug, Clone, Copy)]
pub struct RunEntry<'a> {
    pub site: usize,
    pub run: &'a Run,
}

impl Model {
    /// Every run once, newest first.
    pub fn runs(&self) -> Vec<RunEntry<'_>> {
        let mut by_id: std::collections::BTreeMap<&str, RunEntry<'_>> = Default::default();
        for (site, s) in self.sites.iter().enumerate() {
            for run in s.protection.runs.values() {
                let entry = RunEntry { site, run };
                let executes = s.name == run.recovery_site;
                by_id
                    .entry(run.id.as_str())
                    .and_modify(|e| {
                        if executes {
                            *e = entry;
                        }
                    })
                    .or_insert(entry);
            }
        }
        let mut runs: Vec<RunEntry<'_>> = by_id.into_values().collect();
        runs.sort_by(|a, b| {
            b.run
                .started_ms
                .cmp(&a.run.started_ms)
                .then_with(|| b.run.id.cmp(&a.run.id))
        });
        runs
    }

    pub fn run(&self, id: &str) -> Option<RunEntry<'_>> {
        self.runs().into_iter().find(|e| e.run.id == id)
    }

    /// The run of plan `plan_id` still going, else its newest.
    pub fn plan_run(&self, plan_id: &str) -> Option<RunEntry<'_>> {
        let runs: Vec<RunEntry<'_>> = self
            .runs()
            .into_iter()
            .filter(|e| e.run.plan_id == plan_id)
            .collect();
        runs.iter()
            .find(|e| !e.run.state.is_finished())
            .or(runs.first())
            .copied()
    }

    /// A run a site answered with, before its event arrives.
    pub fn saved_run(&mut self, site: usize, run: Run) {
        if let Some(s) = self.sites.get_mut(site) {
            s.protection.runs.insert(run.id.clone(), run);
        }
    }
}

/// Steps finished (whatever their outcome) and all steps.
pub fn progress(run: &Run) -> (usize, usize) {
    let done = run
        .steps
        .iter()
        .filter(|s| {
            !matches!(
                s.state,
                StepState::Pending | StepState::Running | StepState::Waiting
            )
        })
        .count();
    (done, run.steps.len())
}

/// The VM that lost the most data for its RPO, when any loss is known.
pub fn worst_loss(run: &Run) -> Option<&RunVm> {
    let ratio = |v: &RunVm| {
        let loss = v.data_loss_seconds.unwrap_or(0.0);
        v.rpo_seconds.map_or(loss, |rpo| loss / rpo.max(1) as f64)
    };
    run.vms
        .iter()
        .filter(|v| v.data_loss_seconds.is_some())
        .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
}

/// The worst loss of a run in words: `—` while unknown, `none` when no
/// VM lost anything, else `12.3 s of 15 s RPO (db-01)`.
pub fn worst_loss_text(run: &Run) -> String {
    match worst_loss(run) {
        None => "—".into(),
        Some(v) if v.data_loss_seconds.unwrap_or(0.0) <= 0.0 => "none".into(),
        Some(v) => format!("{} ({})", loss_text(v), v.vm),
    }
}

/// `0.4s` under ten seconds, then `45s`, `12m03s`.
pub fn duration_text(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        crate::ui::age(ms as f64 / 1000.0)
    }
}

/// `12.3 s of 15 s RPO`, `0 s`.
pub fn loss_text(vm: &RunVm) -> String {
    let loss = vm
        .data_loss_seconds
        .map_or("—".to_string(), |l| format!("{l:.1} s"));
    match vm.rpo_seconds {
        Some(rpo) if vm.data_loss_seconds.is_some() => format!("{loss} of {rpo} s RPO"),
        _ => loss,
    }
}

/// Symbol, word and theme role of a step (or sub-step, or VM result).
pub fn step_look(state: StepState) -> (&'static str, &'static str, &'static str) {
    match state {
        StepState::Pending => ("·", "pending", "dim"),
        StepState::Running => ("⟳", "running", "accent"),
        StepState::Waiting => ("⏸", "waiting", "warn"),
        StepState::Done => ("✔", "done", "ok"),
        StepState::Warning => ("▲", "warning", "warn"),
        StepState::Error => ("✖", "error", "crit"),
        StepState::Skipped => ("↷", "skipped", "dim"),
    }
}

/// Symbol, word and theme role of a step or sub-step as it stands in `run`:
/// once the run has ended nothing is still running, so a step the run left
/// running or waiting reads `unknown` (its outcome was never reported) and
/// one it never reached reads `not run`.
pub fn step_look_in(run: &Run, state: StepState) -> (&'static str, &'static str, &'static str) {
    if !run.state.is_finished() {
        return step_look(state);
    }
    match state {
        StepState::Running | StepState::Waiting => ("?", "unknown", "warn"),
        StepState::Pending => ("·", "not run", "dim"),
        other => step_look(other),
    }
}

/// How long a step or sub-step of `run` took, or has taken so far: only a
/// step that is running or waiting in a live run grows; one that did not
/// run (pending, skipped) has no time unless the site gave it both ends,
/// and one left open by an ended run stops at the run's end.
pub fn step_elapsed_ms(
    run: &Run,
    state: StepState,
    started: Option<u64>,
    ended: Option<u64>,
    now_ms: u64,
) -> Option<u64> {
    let started = started?;
    let end = match (ended, state) {
        (Some(ended), _) => ended,
        (None, StepState::Running | StepState::Waiting) if !run.state.is_finished() => now_ms,
        (None, StepState::Running | StepState::Waiting) => run.ended_ms?,
        (None, _) => return None,
    };
    Some(end.saturating_sub(started))
}

/// Symbol, word and theme role of a run as a whole.
pub fn run_look(state: RunState) -> (&'static str, &'static str, &'static str) {
    match state {
        RunState::Running => ("⟳", "running", "accent"),
        RunState::Waiting => ("⏸", "waiting", "warn"),
        RunState::Succeeded => ("✔", "succeeded", "ok"),
        RunState::SucceededWithWarnings => ("▲", "succeeded with warnings", "warn"),
        RunState::Failed => ("✖", "failed", "crit"),
        RunState::Cancelled => ("■", "cancelled", "warn"),
        RunState::Interrupted => ("✖", "interrupted", "crit"),
    }
}

/// How long a step, sub-step or run took, or has taken so far.
pub fn elapsed_ms(started: Option<u64>, ended: Option<u64>, now_ms: u64) -> Option<u64> {
    let started = started?;
    Some(ended.unwrap_or(now_ms).saturating_sub(started))
}

#[cfg(test)]
pub mod fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_step_shows_no_growing_time() {
        let run = fixture::waiting();
        // A skipped step with a start and no end, as the site reports one.
        let at = run.started_ms + 3_700;
        let shown = |now| step_elapsed_ms(&run, StepState::Skipped, Some(at), None, now);
        assert_eq!(shown(at + 1_000), None);
        assert_eq!(shown(at + 60_000), None);
        // A running step of the live run does grow.
        let running = |now| step_elapsed_ms(&run, StepState::Running, Some(at), None, now);
        assert_eq!(running(at + 2_000), Some(2_000));
        assert_eq!(running(at + 5_000), Some(5_000));
    }

    #[test]
    fn an_ended_run_has_nothing_running() {
        let mut run = fixture::waiting();
        run.state = RunState::Failed;
        run.ended_ms = Some(run.started_ms + 100_000);
        for state in [StepState::Running, StepState::Waiting, StepState::Pending] {
            let (_, word, _) = step_look_in(&run, state);
            assert_ne!(word, "running");
            assert_ne!(word, "waiting");
            assert_ne!(word, "pending");
        }
        assert_eq!(step_look_in(&run, StepState::Running).1, "unknown");
        assert_eq!(step_look_in(&run, StepState::Done).1, "done");
        // A sub-step left open stops at the run's end, however late it is now.
        let started = Some(run.started_ms + 90_000);
        let now = run.started_ms + 10_000_000;
        assert_eq!(
            step_elapsed_ms(&run, StepState::Running, started, None, now),
            Some(10_000)
        );
    }
}
