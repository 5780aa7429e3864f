//! The protection group editor: a name and a multi-select list of the VMs
//! replicated toward the recovery site, which owns the group. Each VM shows
//! its status and placeholder as the site last reported them.

use std::collections::BTreeMap;

use ferry_api::plan::check_name;
use ferry_api::types::{ErrorBody, GroupSpec, GroupVm, ProtectionGroup};

use ferry_api::Call;

use super::error::EditError;
use super::{Purpose, Request, path};
use crate::model::Model;

/// A VM the group may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub vm_id: String,
    pub name: String,
    /// Where it runs now.
    pub source: String,
    /// Another group that already holds it.
    pub elsewhere: Option<String>,
    /// Its status and placeholder in this group, once saved.
    pub member: Option<GroupVm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEditor {
    /// `None` until it is first saved.
    pub id: Option<String>,
    /// The recovery site: where the group lives.
    pub site: String,
    pub name: String,
    /// Chosen VM ids, in the order chosen.
    pub vms: Vec<String>,
    pub base: Option<GroupSpec>,
    pub selected: usize,
    /// Why a field was refused: by `name` or VM id.
    pub errors: BTreeMap<String, String>,
    pub sent: Option<GroupSpec>,
}

impl GroupEditor {
    pub fn new(name: &str, site: &str) -> Self {
        Self {
            id: None,
            site: site.to_string(),
            name: name.to_string(),
            vms: Vec::new(),
            base: None,
            selected: 0,
            errors: BTreeMap::new(),
            sent: None,
        }
    }

    pub fn open(group: &ProtectionGroup) -> Self {
        let spec = GroupSpec {
            name: group.name.clone(),
            vms: group.vms.iter().map(|v| v.vm_id.clone()).collect(),
        };
        Self {
            id: Some(group.id.clone()),
            site: group.recovery_site.clone(),
            name: spec.name.clone(),
            vms: spec.vms.clone(),
            base: Some(spec),
            selected: 0,
            errors: BTreeMap::new(),
            sent: None,
        }
    }

    pub fn spec(&self) -> GroupSpec {
        GroupSpec {
            name: self.name.clone(),
            vms: self.vms.clone(),
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.base.as_ref() != Some(&self.spec())
    }

    /// VMs replicated toward the recovery site, and any chosen VM that no
    /// longer is; by name.
    pub fn candidates(&self, model: &Model) -> Vec<Candidate> {
        let saved = self.id.as_deref().and_then(|id| model.group(id));
        let holder = |vm_id: &str| {
            model
                .groups()
                .into_iter()
                .find(|g| Some(&g.id) != self.id.as_ref() && g.vms.iter().any(|v| v.vm_id == vm_id))
                .map(|g| g.name.clone())
        };
        let member =
            |vm_id: &str| saved.and_then(|g| g.vms.iter().find(|v| v.vm_id == vm_id).cloned());
        let mut out: Vec<Candidate> = model
            .replications()
            .filter(|(_, r)| r.target_site.as_deref() == Some(self.site.as_str()))
            .map(|(_, r)| Candidate {
                vm_id: r.vm_id.clone(),
                name: r.vm.clone(),
                source: r.source_site.clone(),
                elsewhere: holder(&r.vm_id),
                member: member(&r.vm_id),
            })
            .collect();
        for vm_id in &self.vms {
            if !out.iter().any(|c| &c.vm_id == vm_id) {
                out.push(Candidate {
                    vm_id: vm_id.clone(),
                    name: model.vm_name(vm_id),
                    source: String::new(),
                    elsewhere: holder(vm_id),
                    member: member(vm_id),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.vm_id.cmp(&b.vm_id)));
        out
    }

    /// Adds or removes the selected candidate.
    pub fn toggle(&mut self, model: &Model) -> Result<(), EditError> {
        let candidates = self.candidates(model);
        let Some(c) = candidates.get(self.selected) else {
            return Ok(());
        };
        if let Some(at) = self.vms.iter().position(|v| *v == c.vm_id) {
            self.vms.remove(at);
        } else if let Some(other) = &c.elsewhere {
            return Err(EditError::AlreadyInGroup {
                vm: c.name.clone(),
                group: other.clone(),
            });
        } else {
            self.vms.push(c.vm_id.clone());
        }
        self.errors.remove(&c.vm_id);
        Ok(())
    }

    pub fn rename(&mut self, name: &str) -> Result<(), EditError> {
        check_name("name", name).map_err(EditError::Name)?;
        self.name = name.trim().to_string();
        self.errors.remove("name");
        Ok(())
    }

    /// The request that saves the group at its recovery site.
    pub fn save(&mut self, model: &Model) -> Result<Request, EditError> {
        if let Err(e) = check_name("name", &self.name) {
            self.errors.insert("name".into(), e.message.clone());
            return Err(EditError::Invalid(e));
        }
        let site = model
            .site_index(&self.site)
            .ok_or_else(|| EditError::UnknownSite(self.site.clone()))?;
        let spec = self.spec();
        self.sent = Some(spec.clone());
        Ok(Request {
            site,
            call: Call::SaveGroup {
                id: self.id.clone(),
                spec,
            },
            purpose: Purpose::SaveGroup,
        })
    }

    pub fn saved(&mut self, group: &ProtectionGroup) {
        self.id = Some(group.id.clone());
        self.base = self.sent.take();
        self.errors.clear();
    }

    /// Puts the site's reason beside the name or the VM at fault.
    pub fn refused(&mut self, error: &ErrorBody) {
        let sent = self.sent.take().unwrap_or_else(|| self.spec());
        let key = match error.field.as_deref().map(path).as_deref() {
            Some([("vms", Some(i)), ..]) => sent.vms.get(*i).cloned().unwrap_or_default(),
            Some([("name", _), ..]) => "name".to_string(),
            _ => String::new(),
        };
        self.errors.clear();
        self.errors.insert(key, super::say::ranges(&error.message));
    }
}
