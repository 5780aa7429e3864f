//! Durable file operations: atomic replace and directory fsync.
//!
//! Each takes the [`FileLayer`] it goes through; the plain forms (no
//! layer) use the real file system and serve the sender side and the
//! recovery-site operations.
//!
//! Rule of this crate: an fsync that fails is never retried (the kernel may
//! have dropped the dirty pages and a second fsync would report success for
//! data that is gone). The caller fails the operation and starts again from
//! what is durable.

use std::io;
use std::path::Path;

use super::fs::{FileLayer, Open, real};

/// Makes a directory entry change (create, rename, unlink) durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    real().sync_dir(dir)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the
/// new contents, never a mix: temp file, fsync, rename, directory fsync.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_in(&*real(), path, bytes)
}

/// [`write_atomic`] through `layer`.
pub fn write_atomic_in(layer: &dyn FileLayer, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let file = layer.open(&tmp, Open::Truncate)?;
        file.write_all_at(bytes, 0)?;
        file.sync_all()?;
    }
    layer.rename(&tmp, path)?;
    layer.sync_dir(dir)
}

/// Removes `path` if it exists and makes the removal durable.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    remove_durably_in(&*real(), path)
}

/// [`remove_durably`] through `layer`.
pub fn remove_durably_in(layer: &dyn FileLayer, path: &Path) -> io::Result<()> {
    match layer.remove_file(path) {
        Ok(()) => layer.sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub use super::fs::extents::{data_ranges, punch_hole, reserve, start_writeback};

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!path.with_extension("tmp").exists());
    }
}
