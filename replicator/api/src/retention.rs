//! Retention of point-in-time instances per replication: which instances a
//! policy keeps, which a datastore's budget forces out, and whether the RPO
//! can produce what the policy asks for. Pure, so the site enforces and the
//! TUI checks the same rules.
//!
//! A policy keeps the newest instance always, every instance whose point is
//! within `keep_all_seconds` of now, then `per_period` instances per hour or
//! per day for `thin_days` days: each period is cut into `per_period` equal
//! slots and the oldest instance of each slot is kept, so an instance once
//! kept is not replaced by a newer one in the same slot. The default keeps
//! the newest only (no history).

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// The longest window of every instance: 7 days.
pub const MAX_KEEP_ALL_SECONDS: u64 = 7 * 86_400;
/// The longest thinned history: 90 days.
pub const MAX_THIN_DAYS: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub fn seconds(self) -> u64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The most instances one period may keep.
    fn max_per(self) -> u32 {
        match self {
            Self::Hour => 60,
            Self::Day => 24,
        }
    }
}

/// How many older instances a replication keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep every instance this many seconds back (0: none but the newest).
    #[serde(default)]
    pub keep_all_seconds: u64,
    /// Then keep this many per `period` ...
    #[serde(default)]
    pub per_period: u32,
    #[serde(default = "default_period")]
    pub period: Period,
    /// ... for this many days before the keep-all window (0: none).
    #[serde(default)]
    pub thin_days: u32,
}

fn default_period() -> Period {
    Period::Hour
}

impl Default for Period {
    fn default() -> Self {
        default_period()
    }
}

/// One instance as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub instance: u64,
    pub point_time_ms: u64,
    /// Bytes its keeping costs (for a budget).
    pub bytes: u64,
}

impl RetentionPolicy {
    /// Today's behaviour: the newest instance only.
    pub fn newest_only(&self) -> bool {
        self.keep_all_seconds == 0 && (self.thin_days == 0 || self.per_period == 0)
    }

    /// Checks every field's range and that an RPO of `rpo_seconds` can
    /// produce the instances asked for; the error names the field.
    pub fn validate(&self, rpo_seconds: u64) -> Result<(), Invalid> {
        if self.keep_all_seconds > MAX_KEEP_ALL_SECONDS {
            return Err(Invalid::new(
                "retention.keep_all_seconds",
                format!(
                    "{} s is out of range: 0 to {MAX_KEEP_ALL_SECONDS} (7 days)",
                    self.keep_all_seconds
                ),
            ));
        }
        if self.keep_all_seconds > 0 && self.keep_all_seconds < rpo_seconds {
            return Err(Invalid::new(
                "retention.keep_all_seconds",
                format!(
                    "keeping every instance for {} s keeps none but the newest at an RPO of {rpo_seconds} s: use 0, or at least the RPO",
                    self.keep_all_seconds
                ),
            ));
        }
        if self.thin_days > MAX_THIN_DAYS {
            return Err(Invalid::new(
                "retention.thin_days",
                format!(
                    "{} days is out of range: 0 to {MAX_THIN_DAYS}",
                    self.thin_days
                ),
            ));
        }
        if self.thin_days == 0 {
            return Ok(());
        }
        let max = self.period.max_per();
        if self.per_period == 0 || self.per_period > max {
            return Err(Invalid::new(
                "retention.per_period",
                format!(
                    "{} per {} is out of range: 1 to {max} when thin_days is set",
                    self.per_period,
                    self.period.name()
                ),
            ));
        }
        let slot = self.period.seconds() / u64::from(self.per_period);
        if rpo_seconds > slot {
            let can = (self.period.seconds() / rpo_seconds.max(1)).max(1);
            return Err(Invalid::new(
                "retention.per_period",
                format!(
                    "{} per {} needs an instance every {slot} s, but the RPO is {rpo_seconds} s: at most {can} per {} at this RPO",
                    self.per_period,
                    self.period.name(),
                    self.period.name()
                ),
            ));
        }
        Ok(())
    }

    /// The instances of `points` the policy no longer keeps at `now_ms`,
    /// oldest first. The newest is always kept.
    pub fn expired(&self, points: &[Point], now_ms: u64) -> Vec<u64> {
        let Some(newest) = points.iter().map(|p| p.instance).max() else {
            return Vec::new();
        };
        let keep_all_from = now_ms.saturating_sub(self.keep_all_seconds * 1000);
        let thin_from = keep_all_from.saturating_sub(u64::from(self.thin_days) * 86_400_000);
        let slot_ms = if self.per_period == 0 {
            u64::MAX
        } else {
            self.period.seconds() * 1000 / u64::from(self.per_period)
        };
        let mut sorted: Vec<&Point> = points.iter().collect();
        sorted.sort_by_key(|p| (p.point_time_ms, p.instance));
        let mut slots_taken = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in sorted {
            let keep = p.instance == newest
                || (self.keep_all_seconds > 0 && p.point_time_ms >= keep_all_from)
                || (self.thin_days > 0
                    && self.per_period > 0
                    && p.point_time_ms >= thin_from
                    && slots_taken.insert(p.point_time_ms / slot_ms));
            if !keep {
                out.push(p.instance);
            }
        }
        out.sort_unstable();
        out
    }
}

