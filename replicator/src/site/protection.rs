//! Mappings, protection groups and recovery plans at this site.
//!
//! Each object lives at its recovery site: the mappings from the peer to
//! here, the groups of the peer's VMs replicated here, and the plans over
//! those groups. This site keeps its own in memory, written through to
//! site.db; the peer's come with its view (see [`super::control`]) so both
//! sites list all of them. Changing an object at the wrong site is refused
//! with the name of its owner.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::control::SiteView;
use super::{Site, SiteError};
use crate::api::types::{
    GroupSpec, GroupVm, Inventory, MappingSpec, Mappings, NetworkInfo, Placeholder, Plan, PlanSpec,
    PlanState, ProtectionGroup, RunMode, SiteEvent, VmInfo,
};
use crate::recovery::plan::{Member, check_name};
use crate::recovery::{Invalid, mapping, plan};
use crate::replication::sender::now_ms;
use crate::storage::tracked_disk::lock;
use crate::store::{self, DocKind};

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

/// This site's protection objects.
#[derive(Debug, Default)]
pub struct Protection {
    pub mappings: BTreeMap<String, Mappings>,
    pub groups: BTreeMap<String, StoredGroup>,
    pub plans: BTreeMap<String, StoredPlan>,
    pub placeholders: BTreeMap<String, Placeholder>,
    /// Group views as last published, to publish only what changed.
    pub published: BTreeMap<String, ProtectionGroup>,
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
        let mut p = lock(&self.protection);
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

    // ------------------------------------------------------------ mappings

    /// Both directions: this site's, then the peer's as last seen.
    pub fn mappings(&self) -> Vec<Mappings> {
        let mut all: Vec<Mappings> = lock(&self.protection).mappings.values().cloned().collect();
        if let Some(view) = self.peer_view() {
            all.extend(view.mappings.into_iter().filter(|m| m.owner != self.name));
        }
        all
    }

