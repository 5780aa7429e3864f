//! The mappings editor: both directions side by side, one row per object of
//! the protected site (networks, test networks, folders, resource pools,
//! datastores) with the recovery site's object it lands on, then the IP
//! subnet rules and per-VM NIC addresses. An edit makes a draft of its
//! direction; the draft is checked with the site's rules before it is
//! kept, and saved to the recovery site, which owns the mappings.

mod forms;

use std::collections::BTreeMap;

use ferry_api::types::{ErrorBody, Inventory, MappingSpec, Pair};
use ferry_api::{Invalid, mapping};

use super::form::PickItem;
use ferry_api::Call;

use super::error::EditError;
use super::{Purpose, Request, path};
use crate::model::Model;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Network,
    TestNetwork,
    Folder,
    ResourcePool,
    Datastore,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Network,
        Kind::TestNetwork,
        Kind::Folder,
        Kind::ResourcePool,
        Kind::Datastore,
    ];

    /// The spec's field: `networks`, `test_networks`, …
    pub fn field(self) -> &'static str {
        match self {
            Self::Network => "networks",
            Self::TestNetwork => "test_networks",
            Self::Folder => "folders",
            Self::ResourcePool => "resource_pools",
            Self::Datastore => "datastores",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::TestNetwork => "test net",
            Self::Folder => "folder",
            Self::ResourcePool => "pool",
            Self::Datastore => "datastore",
        }
    }

    fn of_field(field: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.field() == field)
    }

    pub fn pairs(self, spec: &MappingSpec) -> &Vec<Pair> {
        match self {
            Self::Network => &spec.networks,
            Self::TestNetwork => &spec.test_networks,
            Self::Folder => &spec.folders,
            Self::ResourcePool => &spec.resource_pools,
            Self::Datastore => &spec.datastores,
        }
    }

    fn pairs_mut(self, spec: &mut MappingSpec) -> &mut Vec<Pair> {
        match self {
            Self::Network => &mut spec.networks,
            Self::TestNetwork => &mut spec.test_networks,
            Self::Folder => &mut spec.folders,
            Self::ResourcePool => &mut spec.resource_pools,
            Self::Datastore => &mut spec.datastores,
        }
    }

    /// The objects of this kind in an inventory: sources at the protected
    /// site, or targets at the recovery site. Test networks are only ever
    /// targets of test mappings; regular networks never are.
    fn objects(self, inventory: &Inventory, target: bool) -> Vec<String> {
        match self {
            Self::Network | Self::TestNetwork => {
                let test = target && self == Self::TestNetwork;
                inventory
                    .networks
                    .iter()
                    .filter(|n| n.test == test)
                    .map(|n| n.name.clone())
                    .collect()
            }
            Self::Folder => inventory.folders.clone(),
            Self::ResourcePool => inventory.resource_pools.clone(),
            Self::Datastore => inventory.datastores.clone(),
        }
    }
}

/// One line of a direction's pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Pair {
        kind: Kind,
        source: String,
    },
    Rule(usize),
    AddRule,
    /// NIC `nic` of override `vm` (indexes into the spec's lists).
    Nic {
        vm: usize,
        nic: usize,
    },
    AddNic,
    /// The whole set (errors not tied to a row).
    Whole,
}

/// A direction: the protected site's objects land at the recovery site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direction {
    pub from: String,
    pub to: String,
}

impl Direction {
    pub fn id(&self) -> String {
        format!("{}-to-{}", self.from, self.to)
    }
}

/// The two directions between the first two sites, left then right.
pub fn directions(model: &Model) -> Vec<Direction> {
    let names: Vec<&String> = model.sites.iter().map(|s| &s.name).take(2).collect();
    match names[..] {
        [a, b] => vec![
            Direction {
                from: a.clone(),
                to: b.clone(),
            },
            Direction {
                from: b.clone(),
                to: a.clone(),
            },
        ],
        _ => Vec::new(),
    }
}

/// A direction being edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub spec: MappingSpec,
    /// As the owner last said; `None` when there were no mappings yet.
    pub base: Option<MappingSpec>,
    /// What the site refused, by row.
    pub errors: Vec<(Row, String)>,
    /// What is being saved, to place the site's errors.
    pub sent: Option<MappingSpec>,
}

impl Draft {
    pub fn is_dirty(&self) -> bool {
        match &self.base {
            Some(base) => *base != self.spec,
            None => self.spec != empty(&self.spec.from_site, &self.spec.to_site),
        }
    }
}

