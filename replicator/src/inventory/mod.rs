//! The site's VMs as records: placement, NICs, disks, size and power state.
//! What runs a powered-on VM is the site's compute backend's business.

use serde::{Deserialize, Serialize};

use crate::config::{ComputeConfig, GuestSeed, NicSeed, VmSeed};

/// One VM as the site stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    pub id: String,
    pub name: String,
    pub folder: String,
    pub resource_pool: String,
    pub power_on: bool,
    pub disks: Vec<VmDisk>,
    pub nics: Vec<NicSeed>,
    pub guest: GuestSeed,
    /// Memory and vCPUs a compute backend gives the VM; records stored
    /// before they existed read as 0, meaning the site's `[compute]` ones.
    #[serde(default)]
    pub memory_mib: u32,
    #[serde(default)]
    pub vcpus: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDisk {
    pub datastore: String,
    pub size_bytes: u64,
}

impl VmRecord {
    /// A new record from a seed; the id is derived from the site and name so
    /// it is stable across restarts and recognisable in paths.
    pub fn from_seed(site: &str, seed: &VmSeed, compute: &ComputeConfig) -> Self {
        Self {
            id: format!("{site}.{}", seed.name),
            name: seed.name.clone(),
            folder: seed.folder.clone(),
            resource_pool: seed.resource_pool.clone(),
            power_on: seed.power_on,
            disks: seed
                .disks
                .iter()
                .map(|d| VmDisk {
                    datastore: d.datastore.clone(),
                    size_bytes: d.size_mib << 20,
                })
                .collect(),
            nics: seed.nics.clone(),
            guest: seed.guest.clone(),
            memory_mib: seed.memory_mib.unwrap_or(compute.memory_mib),
            vcpus: seed.vcpus.unwrap_or(compute.vcpus),
        }
    }

    /// Memory and vCPUs, the site's defaults where the record has none.
    pub fn size(&self, compute: &ComputeConfig) -> (u32, u32) {
        let pick = |own: u32, default: u32| if own == 0 { default } else { own };
        (
            pick(self.memory_mib, compute.memory_mib),
            pick(self.vcpus, compute.vcpus),
        )
    }
}
