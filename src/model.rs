//! What the TUI knows of both sites, fed by their live feeds. Pure state:
//! no I/O, no terminal, so every rule is testable and renders from `&self`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use ferry_api::Call;
use ferry_api::types::EventRow;
use ferry_api::types::{
    Inventory, Mappings, PeerInfo, Plan, ProtectionGroup, ReplicationInfo, Role, Run, SiteEvent,
    SiteInfo, VmInfo,
};

pub mod runs;
pub use runs::RunEntry;

/// Alarms kept in memory across both sites.
const MAX_ALARMS: usize = 500;
/// Throughput history: one bucket per this long, this many buckets.
pub const BUCKET: Duration = Duration::from_secs(5);
const BUCKETS: usize = 60;
/// Cycles remembered per VM for the detail pane.
const CYCLES: usize = 30;

/// One completed cycle, as the detail pane shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cycle {
    pub finished_at_ms: u64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub full: bool,
    /// The lag just before this cycle landed: the peak of the sawtooth.
    pub peak_lag_s: f64,
}

/// How the TUI's link to a site stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    Unreachable,
}

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

#[derive(Debug, Clone)]
pub struct SiteState {
    /// The name from the config until the site says its own.
    pub name: String,
    pub url: String,
    pub link: Link,
    pub last_contact: Option<Instant>,
    pub error: Option<String>,
    pub peer: Option<PeerInfo>,
    /// What this TUI's token may do at the site, as the site said; `None`
    /// until it answered.
    pub role: Option<Role>,
    pub replications: BTreeMap<String, ReplicationInfo>,
    /// Bytes of completed cycles per [`BUCKET`], newest last.
    pub throughput: VecDeque<u64>,
    bucket_started: Option<Instant>,
    pub vms: BTreeMap<String, VmInfo>,
    /// Recent cycles per VM, newest last.
    pub cycles: BTreeMap<String, VecDeque<Cycle>>,
    /// Where the running cycle of a VM was first seen: (when, bytes done).
    progress_start: BTreeMap<String, (Instant, u64)>,
    pub protection: Protection,
}

impl SiteState {
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_string(),
            url: url.to_string(),
            link: Link::Connecting,
            last_contact: None,
            error: None,
            peer: None,
            role: None,
            replications: BTreeMap::new(),
            throughput: VecDeque::from(vec![0; BUCKETS]),
            bucket_started: None,
            vms: BTreeMap::new(),
            cycles: BTreeMap::new(),
            progress_start: BTreeMap::new(),
            protection: Protection::default(),
        }
    }

    /// Transfer rate (bytes/s) and time left of a VM's running cycle, once
    /// it has been seen for a moment.
    pub fn rate_and_eta(&self, r: &ReplicationInfo, now: Instant) -> Option<(f64, Duration)> {
        let p = r.progress?;
        let (since, first) = self.progress_start.get(&r.vm_id)?;
        let elapsed = (now - *since).as_secs_f64();
        if elapsed < 0.5 || p.bytes_done <= *first {
            return None;
        }
        let rate = (p.bytes_done - first) as f64 / elapsed;
        let left = p.bytes_total.saturating_sub(p.bytes_done) as f64 / rate;
        Some((rate, Duration::from_secs_f64(left)))
    }

    fn record(&mut self, old: Option<&ReplicationInfo>, new: &ReplicationInfo, now: Instant) {
        match new.progress {
            Some(p) => {
                self.progress_start
                    .entry(new.vm_id.clone())
                    .or_insert((now, p.bytes_done));
            }
            None => {
                self.progress_start.remove(&new.vm_id);
            }
        }
        let Some(last) = new.last_sync else { return };
        if old.is_some_and(|o| o.last_sync == new.last_sync) {
            return;
        }
        let previous_point = old.and_then(|o| o.point_time_ms);
        let cycles = self.cycles.entry(new.vm_id.clone()).or_default();
        cycles.push_back(Cycle {
            finished_at_ms: last.finished_at,
            duration_ms: last.duration_ms,
            bytes: last.bytes,
            full: last.full,
            peak_lag_s: previous_point
                .map_or(0.0, |p| last.finished_at.saturating_sub(p) as f64 / 1000.0),
        });
        if cycles.len() > CYCLES {
            cycles.pop_front();
        }
        self.add_throughput(last.bytes, now);
    }

    /// How old this site's data is, when it is not live.
    pub fn stale_for(&self, now: Instant) -> Option<Duration> {
        match self.link {
            Link::Connected => None,
            _ => Some(self.last_contact.map_or(Duration::ZERO, |t| now - t)),
        }
    }

    fn add_throughput(&mut self, bytes: u64, now: Instant) {
        let started = *self.bucket_started.get_or_insert(now);
        let elapsed = (now - started).as_secs() / BUCKET.as_secs();
        for _ in 0..elapsed.min(BUCKETS as u64) {
            self.throughput.pop_front();
            self.throughput.push_back(0);
        }
        if elapsed > 0 {
            self.bucket_started = Some(started + BUCKET * elapsed as u32);
        }
        if let Some(last) = self.throughput.back_mut() {
            *last += bytes;
        }
    }
}

