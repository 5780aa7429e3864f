//! What a VM is now, across both sites, as the site holding it says: the
//! one state every view shows, so a VM recovered at the other site never
//! reads as a failing replication, and counts and alarms follow it.

use serde::{Deserialize, Serialize};

/// A VM's place in the protect–recover–reprotect cycle.
///
/// The site computes it (from its runs, its test copies and its peer's
/// view) and streams it with the VM and its replication; clients render it
/// as given.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Lifecycle {
    /// Replicated to the peer; the replication's state says how that stands.
    Protected,
    /// Protected, and a test copy of its replica runs at `site`.
    TestCopy {
        site: String,
        run_id: Option<String>,
    },
    /// Brought up at this site from the peer's replica by a planned
    /// migration or disaster recovery; not protected until a reprotect.
    Recovered {
        from_site: String,
        run_id: Option<String>,
    },
    /// The old copy of a VM that runs at `site` now, recovered there by
    /// `run_id`: its replication from here has ended.
    RecoveredAt {
        site: String,
        run_id: Option<String>,
    },
    /// A reprotect run is turning its replication around.
    Reprotecting { run_id: String },
    /// Neither replicated nor recovered.
    #[default]
    NotProtected,
}

impl Lifecycle {
    /// What a replication is unless its site says otherwise.
    pub fn protected() -> Self {
        Self::Protected
    }

    /// Whether the VM counts as protected (replicated, compliance counted).
    pub fn is_protected(&self) -> bool {
        matches!(self, Self::Protected | Self::TestCopy { .. })
    }

    /// Whether this copy's replication has ended because the VM runs at the
    /// other site: its lag is no longer a risk, and raises no alarm.
    pub fn has_ended(&self) -> bool {
        matches!(self, Self::RecoveredAt { .. })
    }

    /// One short phrase: `recovered at site-b (run-1a2b3c)`.
    pub fn words(&self) -> String {
        let run = |r: &Option<String>| r.as_ref().map_or(String::new(), |r| format!(" ({r})"));
        match self {
            Self::Protected => "protected".into(),
            Self::TestCopy { site, run_id } => format!("test copy at {site}{}", run(run_id)),
            Self::Recovered { from_site, run_id } => {
                format!("recovered from {from_site}{}", run(run_id))
            }
            Self::RecoveredAt { site, run_id } => format!("recovered at {site}{}", run(run_id)),
            Self::Reprotecting { run_id } => format!("reprotecting ({run_id})"),
            Self::NotProtected => "not protected".into(),
        }
    }
}

/// A test copy a site runs for one of its peer's VMs, and the test run
/// that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCopy {
    pub vm_id: String,
    pub run_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_is_neither_protected_nor_failing() {
        let ended = Lifecycle::RecoveredAt {
            site: "site-b".into(),
            run_id: Some("run-1".into()),
        };
        assert!(ended.has_ended() && !ended.is_protected());
        assert_eq!(ended.words(), "recovered at site-b (run-1)");
        let json = serde_json::to_value(&ended).unwrap();
        assert_eq!(json["state"], "recovered_at");
        assert_eq!(
            serde_json::from_value::<Lifecycle>(json).unwrap(),
            ended,
            "round trip"
        );
    }
}
