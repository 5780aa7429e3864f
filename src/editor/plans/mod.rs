//! The recovery plan editor: the VMs of the plan's groups by priority, each
//! with its dependencies, power-on, heartbeat timeout, IP customization and
//! callouts; the plan's own callouts; and the start order, computed as the
//! site computes it (`recovery::plan::order`) on every edit, so what will
//! happen is seen before it is saved.

mod forms;

use std::collections::BTreeMap;

use ferry_api::Invalid;
use ferry_api::plan::{self, Member};
use ferry_api::types::{Callout, ErrorBody, IpCustomization, Plan, PlanSpec, PlanVm};

use super::form::{PickItem, Picker};
use ferry_api::Call;

use super::error::EditError;
use super::{Purpose, Request, callouts, path};
use crate::model::Model;

/// The longest heartbeat wait the editor accepts: a day.
const MAX_HEARTBEAT: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormFor {
    /// Name and description.
    Props,
    Heartbeat {
        vm_id: String,
    },
    Ip {
        vm_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickFor {
    Depends { vm_id: String },
    Groups,
}

/// Whose callouts a text area edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutsFor {
    Vm(String),
    Plan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEditor {
    /// `None` until it is first saved.
    pub id: Option<String>,
    pub spec: PlanSpec,
    pub base: Option<PlanSpec>,
    /// Index into [`PlanEditor::rows`].
    pub selected: usize,
    /// Why something was refused: by `name`, `groups`, `callouts`, a VM
    /// id, or `""` for the plan as a whole.
    pub errors: BTreeMap<String, String>,
    pub sent: Option<PlanSpec>,
    /// Dependencies a priority move dropped, as (VM, the VM it started
    /// after): moving back puts them back, so `K` then `J` loses nothing.
    pub dropped: Vec<(String, String)>,
}

impl PlanEditor {
    pub fn new(name: &str, description: &str) -> Self {
        Self {
            id: None,
            spec: PlanSpec {
                name: name.to_string(),
                description: description.to_string(),
                groups: Vec::new(),
                vms: Vec::new(),
                pre_power_on: Vec::new(),
                post_power_on: Vec::new(),
            },
            base: None,
            selected: 0,
            errors: BTreeMap::new(),
            sent: None,
            dropped: Vec::new(),
        }
    }

    pub fn open(plan: &Plan) -> Self {
        let spec = PlanSpec {
            name: plan.name.clone(),
            description: plan.description.clone(),
            groups: plan.groups.clone(),
            vms: plan.vms.clone(),
            pre_power_on: plan.pre_power_on.clone(),
            post_power_on: plan.post_power_on.clone(),
        };
        Self {
            id: Some(plan.id.clone()),
            base: Some(spec.clone()),
            spec,
            selected: 0,
            errors: BTreeMap::new(),
            sent: None,
            dropped: Vec::new(),
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.base.as_ref() != Some(&self.spec)
    }

    /// The recovery site: that of the plan's groups.
    pub fn site(&self, model: &Model) -> Option<String> {
        let group = model.group(self.spec.groups.first()?)?;
        Some(group.recovery_site.clone())
    }

    /// The VMs of the plan's groups, by id.
    pub fn members(&self, model: &Model) -> BTreeMap<String, Member> {
        let mut members = BTreeMap::new();
        for id in &self.spec.groups {
            let Some(group) = model.group(id) else {
                continue;
            };
            for vm in &group.vms {
                let nic_count = model
                    .sites
                    .iter()
                    .find_map(|s| s.vms.get(&vm.vm_id))
                    .map(|v| v.nics.len())
                    .or_else(|| vm.placeholder.as_ref().map(|p| p.networks.len()))
                    .unwrap_or(1);
                members.insert(
                    vm.vm_id.clone(),
                    Member {
                        name: vm.vm.clone(),
                        nic_count,
                    },
                );
            }
        }
        members
    }

    /// Sets the plan's groups; VMs keep their settings, new VMs get the
    /// defaults, VMs of groups no longer chosen go.
    pub fn set_groups(&mut self, model: &Model, groups: Vec<String>) -> Result<(), EditError> {
        let sites: Vec<String> = groups
            .iter()
            .filter_map(|id| model.group(id))
            .map(|g| g.recovery_site.clone())
            .collect();
        if let Some(other) = sites.iter().find(|s| **s != sites[0]) {
            return Err(EditError::TwoRecoverySites(sites[0].clone(), other.clone()));
        }
        self.spec.groups = groups;
        let members = self.members(model);
        self.spec.vms = plan::resolve(&self.spec, &members);
        let keep: Vec<String> = self.spec.vms.iter().map(|v| v.vm_id.clone()).collect();
        for vm in &mut self.spec.vms {
            vm.depends_on.retain(|d| keep.contains(d));
        }
        self.errors.remove("groups");
        self.selected = self.selected.min(self.spec.vms.len().saturating_sub(1));
        Ok(())
    }

    /// Indexes into `spec.vms` in display order: by priority, then name.
    pub fn rows(&self, model: &Model) -> Vec<usize> {
        let mut rows: Vec<usize> = (0..self.spec.vms.len()).collect();
        rows.sort_by_cached_key(|&i| {
            let vm = &self.spec.vms[i];
            (vm.priority, model.vm_name(&vm.vm_id))
        });
        rows
    }

    pub fn selected_vm(&self, model: &Model) -> Option<&PlanVm> {
        let i = *self.rows(model).get(self.selected)?;
        self.spec.vms.get(i)
    }

    fn selected_mut(&mut self, model: &Model) -> Option<&mut PlanVm> {
        let i = *self.rows(model).get(self.selected)?;
        self.spec.vms.get_mut(i)
    }

    /// Moves the selected VM to an earlier (`by < 0`) or later priority.
    /// Dependencies cannot cross priorities: those it had, and those on it,
    /// are dropped and the message names them; those an earlier move
    /// dropped come back once both VMs share a priority again, named too.
    pub fn shift(&mut self, model: &Model, by: i8) -> Option<String> {
        let vm = self.selected_vm(model)?;
        let (vm_id, from) = (vm.vm_id.clone(), vm.priority);
        let to = (from as i8 + by).clamp(1, 5) as u8;
        if to == from {
            return Some(format!(
                "{} is already at priority {from}",
                model.vm_name(&vm_id)
            ));
        }
        let mut dropped = Vec::new();
        for other in &mut self.spec.vms {
            if other.vm_id == vm_id {
                other.priority = to;
                dropped.extend(other.depends_on.drain(..).map(|d| (vm_id.clone(), d)));
            } else if other.depends_on.contains(&vm_id) {
                other.depends_on.retain(|d| *d != vm_id);
                dropped.push((other.vm_id.clone(), vm_id.clone()));
            }
        }
        let restored = self.restore_dropped();
        self.dropped.extend(dropped.iter().cloned());
        self.errors.remove(&vm_id);
        if let Some(row) = self
            .rows(model)
            .iter()
            .position(|&i| self.spec.vms[i].vm_id == vm_id)
        {
            self.selected = row;
        }
        let pairs = |list: &[(String, String)]| -> String {
            let names: Vec<String> = list
                .iter()
                .map(|(a, b)| format!("{} after {}", model.vm_name(a), model.vm_name(b)))
                .collect();
            names.join(", ")
        };
        let mut message = format!("{} → priority {to}", model.vm_name(&vm_id));
        if !dropped.is_empty() {
            message.push_str(&format!("; dropped dependencies: {}", pairs(&dropped)));
        }
        if !restored.is_empty() {
            message.push_str(&format!("; restored dependencies: {}", pairs(&restored)));
        }
        Some(message)
    }

    /// Puts back the dropped dependencies whose two VMs share a priority
    /// again, unless one would close a cycle; returns those put back.
    fn restore_dropped(&mut self) -> Vec<(String, String)> {
        let priority =
            |spec: &PlanSpec, id: &str| spec.vms.iter().find(|v| v.vm_id == id).map(|v| v.priority);
        let mut restored = Vec::new();
        let mut kept = Vec::new();
        for (vm, after) in std::mem::take(&mut self.dropped) {
            let same = priority(&self.spec, &vm).is_some()
                && priority(&self.spec, &vm) == priority(&self.spec, &after);
            let Some(entry) = self.spec.vms.iter_mut().find(|v| v.vm_id == vm) else {
                continue;
            };
            if entry.depends_on.contains(&after) {
                continue;
            }
            if !same {
                kept.push((vm, after));
                continue;
            }
            entry.depends_on.push(after.clone());
            if plan::order(&self.spec.vms).is_err() {
                if let Some(entry) = self.spec.vms.iter_mut().find(|v| v.vm_id == vm) {
                    entry.depends_on.retain(|d| *d != after);
                }
                kept.push((vm, after));
            } else {
                restored.push((vm, after));
            }
        }
        self.dropped = kept;
        restored
    }

    /// A picker of the VMs of the selected VM's priority; those that would
    /// close a cycle are refused with the chain.
    pub fn depends_picker(&self, model: &Model) -> Option<Picker<PickFor>> {
        let vm = self.selected_vm(model)?;
        let items = self
            .rows(model)
            .into_iter()
            .map(|i| &self.spec.vms[i])
            .filter(|o| o.priority == vm.priority && o.vm_id != vm.vm_id)
            .map(|o| {
                let mut item = PickItem::new(
                    &o.vm_id,
                    &model.vm_name(&o.vm_id),
                    &format!("priority {}", o.priority),
                    vm.depends_on.contains(&o.vm_id),
                );
                if let Some(chain) = self.chain(&o.vm_id, &vm.vm_id) {
                    let mut names: Vec<String> = chain.iter().map(|id| model.vm_name(id)).collect();
                    names.insert(0, model.vm_name(&vm.vm_id));
                    item.refused = Some(format!("would make a cycle: {}", names.join(" → ")));
                }
                item
            })
            .collect();
        let title = format!(" {} starts after ", model.vm_name(&vm.vm_id));
        Some(Picker::new(
            title,
            items,
            true,
            PickFor::Depends {
                vm_id: vm.vm_id.clone(),
            },
        ))
    }

    /// The dependency chain from `from` to `to`, both included, if any.
    fn chain(&self, from: &str, to: &str) -> Option<Vec<String>> {
        if from == to {
            return Some(vec![to.to_string()]);
        }
        let vm = self.spec.vms.iter().find(|v| v.vm_id == from)?;
        vm.depends_on.iter().find_map(|d| {
            let mut rest = self.chain(d, to)?;
            rest.insert(0, from.to_string());
            Some(rest)
        })
    }

    pub fn set_depends(&mut self, vm_id: &str, depends_on: Vec<String>) {
        if let Some(vm) = self.spec.vms.iter_mut().find(|v| v.vm_id == vm_id) {
            vm.depends_on = depends_on;
            self.errors.remove(vm_id);
        }
    }

    pub fn toggle_power(&mut self, model: &Model) -> Option<String> {
        let vm = self.selected_mut(model)?;
        vm.power_on = !vm.power_on;
        let (id, on) = (vm.vm_id.clone(), vm.power_on);
        Some(format!(
            "{}: {}",
            model.vm_name(&id),
            if on { "powered on" } else { "left off" }
        ))
    }

    /// Keeps `spec` if the site's rules accept it.
    fn accept(&mut self, model: &Model, spec: PlanSpec) -> Result<(), Invalid> {
        let members = self.members(model);
        // A new plan without groups yet cannot pass; check only its parts.
        if !spec.groups.is_empty() || !spec.vms.is_empty() {
            plan::validate(&spec, &members)?;
        } else {
            plan::check_name("name", &spec.name)?;
        }
        self.spec = spec;
        self.errors.clear();
        Ok(())
    }

    pub fn callouts_text(&self, target: &CalloutsFor) -> Vec<String> {
        let (pre, post) = self.callouts(target);
        let mut lines = callouts::to_text(pre, post);
        if lines.is_empty() {
            lines.push(String::new());
        }
        lines
    }

    fn callouts(&self, target: &CalloutsFor) -> (&[Callout], &[Callout]) {
        match target {
            CalloutsFor::Plan => (&self.spec.pre_power_on, &self.spec.post_power_on),
            CalloutsFor::Vm(id) => self
                .spec
                .vms
                .iter()
                .find(|v| v.vm_id == *id)
                .map_or((&[], &[]), |v| (&v.pre_power_on, &v.post_power_on)),
        }
    }

    /// Reads callouts back from the text area; an error names the line.
    pub fn set_callouts(
        &mut self,
        model: &Model,
        target: &CalloutsFor,
        lines: &[String],
    ) -> Result<(), EditError> {
        let (pre, post) = callouts::parse(lines)?;
        let mut spec = self.spec.clone();
        match target {
            CalloutsFor::Plan => (spec.pre_power_on, spec.post_power_on) = (pre, post),
            CalloutsFor::Vm(id) => {
                if let Some(vm) = spec.vms.iter_mut().find(|v| v.vm_id == *id) {
                    (vm.pre_power_on, vm.post_power_on) = (pre, post);
                }
            }
        }
        self.accept(model, spec).map_err(EditError::Invalid)
    }

    /// The start order: VM ids per priority 1..=5, or the cycle's chain.
    pub fn start_order(&self) -> Result<Vec<Vec<String>>, Vec<String>> {
        plan::order(&self.spec.vms)
    }

    /// Checks the whole plan and builds the request that saves it at its
    /// recovery site; a refusal is put beside its field.
    pub fn save(&mut self, model: &Model) -> Result<Request, EditError> {
        if let Err(e) = plan::validate(&self.spec, &self.members(model)) {
            let key = key_of(&self.spec, &e.field);
            self.errors.insert(key, super::say::ranges(&e.message));
            return Err(EditError::Invalid(e));
        }
        let recovery = self.site(model).ok_or(EditError::GroupsUnknown)?;
        let site = model
            .site_index(&recovery)
            .ok_or_else(|| EditError::UnknownSite(recovery.clone()))?;
        self.sent = Some(self.spec.clone());
        Ok(Request {
            site,
            call: Call::SavePlan {
                id: self.id.clone(),
                spec: self.spec.clone(),
            },
            purpose: Purpose::SavePlan,
        })
    }

    /// The site stored the plan: what it stored is the new base.
    pub fn saved(&mut self, plan: &Plan) {
        self.id = Some(plan.id.clone());
        let sent = self.sent.take();
        let stored = Self::open(plan).spec;
        // Keep what was edited meanwhile; what was sent is now saved.
        if sent.as_ref() == Some(&self.spec) {
            self.spec = stored.clone();
        }
        self.base = Some(stored);
        self.errors.clear();
    }

    pub fn refused(&mut self, error: &ErrorBody) {
        let sent = self.sent.take().unwrap_or_else(|| self.spec.clone());
        let key = error
            .field
            .as_deref()
            .map_or(String::new(), |f| key_of(&sent, f));
        self.errors.clear();
        self.errors.insert(key, super::describe(error));
    }
}

/// Where an error about `field` is shown: `vms[2].depends_on` beside the
/// third VM of `spec`, `groups[0]` beside the groups.
pub fn key_of(spec: &PlanSpec, field: &str) -> String {
    match path(field)[..] {
        [("vms", Some(i)), ..] => spec.vms.get(i).map_or(String::new(), |v| v.vm_id.clone()),
        [("name" | "description", _), ..] => "name".into(),
        [("groups", _), ..] => "groups".into(),
        [("pre_power_on" | "post_power_on", _), ..] => "callouts".into(),
        _ => String::new(),
    }
}

/// A short word for how a VM gets its addresses.
pub fn ip_word(ip: &IpCustomization) -> String {
    match ip {
        IpCustomization::Auto => "auto".into(),
        IpCustomization::Off => "off".into(),
        IpCustomization::Manual { nics } => match nics
            .first()
            .and_then(|n| n.ipv4.as_ref().or(n.ipv6.as_ref()))
        {
            Some(addr) => format!("manual {addr}"),
            None => "manual".into(),
        },
    }
}
