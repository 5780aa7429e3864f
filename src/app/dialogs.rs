//! The editors' dialogs at work: forms, pickers, the callout text area, and
//! the two confirmations (unsaved changes; a deletion). Also the keys each
//! editing scope offers, for the bottom bar and `?`.

use ratatui_textarea::TextArea;

use super::protection::name;
use super::{Action, App, Editor, Effect, FormFor, Leave, PickFor, Popup, Scope, View};
use crate::editor::error::EditError;
use crate::editor::form::{Form, Picker};
use crate::editor::groups::GroupEditor;
use crate::editor::mappings;
use crate::editor::plans::{self, CalloutsFor, PlanEditor};

type FieldErrors = Vec<(&'static str, String)>;

impl App {
    /// Every action goes to the open dialog while there is one.
    pub(super) fn on_popup(&mut self, action: Action) -> Option<Effect> {
        let popup = self.popup.take()?;
        match popup {
            Popup::Form(form) => return self.on_form(form, action),
            Popup::Picker(picker) => self.on_picker(picker, action),
            Popup::Callouts {
                text,
                target,
                error,
            } => self.on_callouts(text, target, error, action),
            Popup::Leave(leave) => match action {
                Action::Save => {
                    self.after_save = Some(leave);
                    return self.save();
                }
                Action::Discard => self.perform(leave),
                Action::Quit if leave == Leave::Quit => self.quit = true,
                Action::Back => {}
                _ => self.popup = Some(Popup::Leave(leave)),
            },
            Popup::Delete { what, request } => match action {
                Action::Yes => {
                    self.status = Some(format!("deleting {what}…"));
                    return Some(Effect::Send(vec![*request]));
                }
                Action::Back => {}
                _ => self.popup = Some(Popup::Delete { what, request }),
            },
        }
        None
    }

    fn on_form(&mut self, mut form: Form<FormFor>, action: Action) -> Option<Effect> {
        match action {
            Action::Type(c) => form.type_char(c),
            Action::Erase => form.erase(),
            Action::Complete | Action::Down => form.step(1),
            Action::Up | Action::PrevView => form.step(-1),
            Action::Left => form.cycle(-1),
            Action::Right => form.cycle(1),
            Action::Back => return None,
            Action::Open => match self.submit(&form) {
                Ok(()) => return None,
                Err(errors) => form.set_errors(errors),
            },
            _ => {}
        }
        self.popup = Some(Popup::Form(form));
        None
    }

    /// Applies a form; a refusal puts each reason beside its field.
    fn submit(&mut self, form: &Form<FormFor>) -> Result<(), FieldErrors> {
        let model = &self.model;
        match (&form.purpose, &mut self.editor) {
            (FormFor::Mapping(purpose), _) => {
                let form = form.retarget(purpose.clone());
                self.mappings.apply_form(model, &form)?;
                self.status = Some("changed; Ctrl-S saves".into());
            }
            (FormFor::NewGroup, _) => {
                let name = name(form)?;
                let site = form.value("recovery_site").to_string();
                self.editor = Some(Editor::Group(Box::new(GroupEditor::new(&name, &site))));
                self.status = Some("Space adds or removes a VM; Ctrl-S saves".into());
            }
            (FormFor::RenameGroup, Some(Editor::Group(g))) => {
                g.rename(form.value("name"))
                    .map_err(|e| vec![("name", e.to_string())])?;
            }
            (FormFor::NewPlan, _) => {
                let name = name(form)?;
                let plan = PlanEditor::new(&name, form.value("description").trim());
                self.popup = Some(Popup::Picker(self.groups_picker(&plan)));
                self.editor = Some(Editor::Plan(Box::new(plan)));
            }
            (FormFor::Plan(purpose), Some(Editor::Plan(p))) => {
                p.apply_form(model, &form.retarget(purpose.clone()))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_picker(&mut self, mut picker: Picker<PickFor>, action: Action) {
        match action {
            Action::Up => picker.step(-1),
            Action::Down => picker.step(1),
            Action::PageUp => picker.step(-10),
            Action::PageDown => picker.step(10),
            Action::Top => picker.step(-(picker.items.len() as isize)),
            Action::Bottom => picker.step(picker.items.len() as isize),
            Action::Toggle if picker.multi => {
                if let Err(why) = picker.toggle() {
                    self.status = Some(why.to_string());
                }
            }
            Action::Back => return,
            Action::Open | Action::Toggle => match self.pick(&picker) {
                Ok(()) => return,
                Err(why) => self.status = Some(why.to_string()),
            },
            _ => {}
        }
        self.popup = Some(Popup::Picker(picker));
    }

    fn pick(&mut self, picker: &Picker<PickFor>) -> Result<(), EditError> {
        let picked = picker.picked()?;
        let model = &self.model;
        match (&picker.purpose, &mut self.editor) {
            (PickFor::Target { pane, kind, source }, _) => {
                let dirs = mappings::directions(model);
                let dir = dirs.get(*pane).ok_or(EditError::NoSuchDirection)?;
                let target = picked.first().filter(|t| !t.is_empty()).map(String::as_str);
                self.mappings
                    .set_target(model, dir, *kind, source, target)
                    .map_err(EditError::NotChanged)?;
                self.status = Some("changed; Ctrl-S saves".into());
            }
            (PickFor::Plan(plans::PickFor::Depends { vm_id }), Some(Editor::Plan(p))) => {
                p.set_depends(vm_id, picked);
            }
            (PickFor::Plan(plans::PickFor::Groups), Some(Editor::Plan(p))) => {
                p.set_groups(model, picked)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_callouts(
        &mut self,
        mut text: Box<TextArea<'static>>,
        target: CalloutsFor,
        mut error: Option<String>,
        action: Action,
    ) {
        match action {
            Action::Input(key) => {
                text.input(key);
            }
            Action::Back => {
                let lines = text.lines().to_vec();
                let outcome = match &mut self.editor {
                    Some(Editor::Plan(p)) => p.set_callouts(&self.model, &target, &lines),
                    _ => Ok(()),
                };
                match outcome {
                    Ok(()) => return,
                    Err(why) => error = Some(why.to_string()),
                }
            }
            _ => {}
        }
        self.popup = Some(Popup::Callouts {
            text,
            target,
            error,
        });
    }

    /// The keys of the editing scopes, for the bar and for `?`.
    pub(super) fn editing_keys(&self) -> Vec<(&'static str, &'static str)> {
        let edits = self.may_edit();
        match (self.scope(), &self.popup) {
            (Scope::Text, _) => vec![
                ("type", "edit"),
                ("Tab/↑↓", "field"),
                ("←→/Space", "choice"),
                ("Enter", "done"),
                ("Esc", "cancel"),
            ],
            (Scope::Picker, Some(Popup::Picker(p))) if p.multi => vec![
                ("↑↓", "move"),
                ("Space", "choose"),
                ("Enter", "done"),
                ("Esc", "cancel"),
            ],
            (Scope::Picker, _) => vec![("↑↓", "move"), ("Enter", "pick"), ("Esc", "cancel")],
            (Scope::TextArea, _) => vec![("type", "edit callouts"), ("Esc", "done")],
            (Scope::Confirm, Some(Popup::Leave(_))) => {
                vec![("s", "save"), ("d", "discard"), ("Esc", "stay")]
            }
            (Scope::Confirm, _) => vec![("y", "delete"), ("n/Esc", "keep")],
            (Scope::GroupEditor, _) => vec![
                ("↑↓", "move"),
                ("Space", "add/remove VM"),
                ("r", "rename"),
                ("^S/w", "save"),
                ("Esc", "back"),
            ],
            (Scope::PlanEditor, _) => vec![
                ("↑↓", "move"),
                ("K/J", "priority up/down"),
                ("d", "depends on"),
                ("p", "power"),
                ("t", "heartbeat"),
                ("i", "IP"),
                ("c/C", "callouts VM/plan"),
                ("a", "groups"),
                ("r", "rename"),
                ("^S/w", "save"),
                ("Esc", "back"),
            ],
            (Scope::View(View::Mappings), _) if edits => vec![
                ("←→", "direction"),
                ("↑↓", "move"),
                ("Enter", "edit"),
                ("x", "remove"),
                ("^S/w", "save"),
            ],
            (Scope::View(View::Mappings), _) => vec![("←→", "direction"), ("↑↓", "move")],
            (Scope::View(_), _) if edits => vec![
                ("↑↓", "move"),
                ("n", "new"),
                ("Enter", "edit"),
                ("x", "delete"),
            ],
            _ => vec![("↑↓", "move")],
        }
    }
}

impl App {
    /// The keys of the editor or protection view under `?`, in words.
    pub fn help_keys(&self) -> Vec<(&'static str, &'static str)> {
        let edits = self.may_edit();
        let mut keys = Vec::new();
        match (&self.editor, self.view) {
            (Some(Editor::Group(_)), _) => keys.extend([
                ("↑ ↓ j k", "move through the VMs"),
                ("Space", "add or remove the VM"),
                ("r", "rename the group"),
                ("Ctrl-S w", "save to the recovery site"),
                ("Esc", "back (asks when unsaved)"),
            ]),
            (Some(Editor::Plan(_)), _) => keys.extend([
                ("↑ ↓ j k", "move through the VMs"),
                ("K  S-↑", "earlier priority (1 starts first)"),
                ("J  S-↓", "later priority"),
                ("d", "VMs it starts after"),
                ("p", "power on, or leave off"),
                ("t", "heartbeat timeout"),
                ("i", "IP customization"),
                ("c", "the VM's callouts"),
                ("C", "the plan's callouts"),
                ("a", "the plan's groups"),
                ("r", "name and description"),
                ("Ctrl-S w", "save to the recovery site"),
                ("Esc", "back (asks when unsaved)"),
            ]),
            (None, View::Mappings) => {
                keys.extend([("← → h l", "the other direction"), ("↑ ↓ j k", "move")]);
                if edits {
                    keys.extend([
                        ("Enter", "pick a target; edit a rule"),
                        ("a", "add (on the rules rows)"),
                        ("x Del", "unmap; remove a rule"),
                        ("Ctrl-S w", "save to the recovery site"),
                        ("Esc", "discard changes (asks)"),
                    ]);
                }
            }
            (None, _) => {
                keys.push(("↑ ↓ j k", "move"));
                if edits {
                    keys.extend([("n", "new"), ("Enter", "edit"), ("x Del", "delete (asks)")]);
                }
            }
        }
        keys
    }
}
