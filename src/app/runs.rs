//! Running recovery plans from the TUI: starting a run from the plans view
//! (a real failover or a reprotect only once the plan's name is typed),
//! cancelling it, answering its prompts, the run view that follows it, the
//! history view, and the replies of the run's site. Every call goes to the
//! site that executes the run: the plan's recovery site.

use ferry_api::Call;
use ferry_api::types::{ErrorBody, Run, RunMode, RunRequest, RunState};

use super::{Action, App, Effect, Scope, View};
use crate::editor::describe;

/// The run view, open over the plans or history view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    pub id: String,
    /// The selected step.
    pub selected: usize,
    /// Whether the selected step shows its per-VM sub-steps.
    pub expanded: bool,
    /// The prompt (by step) the operator left waiting with Esc: its dialog
    /// stays closed until `a` opens it again or another prompt comes.
    pub dismissed: Option<usize>,
}

impl RunView {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            selected: 0,
            expanded: true,
            dismissed: None,
        }
    }
}

/// A question about a run, over everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunDialog {
    /// A test or a cleanup: start it? (`y` or Enter).
    Start(Start),
    /// A real failover or a reprotect: the plan's name must be typed.
    TypeName {
        start: Start,
        typed: String,
        error: Option<String>,
    },
    /// Cancel the run? It stops at its next safe point.
    Cancel {
        run_id: String,
        site: usize,
        what: String,
    },
}

/// A run to start: which plan, where, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub plan_id: String,
    pub plan_name: String,
    /// The plan's recovery site, which executes the run.
    pub site: usize,
    pub mode: RunMode,
    /// Cleanup only: go on past errors.
    pub force: bool,
    /// A test at a chosen instance of one VM: its id, name and the
    /// instance (the other VMs recover at their newest).
    pub instance: Option<(String, String, String)>,
}

impl Start {
    pub fn request(&self, confirm: Option<String>) -> RunRequest {
        RunRequest {
            mode: self.mode,
            confirm,
            sync: None,
            force: (self.mode == RunMode::Cleanup && self.force).then_some(true),
            instances: self
                .instance
                .iter()
                .map(|(vm_id, _, id)| (vm_id.clone(), id.clone()))
                .collect(),
            at_ms: None,
        }
    }

    pub fn what(&self) -> String {
        let mode = if self.force {
            "forced cleanup"
        } else {
            self.mode.label()
        };
        match &self.instance {
            Some((_, vm, id)) => format!(
                "{mode} of plan {} with {vm} at instance {id}",
                self.plan_name
            ),
            None => format!("{mode} of plan {}", self.plan_name),
        }
    }
}

/// A call to a run's site; its reply comes back to [`App::run_replied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCall {
    pub site: usize,
    pub call: Call,
    pub purpose: RunPurpose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunPurpose {
    Start(String),
    Cancel,
    Ack,
}

/// A run site's answer: the run as it stands, or why not.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReply {
    pub site: usize,
    pub purpose: RunPurpose,
    pub outcome: Result<serde_json::Value, ErrorBody>,
}

/// A waiting prompt as its dialog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptView {
    pub run_id: String,
    pub step: usize,
    pub message: String,
    pub vm: Option<String>,
}

impl Action {
    /// Whether this action starts or steers a run: what read-only refuses.
    pub(super) fn runs(&self) -> bool {
        matches!(
            self,
            Self::StartRun(_) | Self::ForceCleanup | Self::CancelRun | Self::Ack
        )
    }
}

impl App {
    /// The prompt whose dialog is open: the run view's run waits on it and
    /// the operator has not left it with Esc.
    pub fn prompt(&self) -> Option<PromptView> {
        let view = self.run.as_ref()?;
        let run = self.model.run(&view.id)?.run;
        let prompt = run.prompt.as_ref()?;
        if run.state != RunState::Waiting || view.dismissed == Some(prompt.step) {
            return None;
        }
        Some(PromptView {
            run_id: run.id.clone(),
            step: prompt.step,
            message: prompt.message.clone(),
            vm: prompt.vm_id.as_ref().map(|id| self.model.vm_name(id)),
        })
    }