fn empty(from: &str, to: &str) -> MappingSpec {
    MappingSpec {
        from_site: from.to_string(),
        to_site: to.to_string(),
        ..MappingSpec::default()
    }
}

/// What a form in this editor fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormFor {
    Rule {
        pane: usize,
        index: Option<usize>,
    },
    Nic {
        pane: usize,
        at: Option<(usize, usize)>,
    },
}

/// The editor's state: which pane, which rows, and the drafts by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingsEditor {
    pub pane: usize,
    pub selected: [usize; 2],
    pub drafts: BTreeMap<String, Draft>,
}

impl MappingsEditor {
    /// The spec shown for `dir`: the draft, else the site's, else empty.
    pub fn spec(&self, model: &Model, dir: &Direction) -> MappingSpec {
        if let Some(draft) = self.drafts.get(&dir.id()) {
            return draft.spec.clone();
        }
        model
            .mappings(&dir.from, &dir.to)
            .map_or_else(|| empty(&dir.from, &dir.to), |m| m.spec.clone())
    }

    pub fn is_dirty(&self) -> bool {
        self.drafts.values().any(Draft::is_dirty)
    }

    /// The draft of `dir`, made from what is shown when there is none.
    fn draft(&mut self, model: &Model, dir: &Direction) -> &mut Draft {
        let base = model.mappings(&dir.from, &dir.to).map(|m| m.spec.clone());
        let spec = self.spec(model, dir);
        self.drafts.entry(dir.id()).or_insert(Draft {
            spec,
            base,
            errors: Vec::new(),
            sent: None,
        })
    }

    /// Replaces the draft of `dir` with `spec` when the site's rules accept
    /// it; else says which field is wrong and why, and keeps the draft.
    fn commit(&mut self, model: &Model, dir: &Direction, spec: MappingSpec) -> Result<(), Invalid> {
        check(model, dir, &spec)?;
        let draft = self.draft(model, dir);
        draft.spec = spec;
        draft.errors.clear();
        Ok(())
    }

    /// Maps `source` to `target` (or unmaps it).
    pub fn set_target(
        &mut self,
        model: &Model,
        dir: &Direction,
        kind: Kind,
        source: &str,
        target: Option<&str>,
    ) -> Result<(), Invalid> {
        let mut spec = self.spec(model, dir);
        let pairs = kind.pairs_mut(&mut spec);
        match (pairs.iter_mut().find(|p| p.source == source), target) {
            (Some(pair), Some(target)) => pair.target = target.to_string(),
            (None, Some(target)) => pairs.push(Pair {
                source: source.to_string(),
                target: target.to_string(),
            }),
            (_, None) => pairs.retain(|p| p.source != source),
        }
        self.commit(model, dir, spec)
    }

    /// Removes what `row` holds: a mapping, a rule or a NIC address.
    pub fn remove(&mut self, model: &Model, dir: &Direction, row: &Row) -> Result<(), Invalid> {
        let mut spec = self.spec(model, dir);
        match row {
            Row::Pair { kind, source } => kind.pairs_mut(&mut spec).retain(|p| p.source != *source),
            Row::Rule(i) if *i < spec.ip_rules.len() => {
                spec.ip_rules.remove(*i);
            }
            Row::Nic { vm, nic } => remove_nic(&mut spec, *vm, *nic),
            _ => return Ok(()),
        }
        self.commit(model, dir, spec)
    }

    /// The requests that save every changed direction to its owner.
    pub fn save(&mut self, model: &Model) -> Result<Vec<Request>, EditError> {
        let mut requests = Vec::new();
        for (id, draft) in self.drafts.iter_mut().filter(|(_, d)| d.is_dirty()) {
            let owner = &draft.spec.to_site;
            let site = model
                .site_index(owner)
                .ok_or_else(|| EditError::UnknownOwner {
                    mappings: id.clone(),
                    owner: owner.clone(),
                })?;
            draft.sent = Some(draft.spec.clone());
            requests.push(Request {
                site,
                call: Call::SaveMappings {
                    id: draft.base.is_some().then(|| id.clone()),
                    spec: draft.spec.clone(),
                },
                purpose: Purpose::SaveMappings { id: id.clone() },
            });
        }
        Ok(requests)
    }

    /// The owner accepted a save: the draft is done.
    pub fn saved(&mut self, id: &str) {
        self.drafts.remove(id);
    }

