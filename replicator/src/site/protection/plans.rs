//! Recovery plans over this site's groups.

use super::*;

impl Site {
    /// The VMs of a plan's groups, by id.
    pub(crate) fn plan_members(&self, groups: &[String]) -> BTreeMap<String, Member> {
        let view = self.peer_view();
        let p = lock(&self.protection.objects);
        groups
            .iter()
            .filter_map(|g| p.groups.get(g))
            .flat_map(|g| g.vms.iter())
            .map(|id| {
                let vm = view
                    .as_ref()
                    .and_then(|v| v.vms.iter().find(|x| &x.id == id))
                    .cloned()
                    .or_else(|| {
                        lock(&self.inventory.vms)
                            .get(id)
                            .map(|v| crate::site::vms::describe(v, self))
                    });
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
        let readiness = self.readiness(p);
        let (allowed, next) =
            readiness::allowed_now(p.state, p.last_mode, &p.protected_site, &readiness);
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
            readiness,
            allowed,
            next,
            start_order,
            last_run: p.last_run.clone(),
            updated_ms: p.updated_ms,
        }
    }

    /// This site's plans, then the peer's as last seen.
    pub fn plans(&self) -> Vec<Plan> {
        let stored: Vec<StoredPlan> = lock(&self.protection.objects)
            .plans
            .values()
            .cloned()
            .collect();
        let mut all: Vec<Plan> = stored.iter().map(|p| self.plan_view(p)).collect();
        if let Some(view) = self.peer_view() {
            // The owner's readiness, as last seen, and whether it answers.
            let owner_answers = self
                .peer_info()
                .is_some_and(|i| i.status == ferry_api::types::PeerStatus::Connected);
            all.extend(
                view.plans
                    .into_iter()
                    .filter(|p| p.recovery_site != self.name)
                    .map(|mut p| {
                        p.readiness.recovery_site_reachable = owner_answers;
                        p
                    }),
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
        if let Some(p) = lock(&self.protection.objects).plans.get(id) {
            return Ok(p.clone());
        }
        let p = self.plan(id)?;
        Err(Self::wrong_site("recovery plan", id, &p.recovery_site))
    }

    pub(super) fn check_plan(
        &self,
        id: Option<&str>,
        spec: &PlanSpec,
    ) -> Result<String, SiteError> {
        let peer = self.peer_name()?;
        {
            let p = lock(&self.protection.objects);
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
        let _edits = self.protection.edits.lock().await;
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
        let _edits = self.protection.edits.lock().await;
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
        lock(&self.protection.objects)
            .plans
            .insert(plan.id.clone(), plan.clone());
        let view = self.plan_view(&plan);
        self.events.publish(SiteEvent::Plan(view.clone()));
        Ok(view)
    }

    pub async fn delete_plan(&self, id: &str) -> Result<(), SiteError> {
        let _edits = self.protection.edits.lock().await;
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
        lock(&self.protection.objects).plans.remove(id);
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
        let _edits = self.protection.edits.lock().await;
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
}