    /// What keys mean under a run dialog, in the run view or a waiting
    /// prompt; `None` elsewhere.
    pub(super) fn run_scope(&self) -> Option<Scope> {
        match &self.run_dialog {
            Some(RunDialog::TypeName { .. }) => return Some(Scope::Text),
            Some(_) => return Some(Scope::Confirm),
            None => {}
        }
        if self.popup.is_some() || self.overlay != super::Overlay::None {
            return None;
        }
        if self.prompt().is_some() {
            return Some(Scope::Confirm);
        }
        self.run.as_ref().map(|_| Scope::Run)
    }

    /// Every action goes to the open run dialog while there is one.
    pub(super) fn on_run_dialog(&mut self, action: Action) -> Option<Effect> {
        let dialog = self.run_dialog.take()?;
        match (dialog, action) {
            (RunDialog::Start(start), Action::Yes | Action::Open) => {
                return self.start(&start, None);
            }
            (RunDialog::Cancel { run_id, site, what }, Action::Yes | Action::Open) => {
                self.status = Some(format!("cancelling {what}…"));
                return Some(Effect::Run(RunCall {
                    site,
                    call: Call::CancelRun { run_id },
                    purpose: RunPurpose::Cancel,
                }));
            }
            (
                RunDialog::TypeName {
                    start,
                    mut typed,
                    error,
                },
                action,
            ) => {
                match action {
                    Action::Back => return None,
                    Action::Type(c) => typed.push(c),
                    Action::Erase => {
                        typed.pop();
                    }
                    Action::Open if typed == start.plan_name => {
                        return self.start(&start, Some(typed));
                    }
                    Action::Open => {
                        let error = Some(format!(
                            "{typed:?} is not the plan's name; nothing was sent"
                        ));
                        self.run_dialog = Some(RunDialog::TypeName {
                            start,
                            typed: String::new(),
                            error,
                        });
                        return None;
                    }
                    _ => {}
                }
                self.run_dialog = Some(RunDialog::TypeName {
                    start,
                    typed,
                    error,
                });
            }
            (_, Action::Back) => {}
            (dialog, _) => self.run_dialog = Some(dialog),
        }
        None
    }

    fn start(&mut self, start: &Start, confirm: Option<String>) -> Option<Effect> {
        self.status = Some(format!("starting the {}…", start.what()));
        Some(Effect::Run(RunCall {
            site: start.site,
            call: Call::StartRun {
                plan_id: start.plan_id.clone(),
                request: start.request(confirm),
            },
            purpose: RunPurpose::Start(start.plan_name.clone()),
        }))
    }

    /// The run view and the history view; `Err` gives back what they do
    /// not handle.
    pub(super) fn on_runs(&mut self, action: Action) -> Result<Option<Effect>, Action> {
        if self.prompt().is_some() {
            return Ok(match action {
                Action::Open | Action::Yes => self.act(Action::Ack),
                Action::Back => {
                    let prompt = self.prompt();
                    if let (Some(view), Some(p)) = (&mut self.run, prompt) {
                        view.dismissed = Some(p.step);
                    }
                    self.status = Some("the prompt still waits; a answers it".into());
                    None
                }
                Action::Quit => {
                    self.quit = true;
                    None
                }
                _ => None,
            });
        }
        if let Some(view) = &mut self.run {
            let steps = self
                .model
                .run(&view.id)
                .map_or(0, |e| e.run.steps.len())
                .max(1);
            match action {
                Action::Up => view.selected = view.selected.saturating_sub(1),
                Action::Down => view.selected = (view.selected + 1).min(steps - 1),
                Action::PageUp => view.selected = view.selected.saturating_sub(10),
                Action::PageDown => view.selected = (view.selected + 10).min(steps - 1),
                Action::Top => view.selected = 0,
                Action::Bottom => view.selected = steps - 1,
                Action::Open | Action::Toggle => view.expanded = !view.expanded,
                Action::Back => self.run = None,
                Action::Ack => {
                    view.dismissed = None;
                    if self.prompt().is_none() {
                        self.status = Some("no prompt waits".into());
                    }
                }
                Action::CancelRun => return Ok(self.act(action)),
                Action::Export => {
                    let id = view.id.clone();
                    return Ok(self.export(&id));
                }
                other => return Err(other),
            }
            return Ok(None);
        }
        match (self.view, action) {
            (View::Plans, Action::OpenRun) => {
                let plan = self.plans_shown().get(self.cursor()).map(|p| p.id.clone());
                let run = plan.and_then(|p| self.model.plan_run(&p).map(|e| e.run.id.clone()));
                match run {
                    Some(id) => self.run = Some(RunView::new(&id)),
                    None => self.status = Some("this plan has not run yet".into()),
                }
                Ok(None)
            }
            (View::Plans, action) if action.runs() => Ok(self.act(action)),
            (View::History, Action::Open | Action::OpenRun) => {
                if let Some(id) = self.history_id() {
                    self.run = Some(RunView::new(&id));
                }
                Ok(None)
            }
            (View::History, Action::CancelRun) => Ok(self.act(Action::CancelRun)),
            (View::History, Action::Export) => match self.history_id() {
                Some(id) => Ok(self.export(&id)),
                None => Ok(None),
            },
            (_, other) => Err(other),
        }
    }

