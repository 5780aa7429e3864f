//! `[scrub]` of site.toml: how often the replicas held here are read back
//! and compared with their recorded block sums.

use serde::{Deserialize, Serialize};

/// `[scrub]`: every replica's newest instance is read back and compared
/// with its recorded block sums every `every_hours` (0: only on demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {
    #[serde(default = "ScrubConfig::default_hours")]
    pub every_hours: u64,
}

impl ScrubConfig {
    /// Weekly: a full read of every replica costs what a full sync's
    /// hashing does, and silent corruption is rare; daily is a choice.
    fn default_hours() -> u64 {
        168
    }
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            every_hours: Self::default_hours(),
        }
    }
}
