//! The editing half of the app: the mappings, groups and plans views, the
//! group and plan editors over them, their dialogs ([`Popup`]), saving,
//! and the replies that come back. Unsaved changes are never dropped
//! silently: leaving asks save, discard or stay ([`Leave`]).

use ferry_api::Call;
use ferry_api::plan::check_name;
use ferry_api::types::{Mappings, Plan, ProtectionGroup};
use ratatui_textarea::TextArea;

use super::{Action, App, Effect, View};
use crate::editor::form::{Field, Form, PickItem, Picker};
use crate::editor::groups::GroupEditor;
use crate::editor::mappings::{self, Kind, Row};
use crate::editor::plans::{self, CalloutsFor, PlanEditor};
use crate::editor::{Purpose, Reply, Request, describe};

/// An editor open over its view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Editor {
    Group(Box<GroupEditor>),
    Plan(Box<PlanEditor>),
}

/// What a form fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormFor {
    Mapping(mappings::FormFor),
    NewGroup,
    RenameGroup,
    NewPlan,
    Plan(plans::FormFor),
}

/// What a picker picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickFor {
    Target {
        pane: usize,
        kind: Kind,
        source: String,
    },
    Plan(plans::PickFor),
}

/// Where the operator was going when asked about unsaved changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    Quit,
    Show(View),
    /// Back from an editor (or drop the mappings drafts).
    Close,
}

/// A dialog over everything; it takes every key until it closes.
#[derive(Debug, Clone)]
pub enum Popup {
    Form(Form<FormFor>),
    Picker(Picker<PickFor>),
    /// Callouts as text (see `editor::callouts`), and why the last try to
    /// keep them was refused.
    Callouts {
        text: Box<TextArea<'static>>,
        target: CalloutsFor,
        error: Option<String>,
    },
    /// Unsaved changes: save, discard or stay.
    Leave(Leave),
    /// Delete `what`? Sends `request` on yes.
    Delete {
        what: String,
        /// Boxed: a request may carry a whole plan.
        request: Box<Request>,
    },
}

impl App {
    /// Whether leaving now would lose changes.
    pub fn is_dirty(&self) -> bool {
        match &self.editor {
            Some(Editor::Group(g)) => g.is_dirty(),
            Some(Editor::Plan(p)) => p.is_dirty(),
            None => self.view == View::Mappings && self.mappings.is_dirty(),
        }
    }

    /// Goes where `leave` says, asking first when changes would be lost.
    pub(super) fn leave(&mut self, leave: Leave) -> Option<Effect> {
        if self.is_dirty() {
            self.popup = Some(Popup::Leave(leave));
        } else {
            self.perform(leave);
        }
        None
    }

    pub(super) fn perform(&mut self, leave: Leave) {
        match leave {
            Leave::Quit => self.quit = true,
            Leave::Show(view) => {
                self.editor = None;
                self.mappings.drafts.clear();
                self.show(view);
            }
            Leave::Close if self.editor.is_some() => self.editor = None,
            Leave::Close => self.mappings.drafts.clear(),
        }
    }

