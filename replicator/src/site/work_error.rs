//! Why a run's work on one VM failed, at either site: test copies, test
//! VMs and promotion at the recovery site ([`super::recovered`]),
//! synchronize, shut down and demote at the protected site
//! ([`super::protected`]). Each variant renders the sentence the run view
//! shows for that VM; callers branch on the variant.

use std::path::PathBuf;

use super::SiteError;
use crate::compute::ComputeError;
use crate::replication::refusal::{HoldError, ReplicaDirError};
use crate::storage::promote::PromoteError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum VmWorkError {
    #[error("no replica of {vm} at site {site}")]
    NoReplica { vm: String, site: String },
    #[error("no datastore {0}")]
    NoDatastore(String),
    /// Another plan's test made the test copy; `owner` describes that test.
    #[error("a test copy of this VM belongs to {owner}: clean that plan up first")]
    TestCopyTaken { owner: String },
    #[error("the test copy belongs to {owner}: left to its cleanup")]
    TestCopyKept { owner: String },
    #[error("the replica has no complete instance yet (initial sync running)")]
    NoInstance,
    #[error("no test copy of {0}")]
    NoTestCopy(String),
    #[error("copying disk {disk}: {source}")]
    CopyDisk { disk: usize, source: std::io::Error },
    #[error("cannot remove {}: {source}", dir.display())]
    Remove {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("boot failed: {0}")]
    Boot(ComputeError),
    #[error("the VM stopped right after it was powered on")]
    StoppedAtPowerOn,
    #[error("the VM stopped before its guest reported: {why}")]
    StoppedBeforeReport { why: String },
    #[error("the guest reported no boot verification within {seconds} s")]
    NoBootReport { seconds: u64 },
    #[error("finishing the promote of {vm}: {source}")]
    FinishPromote { vm: String, source: PromoteError },
    #[error("finishing the promote of {vm}: {source}")]
    FinishPromoteTracking { vm: String, source: SiteError },
    #[error("{0} is not replicated")]
    NotReplicated(String),
    /// The protected site made no instance newer than the ask in time.
    #[error(
        "no synchronized instance within {seconds} s (state {state}{})",
        last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    NotSynchronized {
        seconds: u64,
        state: String,
        last_error: Option<String>,
    },
    #[error("instance {0} is no longer kept")]
    NotKept(u64),
    #[error("rebuilding instance {instance}: {source}")]
    Rebuild {
        instance: u64,
        source: crate::storage::replica::InstanceError,
    },
    #[error("creating the seed: {0}")]
    CreateSeed(std::io::Error),
    #[error("writing the seed of disk {disk}: {source}")]
    WriteSeed { disk: usize, source: ComputeError },
    #[error("moving the disks to the seed: {0}")]
    Seed(std::io::Error),
    #[error("no VM and no seed of {vm} at site {site}")]
    NoVmOrSeed { vm: String, site: String },
    #[error(transparent)]
    Hold(#[from] HoldError),
    #[error(transparent)]
    ReplicaDir(#[from] ReplicaDirError),
    #[error(transparent)]
    Promote(#[from] PromoteError),
    #[error(transparent)]
    Compute(#[from] ComputeError),
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}
