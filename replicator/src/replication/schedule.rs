//! When to run the next cycle, and whether a VM is inside its RPO. Pure
//! functions of time, so every rule here is tested without sleeping.

use std::collections::VecDeque;
use std::time::Duration;

/// RPO bounds: 5 seconds to 24 hours.
pub const MIN_RPO: Duration = Duration::from_secs(5);
pub const MAX_RPO: Duration = Duration::from_secs(24 * 3600);

/// An RPO out of range, saying what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("RPO of {} s is outside {} s to {} s", .0.as_secs(), MIN_RPO.as_secs(), MAX_RPO.as_secs())]
pub struct RpoOutOfRange(pub Duration);

/// Checks an RPO against its bounds.
pub fn check_rpo(rpo: Duration) -> Result<Duration, RpoOutOfRange> {
    if (MIN_RPO..=MAX_RPO).contains(&rpo) {
        Ok(rpo)
    } else {
        Err(RpoOutOfRange(rpo))
    }
}

/// Estimates how long a cycle of a given size will take from recent cycles.
#[derive(Debug, Clone, Default)]
pub struct TransferEstimate {
    /// (bytes scanned, duration) of the last few cycles.
    recent: VecDeque<(u64, Duration)>,
}

const KEEP: usize = 8;
/// Until a VM has history: a cautious guess for a loopback or LAN link.
const COLD_RATE: f64 = 50e6;
const COLD_OVERHEAD: Duration = Duration::from_millis(500);

impl TransferEstimate {
    pub fn record(&mut self, bytes: u64, duration: Duration) {
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back((bytes, duration));
    }

    /// Fixed cost per cycle (connect, commit fsync): the quickest recent cycle.
    fn overhead(&self) -> Duration {
        self.recent
            .iter()
            .map(|&(_, d)| d)
            .min()
            .unwrap_or(COLD_OVERHEAD)
    }

    /// Bytes per second over recent cycles, after the fixed cost; the slowest
    /// of them, so an estimate errs towards starting early.
    fn rate(&self) -> f64 {
        let overhead = self.overhead();
        self.recent
            .iter()
            .filter(|&&(bytes, d)| bytes >= 1 << 20 && d > overhead)
            .map(|&(bytes, d)| bytes as f64 / (d - overhead).as_secs_f64())
            .fold(None, |slowest: Option<f64>, r| {
                Some(slowest.map_or(r, |s| s.min(r)))
            })
            .unwrap_or(COLD_RATE)
    }

    pub fn estimate(&self, bytes: u64) -> Duration {
        self.overhead() + Duration::from_secs_f64(bytes as f64 / self.rate())
    }
}

/// How long after the newest complete instance's consistency point the next
/// cycle should start, so that its own point is committed before the RPO
/// runs out: the RPO, less twice the estimated transfer, less a margin of a
/// fifth of the RPO (at least a second).
pub fn start_after_point(rpo: Duration, estimate: Duration) -> Duration {
    let margin = (rpo / 5).max(Duration::from_secs(1));
    rpo.saturating_sub(estimate * 2 + margin)
}

/// The rate a VM must get to meet its RPO, bytes/s: at least what it writes
/// (`write_rate`, from its delta cycles, when known), and enough to ship the
/// `backlog` waiting now within one RPO. Below that no schedule can keep it
/// inside its RPO.
pub fn needed_rate(write_rate: Option<f64>, backlog: u64, rpo: Duration) -> u64 {
    let backlog_rate = backlog as f64 / rpo.as_secs_f64().max(1.0);
    write_rate.unwrap_or(0.0).max(backlog_rate).ceil() as u64
}

/// Whether a VM is short of bandwidth: raised as soon as its share is below
/// what it needs, cleared once the share is 10% above it, so a VM at the
/// edge does not flap.
pub fn still_short(was_short: bool, needed: u64, gets: u64) -> bool {
    if was_short {
        gets.saturating_mul(10) < needed.saturating_mul(11)
    } else {
        gets < needed
    }
}

/// The transfer time of `bytes` at a VM's share of the cap, if any: the
/// estimate from history may have been learnt on an uncapped link.
pub fn capped_estimate(estimate: Duration, bytes: u64, share: Option<u64>) -> Duration {
    match share {
        Some(rate) => estimate.max(Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64)),
        None => estimate,
    }
}

