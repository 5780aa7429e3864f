//! The TUI's state machine: terminal input becomes an [`Action`],
//! [`App::update`] changes state and may return an [`Effect`] for a task to
//! run; rendering only reads. Read-only mode is enforced here, in the one
//! place actions are dispatched ([`App::act`]).
//!
//! [`protection`] holds the editing half: the mappings, groups and plans
//! views, their editors and dialogs, and the replies to their saves;
//! [`replication`] the replication view's rows and selection; [`palette`]
//! the `:` commands.

mod action;
mod dialogs;
#[cfg(test)]
pub mod fixture;
mod home;
mod lists;
mod palette;
mod protection;
mod replication;
#[cfg(test)]
mod replication_tests;
mod roles;
mod runs;
#[cfg(test)]
mod tests;
mod timeline;
mod views;

use std::time::Instant;

use ferry_api::{Call, ReplicationVerb};
use ratatui::crossterm::event::KeyEvent;

use crate::editor::Request;
use crate::editor::mappings::MappingsEditor;
use crate::model::{FeedUpdate, Model, compliance, lag_seconds};
use crate::theme::Theme;

pub use action::Action;
pub use home::AtRisk;
pub use lists::alarm_key;
pub use palette::COMMANDS;
use palette::resolve;
pub use protection::{Editor, FormFor, Leave, PickFor, Popup};
pub use roles::role_for;
pub use runs::{PromptView, RunCall, RunDialog, RunPurpose, RunReply, RunView, Start};
pub use timeline::Timeline;
pub use views::{Column, View};

/// What sits on top of the current view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// The `:` command palette and what has been typed.
    Palette(String),
    /// Typing a `/` filter.
    Filter,
    /// The detail pane of one replication.
    Detail(String),
    /// The detail pane of one alarm (by [`lists::alarm_key`]): its whole message.
    Event(String),
}

/// Work for a task outside the UI loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Tells a replication to sync, pause or resume; the result names the
    /// VM and what was done to it (`paused db-02`).
    Post { site: usize, call: Call, vm: String },
    /// Changes to sites' objects; each reply comes back to [`App::reply`].
    Send(Vec<Request>),
    /// Starts or steers a run; the reply comes back to [`App::run_replied`].
    Run(RunCall),
    /// Writes a run to files; a notice says where.
    Export(Box<ferry_api::types::Run>),
    /// Lists the kept instances of a VM's replica at the site holding it;
    /// the answer comes back to [`App::instances_replied`].
    Instances { site: usize, vm_id: String },
}

/// Which keys mean what now: letters are text while typing, commands
/// otherwise, and commands differ by view and editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The palette, the filter, a form.
    Text,
    /// The callout text area: keys go to it as they are.
    TextArea,
    Picker,
    /// Save / discard / stay, or a deletion to confirm.
    Confirm,
    /// Help or the detail pane.
    Overlay,
    View(View),
    GroupEditor,
    PlanEditor,
    /// The run view.
    Run,
}

/// Seconds per view on a NOC screen.
const NOC_ROTATE_TICKS: u32 = 10;

pub struct App {
    pub model: Model,
    pub theme: Theme,
    pub view: View,
    pub overlay: Overlay,
    /// The cursor's row when its item is gone; see [`App::cursor`].
    pub selected: usize,
    /// The key of the item under the cursor (a VM id, alarm, group, plan
    /// or run id): the cursor follows it through re-sorts and updates.
    pub anchor: Option<String>,
    pub sort: Column,
    pub descending: bool,
    pub filter: String,
    pub read_only: bool,
    pub noc: bool,
    pub quit: bool,
    /// A one-line note for the operator (results, refusals).
    pub status: Option<String>,
    /// Wall clock and monotonic clock of the last tick: renders use these,
    /// never the live clocks, so a frame is a pure function of state.
    pub now_ms: u64,
    pub now: Instant,
    ticks: u32,
    /// The mappings view and its drafts, per direction.
    pub mappings: MappingsEditor,
    /// A group or plan editor, over its view.
    pub editor: Option<Editor>,
    /// A dialog of an editor, over everything.
    pub popup: Option<Popup>,
    /// Saves sent and not answered yet.
    pub saving: usize,
    /// Where to go once the saves in flight succeed.
    after_save: Option<Leave>,
    save_failed: bool,
    /// The run view, over the plans or history view.
    pub run: Option<RunView>,
    /// A question before a run starts or is cancelled.
    pub run_dialog: Option<RunDialog>,
    /// The instances of the VM whose detail pane is open.
    pub timeline: Timeline,
}

