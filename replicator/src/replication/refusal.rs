//! Why the receiver refuses a session's layout or instance, or a hold on a
//! replica: typed, so a caller can tell a busy replica from a bad name, and
//! each renders the sentence the peer or the run view shows.

use crate::storage::{Geometry, Replica};

/// Disk and block limits a peer may ask for.
const MAX_DISKS: usize = 64;
const MAX_DISK_SIZE: u64 = 64 << 40;
const MIN_BLOCK_SIZE: u32 = 4096;
const MAX_BLOCK_SIZE: u32 = 1 << 20;

/// Where a replica would live cannot be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaDirError {
    #[error("VM id {0:?} is not a valid name")]
    BadName(String),
    #[error("no datastore {0:?} at this site")]
    NoDatastore(String),
}

/// A replica could not be held still.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    #[error(transparent)]
    Dir(#[from] ReplicaDirError),
    #[error("the replica of {vm} is still receiving a cycle after {seconds} s")]
    Busy { vm: String, seconds: u64 },
}

/// A session's disk layout or instance the replica cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("block size {0} is not a power of two from {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}")]
    BlockSize(u32),
    #[error("{0} disks; a VM has 1 to {MAX_DISKS}")]
    DiskCount(usize),
    #[error("disk size {0} is not from 1 byte to 64 TiB")]
    DiskSize(u64),
    #[error("instance {instance} does not follow the replica's instance ({expected} expected)")]
    OutOfOrder { instance: u64, expected: u64 },
    #[error("a delta must have the replica's disk layout; send a full sync")]
    DeltaLayout,
}

/// The geometry of each disk a session opens with, if the peer may ask for it.
pub(super) fn check_layout(
    block_size: u32,
    disk_sizes: &[u64],
) -> Result<Vec<Geometry>, LayoutError> {
    if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(LayoutError::BlockSize(block_size));
    }
    if disk_sizes.is_empty() || disk_sizes.len() > MAX_DISKS {
        return Err(LayoutError::DiskCount(disk_sizes.len()));
    }
    if let Some(&size) = disk_sizes.iter().find(|&&s| s == 0 || s > MAX_DISK_SIZE) {
        return Err(LayoutError::DiskSize(size));
    }
    Ok(disk_sizes
        .iter()
        .map(|&size| Geometry::new(size, block_size))
        .collect())
}

/// Whether `instance` may begin on `replica`: the next one, and a delta only
/// on the same layout.
pub(super) fn check_begin(
    replica: &Replica,
    instance: u64,
    full: bool,
    block_size: u32,
    disk_sizes: &[u64],
) -> Result<(), LayoutError> {
    let state = replica.state();
    let expected = state.instance.map_or(1, |i| i + 1);
    if instance != expected {
        return Err(LayoutError::OutOfOrder { instance, expected });
    }
    if !full && (state.block_size != block_size || state.disk_sizes != disk_sizes) {
        return Err(LayoutError::DeltaLayout);
    }
    Ok(())
}
