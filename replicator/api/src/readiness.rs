//! Whether a recovery plan can run now, as the site that owns it finds it:
//! each group's direction and lock, whether both sites answer, what is
//! missing. The plan's `allowed` and `next` follow from it, and clients
//! show it as given.

use serde::{Deserialize, Serialize};

/// What the owning site found when it last looked at a plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Readiness {
    /// Whether the protected site answered the owner's last check.
    pub protected_site_reachable: bool,
    /// Whether the recovery site (the owner) answers: true at the owner;
    /// a peer's mirror says whether the owner answers that peer.
    pub recovery_site_reachable: bool,
    pub groups: Vec<GroupReadiness>,
    /// `db-01: network` for each VM whose mappings are incomplete.
    pub missing_mappings: Vec<String>,
    /// VMs with no complete instance at the recovery site yet.
    pub not_replicated: Vec<String>,
    /// VMs with a test copy at the recovery site now.
    pub test_copies: Vec<String>,
    /// VMs of the plan a run would leave out, and why.
    pub skipped: Vec<SkippedVm>,
}

/// One group of a plan, as the plan's owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupReadiness {
    pub id: String,
    pub name: String,
    /// Where its VMs run now, and where they are recovered to; `None`
    /// when the group is known to neither site.
    pub protected_site: Option<String>,
    pub recovery_site: Option<String>,
    /// The run holding the group's lock.
    pub locked_by: Option<String>,
    pub vm_count: usize,
}

/// A VM of a plan that a run leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedVm {
    pub vm_id: String,
    pub vm: String,
    pub why: String,
}

impl Readiness {
    /// The reasons a run of this plan would not cover all of it, in words
    /// (empty when nothing is in the way).
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for g in &self.groups {
            if let Some(run) = &g.locked_by {
                notes.push(format!("group {} is locked by {run}", g.name));
            }
        }
        if !self.skipped.is_empty() {
            let mut why: Vec<&str> = self.skipped.iter().map(|s| s.why.as_str()).collect();
            why.dedup();
            notes.push(format!(
                "{} VM{} would be skipped ({})",
                self.skipped.len(),
                plural(self.skipped.len()),
                why.join("; ")
            ));
        }
        if !self.not_replicated.is_empty() {
            notes.push(format!(
                "not replicated yet: {}",
                self.not_replicated.join(", ")
            ));
        }
        if !self.missing_mappings.is_empty() {
            notes.push(format!(
                "mapping missing: {}",
                self.missing_mappings.join(", ")
            ));
        }
        if !self.test_copies.is_empty() {
            notes.push(format!(
                "test copies present: {}",
                self.test_copies.join(", ")
            ));
        }
        notes
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