impl App {
    pub fn new(model: Model, theme: Theme, read_only: bool, noc: bool) -> Self {
        Self {
            model,
            theme,
            view: if noc { View::Dashboard } else { View::Home },
            overlay: Overlay::None,
            selected: 0,
            anchor: None,
            sort: Column::Vm,
            descending: false,
            filter: String::new(),
            read_only,
            noc,
            quit: false,
            status: None,
            now_ms: ferry_api::now_ms(),
            now: Instant::now(),
            ticks: 0,
            mappings: MappingsEditor::default(),
            editor: None,
            popup: None,
            saving: 0,
            after_save: None,
            save_failed: false,
            run: None,
            run_dialog: None,
            timeline: Timeline::default(),
        }
    }

    /// What keys mean now.
    pub fn scope(&self) -> Scope {
        if let Some(scope) = self.run_scope() {
            return scope;
        }
        match (&self.popup, &self.overlay, &self.editor) {
            (Some(Popup::Form(_)), ..) => Scope::Text,
            (Some(Popup::Callouts { .. }), ..) => Scope::TextArea,
            (Some(Popup::Picker(_)), ..) => Scope::Picker,
            (Some(_), ..) => Scope::Confirm,
            (None, Overlay::Palette(_) | Overlay::Filter, _) => Scope::Text,
            (None, Overlay::Help | Overlay::Detail(_) | Overlay::Event(_), _) => Scope::Overlay,
            (None, Overlay::None, Some(Editor::Group(_))) => Scope::GroupEditor,
            (None, Overlay::None, Some(Editor::Plan(_))) => Scope::PlanEditor,
            (None, Overlay::None, None) => Scope::View(self.view),
        }
    }

    /// Applies a feed update. The selection is not clamped here (that would
    /// filter and sort every row per event); renders clamp what they show.
    pub fn feed(&mut self, update: FeedUpdate) -> bool {
        self.model.apply(update, self.now)
    }

    fn row_count(&self) -> usize {
        match self.view {
            View::Replication => self.rows().len(),
            View::Events => self.alarms_shown().len(),
            View::Groups => self.groups_shown().len(),
            View::Plans => self.plans_shown().len(),
            View::History => self.runs_shown().len(),
            View::Home => self.home_alarms().len(),
            View::Dashboard | View::Mappings => 0,
        }
    }

    fn clamp_selection(&mut self) {
        let count = self.row_count();
        self.selected = self.selected.min(count.saturating_sub(1));
    }

