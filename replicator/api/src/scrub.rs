//! Scrub results: how a replica's newest instance compared, block by block,
//! with the sums recorded when it was received (`POST /vms/{id}/scrub` runs
//! one now; `GET /vms/{id}/scrub` shows the last).

use serde::{Deserialize, Serialize};

/// What the last scrub of one replica found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    pub vm_id: String,
    /// When the scrub finished, ms since the Unix epoch.
    pub at_ms: u64,
    pub duration_ms: u64,
    pub verdict: ScrubVerdict,
    /// The instance the base disks held when the scrub ended.
    pub instance: Option<u64>,
    pub block_size: u32,
    pub disks: Vec<DiskScrubReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScrubVerdict {
    /// Every block read matched its recorded sum.
    Clean,
    /// Some blocks differ from what was received: see each disk.
    Mismatch,
    /// The instance has no recorded sums, so nothing could be compared.
    NotRecorded,
    /// The replica holds no complete instance yet.
    NoInstance,
}

impl ScrubVerdict {
    pub fn label(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Mismatch => "MISMATCH",
            Self::NotRecorded => "no recorded sums",
            Self::NoInstance => "no instance yet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskScrubReport {
    pub disk: u32,
    pub blocks_checked: u64,
    /// Blocks not compared because cycles kept replacing them mid-read.
    pub blocks_skipped: u64,
    pub mismatched_blocks: u64,
    /// Runs of differing blocks, first and last inclusive.
    pub mismatches: Vec<BlockRun>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRun {
    pub first: u64,
    pub last: u64,
}
