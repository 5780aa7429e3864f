//! Mappings, protection groups and recovery plans at this site.
//!
//! Each object lives at its recovery site: the mappings from the peer to
//! here, the groups of the peer's VMs replicated here, and the plans over
//! those groups. This site keeps its own in memory, written through to
//! site.db; the peer's come with its view (see [`super::control`]) so both
//! sites list all of them. Changing an object at the wrong site is refused
//! with the name of its owner.
//!
//! - [`mappings`], [`groups`], [`plans`]: each kind's checks and changes;
//!   [`readiness`]: what stands in the way of a plan's run now.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::site_view::SiteView;
use super::{Site, SiteError};
use crate::recovery::plan::{Member, check_name};
use crate::recovery::{Invalid, mapping, placement, plan};
use crate::replication::sender::now_ms;
use crate::store::{self, DocKind};
use crate::sync::lock;
use ferry_api::types::{
    GroupSpec, GroupVm, Inventory, MappingSpec, Mappings, NetworkInfo, Placeholder, Plan, PlanSpec,
    PlanState, ProtectionGroup, RunMode, SiteEvent, VmInfo,
};

mod groups;
mod mappings;
mod plans;
pub mod readiness;

/// A protection group as stored: its VMs by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub id: String,
    pub name: String,
    pub protected_site: String,
    pub recovery_site: String,
    pub vms: Vec<String>,
    pub locked_by: Option<String>,
    pub updated_ms: u64,
}

/// A recovery plan as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub id: String,
    pub spec: PlanSpec,
    pub protected_site: String,
    pub recovery_site: String,
    pub state: PlanState,
    pub last_run: Option<String>,
    /// The mode of the last run, to say what an interrupted plan allows.
    pub last_mode: Option<RunMode>,
    pub updated_ms: u64,
}

/// This site's protection objects and how changes to them are ordered.
#[derive(Debug, Default)]
pub struct Protection {
    /// The objects. A std lock held only to read or replace entries, never
    /// across an await, so views and runs read them without waiting on I/O.
    pub(crate) objects: Mutex<Objects>,
    /// Orders every check-then-save of groups and plans (API edits, run
    /// starts and ends, adoption). A check reads `objects` and the save
    /// awaits site.db, so without it an edit saves a copy taken before a
    /// run's lock (erasing it) and two creates of one name both pass.
    pub(crate) edits: tokio::sync::Mutex<()>,
}

/// This site's protection objects, in memory as saved in site.db.
#[derive(Debug, Default)]
pub struct Objects {
    pub mappings: BTreeMap<String, Mappings>,
    pub groups: BTreeMap<String, StoredGroup>,
    pub plans: BTreeMap<String, StoredPlan>,
    pub placeholders: BTreeMap<String, Placeholder>,
    /// Group views as last published, to publish only what changed.
    pub published: BTreeMap<String, ProtectionGroup>,
    /// Plan views as last published: their readiness changes with the
    /// peer and the groups, not only with edits.
    pub published_plans: BTreeMap<String, Plan>,
}

impl From<Invalid> for SiteError {
    fn from(e: Invalid) -> Self {
        SiteError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

pub(crate) fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    format!(
        "{prefix}-{}",
        u32::from_le_bytes(bytes) % 0xff_ffff + 0x10_0000
    )
}

pub fn mapping_id(from: &str, to: &str) -> String {
    format!("{from}-to-{to}")
}

/// What a plan in `state` allows next, and the advice that goes with it.
pub fn allowed(state: PlanState, last_mode: Option<RunMode>) -> (Vec<RunMode>, String) {
    use RunMode::*;
    match state {
        PlanState::Ready => (
            vec![Test, PlannedMigration, DisasterRecovery],
            "ready: run a test, a planned migration or a disaster recovery".into(),
        ),
        PlanState::TestComplete => (
            vec![Cleanup],
            "test complete: check the test VMs, then run cleanup".into(),
        ),
        PlanState::RecoveryComplete => (
            vec![Reprotect],
            "recovered: reprotect to replicate back to the old protected site".into(),
        ),
        PlanState::Interrupted => match last_mode {
            Some(Test) | Some(Cleanup) => (
                vec![Cleanup],
                "interrupted during a test: run cleanup (forced if it fails)".into(),
            ),
            Some(Reprotect) => (vec![Reprotect], "interrupted: run reprotect again".into()),
            _ => (
                vec![PlannedMigration, DisasterRecovery],
                "interrupted during recovery: run the recovery again; steps already done are kept"
                    .into(),
            ),
        },
        PlanState::TestInProgress
        | PlanState::CleanupInProgress
        | PlanState::RecoveryInProgress
        | PlanState::ReprotectInProgress => (
            Vec::new(),
            format!("{}: watch the run or cancel it", state.label()),
        ),
    }
}

impl Site {
    /// This site's objects that mappings can name.
    pub fn inventory(&self) -> Inventory {
        let site = &self.config.site;
        Inventory {
            site: self.name.clone(),
            networks: site
                .networks
                .iter()
                .map(|n| NetworkInfo {
                    name: n.name.clone(),
                    test: n.test,
                    subnet: n.subnet.clone(),
                    gateway: n.gateway.clone(),
                })
                .collect(),
            folders: site.folders.clone(),
            resource_pools: site.resource_pools.clone(),
            datastores: site.datastores.iter().map(|d| d.name.clone()).collect(),
        }
    }

