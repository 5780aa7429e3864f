//! What the TUI knows of both sites, fed by their live feeds. Pure state:
//! no I/O, no terminal, so every rule is testable and renders from `&self`.
//!
//! - [`site`]: one site's state; [`compliance`]: RPO compliance and the
//!   counts per site; [`runs`]: recovery runs merged across sites.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use ferry_api::Call;
use ferry_api::types::EventRow;
use ferry_api::types::{
    Inventory, Lifecycle, Mappings, Plan, ProtectionGroup, ReplicationInfo, Run, SiteEvent,
    SiteInfo, VmInfo,
};

pub mod compliance;
pub mod runs;
pub mod site;
#[doc(hidden)]
pub mod tests;
pub use compliance::{Compliance, compliance, lag_seconds};
pub use runs::RunEntry;
pub use site::{BUCKET, Cycle, Link, SiteState};

/// Alarms kept in memory across both sites.
const MAX_ALARMS: usize = 500;

/// What a feed tells the model.
#[derive(Debug, Clone)]
pub enum FeedUpdate {
    /// A fresh full picture, after (re)connecting.
    Snapshot {
        site: usize,
        info: SiteInfo,
        replications: Vec<ReplicationInfo>,
        alarms: Vec<EventRow>,
        vms: Vec<VmInfo>,
    },
    Event {
        site: usize,
        event: SiteEvent,
    },
    /// The site's inventory and protection objects, fetched after a
    /// snapshot (empty from a site that does not serve them).
    Protection {
        site: usize,
        protection: Protection,
    },
    /// The site's plans, read again: a plan's VMs follow its groups, and a
    /// group's change comes as a group event only.
    Plans {
        site: usize,
        plans: Vec<Plan>,
    },
    /// The site's bandwidth cap, the cap in force and the rate sent.
    Bandwidth {
        site: usize,
        info: ferry_api::bandwidth::BandwidthInfo,
    },
    /// The site's VMs read again: a QEMU VM's console changes without an
    /// event, so the feed rereads them while the site runs any.
    Vms {
        site: usize,
        vms: Vec<VmInfo>,
    },
    /// The site stopped answering.
    Down {
        site: usize,
        error: String,
    },
}

/// What a site says about protection: its own inventory, and the mappings,
/// groups and plans it holds (its own and its peer's mirrored copies).
#[derive(Debug, Clone, Default)]
pub struct Protection {
    pub inventory: Option<Inventory>,
    pub mappings: BTreeMap<String, Mappings>,
    pub groups: BTreeMap<String, ProtectionGroup>,
    pub plans: BTreeMap<String, Plan>,
    /// The runs this site executed, live ones kept current by events.
    pub runs: BTreeMap<String, Run>,
}

/// An alarm and the site that raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub site: String,
    pub row: EventRow,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub sites: Vec<SiteState>,
    /// Newest first.
    pub alarms: VecDeque<Alarm>,
}

impl Model {
    pub fn new(sites: Vec<SiteState>) -> Self {
        Self {
            sites,
            alarms: VecDeque::new(),
        }
    }

    /// Applies a feed update; returns whether anything visible changed.
    pub fn apply(&mut self, update: FeedUpdate, now: Instant) -> bool {
        match update {
            FeedUpdate::Snapshot {
                site,
                info,
                replications,
                alarms,
                vms,
            } => {
                let Some(s) = self.sites.get_mut(site) else {
                    return false;
                };
                s.vms = vms.into_iter().map(|vm| (vm.id.clone(), vm)).collect();
                s.name = info.name;
                s.peer = info.peer;
                s.role = Some(info.role);
                s.link = Link::Connected;
                s.last_contact = Some(now);
                s.error = None;
                s.replications = replications
                    .into_iter()
                    .map(|r| (r.vm_id.clone(), r))
                    .collect();
                let name = s.name.clone();
                self.alarms.retain(|a| a.site != name);
                for row in alarms {
                    self.alarms.push_back(Alarm {
                        site: name.clone(),
                        row,
                    });
                }
                self.sort_alarms();
                true
            }
            FeedUpdate::Event { site, event } => self.apply_event(site, event, now),
            FeedUpdate::Protection { site, protection } => {
                let Some(s) = self.sites.get_mut(site) else {
                    return false;
                };
                s.protection = protection;
                true
            }
            FeedUpdate::Plans { site, plans } => {
                let Some(s) = self.sites.get_mut(site) else {
                    return false;
                };
                let plans: BTreeMap<_, _> = plans.into_iter().map(|p| (p.id.clone(), p)).collect();
                let changed = s.protection.plans != plans;
                s.protection.plans = plans;
                changed
            }
            FeedUpdate::Bandwidth { site, info } => {
                let Some(s) = self.sites.get_mut(site) else {
                    return false;
                };
                let changed = s.bandwidth.as_ref() != Some(&info);
                s.bandwidth = Some(info);
                changed
            }
            FeedUpdate::Vms { site, vms } => {
                let Some(s) = self.sites.get_mut(site) else {
                    return false;
                };
                let vms: BTreeMap<_, _> = vms.into_iter().map(|vm| (vm.id.clone(), vm)).collect();
                let changed = s.vms != vms;
                s.vms = vms;
                changed
            }
            FeedUpdate::Down { site, error } => {
                let Some(s) = self.sites.get_mut(site) else {
                    return false;
                };
                let changed = s.link != Link::Unreachable || s.error.as_deref() != Some(&error);
                s.link = Link::Unreachable;
                s.error = Some(error);
                changed
            }
        }
    }

