//! One site as the TUI knows it: its link, its replications with their
//! recent cycles and throughput, its VMs and protection objects.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use ferry_api::types::{PeerInfo, ReplicationInfo, Role, VmInfo};

use super::Protection;

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
    /// The replication bandwidth cap and rate, as last read from the site.
    pub bandwidth: Option<ferry_api::bandwidth::BandwidthInfo>,
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
            bandwidth: None,
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

    pub(super) fn record(
        &mut self,
        old: Option<&ReplicationInfo>,
        new: &ReplicationInfo,
        now: Instant,
    ) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::replication;

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
