//! The list views' rows as shown (the `/` filter applied) and a cursor that
//! stays on its item — a VM, alarm, group, plan or run, by key — through
//! re-sorts, filters and live updates, so a key acts on what was selected.

use ferry_api::types::{Plan, ProtectionGroup};

use super::{App, View};
use crate::model::Alarm;
use crate::model::runs::RunEntry;

/// Whether any of `fields` contains the lowercase `needle`.
fn matches(needle: &str, fields: &[&str]) -> bool {
    needle.is_empty() || fields.iter().any(|f| f.to_lowercase().contains(needle))
}

/// An alarm's identity: its site and the site's event id.
pub fn alarm_key(a: &Alarm) -> String {
    format!("{}#{}", a.site, a.row.id)
}

impl App {
    fn needle(&self) -> String {
        self.filter.to_lowercase()
    }

    /// Alarms, newest first, that pass the filter (site, severity, message).
    pub fn alarms_shown(&self) -> Vec<&Alarm> {
        let needle = self.needle();
        self.model
            .alarms
            .iter()
            .filter(|a| matches(&needle, &[&a.site, &a.row.severity, &a.row.message]))
            .collect()
    }

    /// Groups that pass the filter (name, sites, VMs' names).
    pub fn groups_shown(&self) -> Vec<&ProtectionGroup> {
        let needle = self.needle();
        self.model
            .groups()
            .into_iter()
            .filter(|g| {
                matches(&needle, &[&g.name, &g.protected_site, &g.recovery_site])
                    || g.vms
                        .iter()
                        .any(|v| matches(&needle, &[&self.model.vm_name(&v.vm_id)]))
            })
            .collect()
    }

    /// Plans that pass the filter (name, description, sites).
    pub fn plans_shown(&self) -> Vec<&Plan> {
        let needle = self.needle();
        self.model
            .plans()
            .into_iter()
            .filter(|p| {
                matches(
                    &needle,
                    &[&p.name, &p.description, &p.protected_site, &p.recovery_site],
                )
            })
            .collect()
    }

    /// Runs, newest first, that pass the filter (plan, mode, state, id, who).
    pub fn runs_shown(&self) -> Vec<RunEntry<'_>> {
        let needle = self.needle();
        self.model
            .runs()
            .into_iter()
            .filter(|e| {
                let (_, state, _) = crate::model::runs::run_look(e.run.state);
                matches(
                    &needle,
                    &[
                        &e.run.plan_name,
                        e.run.mode.label(),
                        state,
                        &e.run.id,
                        &e.run.started_by,
                    ],
                )
            })
            .collect()
    }

    /// The keys of the current view's rows, in the order shown.
    pub fn row_keys(&self) -> Vec<String> {
        match self.view {
            View::Replication => self.rows().iter().map(|(_, r)| r.vm_id.clone()).collect(),
            View::Events => self.alarms_shown().into_iter().map(alarm_key).collect(),
            View::Groups => self.groups_shown().iter().map(|g| g.id.clone()).collect(),
            View::Plans => self.plans_shown().iter().map(|p| p.id.clone()).collect(),
            View::History => self.runs_shown().iter().map(|e| e.run.id.clone()).collect(),
            View::Home => self.home_alarms().into_iter().map(alarm_key).collect(),
            View::Dashboard | View::Mappings => Vec::new(),
        }
    }

    /// The row the cursor is on among `keys`: the selected item's, wherever
    /// it moved; else the last row index, kept within the rows.
    pub fn cursor_among<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> usize {
        let mut count = 0;
        for (i, key) in keys.into_iter().enumerate() {
            if self.anchor.as_deref() == Some(key) {
                return i;
            }
            count = i + 1;
        }
        self.selected.min(count.saturating_sub(1))
    }

    /// The cursor's row in the current view.
    pub fn cursor(&self) -> usize {
        let keys = self.row_keys();
        self.cursor_among(keys.iter().map(String::as_str))
    }

    /// Puts the cursor on row `to` of the current view and remembers its
    /// item, so updates that move the item move the cursor with it.
    pub(super) fn move_cursor(&mut self, to: usize) {
        let keys = self.row_keys();
        let to = to.min(keys.len().saturating_sub(1));
        self.selected = to;
        self.anchor = keys.get(to).cloned();
    }
}
