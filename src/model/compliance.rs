//! RPO compliance as the operator reads it, and the counts per site: a
//! replication counts only while its VM is protected (the site says so in
//! its lifecycle), never once the VM runs at the other site.

use ferry_api::types::ReplicationInfo;

use super::Model;

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

impl Model {
    /// Replications of `site` still protecting a VM (not of VMs recovered
    /// at the other site).
    pub fn protected_count(&self, site: usize) -> usize {
        self.sites.get(site).map_or(0, |s| {
            s.replications
                .values()
                .filter(|r| self.lifecycle(r).is_protected())
                .count()
        })
    }

    /// (ok, at risk, violated, pending) counts for one site's protected VMs.
    pub fn compliance_counts(&self, site: usize, now_ms: u64) -> [usize; 4] {
        let mut counts = [0; 4];
        if let Some(s) = self.sites.get(site) {
            for r in s.replications.values() {
                if self.lifecycle(r).is_protected() {
                    counts[compliance(r, now_ms) as usize] += 1;
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::replication;

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
}