/// Which kept instances (oldest first) must go so that `points` fit in
/// `budget` bytes: the oldest first, never the newest.
pub fn over_budget(points: &[Point], budget: u64) -> Vec<u64> {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by_key(|p| p.instance);
    let mut used: u64 = sorted.iter().map(|p| p.bytes).sum();
    let mut out = Vec::new();
    for p in sorted.iter().take(sorted.len().saturating_sub(1)) {
        if used <= budget {
            break;
        }
        used -= p.bytes;
        out.push(p.instance);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(every_s: u64, count: u64, now_ms: u64) -> Vec<Point> {
        (0..count)
            .map(|i| Point {
                instance: i + 1,
                point_time_ms: now_ms - (count - 1 - i) * every_s * 1000,
                bytes: 100,
            })
            .collect()
    }

    #[test]
    fn the_default_keeps_the_newest_only() {
        let policy = RetentionPolicy::default();
        assert!(policy.newest_only());
        policy.validate(300).unwrap();
        let now = 100 * 86_400_000;
        let expired = policy.expired(&points(60, 10, now), now);
        assert_eq!(expired, (1..=9).collect::<Vec<_>>());
    }

    #[test]
    fn a_window_then_thinning_per_hour() {
        let policy = RetentionPolicy {
            keep_all_seconds: 3_600,
            per_period: 4,
            period: Period::Hour,
            thin_days: 1,
        };
        policy.validate(300).unwrap();
        // One instance every 5 minutes for 3 days, ending on an hour.
        let now = 100 * 86_400_000;
        let all = points(300, 3 * 288, now);
        let expired = policy.expired(&all, now);
        let kept: Vec<&Point> = all
            .iter()
            .filter(|p| !expired.contains(&p.instance))
            .collect();
        let window = kept
            .iter()
            .filter(|p| p.point_time_ms >= now - 3_600_000)
            .count();
        assert_eq!(window, 13, "every instance of the last hour");
        assert_eq!(kept.len(), 13 + 24 * 4, "then four an hour for a day");
        assert!(kept.iter().all(|p| p.point_time_ms >= now - 25 * 3_600_000));
    }

    #[test]
    fn fields_out_of_range_and_an_rpo_too_long_are_refused_naming_the_field() {
        let bad = |p: RetentionPolicy, rpo| p.validate(rpo).unwrap_err();
        let e = bad(
            RetentionPolicy {
                per_period: 12,
                thin_days: 1,
                ..Default::default()
            },
            900,
        );
        assert_eq!(e.field, "retention.per_period");
        assert!(e.message.contains("every 300 s"), "{}", e.message);
        assert!(e.message.contains("at most 4 per hour"), "{}", e.message);
        let e = bad(
            RetentionPolicy {
                keep_all_seconds: 60,
                ..Default::default()
            },
            900,
        );
        assert_eq!(e.field, "retention.keep_all_seconds");
        let e = bad(
            RetentionPolicy {
                keep_all_seconds: MAX_KEEP_ALL_SECONDS + 1,
                ..Default::default()
            },
            5,
        );
        assert!(e.message.contains("0 to 604800"), "{}", e.message);
        let e = bad(
            RetentionPolicy {
                per_period: 25,
                period: Period::Day,
                thin_days: 3,
                ..Default::default()
            },
            60,
        );
        assert!(e.message.contains("1 to 24"), "{}", e.message);
        let e = bad(
            RetentionPolicy {
                per_period: 1,
                thin_days: 91,
                ..Default::default()
            },
            60,
        );
        assert_eq!(e.field, "retention.thin_days");
    }

    #[test]
    fn a_budget_drops_the_oldest_and_never_the_newest() {
        let now = 10 * 86_400_000;
        let all = points(60, 5, now);
        assert_eq!(over_budget(&all, 500), Vec::<u64>::new());
        assert_eq!(over_budget(&all, 299), vec![1, 2, 3]);
        assert_eq!(over_budget(&all, 0), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_policy_reads_from_json_with_defaults() {
        let p: RetentionPolicy =
            serde_json::from_str(r#"{"keep_all_seconds":3600,"per_period":2,"thin_days":7}"#)
                .unwrap();
        assert_eq!(p.period, Period::Hour);
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"keep":1}"#).is_err());
    }
}
