//! What this TUI's tokens may do at each site. Each site says the role of
//! the token that asked (`GET /api/v1/site`); the key bar, help, the
//! palette and the one action gate offer and allow only what that role can
//! do at the site an action goes to. `--read-only` allows nothing.

use ferry_api::types::{Role, RunMode};

use super::*;
use crate::editor::mappings::directions;

/// The role a run of `mode` needs at its plan's recovery site (and to
/// cancel or answer it): the site's own rule.
pub fn role_for(mode: RunMode) -> Role {
    if mode.is_destructive() {
        Role::Admin
    } else {
        Role::Operator
    }
}

/// The role each `:` command needs, `None` for those that change nothing.
fn command_needs(command: &str) -> Option<Role> {
    match command {
        "test" | "cleanup" | "cancel" => Some(Role::Operator),
        "migrate" | "failover" | "reprotect" | "new" | "save" => Some(Role::Admin),
        _ => None,
    }
}

impl App {
    /// The role this TUI's token has at `site`, once the site said it.
    pub fn role_at(&self, site: &str) -> Option<Role> {
        self.model
            .sites
            .iter()
            .find(|s| s.name == site)
            .and_then(|s| s.role)
    }

    /// Whether `need` is held at `site` (at some site when `None`): never
    /// in read-only mode, nor at a site that has not said the role yet.
    pub fn may(&self, need: Role, site: Option<&str>) -> bool {
        if self.read_only {
            return false;
        }
        match site {
            Some(site) => self.role_at(site).is_some_and(|r| r >= need),
            None => self
                .model
                .sites
                .iter()
                .any(|s| s.role.is_some_and(|r| r >= need)),
        }
    }

    /// Whether edits of what is on screen may be saved where they go: the
    /// mappings' owner, the group's or plan's recovery site.
    pub fn may_edit(&self) -> bool {
        self.may(Role::Admin, self.edit_site().as_deref())
    }

    /// The site the selected plan runs at, when a plan is selected.
    pub(super) fn plan_site(&self) -> Option<String> {
        let plans = self.plans_shown();
        plans.get(self.cursor()).map(|p| p.recovery_site.clone())
    }

    /// Whether a run of `mode` may be started or steered at the selected
    /// plan's site.
    pub fn may_run(&self, mode: RunMode) -> bool {
        self.may(role_for(mode), self.plan_site().as_deref())
    }

    /// Whether the run on screen, the history's selected run or the
    /// selected plan's run may be cancelled or answered.
    pub fn may_steer(&self) -> bool {
        match self.steered() {
            Some((need, site)) => self.may(need, Some(&site)),
            None => self.may(Role::Operator, None),
        }
    }

    /// The role steering the run in question needs, and its site.
    fn steered(&self) -> Option<(Role, String)> {
        let id = match (&self.run, self.view) {
            (Some(view), _) => Some(view.id.clone()),
            (None, View::History) => self
                .runs_shown()
                .get(self.cursor())
                .map(|e| e.run.id.clone()),
            (None, _) => {
                let plan = self.plans_shown().get(self.cursor()).map(|p| p.id.clone());
                plan.and_then(|p| self.model.plan_run(&p).map(|e| e.run.id.clone()))
            }
        };
        let entry = self.model.run(id.as_deref()?)?;
        let site = self.model.sites.get(entry.site)?.name.clone();
        Some((role_for(entry.run.mode), site))
    }

    /// Where the edits of the current view go, when that is known.
    fn edit_site(&self) -> Option<String> {
        match (&self.editor, self.view) {
            (Some(Editor::Group(g)), _) => Some(g.site.clone()),
            (Some(Editor::Plan(_)), _) => self.plan_site(),
            (None, View::Mappings) => directions(&self.model)
                .get(self.mappings.pane)
                .map(|d| d.to.clone()),
            (None, View::Groups) => {
                let groups = self.groups_shown();
                groups.get(self.cursor()).map(|g| g.recovery_site.clone())
            }
            (None, View::Plans) => self.plan_site(),
            _ => None,
        }
    }

    /// The `:` commands this TUI may run here: those that change nothing,
    /// and those its role allows.
    pub fn commands(&self) -> Vec<(&'static str, &'static str)> {
        COMMANDS
            .iter()
            .copied()
            .filter(|(c, _)| match command_needs(c) {
                None => true,
                Some(need) if matches!(*c, "test" | "cleanup" | "cancel") => {
                    self.may(need, self.plan_site().as_deref())
                }
                Some(need) => self.may(need, None),
            })
            .collect()
    }

    /// Why `action` may not go to its site: the role this token has there
    /// and the one needed, as a sentence; `None` when it may.
    pub(super) fn refusal(&self, action: &Action) -> Option<String> {
        let (need, site) = match action {
            Action::SyncNow | Action::TogglePause => {
                let (site, _) = self.selected_replication()?;
                (Role::Admin, self.model.sites.get(site)?.name.clone())
            }
            Action::StartRun(mode) => (role_for(*mode), self.plan_site()?),
            Action::ForceCleanup => (Role::Operator, self.plan_site()?),
            Action::Ack => {
                let prompt = self.prompt()?;
                let entry = self.model.run(&prompt.run_id)?;
                let site = self.model.sites.get(entry.site)?.name.clone();
                (role_for(entry.run.mode), site)
            }
            Action::CancelRun => self.steered()?,
            a if a.edits() && self.view.edits() => (Role::Admin, self.edit_site()?),
            _ => return None,
        };
        if self.may(need, Some(&site)) {
            return None;
        }
        let has = self
            .role_at(&site)
            .map_or("no known".to_string(), |r| format!("the {}", r.as_str()));
        Some(format!(
            "{site} gives this token {has} role; that needs {}",
            need.as_str()
        ))
    }
}