    /// Loads the stored objects at start.
    pub(crate) fn load_protection(&self) -> Result<(), SiteError> {
        let (mappings, groups, plans, view) = self.store.now(|c| {
            Ok((
                store::list_docs::<Mappings>(c, DocKind::Mappings)?,
                store::list_docs::<StoredGroup>(c, DocKind::Group)?,
                store::list_docs::<StoredPlan>(c, DocKind::Plan)?,
                store::list_docs::<SiteView>(c, DocKind::PeerView)?,
            ))
        })?;
        let mut p = lock(&self.protection.objects);
        p.mappings = mappings.into_iter().map(|m| (m.id.clone(), m)).collect();
        p.groups = groups.into_iter().map(|g| (g.id.clone(), g)).collect();
        p.plans = plans.into_iter().map(|g| (g.id.clone(), g)).collect();
        drop(p);
        if let Some(view) = view.into_iter().next() {
            self.set_peer_view(view);
        }
        Ok(())
    }

    fn peer_name(&self) -> Result<String, SiteError> {
        self.peer_config()
            .map(|p| p.name)
            .ok_or_else(|| SiteError::Conflict("this site is not paired with a peer yet".into()))
    }

    fn wrong_site(kind: &str, id: &str, owner: &str) -> SiteError {
        SiteError::WrongSite {
            owner: owner.to_string(),
            message: format!(
                "{kind} {id} belongs to site {owner}, its recovery site; change it there"
            ),
        }
    }

    // ------------------------------------------------------------- derived

    /// Recomputes placeholders after mappings, groups or the peer's view
    /// changed: each VM with complete mappings gets one, the others lose
    /// theirs. Publishes groups and plans whose view changed.
    pub(crate) async fn refresh_protection(&self) {
        let groups = self.own_groups();
        let wanted: BTreeMap<String, Placeholder> = groups
            .iter()
            .flat_map(|g| g.vms.iter())
            .filter_map(|v| v.placeholder.clone().map(|p| (v.vm_id.clone(), p)))
            .collect();
        let before = std::mem::replace(
            &mut lock(&self.protection.objects).placeholders,
            wanted.clone(),
        );
        if before != wanted {
            let result = self
                .store
                .call(move |c| {
                    for id in before.keys().filter(|k| !wanted.contains_key(*k)) {
                        store::delete_doc(c, DocKind::Placeholder, id)?;
                    }
                    for (id, p) in wanted.iter().filter(|(k, p)| before.get(*k) != Some(p)) {
                        store::put_doc(c, DocKind::Placeholder, id, p)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = result {
                tracing::warn!("saving placeholders failed: {e}");
            }
        }
        let changed: Vec<ProtectionGroup> = {
            let mut p = lock(&self.protection.objects);
            let changed = groups
                .iter()
                .filter(|g| p.published.get(&g.id) != Some(*g))
                .cloned()
                .collect();
            p.published = groups.into_iter().map(|g| (g.id.clone(), g)).collect();
            changed
        };
        for g in changed {
            self.events.publish(SiteEvent::Group(g));
        }
        self.publish_changed_plans();
        self.refresh_lifecycles().await;
    }
}

impl StoredPlan {
    fn state_allows_edit(&self) -> bool {
        matches!(
            self.state,
            PlanState::Ready
                | PlanState::TestComplete
                | PlanState::RecoveryComplete
                | PlanState::Interrupted
        )
    }
}
