//! Which run a test copy belongs to: written beside its disks when a test
//! makes it, so another plan's test cannot replace it, a cleanup removes
//! only its own plan's copies, and a failover of a VM with a test copy
//! still running says so. Kept on disk, so it survives a restart.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file in a test copy's directory that names its owner.
const FILE: &str = "owner.json";

/// The test run that made a test copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCopyOwner {
    pub run_id: String,
    pub plan_id: String,
    pub plan_name: String,
}

impl TestCopyOwner {
    /// Reads the owner of the test copy in `dir`; `None` for no copy, or
    /// one made before owners were recorded (anyone's to replace).
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Records `self` as the owner of the test copy in `dir`, durably.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let file = dir.join(FILE);
        std::fs::write(&file, text)?;
        std::fs::File::open(&file)?.sync_all()
    }

    /// `plan_id`'s runs may replace or remove this copy; another plan's
    /// may not.
    pub fn allows(&self, plan_id: &str) -> bool {
        self.plan_id == plan_id
    }

    /// `plan X's test (run R)`, for messages.
    pub fn describe(&self) -> String {
        format!("plan {:?}'s test (run {})", self.plan_name, self.run_id)
    }
}
