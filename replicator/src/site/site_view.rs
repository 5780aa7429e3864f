//! A site as its peer sees it: what the peer watch fetches every two
//! seconds and what a site keeps of its peer across a restart. Data only,
//! so protection and the control calls can both stand on it.

use serde::{Deserialize, Serialize};

use ferry_api::types::{
    Inventory, Mappings, Plan, ProtectionGroup, ReplicationInfo, TestCopy, VmInfo,
};

/// A site as its peer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteView {
    pub site: String,
    pub inventory: Inventory,
    pub vms: Vec<VmInfo>,
    pub replications: Vec<ReplicationInfo>,
    pub mappings: Vec<Mappings>,
    pub groups: Vec<ProtectionGroup>,
    pub plans: Vec<Plan>,
    /// Test copies the site runs of its peer's VMs (absent from older
    /// sites).
    #[serde(default)]
    pub test_copies: Vec<TestCopy>,
    pub at_ms: u64,
}

impl SiteView {
    /// What is worth keeping across a restart: everything but the live
    /// numbers (heartbeats, lag, progress).
    pub fn same_shape(&self, other: &Self) -> bool {
        let vms = |v: &Self| {
            v.vms
                .iter()
                .map(|x| {
                    (
                        x.id.clone(),
                        x.folder.clone(),
                        x.resource_pool.clone(),
                        x.nics.clone(),
                        x.lifecycle.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let reps = |v: &Self| {
            v.replications
                .iter()
                .map(|r| (r.vm_id.clone(), r.target_site.clone(), r.datastore.clone()))
                .collect::<Vec<_>>()
        };
        self.inventory == other.inventory
            && self.mappings == other.mappings
            && self.groups == other.groups
            && self.plans == other.plans
            && vms(self) == vms(other)
            && reps(self) == reps(other)
    }
}