    fn apply_event(&mut self, site: usize, event: SiteEvent, now: Instant) -> bool {
        let Some(s) = self.sites.get_mut(site) else {
            return false;
        };
        s.last_contact = Some(now);
        s.link = Link::Connected;
        match event {
            SiteEvent::Replication(r) => {
                let old = s.replications.get(&r.vm_id).cloned();
                s.record(old.as_ref(), &r, now);
                s.replications.insert(r.vm_id.clone(), r);
                true
            }
            SiteEvent::ReplicationRemoved { vm_id } => s.replications.remove(&vm_id).is_some(),
            SiteEvent::Peer(peer) => {
                let changed = s.peer.as_ref().map(|p| p.status) != Some(peer.status);
                s.peer = Some(peer);
                changed
            }
            SiteEvent::Alarm(row) => {
                let name = s.name.clone();
                // An acknowledgement comes as the alarm again, marked.
                let known = self
                    .alarms
                    .iter_mut()
                    .find(|a| a.site == name && a.row.id == row.id);
                match known {
                    Some(a) => a.row = row,
                    None => {
                        self.alarms.push_front(Alarm { site: name, row });
                        self.alarms.truncate(MAX_ALARMS);
                    }
                }
                true
            }
            SiteEvent::Vm(vm) => {
                s.vms.insert(vm.id.clone(), vm);
                true
            }
            SiteEvent::VmRemoved { vm_id } => s.vms.remove(&vm_id).is_some(),
            // A VM powered on or off, or crashed under its site: the
            // detail pane says so at once.
            SiteEvent::VmPower {
                vm_id, power_state, ..
            } => s.vms.get_mut(&vm_id).is_some_and(|vm| {
                let changed = vm.power_state != power_state;
                vm.power_state = power_state;
                changed
            }),
            SiteEvent::VmHeartbeat { .. } | SiteEvent::Audit(_) => false,
            // The feed refetches on resync; nothing to apply here.
            SiteEvent::Resync => false,
            SiteEvent::Mappings(m) => {
                s.protection.mappings.insert(m.id.clone(), m);
                true
            }
            SiteEvent::MappingsRemoved { id } => s.protection.mappings.remove(&id).is_some(),
            SiteEvent::Group(g) => {
                s.protection.groups.insert(g.id.clone(), g);
                true
            }
            SiteEvent::GroupRemoved { id } => s.protection.groups.remove(&id).is_some(),
            SiteEvent::Plan(p) => {
                s.protection.plans.insert(p.id.clone(), p);
                true
            }
            SiteEvent::PlanRemoved { id } => s.protection.plans.remove(&id).is_some(),
            SiteEvent::Run(r) => {
                s.protection.runs.insert(r.id.clone(), r);
                true
            }
        }
    }

    fn sort_alarms(&mut self) {
        let mut all: Vec<Alarm> = self.alarms.drain(..).collect();
        all.sort_by(|a, b| b.row.at_ms.cmp(&a.row.at_ms).then(b.row.id.cmp(&a.row.id)));
        all.truncate(MAX_ALARMS);
        self.alarms = all.into();
    }

