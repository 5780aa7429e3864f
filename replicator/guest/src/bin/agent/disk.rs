//! A virtio disk as the guest sees it: `/dev/vdX` opened with O_DIRECT, so
//! every record goes to the device (and so through QEMU's block layer, where
//! the host's change tracking sees it) rather than into the page cache.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// O_DIRECT wants buffers aligned to the logical block size; a page covers
/// every virtio disk.
const ALIGN: usize = 4096;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; ALIGN]);

/// A zeroed, page-aligned buffer of whole pages.
pub struct AlignedBuf {
    pages: Vec<Page>,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        Self {
            pages: vec![Page([0; ALIGN]); len.div_ceil(ALIGN)],
            len,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `pages` is a contiguous Vec of plain byte arrays holding at
        // least `len` bytes, borrowed mutably for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.pages.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

pub struct Disk {
    pub device: PathBuf,
    pub size: u64,
    file: File,
}

impl Disk {
    pub fn open(device: &Path, size: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(device)?;
        Ok(Self {
            device: device.to_path_buf(),
            size,
            file,
        })
    }

    /// Reads `len` bytes at `offset` (both multiples of 512) into `buf`.
    pub fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf.as_mut_slice(), offset)
    }

    pub fn write_at(&self, buf: &mut AlignedBuf, offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf.as_mut_slice(), offset)
    }

    /// Flushes the device's write cache.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// The guest's virtio disks in device order (`vda`, `vdb`, …, `vdaa`), each
/// with its size from sysfs.
pub fn find(sys_block: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    let mut names: Vec<String> = std::fs::read_dir(sys_block)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vd"))
        .collect();
    names.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    names
        .into_iter()
        .map(|name| {
            let sectors = std::fs::read_to_string(sys_block.join(&name).join("size"))?;
            let sectors: u64 = sectors.trim().parse().map_err(io::Error::other)?;
            Ok((Path::new("/dev").join(&name), sectors * 512))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_found_in_device_order_with_their_sizes() {
        let sys = tempfile::tempdir().unwrap();
        for (name, sectors) in [("vdb", 4), ("vdaa", 1), ("vda", 2), ("sda", 9)] {
            std::fs::create_dir(sys.path().join(name)).unwrap();
            std::fs::write(sys.path().join(name).join("size"), format!("{sectors}\n")).unwrap();
        }
        let found = find(sys.path()).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|(p, s)| (p.to_str().unwrap(), *s))
            .collect();
        assert_eq!(
            names,
            [("/dev/vda", 1024), ("/dev/vdb", 2048), ("/dev/vdaa", 512)]
        );
    }

    #[test]
    fn buffers_are_page_aligned() {
        let mut b = AlignedBuf::new(512);
        assert_eq!(b.as_mut_slice().len(), 512);
        assert_eq!(b.as_mut_slice().as_ptr() as usize % ALIGN, 0);
    }
}