    /// The owner refused a save: its reason goes on the row at fault.
    pub fn refused(&mut self, id: &str, error: &ErrorBody) {
        if let Some(draft) = self.drafts.get_mut(id) {
            let sent = draft.sent.take().unwrap_or_else(|| draft.spec.clone());
            let row = error
                .field
                .as_deref()
                .map_or(Row::Whole, |f| row_of(&sent, f));
            draft.errors = vec![(row, super::describe(error))];
        }
    }
}

fn remove_nic(spec: &mut MappingSpec, vm: usize, nic: usize) {
    if let Some(o) = spec.ip_overrides.get_mut(vm) {
        if nic < o.nics.len() {
            o.nics.remove(nic);
        }
        if o.nics.is_empty() {
            spec.ip_overrides.remove(vm);
        }
    }
}

/// Checks `spec` with the site's own rules, when the recovery site's
/// inventory is known (without it the site will say).
pub fn check(model: &Model, dir: &Direction, spec: &MappingSpec) -> Result<(), Invalid> {
    let Some(to) = model.inventory(&dir.to) else {
        return Ok(());
    };
    let from = model.inventory(&dir.from);
    let vms = model.site_index(&dir.from).map(|i| &model.sites[i].vms);
    mapping::validate(spec, from, to, |vm_id| {
        vms.and_then(|v| v.get(vm_id)).map(|vm| vm.nics.len())
    })
}

/// The row a site's error names: `networks[2].target` is the third
/// network pair's row.
pub fn row_of(spec: &MappingSpec, field: &str) -> Row {
    let parts = path(field);
    match parts[..] {
        [("ip_rules", Some(i)), ..] => Row::Rule(i),
        [("ip_overrides", Some(v)), ("nics", Some(n)), ..] => Row::Nic { vm: v, nic: n },
        [("ip_overrides", Some(v)), ..] => Row::Nic { vm: v, nic: 0 },
        [(name, Some(i)), ..] => match Kind::of_field(name) {
            Some(kind) => kind.pairs(spec).get(i).map_or(Row::Whole, |p| Row::Pair {
                kind,
                source: p.source.clone(),
            }),
            None => Row::Whole,
        },
        _ => Row::Whole,
    }
}

/// The protected site's VMs as (id, name), by name.
pub fn source_vms(model: &Model, dir: &Direction) -> Vec<(String, String)> {
    let Some(i) = model.site_index(&dir.from) else {
        return Vec::new();
    };
    let mut vms: Vec<(String, String)> = model.sites[i]
        .vms
        .values()
        .map(|vm| (vm.id.clone(), vm.name.clone()))
        .collect();
    vms.sort_by(|a, b| a.1.cmp(&b.1));
    vms
}

/// Every row of a direction's pane, in order.
pub fn rows(model: &Model, dir: &Direction, spec: &MappingSpec) -> Vec<Row> {
    let from = model.inventory(&dir.from);
    let mut rows = Vec::new();
    for kind in Kind::ALL {
        let mut sources = from.map_or_else(Vec::new, |inv| kind.objects(inv, false));
        for pair in kind.pairs(spec) {
            if !sources.contains(&pair.source) {
                sources.push(pair.source.clone());
            }
        }
        rows.extend(sources.into_iter().map(|source| Row::Pair { kind, source }));
    }
    rows.extend((0..spec.ip_rules.len()).map(Row::Rule));
    rows.push(Row::AddRule);
    for (v, o) in spec.ip_overrides.iter().enumerate() {
        rows.extend((0..o.nics.len()).map(|n| Row::Nic { vm: v, nic: n }));
    }
    rows.push(Row::AddNic);
    rows
}

/// The targets a source of `kind` may land on, for the picker: "unmapped"
/// first, then the recovery site's objects of that kind.
pub fn targets(model: &Model, dir: &Direction, kind: Kind, current: Option<&str>) -> Vec<PickItem> {
    let mut items = vec![PickItem::new(
        "",
        "(unmapped)",
        "no mapping",
        current.is_none(),
    )];
    let objects = model
        .inventory(&dir.to)
        .map_or_else(Vec::new, |inv| kind.objects(inv, true));
    let note = match kind {
        Kind::TestNetwork => "isolated test network",
        _ => "",
    };
    items.extend(
        objects
            .iter()
            .map(|o| PickItem::new(o, o, note, current == Some(o.as_str()))),
    );
    items
}

/// The target of `source` in `spec`.
pub fn target<'a>(spec: &'a MappingSpec, kind: Kind, source: &str) -> Option<&'a str> {
    kind.pairs(spec)
        .iter()
        .find(|p| p.source == source)
        .map(|p| p.target.as_str())
}
