//! The site's VMs as records: placement, NICs, disks and power state. There
//! is no hypervisor here: a powered-on VM runs the built-in guest.

use serde::{Deserialize, Serialize};

use crate::config::{GuestSeed, NicSeed, VmSeed};

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDisk {
    pub datastore: String,
    pub size_bytes: u64,
}

impl VmRecord {
    /// A new record from a seed; the id is derived from the site and name so
    /// it is stable across restarts and recognisable in paths.
    pub fn from_seed(site: &str, seed: &VmSeed) -> Self {
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
        }
    }
}