/// Raises an RPO violation only after the lag has stayed over the RPO for a
/// grace period, and clears it only once the lag is back under 90% of the
/// RPO, so a VM hovering at its RPO does not flap.
#[derive(Debug, Clone, Default)]
pub struct ViolationTracker {
    /// How long the lag has been over the RPO, as of the last update.
    over_for: Option<Duration>,
    violated: bool,
}

/// The grace period before a violation is raised: a tenth of the RPO, from 2
/// seconds to 5 minutes.
pub fn grace(rpo: Duration) -> Duration {
    (rpo / 10).clamp(Duration::from_secs(2), Duration::from_secs(300))
}

impl ViolationTracker {
    /// Updates with the current lag; `over_since_lag` is lag − RPO, the time
    /// the lag has been over the RPO (lag grows with the clock). Returns
    /// whether the VM is in violation.
    pub fn update(&mut self, lag: Duration, rpo: Duration) -> bool {
        self.over_for = lag.checked_sub(rpo).filter(|d| !d.is_zero());
        if self.violated {
            if lag * 10 < rpo * 9 {
                self.violated = false;
            }
        } else if self.over_for.is_some_and(|over| over >= grace(rpo)) {
            self.violated = true;
        }
        self.violated
    }

    pub fn violated(&self) -> bool {
        self.violated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn rpo_bounds() {
        assert!(check_rpo(s(5.0)).is_ok());
        assert!(check_rpo(s(86400.0)).is_ok());
        assert!(
            check_rpo(s(4.0))
                .unwrap_err()
                .to_string()
                .contains("5 s to 86400 s")
        );
        assert!(check_rpo(s(86401.0)).is_err());
    }

    #[test]
    fn estimate_learns_rate_and_overhead() {
        let mut e = TransferEstimate::default();
        assert_eq!(e.estimate(0), COLD_OVERHEAD);
        e.record(0, s(0.1));
        e.record(100 << 20, s(1.1));
        e.record(200 << 20, s(2.1));
        let est = e.estimate(50 << 20).as_secs_f64();
        assert!((est - 0.6).abs() < 0.01, "{est}");
    }

    #[test]
    fn the_cap_bounds_the_estimate_and_the_need_says_why() {
        let mib = 1u64 << 20;
        // 100 MiB at a 10 MiB/s share take 10 s, whatever history says.
        assert_eq!(capped_estimate(s(2.0), 100 * mib, Some(10 * mib)), s(10.0));
        assert_eq!(capped_estimate(s(12.0), 100 * mib, Some(10 * mib)), s(12.0));
        assert_eq!(capped_estimate(s(2.0), 100 * mib, None), s(2.0));
        // A VM writing 3 MiB/s needs 3 MiB/s; a 600 MiB backlog under a
        // 60 s RPO needs 10 MiB/s.
        assert_eq!(needed_rate(Some(3.0 * mib as f64), 0, s(60.0)), 3 * mib);
        assert_eq!(
            needed_rate(Some(3.0 * mib as f64), 600 * mib, s(60.0)),
            10 * mib
        );
        assert_eq!(needed_rate(None, 60 * mib, s(60.0)), mib);
        // Short below the need; cleared only 10% above it.
        assert!(still_short(false, 100, 99));
        assert!(!still_short(false, 100, 100));
        assert!(still_short(true, 100, 105));
        assert!(!still_short(true, 100, 110));
    }

    #[test]
    fn start_leaves_room_for_the_transfer() {
        assert_eq!(start_after_point(s(5.0), s(0.1)), s(3.8));
        assert_eq!(start_after_point(s(60.0), s(1.0)), s(46.0));
        // A transfer longer than the RPO: start at once.
        assert_eq!(start_after_point(s(5.0), s(10.0)), Duration::ZERO);
    }

    #[test]
    fn violation_needs_grace_and_clears_with_hysteresis() {
        let rpo = s(60.0);
        let mut t = ViolationTracker::default();
        assert!(!t.update(s(61.0), rpo), "within grace");
        assert!(!t.update(s(65.9), rpo));
        assert!(t.update(s(66.0), rpo), "grace of 6 s passed");
        assert!(t.update(s(55.0), rpo), "still above 90% of the RPO");
        assert!(!t.update(s(53.9), rpo), "cleared below 90%");
        assert!(!t.update(s(61.0), rpo), "a new excursion needs grace again");
    }
}
