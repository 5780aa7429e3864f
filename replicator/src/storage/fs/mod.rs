//! The file layer: every file call of the replica path that matters to
//! durability (open, positioned reads and writes, `set_len`, fsync, rename,
//! unlink, directory fsync, hole punching, space reservation) goes through
//! [`FileLayer`] and [`LayerFile`].
//!
//! [`RealFs`] is `std::fs` and the same syscalls storage made before. The
//! layer is held as `Arc<dyn FileLayer>` and files as `Box<dyn LayerFile>`:
//! one indirect call per syscall, nothing next to the syscall itself, and it
//! keeps [`Replica`](super::Replica) and its callers free of a type parameter.
//! [`sim::SimFs`] is the test implementation: it keeps each file's durable
//! bytes apart from its unsynced writes and injects power loss, crashes and
//! I/O errors.

pub mod extents;
pub mod sim;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Read only; the file must exist.
    Read,
    /// Read and write, created empty when missing, contents kept.
    Write,
    /// Read and write, created or truncated to empty (`O_CREAT | O_TRUNC`).
    Truncate,
}

/// The directory-level calls.
pub trait FileLayer: Send + Sync + std::fmt::Debug {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn LayerFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it; durable once its parent
    /// is synced. A missing directory is not an error.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creates, renames, unlinks) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// The names of the files directly in `dir` (a missing directory has
    /// none), so a replica can find its kept instances.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
}

/// An open file.
pub trait LayerFile: Send + Sync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// The file's size in bytes.
    fn size(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    /// The range reads back as zeros afterwards (a hole where possible).
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Allocates the range so that later writes to it cannot fail for
    /// space; `Ok` without effect where the file system cannot.
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()>;
    /// The byte ranges below `end` that may hold data (not holes).
    fn data_ranges(&self, end: u64) -> io::Result<Vec<Range<u64>>>;
    /// A hint to start writeback; errors surface at the next fsync.
    fn start_writeback(&self, offset: u64, len: u64);

    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The whole of the file at `path`.
pub fn read_all(layer: &dyn FileLayer, path: &Path) -> io::Result<Vec<u8>> {
    let file = layer.open(path, Open::Read)?;
    let mut bytes = vec![0; usize::try_from(file.size()?).map_err(io::Error::other)?];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// `std::fs`, as storage used it directly before the layer existed.
#[derive(Debug, Default)]
pub struct RealFs;

/// The process-wide real layer.
pub fn real() -> Arc<dyn FileLayer> {
    static REAL: OnceLock<Arc<dyn FileLayer>> = OnceLock::new();
    REAL.get_or_init(|| Arc::new(RealFs)).clone()
}

impl FileLayer for RealFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn LayerFile>> {
        let file = match how {
            Open::Read => File::open(path)?,
            Open::Write => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?,
            Open::Truncate => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?,
        };
        Ok(Box::new(RealFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        entries
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect()
    }
}

struct RealFile(File);

impl LayerFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        extents::punch_hole(&self.0, offset, len)
    }

    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        extents::reserve(&self.0, offset, len)
    }

    fn data_ranges(&self, end: u64) -> io::Result<Vec<Range<u64>>> {
        extents::data_ranges(&self.0, end)
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        extents::start_writeback(&self.0, offset, len);
    }
}
