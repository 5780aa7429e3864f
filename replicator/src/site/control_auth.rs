//! Who may ask what over the link. The peer is authenticated by its pinned
//! certificate; that alone does not let it power VMs off or hand this site
//! commands to run. Each `Control` call is checked against the state the
//! peer is in (a shutdown or a demotion only for VMs whose protection group
//! is locked by the run the peer names; an adopted plan only if it is valid
//! and recovers here), and every call but the periodic view is audited
//! with the peer's identity.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Site;
use super::control::{ControlCall, ControlReply};
use crate::recovery::plan::{self, Member};
use crate::store::AuditEntry;
use crate::sync::lock;

/// How long a fresh look at the peer's groups may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

impl ControlCall {
    /// The audit log's action and target for the call.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            Self::View => ("control.view", String::new()),
            Self::Sync { vm_ids, .. } => ("control.sync", vm_ids.join(",")),
            Self::ShutDown { vm_ids, run } => (
                "control.shut_down",
                format!(
                    "{} (run {})",
                    vm_ids.join(","),
                    run.as_deref().unwrap_or("-")
                ),
            ),
            Self::Demote { vm_ids, run } => (
                "control.demote",
                format!(
                    "{} (run {})",
                    vm_ids.join(","),
                    run.as_deref().unwrap_or("-")
                ),
            ),
            Self::Adopt { plan, .. } => ("control.adopt", plan.id.clone()),
        }
    }
}

/// Why the peer may not make a call now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControlRefusal {
    #[error("this site is not paired")]
    NotPaired,
    #[error("a shutdown or demotion must name the run that asks for it")]
    NoRun,
    #[error("VM {vm} is in no protection group of {peer} locked by run {run}")]
    NotLocked {
        vm: String,
        peer: String,
        run: String,
    },
    #[error("an adopted plan and its groups must move from {from} to {to}")]
    WrongDirection { from: String, to: String },
    #[error("the adopted plan is not valid: {field}: {message}")]
    InvalidPlan { field: String, message: String },
}

impl Site {
    /// Whether the peer may make `call` now; the reason if not.
    pub(crate) async fn authorize(&self, call: &ControlCall) -> Result<(), ControlRefusal> {
        let peer = self.peer_config().ok_or(ControlRefusal::NotPaired)?;
        match call {
            ControlCall::View | ControlCall::Sync { .. } => Ok(()),
            ControlCall::ShutDown { vm_ids, run } | ControlCall::Demote { vm_ids, run } => {
                let run = run.as_deref().ok_or(ControlRefusal::NoRun)?;
                if self.locked_by_run(vm_ids, run).is_ok() {
                    return Ok(());
                }
                // The peer's view may be a beat old: look again once.
                if let Ok(ControlReply::View(view)) =
                    self.call_peer(&ControlCall::View, REFRESH_TIMEOUT).await
                {
                    self.take_peer_view(*view).await;
                }
                self.locked_by_run(vm_ids, run)
                    .map_err(|vm| ControlRefusal::NotLocked {
                        vm: vm.to_string(),
                        peer: peer.name.clone(),
                        run: run.to_string(),
                    })
            }
            ControlCall::Adopt { plan, groups } => {
                let here = |recovery: &str, protected: &str| {
                    recovery == self.name && protected == peer.name
                };
                if !here(&plan.recovery_site, &plan.protected_site)
                    || groups
                        .iter()
                        .any(|g| !here(&g.recovery_site, &g.protected_site))
                {
                    return Err(ControlRefusal::WrongDirection {
                        from: peer.name.clone(),
                        to: self.name.clone(),
                    });
                }
                // The VMs run at the peer now (they were failed over to
                // it); a VM it does not show is looked up here.
                let view = self.peer_view();
                let members: BTreeMap<String, Member> = groups
                    .iter()
                    .flat_map(|g| g.vms.iter())
                    .map(|id| {
                        let seen = view
                            .as_ref()
                            .and_then(|v| v.vms.iter().find(|x| &x.id == id))
                            .map(|v| (v.name.clone(), v.nics.len()));
                        let (name, nic_count) = seen
                            .or_else(|| {
                                lock(&self.inventory.vms)
                                    .get(id)
                                    .map(|v| (v.record.name.clone(), v.record.nics.len()))
                            })
                            .unwrap_or_else(|| (id.clone(), 0));
                        (id.clone(), Member { name, nic_count })
                    })
                    .collect();
                plan::validate(&plan.spec, &members).map_err(|e| ControlRefusal::InvalidPlan {
                    field: e.field,
                    message: e.message,
                })
            }
        }
    }

    /// Ok when every VM is in a group of the peer locked by `run`; else the
    /// first VM that is not.
    fn locked_by_run<'a>(&self, vm_ids: &'a [String], run: &str) -> Result<(), &'a str> {
        let groups = self.peer_view().map(|v| v.groups).unwrap_or_default();
        for id in vm_ids {
            let held = groups.iter().any(|g| {
                g.locked_by.as_deref() == Some(run) && g.vms.iter().any(|v| &v.vm_id == id)
            });
            if !held {
                return Err(id);
            }
        }
        Ok(())
    }

    /// Writes a call from the peer to the audit log, with its identity.
    pub(crate) async fn audit_call(&self, action: &str, target: &str, result: Result<(), &str>) {
        let actor = match self.peer_config() {
            Some(peer) => format!("peer {} {}", peer.name, peer.fingerprint),
            None => "peer (unpaired)".to_string(),
        };
        let (status, result) = match result {
            Ok(()) => (200, "ok".to_string()),
            Err(why) => (403, why.to_string()),
        };
        self.audit(AuditEntry {
            id: 0,
            at_ms: 0,
            actor,
            role: "peer".into(),
            action: action.into(),
            target: target.into(),
            status,
            result,
        })
        .await;
    }
}
