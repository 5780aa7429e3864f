//! The replication view's rows: filtered, sorted, and the VM the
//! selection is on, which sync, pause and resume act on.

use std::cmp::Ordering;

use ferry_api::types::ReplicationInfo;

use super::*;
use crate::model::{compliance, lag_seconds};

impl App {
    /// The replication rows as shown: filtered, then sorted.
    pub fn rows(&self) -> Vec<(usize, &ReplicationInfo)> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<(usize, &ReplicationInfo)> = self
            .model
            .replications()
            .filter(|(_, r)| {
                needle.is_empty()
                    || r.vm.to_lowercase().contains(&needle)
                    || r.state.contains(&needle)
                    || r.source_site.contains(&needle)
                    || r.target_site
                        .as_deref()
                        .is_some_and(|t| t.contains(&needle))
                    || compliance(r, self.now_ms).word().contains(&needle)
            })
            .collect();
        let now = self.now_ms;
        rows.sort_unstable_by(|(_, a), (_, b)| {
            let order = match self.sort {
                Column::Vm => a.vm.cmp(&b.vm),
                Column::Direction => a.source_site.cmp(&b.source_site),
                Column::State => a.state.cmp(&b.state),
                Column::Rpo => a.rpo_seconds.cmp(&b.rpo_seconds),
                Column::Lag => cmp_f64(lag_seconds(a, now), lag_seconds(b, now)),
                Column::Progress => progress(a)
                    .partial_cmp(&progress(b))
                    .unwrap_or(Ordering::Equal),
                Column::LastSync => a
                    .last_sync
                    .map(|l| l.finished_at)
                    .cmp(&b.last_sync.map(|l| l.finished_at)),
            }
            .then_with(|| a.vm.cmp(&b.vm));
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
        rows
    }

    /// Whether the selected VM's replication may be synced, paused or
    /// resumed at its site.
    pub fn may_replicate(&self) -> bool {
        let selected = self.selected_replication();
        // Nothing to sync or pause once the VM runs at the other site.
        if selected
            .as_ref()
            .is_some_and(|(_, r)| self.model.lifecycle(r).has_ended())
        {
            return false;
        }
        let site = selected.and_then(|(i, _)| self.model.sites.get(i));
        match site {
            Some(s) => self.may(ferry_api::types::Role::Admin, Some(&s.name)),
            None => self.may(ferry_api::types::Role::Admin, None),
        }
    }

    pub(super) fn selected_replication(&self) -> Option<(usize, ReplicationInfo)> {
        let rows = self.rows();
        let at = self.cursor_among(rows.iter().map(|(_, r)| r.vm_id.as_str()));
        rows.get(at).map(|(site, r)| (*site, (*r).clone()))
    }
}

fn progress(r: &ReplicationInfo) -> f64 {
    r.progress
        .map_or(-1.0, |p| p.bytes_done as f64 / p.bytes_total.max(1) as f64)
}

fn cmp_f64(a: Option<f64>, b: Option<f64>) -> Ordering {
    a.unwrap_or(-1.0)
        .partial_cmp(&b.unwrap_or(-1.0))
        .unwrap_or(Ordering::Equal)
}