    pub fn mapping(&self, id: &str) -> Result<Mappings, SiteError> {
        self.mappings()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| SiteError::NotFound(format!("no mappings {id}")))
    }

    fn check_mapping(&self, spec: &MappingSpec) -> Result<(), SiteError> {
        let peer = self.peer_name()?;
        if spec.to_site != self.name {
            return Err(Self::wrong_site(
                "mappings",
                &mapping_id(&spec.from_site, &spec.to_site),
                &spec.to_site,
            ));
        }
        if spec.from_site != peer {
            return Err(SiteError::invalid(
                "from_site",
                format!(
                    "{:?} is not the peer site; mappings here come from {peer}",
                    spec.from_site
                ),
            ));
        }
        let view = self.peer_view();
        let nics = |vm: &str| {
            view.as_ref()
                .and_then(|v| v.vms.iter().find(|x| x.id == vm))
                .map(|x| x.nics.len())
        };
        mapping::validate(
            spec,
            view.as_ref().map(|v| &v.inventory),
            &self.inventory(),
            nics,
        )?;
        Ok(())
    }

    /// Creates (`create`) or replaces the mappings with `id`.
    pub async fn put_mappings(
        &self,
        id: Option<&str>,
        spec: MappingSpec,
    ) -> Result<Mappings, SiteError> {
        let spec_id = mapping_id(&spec.from_site, &spec.to_site);
        if let Some(id) = id
            && id != spec_id
        {
            if let Ok(existing) = self.mapping(id)
                && existing.owner != self.name
            {
                return Err(Self::wrong_site("mappings", id, &existing.owner));
            }
            let field = if id.starts_with(&format!("{}-to-", spec.from_site)) {
                "to_site"
            } else {
                "from_site"
            };
            return Err(SiteError::invalid(
                field,
                format!("the body describes {spec_id}, not {id}"),
            ));
        }
        self.check_mapping(&spec)?;
        let exists = lock(&self.protection).mappings.contains_key(&spec_id);
        if id.is_none() && exists {
            return Err(SiteError::Conflict(format!(
                "mappings {spec_id} exist already; update them with PUT /api/v1/mappings/{spec_id}"
            )));
        }
        let mappings = Mappings {
            id: spec_id.clone(),
            owner: self.name.clone(),
            spec,
            updated_ms: now_ms(),
        };
        let stored = mappings.clone();
        self.store
            .call(move |c| store::put_doc(c, DocKind::Mappings, &stored.id, &stored))
            .await?;
        lock(&self.protection)
            .mappings
            .insert(spec_id, mappings.clone());
        self.events.publish(SiteEvent::Mappings(mappings.clone()));
        self.refresh_protection().await;
        Ok(mappings)
    }

    pub async fn delete_mappings(&self, id: &str) -> Result<(), SiteError> {
        let existing = self.mapping(id)?;
        if existing.owner != self.name {
            return Err(Self::wrong_site("mappings", id, &existing.owner));
        }
        let key = id.to_string();
        self.store
            .call(move |c| store::delete_doc(c, DocKind::Mappings, &key))
            .await?;
        lock(&self.protection).mappings.remove(id);
        self.events
            .publish(SiteEvent::MappingsRemoved { id: id.into() });
        self.refresh_protection().await;
        Ok(())
    }

    // -------------------------------------------------------------- groups

    /// A peer VM as last seen, and whether it replicates here.
    fn protected_vm(
        &self,
        view: Option<&SiteView>,
        vm_id: &str,
    ) -> (Option<VmInfo>, Option<String>) {
        let Some(view) = view else {
            return (None, None);
        };
        let vm = view.vms.iter().find(|v| v.id == vm_id).cloned();
        let datastore = view
            .replications
            .iter()
            .find(|r| r.vm_id == vm_id && r.target_site.as_deref() == Some(self.name.as_str()))
            .map(|r| r.datastore.clone());
        (vm, datastore)
    }

    /// A stored group as the API shows it, with each VM's status.
    fn group_view(&self, g: &StoredGroup, view: Option<&SiteView>) -> ProtectionGroup {
        let mappings = lock(&self.protection)
            .mappings
            .get(&mapping_id(&g.protected_site, &g.recovery_site))
            .map(|m| m.spec.clone());
        let vms = g
            .vms
            .iter()
            .map(|id| {
                let (vm, datastore) = self.protected_vm(view, id);
                let name = vm.as_ref().map_or_else(
                    || {
                        id.split_once('.')
                            .map_or(id.as_str(), |(_, n)| n)
                            .to_string()
                    },
                    |v| v.name.clone(),
                );
                let (status, placeholder) = match (vm, datastore) {
                    (Some(vm), Some(datastore)) => match mapping::place(
                        mappings.as_ref(),
                        &vm.folder,
                        &vm.resource_pool,
                        &vm.nics,
                        &datastore,
                    ) {
                        Ok(p) => ("ok".to_string(), Some(p)),
                        Err(kind) => (format!("mapping missing: {kind}"), None),
                    },
                    _ => ("not replicated".to_string(), None),
                };
                GroupVm {
                    vm_id: id.clone(),
                    vm: name,
                    status,
                    placeholder,
                }
            })
            .collect();
        ProtectionGroup {
            id: g.id.clone(),
            name: g.name.clone(),
            protected_site: g.protected_site.clone(),
            recovery_site: g.recovery_site.clone(),
            vms,
            locked_by: g.locked_by.clone(),
            updated_ms: g.updated_ms,
        }
    }

    pub(crate) fn own_groups(&self) -> Vec<ProtectionGroup> {
        let view = self.peer_view();
        let stored: Vec<StoredGroup> = lock(&self.protection).groups.values().cloned().collect();
        stored
            .iter()
            .map(|g| self.group_view(g, view.as_ref()))
            .collect()
    }

    /// This site's groups, then the peer's as last seen.
    pub fn groups(&self) -> Vec<ProtectionGroup> {
        let mut all = self.own_groups();
        if let Some(view) = self.peer_view() {
            all.extend(
                view.groups
                    .into_iter()
                    .filter(|g| g.recovery_site != self.name),
            );
        }
        all
    }

    pub fn group(&self, id: &str) -> Result<ProtectionGroup, SiteError> {
        self.groups()
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| SiteError::NotFound(format!("no protection group {id}")))
    }

    /// The stored group `id` of this site, or why it cannot be changed here.
    fn own_group(&self, id: &str) -> Result<StoredGroup, SiteError> {
        if let Some(g) = lock(&self.protection).groups.get(id) {
            return Ok(g.clone());
        }
        let g = self.group(id)?;
        Err(Self::wrong_site("protection group", id, &g.recovery_site))
    }

    fn check_group(&self, id: Option<&str>, spec: &GroupSpec) -> Result<String, SiteError> {
        check_name("name", &spec.name)?;
        let peer = self.peer_name()?;
        let p = lock(&self.protection);
        if let Some(other) = p
            .groups
            .values()
            .find(|g| Some(g.id.as_str()) != id && g.name.eq_ignore_ascii_case(&spec.name))
        {
            return Err(SiteError::Conflict(format!(
                "a protection group named {:?} exists already ({})",
                other.name, other.id
            )));
        }
        if spec.vms.is_empty() {
            return Err(SiteError::invalid(
                "vms",
                "a protection group needs at least one VM",
            ));
        }
        if let Some((i, vm_id)) = spec
            .vms
            .iter()
            .enumerate()
            .find(|(i, vm)| spec.vms[..*i].contains(vm))
        {
            return Err(SiteError::invalid(
                &format!("vms[{i}]"),
                format!("{vm_id} is listed twice"),
            ));
        }
        let view = self.peer_view();
        for (i, vm_id) in spec.vms.iter().enumerate() {
            let field = format!("vms[{i}]");
            if lock(&self.vms).contains_key(vm_id) {
                return Err(SiteError::invalid(
                    &field,
                    format!(
                        "{vm_id} runs at this site; its protection group belongs at the site it replicates to"
                    ),
                ));
            }
            if self.protected_vm(view.as_ref(), vm_id).1.is_none() {
                return Err(SiteError::invalid(
                    &field,
                    format!(
                        "{vm_id} is not replicated from {peer} to {}; configure its replication first",
                        self.name
                    ),
                ));
            }
            if let Some(other) = p
                .groups
                .values()
                .find(|g| Some(g.id.as_str()) != id && g.vms.contains(vm_id))
            {
                return Err(SiteError::Conflict(format!(
                    "{vm_id} is already in protection group {:?} ({}); a VM can be in one group only",
                    other.name, other.id
                )));
            }
        }
        Ok(peer)
    }

    pub async fn create_group(&self, spec: GroupSpec) -> Result<ProtectionGroup, SiteError> {
        let peer = self.check_group(None, &spec)?;
        let group = StoredGroup {
            id: new_id("pg"),
            name: spec.name.trim().to_string(),
            protected_site: peer,
            recovery_site: self.name.clone(),
            vms: spec.vms,
            locked_by: None,
            updated_ms: now_ms(),
        };
        self.save_group(group).await
    }

    pub async fn update_group(
        &self,
        id: &str,
        spec: GroupSpec,
    ) -> Result<ProtectionGroup, SiteError> {
        let mut group = self.own_group(id)?;
        if let Some(run) = &group.locked_by {
            return Err(SiteError::Conflict(format!(
                "protection group {id} is in use by run {run}; change it when the run ends"
            )));
        }
        self.check_group(Some(id), &spec)?;
        group.name = spec.name.trim().to_string();
        group.vms = spec.vms;
        group.updated_ms = now_ms();
        self.save_group(group).await
    }

    pub(crate) async fn save_group(
        &self,
        group: StoredGroup,
    ) -> Result<ProtectionGroup, SiteError> {
        let stored = group.clone();
        self.store
            .call(move |c| store::put_doc(c, DocKind::Group, &stored.id, &stored))
            .await?;
        lock(&self.protection)
            .groups
            .insert(group.id.clone(), group.clone());
        let view = self.group_view(&group, self.peer_view().as_ref());
        self.events.publish(SiteEvent::Group(view.clone()));
        self.refresh_protection().await;
        Ok(view)
    }

    pub async fn delete_group(&self, id: &str) -> Result<(), SiteError> {
        let group = self.own_group(id)?;
        if let Some(run) = &group.locked_by {
            return Err(SiteError::Conflict(format!(
                "protection group {id} is in use by run {run}"
            )));
        }
        let users: Vec<String> = lock(&self.protection)
            .plans
            .values()
            .filter(|p| p.spec.groups.contains(&group.id))
            .map(|p| format!("{:?} ({})", p.spec.name, p.id))
            .collect();
        if !users.is_empty() {
            return Err(SiteError::Conflict(format!(
                "protection group {id} is in plan {}; remove it from the plan first",
                users.join(", ")
            )));
        }
        let key = id.to_string();
        self.store
            .call(move |c| store::delete_doc(c, DocKind::Group, &key))
            .await?;
        lock(&self.protection).groups.remove(id);
        self.events
            .publish(SiteEvent::GroupRemoved { id: id.into() });
        self.refresh_protection().await;
        Ok(())
    }

    // --------------------------------------------------------------- plans

    /// The VMs of a plan's groups, by id.
    pub(crate) fn plan_members(&self, groups: &[String]) -> BTreeMap<String, Member> {
        let view = self.peer_view();
        let p = lock(&self.protection);
        groups
            .iter()
            .filter_map(|g| p.groups.get(g))
            .flat_map(|g| g.vms.iter())
            .map(|id| {
                let vm = view
                    .as_ref()
                    .and_then(|v| v.vms.iter().find(|x| &x.id == id))
                    .cloned()
                    .or_else(|| lock(&self.vms).get(id).map(super::vms::describe));
                (
                    id.clone(),
                    Member {
                        name: vm.as_ref().map_or_else(
                            || {
                                id.split_once('.')
                                    .map_or(id.as_str(), |(_, n)| n)
                                    .to_string()
                            },
                            |v| v.name.clone(),
                        ),
                        nic_count: vm.map_or(0, |v| v.nics.len()),
                    },
                )
            })
            .collect()
    }

    pub(crate) fn plan_view(&self, p: &StoredPlan) -> Plan {
        let members = self.plan_members(&p.spec.groups);
        let vms = plan::resolve(&p.spec, &members);
        let start_order = plan::order(&vms).unwrap_or_default();
        let mut ordered: Vec<_> = vms.clone();
        let rank = |id: &str| {
            start_order
                .iter()
                .flatten()
                .position(|x| x == id)
                .unwrap_or(usize::MAX)
        };
        ordered.sort_by_key(|v| rank(&v.vm_id));
        let (allowed, next) = allowed(p.state, p.last_mode);
        Plan {
            id: p.id.clone(),
            name: p.spec.name.clone(),
            description: p.spec.description.clone(),
            protected_site: p.protected_site.clone(),
            recovery_site: p.recovery_site.clone(),
            groups: p.spec.groups.clone(),
            vms: ordered,
            pre_power_on: p.spec.pre_power_on.clone(),
            post_power_on: p.spec.post_power_on.clone(),
            state: p.state,
            allowed,
            next,
            start_order,
            last_run: p.last_run.clone(),
            updated_ms: p.updated_ms,
        }
    }

    /// This site's plans, then the peer's as last seen.
    pub fn plans(&self) -> Vec<Plan> {
        let stored: Vec<StoredPlan> = lock(&self.protection).plans.values().cloned().collect();
        let mut all: Vec<Plan> = stored.iter().map(|p| self.plan_view(p)).collect();
        if let Some(view) = self.peer_view() {
            all.extend(
                view.plans
                    .into_iter()
                    .filter(|p| p.recovery_site != self.name),
            );
        }
        all
    }

    pub fn plan(&self, id: &str) -> Result<Plan, SiteError> {
        self.plans()
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| SiteError::NotFound(format!("no recovery plan {id}")))
    }

    pub(crate) fn own_plan(&self, id: &str) -> Result<StoredPlan, SiteError> {
        if let Some(p) = lock(&self.protection).plans.get(id) {
            return Ok(p.clone());
        }
        let p = self.plan(id)?;
        Err(Self::wrong_site("recovery plan", id, &p.recovery_site))
    }

    fn check_plan(&self, id: Option<&str>, spec: &PlanSpec) -> Result<String, SiteError> {
        let peer = self.peer_name()?;
        {
            let p = lock(&self.protection);
            if let Some(other) = p
                .plans
                .values()
                .find(|x| Some(x.id.as_str()) != id && x.spec.name.eq_ignore_ascii_case(&spec.name))
            {
                return Err(SiteError::Conflict(format!(
                    "a recovery plan named {:?} exists already ({})",
                    other.spec.name, other.id
                )));
            }
            for (i, g) in spec.groups.iter().enumerate() {
                if !p.groups.contains_key(g) {
                    let field = format!("groups[{i}]");
                    return Err(
                        match self
                            .peer_view()
                            .and_then(|v| v.groups.into_iter().find(|x| &x.id == g))
                        {
                            Some(other) => SiteError::invalid(
                                &field,
                                format!(
                                    "group {g} recovers to {}; a plan's groups must recover to this site ({})",
                                    other.recovery_site, self.name
                                ),
                            ),
                            None => SiteError::invalid(&field, format!("no protection group {g}")),
                        },
                    );
                }
            }
        }
        plan::validate(spec, &self.plan_members(&spec.groups))?;
        Ok(peer)
    }

    pub async fn create_plan(&self, spec: PlanSpec) -> Result<Plan, SiteError> {
        let peer = self.check_plan(None, &spec)?;
        let plan = StoredPlan {
            id: new_id("plan"),
            spec,
            protected_site: peer,
            recovery_site: self.name.clone(),
            state: PlanState::Ready,
            last_run: None,
            last_mode: None,
            updated_ms: now_ms(),
        };
        self.save_plan(plan).await
    }

    pub async fn update_plan(&self, id: &str, spec: PlanSpec) -> Result<Plan, SiteError> {
        let mut plan = self.own_plan(id)?;
        if !plan.state_allows_edit() {
            return Err(SiteError::Conflict(format!(
                "plan {id} is {}; edit it when the run ends",
                plan.state.label()
            )));
        }
        self.check_plan(Some(id), &spec)?;
        plan.spec = spec;
        plan.updated_ms = now_ms();
        self.save_plan(plan).await
    }

    pub(crate) async fn save_plan(&self, plan: StoredPlan) -> Result<Plan, SiteError> {
        let stored = plan.clone();
        self.store
            .call(move |c| store::put_doc(c, DocKind::Plan, &stored.id, &stored))
            .await?;
        lock(&self.protection)
            .plans
            .insert(plan.id.clone(), plan.clone());
        let view = self.plan_view(&plan);
        self.events.publish(SiteEvent::Plan(view.clone()));
        Ok(view)
    }

    pub async fn delete_plan(&self, id: &str) -> Result<(), SiteError> {
        let plan = self.own_plan(id)?;
        if !plan.state_allows_edit() {
            return Err(SiteError::Conflict(format!(
                "plan {id} is {}; delete it when the run ends",
                plan.state.label()
            )));
        }
        let key = id.to_string();
        self.store
            .call(move |c| store::delete_doc(c, DocKind::Plan, &key))
            .await?;
        lock(&self.protection).plans.remove(id);
        self.events
            .publish(SiteEvent::PlanRemoved { id: id.into() });
        Ok(())
    }

    /// Reprotect, at the old protected site: the plan and its groups move
    /// here, pointing the other way.
    pub(crate) async fn adopt(
        &self,
        plan: StoredPlan,
        groups: Vec<StoredGroup>,
    ) -> Result<(), SiteError> {
        if plan.recovery_site != self.name {
            return Err(SiteError::Conflict(format!(
                "plan {} recovers to {}, not to this site",
                plan.id, plan.recovery_site
            )));
        }
        for g in groups {
            self.save_group(g).await?;
        }
        self.save_plan(plan).await?;
        Ok(())
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
        let before = std::mem::replace(&mut lock(&self.protection).placeholders, wanted.clone());
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
            let mut p = lock(&self.protection);
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