/// An alarm and the site that raised it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub site: String,
    pub row: EventRow,
}

/// RPO compliance of one replication, as the operator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Compliance {
    Ok,
    /// Lag past 80% of the RPO.
    AtRisk,
    Violated,
    /// Never synced yet.
    Unknown,
}

impl Compliance {
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::AtRisk => "at risk",
            Self::Violated => "violated",
            Self::Unknown => "pending",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Self::Ok => "✔",
            Self::AtRisk => "▲",
            Self::Violated => "✖",
            Self::Unknown => "…",
        }
    }
}

/// The lag now: from the consistency point when known (so it ages between
/// events), else as last reported.
pub fn lag_seconds(r: &ReplicationInfo, now_ms: u64) -> Option<f64> {
    match r.point_time_ms {
        Some(point) => Some(now_ms.saturating_sub(point) as f64 / 1000.0),
        None => r.lag_seconds,
    }
}

pub fn compliance(r: &ReplicationInfo, now_ms: u64) -> Compliance {
    match lag_seconds(r, now_ms) {
        None => Compliance::Unknown,
        Some(_) if r.rpo_violated => Compliance::Violated,
        Some(lag) if lag > r.rpo_seconds as f64 => Compliance::Violated,
        Some(lag) if lag > 0.8 * r.rpo_seconds as f64 => Compliance::AtRisk,
        Some(_) => Compliance::Ok,
    }
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
                self.alarms.push_front(Alarm { site: name, row });
                self.alarms.truncate(MAX_ALARMS);
                true
            }
            SiteEvent::VmPower { .. } | SiteEvent::VmHeartbeat { .. } | SiteEvent::Audit(_) => {
                false
            }
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

    /// (ok, at risk, violated, pending) counts for one site.
    /// Replications of `site` still protecting a VM (not of VMs recovered
    /// at the other site).
    pub fn protected_count(&self, site: usize) -> usize {
        self.sites.get(site).map_or(0, |s| {
            s.replications
                .keys()
                .filter(|id| self.recovered_by(id).is_none())
                .count()
        })
    }

    pub fn compliance_counts(&self, site: usize, now_ms: u64) -> [usize; 4] {
        let mut counts = [0; 4];
        if let Some(s) = self.sites.get(site) {
            // A VM recovered elsewhere is no longer protected here.
            for r in s.replications.values() {
                if self.recovered_by(&r.vm_id).is_none() {
                    counts[compliance(r, now_ms) as usize] += 1;
                }
            }
        }
        counts
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

/// Test and benchmark fixtures.
#[doc(hidden)]
pub mod tests {
    use super::*;
    use ferry_api::types::LastSyncInfo;

    pub fn replication(
        vm: &str,
        rpo: u64,
        point_age_ms: Option<u64>,
        now_ms: u64,
    ) -> ReplicationInfo {
        ReplicationInfo {
            vm: vm.to_string(),
            vm_id: format!("site-a.{vm}"),
            source_site: "site-a".into(),
            target_site: Some("site-b".into()),
            state: "ok".into(),
            rpo_seconds: rpo,
            lag_seconds: point_age_ms.map(|a| a as f64 / 1000.0),
            rpo_violated: false,
            progress: None,
            last_sync: point_age_ms.map(|_| LastSyncInfo {
                finished_at: now_ms,
                duration_ms: 20,
                bytes: 1 << 20,
                full: false,
                instance: 3,
            }),
            point_time_ms: point_age_ms.map(|a| now_ms - a),
            datastore: "ds1".into(),
            compress: false,
            paused: false,
            last_error: None,
        }
    }

    #[cfg(test)]
    #[test]
    fn compliance_bands() {
        let now = 1_000_000;
        assert_eq!(
            compliance(&replication("a", 60, Some(10_000), now), now),
            Compliance::Ok
        );
        assert_eq!(
            compliance(&replication("a", 60, Some(50_000), now), now),
            Compliance::AtRisk
        );
        assert_eq!(
            compliance(&replication("a", 60, Some(61_000), now), now),
            Compliance::Violated
        );
        assert_eq!(
            compliance(&replication("a", 60, None, now), now),
            Compliance::Unknown
        );
    }

    #[test]
    fn a_site_going_down_keeps_its_rows_and_marks_them_stale() {
        let t0 = Instant::now();
        let mut model = Model::new(vec![
            SiteState::new("a", "http://a"),
            SiteState::new("b", "http://b"),
        ]);
        let info = SiteInfo {
            name: "site-a".into(),
            role: ferry_api::types::Role::Admin,
            peer: None,
            vm_count: 1,
            replicated_count: 1,
            fingerprint: None,
            replication: None,
        };
        assert!(model.apply(
            FeedUpdate::Snapshot {
                site: 0,
                info,
                replications: vec![replication("db", 15, Some(1000), 5000)],
                alarms: vec![],
                vms: vec![],
            },
            t0
        ));
        assert_eq!(model.sites[0].stale_for(t0), None);
        model.apply(
            FeedUpdate::Down {
                site: 0,
                error: "connection refused".into(),
            },
            t0 + Duration::from_secs(1),
        );
        assert_eq!(model.sites[0].replications.len(), 1, "last-known rows stay");
        assert_eq!(
            model.sites[0].stale_for(t0 + Duration::from_secs(7)),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn progress_rate_eta_and_cycle_history() {
        use ferry_api::types::ProgressInfo;
        let t0 = Instant::now();
        let mut s = SiteState::new("a", "u");
        let mut r = replication("db", 15, Some(1000), 10_000);
        r.progress = Some(ProgressInfo {
            bytes_done: 0,
            bytes_total: 4_000_000,
        });
        s.record(None, &r, t0);
        let mut later = r.clone();
        later.progress = Some(ProgressInfo {
            bytes_done: 1_000_000,
            bytes_total: 4_000_000,
        });
        s.record(Some(&r), &later, t0 + Duration::from_secs(1));
        let (rate, eta) = s.rate_and_eta(&later, t0 + Duration::from_secs(1)).unwrap();
        assert!(
            (rate - 1e6).abs() < 1.0 && eta == Duration::from_secs(3),
            "{rate} {eta:?}"
        );
        // The cycle lands 6 s after the previous point: a peak lag of 6 s.
        let mut done = later.clone();
        done.progress = None;
        if let Some(l) = done.last_sync.as_mut() {
            l.finished_at = 10_000 - 1000 + 6_000;
            l.instance = 4;
        }
        s.record(Some(&later), &done, t0 + Duration::from_secs(2));
        let cycle = s.cycles["site-a.db"].back().copied().unwrap();
        assert_eq!(cycle.peak_lag_s, 6.0);
        assert!(s.rate_and_eta(&done, t0 + Duration::from_secs(2)).is_none());
    }

    #[test]
    fn throughput_buckets_roll() {
        let t0 = Instant::now();
        let mut s = SiteState::new("a", "u");
        s.add_throughput(100, t0);
        s.add_throughput(50, t0 + Duration::from_secs(1));
        assert_eq!(*s.throughput.back().unwrap(), 150);
        s.add_throughput(7, t0 + BUCKET * 2);
        assert_eq!(
            s.throughput
                .iter()
                .rev()
                .take(3)
                .copied()
                .collect::<Vec<_>>(),
            vec![7, 0, 150]
        );
    }
}

#[cfg(test)]
mod protection_tests {
    use super::*;
    use crate::editor::fixture;

    #[test]
    fn the_owners_copy_wins_and_events_keep_it_current() {
        let mut model = fixture::model();
        // site-a holds a newer-looking mirror; site-b owns the group.
        let mut mirror = fixture::group();
        mirror.name = "stale mirror".into();
        mirror.updated_ms += 1_000;
        model.sites[0]
            .protection
            .groups
            .insert(mirror.id.clone(), mirror);
        assert_eq!(model.groups()[0].name, "Databases");
        let mut renamed = fixture::group();
        renamed.name = "DBs".into();
        let now = Instant::now();
        let event = |event| FeedUpdate::Event { site: 1, event };
        assert!(model.apply(event(SiteEvent::Group(renamed)), now));
        assert_eq!(model.group("pg-databases").unwrap().name, "DBs");
        let removed = SiteEvent::PlanRemoved {
            id: "plan-tier-1".into(),
        };
        assert!(model.apply(event(removed), now));
        assert!(model.plan("plan-tier-1").is_some(), "site-a's mirror stays");
        model.removed(&ferry_api::Call::DeletePlan {
            id: "plan-tier-1".into(),
        });
        assert!(model.plans().is_empty());
        assert!(model.mappings("site-a", "site-b").is_some());
        assert_eq!(model.vm_name("site-a.db-02"), "db-02");
    }
}