    /// The actions the current mode accepts: what `?` and the bottom bar show.
    pub fn keys(&self) -> Vec<(&'static str, &'static str)> {
        if let Some(keys) = self.run_keys() {
            return keys;
        }
        if self.popup.is_some() || (self.editor.is_some() && self.overlay == Overlay::None) {
            return self.editing_keys();
        }
        match &self.overlay {
            Overlay::Help => vec![("Esc/?", "close help"), ("q", "quit")],
            Overlay::Palette(_) => vec![("Tab", "complete"), ("Enter", "run"), ("Esc", "cancel")],
            Overlay::Filter => vec![("type", "filter rows"), ("Enter", "keep"), ("Esc", "clear")],
            Overlay::Detail(_) => {
                let mut keys = vec![("Esc", "back"), ("↑↓/jk", "instance")];
                if self.may_test_at_instance() {
                    keys.push(("t", "test at instance"));
                }
                if self.may_attack() {
                    keys.push(("A", "demo attack"));
                }
                keys.push(("q", "quit"));
                keys
            }
            Overlay::Event(_) => vec![("Esc", "back"), ("q", "quit")],
            Overlay::None => {
                let mut keys = vec![("Tab", "next view"), (":", "command"), ("?", "help")];
                if self.view == View::Replication {
                    keys.extend([
                        ("↑↓/jk", "move"),
                        ("/", "filter"),
                        ("s/S", "sort/reverse"),
                        ("Enter", "details"),
                    ]);
                    if self.may_replicate() {
                        keys.extend([("n", "sync now"), ("p", "pause/resume")]);
                    }
                }
                if self.view == View::Events {
                    keys.extend([("↑↓/jk", "move"), ("Enter", "details")]);
                }
                if self.view == View::Home {
                    keys.push(("↑↓/jk", "move"));
                    if self.may_ack() {
                        keys.push(("a", "acknowledge alarm"));
                    }
                }
                if self.view == View::History {
                    keys.extend([("↑↓/jk", "move"), ("Enter", "open"), ("e", "export")]);
                    if self.may_steer() {
                        keys.push(("X", "cancel"));
                    }
                }
                // Running a plan first: at 3 a.m. those are the keys wanted.
                if self.view == View::Plans && self.editor.is_none() {
                    keys.push(("↑↓", "move"));
                    keys.extend(self.plan_run_keys(false));
                }
                if self.view.edits() {
                    let more: Vec<_> = self
                        .editing_keys()
                        .into_iter()
                        .filter(|k| !keys.contains(k))
                        .collect();
                    keys.extend(more);
                }
                // The other lists' filter comes last: their actions first.
                if self.view.lists() && self.view != View::Replication && self.editor.is_none() {
                    keys.push(("/", "filter"));
                }
                if !self.filter.is_empty() {
                    keys.push(("Esc", "clear filter"));
                }
                keys.push(("q", "quit"));
                keys
            }
        }
    }

    /// Applies one action.
    pub fn update(&mut self, action: Action) -> Option<Effect> {
        if action != Action::Tick {
            self.status = None;
        }
        if self.popup.is_some() && action != Action::Tick {
            return self.on_popup(action);
        }
        if self.run_dialog.is_some() && action != Action::Tick {
            return self.on_run_dialog(action);
        }
        match (&mut self.overlay, action) {
            (_, Action::Tick) => {
                self.now_ms = ferry_api::now_ms();
                self.now = Instant::now();
                self.ticks += 1;
                if self.noc && self.ticks.is_multiple_of(NOC_ROTATE_TICKS) {
                    self.view = self.view.step(1);
                    self.selected = 0;
                    self.anchor = None;
                    self.run = None;
                }
                if matches!(self.overlay, Overlay::Detail(_)) {
                    return self.on_detail(Action::Tick);
                }
            }
            (Overlay::Palette(input), Action::Type(c)) => input.push(c),
            (Overlay::Palette(input), Action::Erase) => {
                input.pop();
            }
            (Overlay::Palette(input), Action::Complete) => {
                if let Some((cmd, _)) = COMMANDS.iter().find(|(c, _)| c.starts_with(input.as_str()))
                {
                    *input = cmd.to_string();
                }
            }
            (Overlay::Palette(input), Action::Open) => {
                let command = resolve(input.trim()).to_string();
                self.overlay = Overlay::None;
                return self.run_command(&command);
            }
            (Overlay::Filter, Action::Type(c)) => {
                self.filter.push(c);
                self.selected = 0;
            }
            (Overlay::Filter, Action::Erase) => {
                self.filter.pop();
            }
            (Overlay::Filter, Action::Open) => self.overlay = Overlay::None,
            (Overlay::Filter, Action::Back) => {
                self.filter.clear();
                self.overlay = Overlay::None;
            }
            (Overlay::None, Action::Back) if self.view.edits() || self.run.is_some() => {
                return self.normal(Action::Back);
            }
            (Overlay::None, Action::Back) => self.filter.clear(),
            (_, Action::Back) => self.overlay = Overlay::None,
            (Overlay::Palette(_) | Overlay::Filter, _) => {}
            (_, Action::Quit) => return self.leave(Leave::Quit),
            (Overlay::Help, Action::OpenHelp) => self.overlay = Overlay::None,
            (_, Action::OpenHelp) => self.overlay = Overlay::Help,
            (Overlay::Detail(_), action) => return self.on_detail(action),
            (Overlay::Help | Overlay::Event(_), _) => {}
            (Overlay::None, action) => return self.normal(action),
        }
        self.clamp_selection();
        None
    }