    fn history_id(&self) -> Option<String> {
        let runs = self.runs_shown();
        runs.get(self.cursor()).map(|e| e.run.id.clone())
    }

    /// Past the read-only gate: asks before starting or cancelling a run;
    /// acknowledges a prompt at once.
    pub(super) fn act_on_run(&mut self, action: Action) -> Option<Effect> {
        if let Action::Ack = action {
            let prompt = self.prompt()?;
            let site = self.model.run(&prompt.run_id)?.site;
            self.status = Some("acknowledged".into());
            return Some(Effect::Run(RunCall {
                site,
                call: Call::AckRun {
                    run_id: prompt.run_id.clone(),
                },
                purpose: RunPurpose::Ack,
            }));
        }
        if let Action::CancelRun = action {
            // The run on screen, the history's selected run, or the
            // selected plan's run.
            let id = match (&self.run, self.view) {
                (Some(view), _) => Some(view.id.clone()),
                (None, View::History) => self.history_id(),
                (None, _) => {
                    let plan = self.plans_shown().get(self.cursor()).map(|p| p.id.clone());
                    plan.and_then(|p| self.model.plan_run(&p).map(|e| e.run.id.clone()))
                }
            };
            let entry = id.as_deref().and_then(|id| self.model.run(id));
            match entry {
                Some(e) if !e.run.state.is_finished() => {
                    self.run_dialog = Some(RunDialog::Cancel {
                        run_id: e.run.id.clone(),
                        site: e.site,
                        what: format!("the {} of plan {}", e.run.mode.label(), e.run.plan_name),
                    });
                }
                _ => self.status = Some("no run of this plan is going".into()),
            }
            return None;
        }
        let mode = match action {
            Action::StartRun(mode) => mode,
            Action::ForceCleanup => RunMode::Cleanup,
            _ => return None,
        };
        let plan = self
            .plans_shown()
            .get(self.cursor())
            .map(|p| (*p).clone())?;
        let Some(site) = self.model.site_index(&plan.recovery_site) else {
            self.status = Some(format!(
                "plan {}: its recovery site {} is not one of the sites",
                plan.name, plan.recovery_site
            ));
            return None;
        };
        if !plan.allowed.contains(&mode) {
            self.status = Some(format!(
                "plan {} is {}: no {} now; {}",
                plan.name,
                plan.state.label(),
                mode.label(),
                plan.next
            ));
            return None;
        }
        let start = Start {
            plan_id: plan.id.clone(),
            plan_name: plan.name.clone(),
            site,
            mode,
            force: action == Action::ForceCleanup,
            instance: None,
        };
        self.run_dialog = Some(if mode.is_destructive() {
            RunDialog::TypeName {
                start,
                typed: String::new(),
                error: None,
            }
        } else {
            RunDialog::Start(start)
        });
        None
    }

    /// A run's site answered.
    pub fn run_replied(&mut self, reply: RunReply) {
        let run = match reply.outcome {
            Ok(body) => serde_json::from_value::<Run>(body).ok(),
            Err(e) => {
                let what = match &reply.purpose {
                    RunPurpose::Start(plan) => format!("plan {plan} not started"),
                    RunPurpose::Cancel => "not cancelled".into(),
                    RunPurpose::Ack => "not acknowledged".into(),
                };
                self.status = Some(format!("{what}: {}", describe(&e)));
                return;
            }
        };
        let Some(run) = run else { return };
        self.status = Some(match &reply.purpose {
            RunPurpose::Start(_) => format!(
                "started the {} of plan {} at {}",
                run.mode.label(),
                run.plan_name,
                run.recovery_site
            ),
            RunPurpose::Cancel => "cancel requested: it stops at the next safe point".into(),
            RunPurpose::Ack => "acknowledged; the run goes on".into(),
        });
        if matches!(reply.purpose, RunPurpose::Start(_)) {
            self.run = Some(RunView::new(&run.id));
        }
        // An event may have brought a newer copy already.
        let newer = self.model.run(&run.id).is_some_and(|e| {
            e.run
                .steps
                .iter()
                .filter(|s| s.started_ms.is_some())
                .count()
                > run.steps.iter().filter(|s| s.started_ms.is_some()).count()
        });
        if !newer {
            self.model.saved_run(reply.site, run);
        }
    }