    /// Moving around the protection views; anything else is an edit and
    /// goes through the read-only gate.
    pub(super) fn protection(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Back if self.editor.is_none() && !self.filter.is_empty() => {
                self.filter.clear();
                None
            }
            Action::Back => self.leave(Leave::Close),
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-10),
            Action::PageDown => self.step(10),
            Action::Top => self.step(-isize::MAX / 2),
            Action::Bottom => self.step(isize::MAX / 2),
            Action::Left | Action::Right
                if self.view == View::Mappings && self.editor.is_none() =>
            {
                self.mappings.pane = usize::from(action == Action::Right);
                None
            }
            action if action.edits() => self.act(action),
            _ => None,
        }
    }

    fn step(&mut self, by: isize) -> Option<Effect> {
        let move_by = |at: usize, count: usize| {
            (at as isize)
                .saturating_add(by)
                .clamp(0, count.saturating_sub(1) as isize) as usize
        };
        match &mut self.editor {
            Some(Editor::Group(g)) => {
                let count = g.candidates(&self.model).len();
                g.selected = move_by(g.selected, count);
            }
            Some(Editor::Plan(p)) => {
                let count = p.spec.vms.len();
                p.selected = move_by(p.selected, count);
            }
            None if self.view == View::Mappings => {
                let pane = self.mappings.pane;
                let count = self.mapping_rows(pane).len();
                self.mappings.selected[pane] = move_by(self.mappings.selected[pane], count);
            }
            None => {
                let count = self.row_count();
                let to = move_by(self.cursor(), count);
                self.move_cursor(to);
            }
        }
        None
    }

    /// The rows of a mappings pane, as shown.
    pub fn mapping_rows(&self, pane: usize) -> Vec<Row> {
        let dirs = mappings::directions(&self.model);
        dirs.get(pane).map_or_else(Vec::new, |dir| {
            mappings::rows(&self.model, dir, &self.mappings.spec(&self.model, dir))
        })
    }

    /// Edits, past the read-only gate.
    pub(super) fn edit(&mut self, action: Action) -> Option<Effect> {
        if action == Action::Save {
            return self.save();
        }
        match self.editor.take() {
            Some(Editor::Group(mut g)) => {
                let effect = self.edit_group(&mut g, action);
                self.editor.get_or_insert(Editor::Group(g));
                effect
            }
            Some(Editor::Plan(mut p)) => {
                self.edit_plan(&mut p, action);
                self.editor.get_or_insert(Editor::Plan(p));
                None
            }
            None => match self.view {
                View::Mappings => self.edit_mappings(action),
                _ => self.edit_list(action),
            },
        }
    }

    fn edit_mappings(&mut self, action: Action) -> Option<Effect> {
        let pane = self.mappings.pane;
        let dirs = mappings::directions(&self.model);
        let dir = dirs.get(pane)?;
        let rows = self.mapping_rows(pane);
        let row = rows.get(self.mappings.selected[pane])?.clone();
        match (&action, &row) {
            (Action::Open, Row::Pair { kind, source }) => {
                let spec = self.mappings.spec(&self.model, dir);
                let current = mappings::target(&spec, *kind, source);
                let items = mappings::targets(&self.model, dir, *kind, current);
                let title = format!(" {} {source} at {} lands on ", kind.label(), dir.from);
                self.popup = Some(Popup::Picker(Picker::new(
                    title,
                    items,
                    false,
                    PickFor::Target {
                        pane,
                        kind: *kind,
                        source: source.clone(),
                    },
                )));
            }
            (Action::Open | Action::New, Row::Rule(_) | Row::AddRule) => {
                let index = match row {
                    Row::Rule(i) if action == Action::Open => Some(i),
                    _ => None,
                };
                let form = self.mappings.rule_form(&self.model, pane, index);
                self.popup = Some(Popup::Form(
                    form.retarget(FormFor::Mapping(form.purpose.clone())),
                ));
            }
            (Action::Open | Action::New, Row::Nic { .. } | Row::AddNic) => {
                let at = match row {
                    Row::Nic { vm, nic } if action == Action::Open => Some((vm, nic)),
                    _ => None,
                };
                let form = self.mappings.nic_form(&self.model, pane, at);
                self.popup = Some(Popup::Form(
                    form.retarget(FormFor::Mapping(form.purpose.clone())),
                ));
            }
            (Action::Delete, _) => {
                if let Err(e) = self.mappings.remove(&self.model, dir, &row) {
                    self.status = Some(format!(
                        "not removed: {}",
                        crate::editor::say::sentence(Some(&e.field), &e.message)
                    ));
                }
            }
            _ => {}
        }
        None
    }

    /// New, open and delete in the groups and plans lists.
    fn edit_list(&mut self, action: Action) -> Option<Effect> {
        let groups = self.view == View::Groups;
        match action {
            Action::New if groups => {
                let sites: Vec<String> = self.model.sites.iter().map(|s| s.name.clone()).collect();
                // VMs replicate toward the recovery site: offer the site
                // most of them go to first.
                let first = self
                    .model
                    .replications()
                    .find_map(|(_, r)| r.target_site.clone())
                    .or_else(|| sites.last().cloned())
                    .unwrap_or_default();
                self.popup = Some(Popup::Form(Form::new(
                    " New protection group ",
                    vec![
                        Field::text("name", "name", "", "e.g. Databases"),
                        Field::choice("recovery_site", "recovers to", &first, sites),
                    ],
                    FormFor::NewGroup,
                )));
            }
            Action::New => {
                self.popup = Some(Popup::Form(Form::new(
                    " New recovery plan ",
                    vec![
                        Field::text("name", "name", "", "e.g. Tier-1 apps"),
                        Field::text("description", "description", "", "(optional)"),
                    ],
                    FormFor::NewPlan,
                )));
            }
            Action::Open if groups => {
                let group = self
                    .groups_shown()
                    .get(self.cursor())
                    .map(|g| GroupEditor::open(g));
                self.editor = group.map(|g| Editor::Group(Box::new(g)));
            }
            Action::Open => {
                let plan = self
                    .plans_shown()
                    .get(self.cursor())
                    .map(|p| PlanEditor::open(p));
                self.editor = plan.map(|p| Editor::Plan(Box::new(p)));
            }
            Action::Delete => {
                let target = if groups {
                    let g = self
                        .groups_shown()
                        .get(self.cursor())
                        .map(|g| (*g).clone())?;
                    (
                        format!("group {}", g.name),
                        Call::DeleteGroup { id: g.id },
                        g.recovery_site,
                    )
                } else {
                    let p = self
                        .plans_shown()
                        .get(self.cursor())
                        .map(|p| (*p).clone())?;
                    (
                        format!("plan {}", p.name),
                        Call::DeletePlan { id: p.id },
                        p.recovery_site,
                    )
                };
                let (what, call, owner) = target;
                let Some(site) = self.model.site_index(&owner) else {
                    self.status =
                        Some(format!("{what}: its owner {owner} is not one of the sites"));
                    return None;
                };
                self.popup = Some(Popup::Delete {
                    what: what.clone(),
                    request: Box::new(Request {
                        site,
                        call: call.clone(),
                        purpose: Purpose::Delete {
                            what,
                            call: Box::new(call),
                        },
                    }),
                });
            }
            _ => {}
        }
        None
    }

    fn edit_group(&mut self, g: &mut GroupEditor, action: Action) -> Option<Effect> {
        match action {
            Action::Toggle | Action::Open => {
                if let Err(why) = g.toggle(&self.model) {
                    self.status = Some(why.to_string());
                }
            }
            Action::Rename => {
                self.popup = Some(Popup::Form(Form::new(
                    " Rename group ",
                    vec![Field::text("name", "name", &g.name, "")],
                    FormFor::RenameGroup,
                )));
            }
            _ => {}
        }
        None
    }

    fn edit_plan(&mut self, p: &mut PlanEditor, action: Action) {
        let model = &self.model;
        match action {
            Action::Raise => self.status = p.shift(model, -1),
            Action::Lower => self.status = p.shift(model, 1),
            Action::TogglePower => self.status = p.toggle_power(model),
            Action::Depends => {
                self.popup = p
                    .depends_picker(model)
                    .map(|picker| Popup::Picker(plan_picker(picker)));
            }
            Action::Timeout => {
                self.popup = p
                    .heartbeat_form(model)
                    .map(|f| Popup::Form(f.retarget(FormFor::Plan(f.purpose.clone()))));
            }
            Action::IpMode => {
                self.popup = p
                    .ip_form(model)
                    .map(|f| Popup::Form(f.retarget(FormFor::Plan(f.purpose.clone()))))
            }
            Action::Rename => {
                self.popup = Some({
                    let f = p.props_form();
                    Popup::Form(f.retarget(FormFor::Plan(f.purpose.clone())))
                })
            }
            Action::PickGroups => self.popup = Some(Popup::Picker(self.groups_picker(p))),
            Action::Callouts | Action::PlanCallouts => {
                let target = match (action, p.selected_vm(model)) {
                    (Action::Callouts, Some(vm)) => CalloutsFor::Vm(vm.vm_id.clone()),
                    (Action::Callouts, None) => return,
                    _ => CalloutsFor::Plan,
                };
                let mut text = TextArea::new(p.callouts_text(&target));
                text.set_cursor_line_style(ratatui::style::Style::default());
                self.popup = Some(Popup::Callouts {
                    text: Box::new(text),
                    target,
                    error: None,
                });
            }
            _ => {}
        }
    }

    pub(super) fn groups_picker(&self, p: &PlanEditor) -> Picker<PickFor> {
        let items = self
            .model
            .groups()
            .into_iter()
            .map(|g| {
                let note = format!(
                    "{} → {}, {} VMs",
                    g.protected_site,
                    g.recovery_site,
                    g.vms.len()
                );
                PickItem::new(&g.id, &g.name, &note, p.spec.groups.contains(&g.id))
            })
            .collect();
        Picker::new(
            " Protection groups in the plan ",
            items,
            true,
            PickFor::Plan(plans::PickFor::Groups),
        )
    }

    /// Sends every change of the open editor (or of the mappings view) to
    /// the site that owns it.
    pub(super) fn save(&mut self) -> Option<Effect> {
        let model = &self.model;
        let requests = match &mut self.editor {
            Some(Editor::Group(g)) => g.save(model).map(|r| vec![r]),
            Some(Editor::Plan(p)) => p.save(model).map(|r| vec![r]),
            None if self.view == View::Mappings => self.mappings.save(model),
            None => Ok(Vec::new()),
        };
        match requests {
            Ok(requests) if requests.is_empty() => {
                self.status = Some("nothing to save".into());
                if let Some(leave) = self.after_save.take() {
                    self.perform(leave);
                }
                None
            }
            Ok(requests) => {
                self.saving += requests.len();
                self.save_failed = false;
                self.status = Some("saving…".into());
                Some(Effect::Send(requests))
            }
            Err(why) => {
                self.after_save = None;
                self.status = Some(format!("not saved: {why}"));
                None
            }
        }
    }

    /// A site answered a request.
    pub fn reply(&mut self, reply: Reply) {
        if !matches!(reply.purpose, Purpose::Delete { .. }) {
            self.saving = self.saving.saturating_sub(1);
        }
        match (reply.purpose, reply.outcome) {
            (Purpose::SaveMappings { id }, Ok(body)) => {
                if let Ok(m) = serde_json::from_value::<Mappings>(body) {
                    self.model.saved_mappings(m);
                }
                self.mappings.saved(&id);
                self.status = Some(format!("saved mappings {id}"));
            }
            (Purpose::SaveMappings { id }, Err(e)) => {
                self.mappings.refused(&id, &e);
                self.refused(&format!("mappings {id}"), &describe(&e));
            }
            (Purpose::SaveGroup, Ok(body)) => {
                if let Ok(group) = serde_json::from_value::<ProtectionGroup>(body) {
                    if let Some(Editor::Group(g)) = &mut self.editor {
                        g.saved(&group);
                    }
                    self.status = Some(format!("saved group {}", group.name));
                    self.model.saved_group(group);
                }
            }
            (Purpose::SavePlan, Ok(body)) => {
                if let Ok(plan) = serde_json::from_value::<Plan>(body) {
                    if let Some(Editor::Plan(p)) = &mut self.editor {
                        p.saved(&plan);
                    }
                    self.status = Some(format!("saved plan {}", plan.name));
                    self.model.saved_plan(plan);
                }
            }
            (Purpose::SaveGroup | Purpose::SavePlan, Err(e)) => {
                match &mut self.editor {
                    Some(Editor::Group(g)) => g.refused(&e),
                    Some(Editor::Plan(p)) => p.refused(&e),
                    None => {}
                }
                self.refused("", &describe(&e));
            }
            (Purpose::Delete { what, call }, Ok(_)) => {
                self.model.removed(&call);
                self.status = Some(format!("deleted {what}"));
            }
            (Purpose::Delete { what, .. }, Err(e)) => {
                self.status = Some(format!("{what} not deleted: {}", describe(&e)));
            }
        }
        if self.saving == 0
            && let Some(leave) = self.after_save.take()
            && !self.save_failed
        {
            self.perform(leave);
        }
    }

    fn refused(&mut self, what: &str, why: &str) {
        self.save_failed = true;
        let what = if what.is_empty() {
            String::new()
        } else {
            format!("{what}: ")
        };
        self.status = Some(format!("not saved: {what}{why}"));
    }
}

fn plan_picker(picker: Picker<plans::PickFor>) -> Picker<PickFor> {
    Picker {
        title: picker.title,
        items: picker.items,
        selected: picker.selected,
        multi: picker.multi,
        purpose: PickFor::Plan(picker.purpose),
    }
}

/// A name typed into a form, checked as the site checks it.
pub(super) fn name(form: &Form<FormFor>) -> Result<String, Vec<(&'static str, String)>> {
    let name = form.value("name").trim().to_string();
    check_name("name", &name).map_err(|e| vec![("name", e.message)])?;
    Ok(name)
}