    fn normal(&mut self, action: Action) -> Option<Effect> {
        let action = match self.on_runs(action) {
            Ok(effect) => return effect,
            Err(action) => action,
        };
        match action {
            Action::NextView => return self.leave(Leave::Show(self.view.step(1))),
            Action::PrevView => return self.leave(Leave::Show(self.view.step(-1))),
            Action::Show(view) => return self.leave(Leave::Show(view)),
            Action::OpenPalette => {
                self.overlay = Overlay::Palette(String::new());
                return None;
            }
            Action::OpenFilter if self.view.lists() && self.editor.is_none() => {
                self.overlay = Overlay::Filter;
                return None;
            }
            _ => {}
        }
        if self.view.edits() {
            return self.protection(action);
        }
        let count = self.row_count();
        let at = self.cursor();
        match action {
            Action::Up => self.move_cursor(at.saturating_sub(1)),
            Action::Down => self.move_cursor((at + 1).min(count.saturating_sub(1))),
            Action::PageUp => self.move_cursor(at.saturating_sub(10)),
            Action::PageDown => self.move_cursor((at + 10).min(count.saturating_sub(1))),
            Action::Top => self.move_cursor(0),
            Action::Bottom => self.move_cursor(count.saturating_sub(1)),
            Action::Open if self.view == View::Events => {
                if let Some(a) = self.alarms_shown().get(at) {
                    self.overlay = Overlay::Event(lists::alarm_key(a));
                }
            }
            Action::Open if self.view == View::Replication => {
                if let Some((_, r)) = self.selected_replication() {
                    return self.open_detail(r.vm_id);
                }
            }
            Action::SortNext if self.view == View::Replication => {
                let i = Column::ALL
                    .iter()
                    .position(|c| *c == self.sort)
                    .unwrap_or(0);
                self.sort = Column::ALL[(i + 1) % Column::ALL.len()];
            }
            Action::SortReverse if self.view == View::Replication => {
                self.descending = !self.descending
            }
            Action::AckAlarm if self.view == View::Home => return self.ack_alarm(),
            Action::SyncNow | Action::TogglePause if self.view == View::Replication => {
                return self.act(action);
            }
            _ => {}
        }
        self.clamp_selection();
        None
    }

    /// The one gate for everything that changes a site: read-only mode
    /// refuses it here, so no view or editor has to.
    fn act(&mut self, action: Action) -> Option<Effect> {
        if self.read_only {
            self.status = Some("read-only: no actions here".into());
            return None;
        }
        if let Some(why) = self.refusal(&action) {
            self.status = Some(why);
            return None;
        }
        if action.runs() {
            return self.act_on_run(action);
        }
        if self.view.edits() {
            return self.edit(action);
        }
        let (site, r) = self.selected_replication()?;
        // A VM recovered at the other site: its replication ended, and
        // the site would refuse to cycle it.
        let lifecycle = self.model.lifecycle(&r);
        if lifecycle.has_ended() {
            self.status = Some(format!(
                "{}: replication ended, the VM is {}",
                r.vm,
                lifecycle.words()
            ));
            return None;
        }
        // The VM is named now and in the result, so the operator sees which
        // one the key reached even if rows moved since.
        let (verb, doing) = match action {
            Action::SyncNow => (ReplicationVerb::Sync, "asking for a sync of"),
            _ if r.paused => (ReplicationVerb::Resume, "resuming"),
            _ => (ReplicationVerb::Pause, "pausing"),
        };
        self.status = Some(format!("{doing} {}…", r.vm));
        Some(Effect::Post {
            site,
            call: Call::Replication {
                vm_id: r.vm_id.clone(),
                verb,
            },
            vm: r.vm,
        })
    }

    fn show(&mut self, view: View) {
        self.run = None;
        if self.view != view {
            self.view = view;
            self.selected = 0;
            self.anchor = None;
            // A filter belongs to its view: another view's rows are not
            // hidden by it.
            self.filter.clear();
        }
    }
}
