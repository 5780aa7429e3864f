//! Promotion on disk: a replica's base disks become the disks of a VM of
//! this site, idempotent across a crash at every step.
//!
//! The order (the contract is in `replicator/docs/storage.md`):
//! 1. [`prepare`]: open the replica (finishing a committed instance), then
//!    write a marker `promote.state` holding the instance's consistency
//!    point into the VM's home, durably. From here the promote is decided.
//! 2. The caller records the VM (its database row) before anything moves.
//! 3. [`finish`]: rename each disk from the replica into the home, sync
//!    both directories, remove the replica directory, sync its parent, and
//!    last remove the marker. A caller with more to do before the promote
//!    counts as done (a QEMU site's qcow2 overlays) calls [`place`], does
//!    it, then [`unmark`]: a crash between them is resumed as any other.
//!
//! A crash before the marker leaves the replica untouched; after it, the
//! marker says the promote must be finished (the site does so at start for
//! a recorded VM, a retried run does so for one not yet recorded), and
//! every step of [`finish`] skips what is already done.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::durable::{remove_durably_in, write_atomic_in};
use super::fs::{FileLayer, read_all};
use super::replica::Replica;

/// The marker of a promote in progress, in the VM's home directory.
pub const MARKER: &str = "promote.state";

/// Why a promote cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("the replica has no complete instance (initial sync never finished)")]
    NoInstance,
    #[error("disk {0} is missing from both the replica and the VM's home")]
    MissingDisk(usize),
    #[error("the promote marker {0} is corrupt")]
    BadMarker(PathBuf),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The marker's text: one line, `point_time_ms <n>`.
pub fn encode_marker(point_time_ms: u64) -> String {
    format!("point_time_ms {point_time_ms}\n")
}

/// Parses a marker's bytes; `None` when they are not a marker.
pub fn decode_marker(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let value = text.strip_suffix('\n')?.strip_prefix("point_time_ms ")?;
    // Digits only, no leading zero: exactly what `encode_marker` writes.
    let canonical = value == "0" || !value.starts_with('0');
    if value.is_empty() || !canonical || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The consistency point of a promote in progress in `home`, if any.
pub fn in_progress(layer: &dyn FileLayer, home: &Path) -> Result<Option<u64>, PromoteError> {
    let path = home.join(MARKER);
    match read_all(layer, &path) {
        Ok(bytes) => decode_marker(&bytes)
            .map(Some)
            .ok_or(PromoteError::BadMarker(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Decides the promote of the replica in `replica_dir` into `home` and
/// returns the consistency point it recovers; resumes a decided one.
pub fn prepare(
    layer: &Arc<dyn FileLayer>,
    replica_dir: &Path,
    home: &Path,
) -> Result<u64, PromoteError> {
    if let Some(point) = in_progress(&**layer, home)? {
        return Ok(point);
    }
    // Opening finishes any committed instance still in the redo log.
    let replica = Replica::open_in(layer.clone(), replica_dir)?;
    if replica.state().instance.is_none() {
        return Err(PromoteError::NoInstance);
    }
    let point = replica.state().point_time_ms;
    drop(replica);
    layer.create_dir_all(home)?;
    if let Some(parent) = home.parent() {
        // The home's own entry must survive before the marker in it counts.
        layer.sync_dir(parent)?;
    }
    write_atomic_in(
        &**layer,
        &home.join(MARKER),
        encode_marker(point).as_bytes(),
    )?;
    Ok(point)
}

/// Moves the `disks` base disks of a decided promote into `home` and
/// removes the replica; every step is skipped when already done.
pub fn finish(
    layer: &dyn FileLayer,
    replica_dir: &Path,
    home: &Path,
    disks: usize,
) -> Result<(), PromoteError> {
    place(layer, replica_dir, home, disks)?;
    unmark(layer, home)
}

/// [`finish`] but for its last step: the disks are in `home`, the replica
/// is gone and the marker stays. Skipped when no promote is in progress.
pub fn place(
    layer: &dyn FileLayer,
    replica_dir: &Path,
    home: &Path,
    disks: usize,
) -> Result<(), PromoteError> {
    if in_progress(layer, home)?.is_none() {
        return Ok(());
    }
    for i in 0..disks {
        let name = format!("disk-{i}.raw");
        let (from, to) = (replica_dir.join(&name), home.join(&name));
        if layer.exists(&from)? {
            layer.rename(&from, &to)?;
        } else if !layer.exists(&to)? {
            return Err(PromoteError::MissingDisk(i));
        }
    }
    layer.sync_dir(home)?;
    layer.remove_dir_all(replica_dir)?;
    if let Some(parent) = replica_dir.parent() {
        // Also makes the renames out of the replica directory durable: the
        // whole directory is gone once its parent is synced.
        layer.sync_dir(parent)?;
    }
    Ok(())
}

/// The last step of [`finish`]: the promote is done.
pub fn unmark(layer: &dyn FileLayer, home: &Path) -> Result<(), PromoteError> {
    Ok(remove_durably_in(layer, &home.join(MARKER))?)
}
