//! The operator's home screen, opened first: what runs, what each plan may
//! do next and what it risks now, and the alarms still to acknowledge.
//! Acknowledgement goes to the alarm's site (`POST /alarms/{id}/ack`),
//! which keeps it, audits it and streams it to every client: an
//! acknowledged alarm stays listed, marked with who and when.

use ferry_api::types::{Plan, ReplicationInfo, Role, Run, RunMode};

use super::*;
use crate::model::Alarm;

/// The data a plan risks now: its VM whose lag is the largest share of its
/// RPO, with that lag (`None` while it never synced).
#[derive(Debug, Clone, PartialEq)]
pub struct AtRisk {
    pub vm: String,
    pub lag_seconds: Option<f64>,
    pub rpo_seconds: u64,
    pub compliance: crate::model::Compliance,
}

impl App {
    /// Alarms worth an operator's acknowledgement (warnings and worse),
    /// newest first, acknowledged ones included.
    pub fn home_alarms(&self) -> Vec<&Alarm> {
        self.model
            .alarms
            .iter()
            .filter(|a| a.row.severity != "info")
            .collect()
    }

    /// Whether the alarm's site says it was acknowledged.
    pub fn acknowledged(&self, alarm: &Alarm) -> bool {
        alarm.row.acked.is_some()
    }

    /// Whether this token may acknowledge the selected alarm: an operator
    /// at the alarm's site, as for any action there.
    pub fn may_ack(&self) -> bool {
        let alarms = self.home_alarms();
        match alarms.get(self.cursor()) {
            Some(a) => self.may(Role::Operator, Some(&a.site)),
            None => false,
        }
    }

    /// Acknowledges the selected alarm at its site; the site's event marks
    /// it here and in every other client.
    pub(super) fn ack_alarm(&mut self) -> Option<Effect> {
        let alarms = self.home_alarms();
        let alarm = alarms.get(self.cursor())?;
        let (id, site, message, acked) = (
            alarm.row.id,
            alarm.site.clone(),
            alarm.row.message.clone(),
            alarm.row.acked.clone(),
        );
        if !self.may(Role::Operator, Some(&site)) {
            self.status = Some(if self.read_only {
                "read-only: no actions here".into()
            } else {
                format!("{site} gives this token no operator role: it may not acknowledge")
            });
            return None;
        }
        if let Some(ack) = acked {
            self.status = Some(format!("already acknowledged by {}", ack.by));
            return None;
        }
        let index = self.model.site_index(&site)?;
        Some(Effect::Post {
            site: index,
            call: Call::AckAlarm { id },
            vm: format!("the alarm \"{message}\""),
        })
    }

    /// The worst lag against RPO among `plan`'s VMs.
    pub fn plan_at_risk(&self, plan: &Plan) -> Option<AtRisk> {
        let share = |r: &ReplicationInfo| match lag_seconds(r, self.now_ms) {
            Some(lag) => lag / r.rpo_seconds.max(1) as f64,
            None => f64::INFINITY,
        };
        // Only replications still protecting a VM: one recovered at the
        // other site puts no data at risk, however old its last point.
        plan.vms
            .iter()
            .filter_map(|v| {
                self.model
                    .replications()
                    .find(|(_, r)| r.vm_id == v.vm_id && self.model.lifecycle(r).is_protected())
                    .map(|(_, r)| r)
            })
            .max_by(|a, b| share(a).total_cmp(&share(b)))
            .map(|r| AtRisk {
                vm: r.vm.clone(),
                lag_seconds: lag_seconds(r, self.now_ms),
                rpo_seconds: r.rpo_seconds,
                compliance: compliance(r, self.now_ms),
            })
    }

    /// The plan's last finished test: its RTO is the estimate for a real
    /// recovery.
    pub fn last_test(&self, plan: &Plan) -> Option<&Run> {
        self.model
            .runs()
            .into_iter()
            .map(|e| e.run)
            .filter(|r| r.plan_id == plan.id && r.mode == RunMode::Test && r.ended_ms.is_some())
            .max_by_key(|r| r.started_ms)
    }

    /// Runs going now, newest first.
    pub fn running(&self) -> Vec<&Run> {
        self.model
            .runs()
            .into_iter()
            .map(|e| e.run)
            .filter(|r| !r.state.is_finished())
            .collect()
    }
}
