//! Protection groups: the peer's VMs replicated here, each VM's status and
//! placeholder.

use super::*;

impl Site {
    /// A peer VM as last seen, and whether it replicates here.
    pub(super) fn protected_vm(
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
    pub(super) fn group_view(&self, g: &StoredGroup, view: Option<&SiteView>) -> ProtectionGroup {
        let mappings = lock(&self.protection.objects)
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
                    (Some(vm), Some(datastore)) => match placement::place(
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
        let stored: Vec<StoredGroup> = lock(&self.protection.objects)
            .groups
            .values()
            .cloned()
            .collect();
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
    pub(super) fn own_group(&self, id: &str) -> Result<StoredGroup, SiteError> {
        if let Some(g) = lock(&self.protection.objects).groups.get(id) {
            return Ok(g.clone());
        }
        let g = self.group(id)?;
        Err(Self::wrong_site("protection group", id, &g.recovery_site))
    }

    pub(super) fn check_group(
        &self,
        id: Option<&str>,
        spec: &GroupSpec,
    ) -> Result<String, SiteError> {
        check_name("name", &spec.name)?;
        let peer = self.peer_name()?;
        let p = lock(&self.protection.objects);
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
            if lock(&self.inventory.vms).contains_key(vm_id) {
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
        let _edits = self.protection.edits.lock().await;
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
        let _edits = self.protection.edits.lock().await;
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
        lock(&self.protection.objects)
            .groups
            .insert(group.id.clone(), group.clone());
        let view = self.group_view(&group, self.peer_view().as_ref());
        self.events.publish(SiteEvent::Group(view.clone()));
        self.refresh_protection().await;
        Ok(view)
    }

    pub async fn delete_group(&self, id: &str) -> Result<(), SiteError> {
        let _edits = self.protection.edits.lock().await;
        let group = self.own_group(id)?;
        if let Some(run) = &group.locked_by {
            return Err(SiteError::Conflict(format!(
                "protection group {id} is in use by run {run}"
            )));
        }
        let users: Vec<String> = lock(&self.protection.objects)
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
        lock(&self.protection.objects).groups.remove(id);
        self.events
            .publish(SiteEvent::GroupRemoved { id: id.into() });
        self.refresh_protection().await;
        Ok(())
    }
}