    /// Every replication across both sites with the index of its site.
    pub fn replications(&self) -> impl Iterator<Item = (usize, &ReplicationInfo)> {
        self.sites
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.replications.values().map(move |r| (i, r)))
    }

    /// The index of the site called `name`.
    pub fn site_index(&self, name: &str) -> Option<usize> {
        self.sites.iter().position(|s| s.name == name)
    }

    /// The inventory site `name` reported of itself.
    pub fn inventory(&self, name: &str) -> Option<&Inventory> {
        let site = self.sites.get(self.site_index(name)?)?;
        site.protection.inventory.as_ref()
    }

    /// The mappings from `from` to `to`: the owner's copy when it is known,
    /// else the peer's mirror.
    pub fn mappings(&self, from: &str, to: &str) -> Option<&Mappings> {
        let id = format!("{from}-to-{to}");
        let holders = self.sites.iter().filter_map(|s| {
            let m = s.protection.mappings.get(&id)?;
            Some((s.name == m.owner, m))
        });
        holders
            .max_by_key(|(owned, m)| (*owned, m.updated_ms))
            .map(|(_, m)| m)
    }

    /// Every protection group once, by name: the recovery site's copy when
    /// it is known.
    pub fn groups(&self) -> Vec<&ProtectionGroup> {
        let mut groups = merged(
            &self.sites,
            |s| &s.protection.groups,
            |g| &g.recovery_site,
            |g| g.updated_ms,
        );
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        groups
    }

    /// Every recovery plan once, by name, as [`Model::groups`].
    pub fn plans(&self) -> Vec<&Plan> {
        let mut plans = merged(
            &self.sites,
            |s| &s.protection.plans,
            |p| &p.recovery_site,
            |p| p.updated_ms,
        );
        plans.sort_by(|a, b| a.name.cmp(&b.name));
        plans
    }

    pub fn group(&self, id: &str) -> Option<&ProtectionGroup> {
        self.groups().into_iter().find(|g| g.id == id)
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans().into_iter().find(|p| p.id == id)
    }

    /// Records what a site answered to a save, before its event arrives.
    pub fn saved_group(&mut self, group: ProtectionGroup) {
        if let Some(i) = self.site_index(&group.recovery_site) {
            self.sites[i]
                .protection
                .groups
                .insert(group.id.clone(), group);
        }
    }

    pub fn saved_plan(&mut self, plan: Plan) {
        if let Some(i) = self.site_index(&plan.recovery_site) {
            self.sites[i].protection.plans.insert(plan.id.clone(), plan);
        }
    }

    pub fn saved_mappings(&mut self, mappings: Mappings) {
        if let Some(i) = self.site_index(&mappings.owner) {
            let held = &mut self.sites[i].protection.mappings;
            held.insert(mappings.id.clone(), mappings);
        }
    }

    /// Forgets a deleted group or plan before its event arrives.
    pub fn removed(&mut self, call: &Call) {
        for s in &mut self.sites {
            match call {
                Call::DeleteGroup { id } => {
                    s.protection.groups.remove(id);
                }
                Call::DeletePlan { id } => {
                    s.protection.plans.remove(id);
                }
                _ => {}
            }
        }
    }

    /// What the VM of a replication is now, as the sites say: its own
    /// site's word, unless another site says it recovered the VM (which
    /// is news the replication's site may not have yet, or cannot give
    /// while it is down).
    pub fn lifecycle(&self, r: &ReplicationInfo) -> Lifecycle {
        if r.lifecycle.has_ended() {
            return r.lifecycle.clone();
        }
        let recovered = self.sites.iter().find_map(|s| {
            let vm = s.vms.get(&r.vm_id).filter(|_| s.name != r.source_site)?;
            match &vm.lifecycle {
                Lifecycle::Recovered { run_id, .. } => Some(Lifecycle::RecoveredAt {
                    site: s.name.clone(),
                    run_id: run_id.clone(),
                }),
                _ => None,
            }
        });
        recovered.unwrap_or_else(|| r.lifecycle.clone())
    }

    /// The name of a VM by id, from whichever site knows it.
    pub fn vm_name(&self, vm_id: &str) -> String {
        for s in &self.sites {
            if let Some(vm) = s.vms.get(vm_id) {
                return vm.name.clone();
            }
            if let Some(r) = s.replications.get(vm_id) {
                return r.vm.clone();
            }
        }
        vm_id.rsplit_once('.').map_or(vm_id, |(_, n)| n).to_string()
    }
}

/// Objects both sites hold, once each: the copy at the owning site wins,
/// else the newest.
fn merged<'a, T>(
    sites: &'a [SiteState],
    held: impl Fn(&'a SiteState) -> &'a BTreeMap<String, T>,
    owner: impl Fn(&T) -> &String,
    updated: impl Fn(&T) -> u64,
) -> Vec<&'a T> {
    let mut best: BTreeMap<&String, (bool, u64, &T)> = BTreeMap::new();
    for s in sites {
        for (id, object) in held(s) {
            let rank = (*owner(object) == s.name, updated(object));
            match best.get(id) {
                Some((owned, at, _)) if (*owned, *at) >= rank => {}
                _ => {
                    best.insert(id, (rank.0, rank.1, object));
                }
            }
        }
    }
    best.into_values().map(|(_, _, o)| o).collect()
}