    /// Writes the run out as JSON and Markdown, in a task.
    fn export(&mut self, id: &str) -> Option<Effect> {
        let run = self.model.run(id)?.run.clone();
        self.status = Some(format!("exporting run {id}…"));
        Some(Effect::Export(Box::new(run)))
    }

    /// The keys of the run view, the history view and the run dialogs.
    pub(super) fn run_keys(&self) -> Option<Vec<(&'static str, &'static str)>> {
        let acts = self.may_steer();
        if let Some(dialog) = &self.run_dialog {
            return Some(match dialog {
                RunDialog::TypeName { .. } => {
                    vec![
                        ("type", "the plan's name"),
                        ("Enter", "start"),
                        ("Esc", "cancel"),
                    ]
                }
                RunDialog::Start(_) => vec![("y/Enter", "start"), ("n/Esc", "no")],
                RunDialog::Cancel { .. } => vec![("y/Enter", "cancel the run"), ("n/Esc", "no")],
            });
        }
        if self.popup.is_some() || self.overlay != super::Overlay::None {
            return None;
        }
        if self.prompt().is_some() {
            return Some(vec![("Enter", "acknowledge"), ("Esc", "leave it waiting")]);
        }
        if self.run.is_some() {
            let mut keys = vec![("↑↓", "step"), ("Enter", "sub-steps"), ("e", "export")];
            if acts {
                keys.extend([("a", "answer prompt"), ("x", "cancel run")]);
            }
            keys.extend([("Esc", "back"), ("?", "help")]);
            return Some(keys);
        }
        None
    }

    /// The plans view's run keys, for the bar (short) or for `?`.
    pub fn plan_run_keys(&self, long: bool) -> Vec<(&'static str, &'static str)> {
        let mut keys = vec![("o", if long { "open the plan's run" } else { "run" })];
        // Each mode only where this token's role at the plan's site runs it.
        let offered = [
            (RunMode::Test, ("t", "test failover (asks)"), ("t", "test")),
            (
                RunMode::Cleanup,
                ("c  C", "cleanup after a test; C forces it"),
                ("c", "cleanup"),
            ),
            (
                RunMode::PlannedMigration,
                ("m", "planned migration (type the name)"),
                ("m", "migrate"),
            ),
            (
                RunMode::DisasterRecovery,
                ("d", "disaster recovery (type the name)"),
                ("d", "DR"),
            ),
            (
                RunMode::Reprotect,
                ("r", "reprotect (type the name)"),
                ("r", "reprotect"),
            ),
        ];
        for (mode, long_key, short_key) in offered {
            if self.may_run(mode) {
                keys.push(if long { long_key } else { short_key });
            }
        }
        if self.may_run(RunMode::Test) {
            keys.push(if long {
                ("X", "cancel the plan's run (asks)")
            } else {
                ("X", "cancel")
            });
        }
        keys
    }

    /// The keys of the run and history views under `?`.
    pub fn run_help_keys(&self) -> Vec<(&'static str, &'static str)> {
        let mut keys = Vec::new();
        if self.run.is_some() {
            keys.extend([
                ("↑ ↓ j k", "move through the steps"),
                ("Enter Space", "show or hide the step's VMs"),
                ("e", "export the run (JSON and Markdown)"),
            ]);
            if self.may_steer() {
                keys.extend([
                    ("a", "answer the prompt the run waits on"),
                    ("x X", "cancel the run (asks)"),
                ]);
            }
            keys.push(("Esc", "back"));
        } else if self.view == View::History {
            keys.extend([
                ("↑ ↓ j k", "move"),
                ("Enter", "open the run"),
                ("e", "export the run (JSON and Markdown)"),
            ]);
            if self.may_steer() {
                keys.push(("X", "cancel the run (asks)"));
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests;
