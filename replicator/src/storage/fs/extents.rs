//! Byte ranges of one open file, by the Linux calls that work on them:
//! reserving space, starting writeback early, punching holes and finding
//! the ranges that hold data. The file layer's real implementation and the
//! sender-side code use them; they know nothing of durability rules.

use std::fs::File;
use std::io;

/// Allocates a byte range (`fallocate(KEEP_SIZE)`: the file's size is left
/// alone) so that writes into it cannot fail for want of space. Where the file system cannot (`EOPNOTSUPP`) the
/// range is left as it is: the reservation is a guard, not a correctness
/// condition, and the apply that follows still fails cleanly on ENOSPC.
pub fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on a valid open descriptor; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(err);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
    Ok(())
}

/// Asks the kernel to start writing back a range now, so that a later fsync
/// has little left to do. Purely a hint: errors surface at fsync.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on a valid open descriptor; no memory is passed.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Deallocates a byte range of a sparse file so it reads back as zeros and
/// takes no space (a hole), falling back to writing zeros where the file
/// system cannot punch holes.
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on a valid open descriptor; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    use std::os::unix::fs::FileExt;
    file.write_all_at(&vec![0; len as usize], offset)
}

/// The byte ranges of `file` below `end` that may hold data (everything that
/// is not a hole), found with SEEK_DATA/SEEK_HOLE. Holes read as zeros, so a
/// scan can skip them without reading.
pub fn data_ranges(file: &File, end: u64) -> io::Result<Vec<std::ops::Range<u64>>> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let mut ranges = Vec::new();
        let mut pos: u64 = 0;
        while pos < end {
            // SAFETY: lseek on a valid descriptor; no memory is passed.
            let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
            if data < 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::ENXIO) {
                    break; // no data after pos
                }
                if err.raw_os_error() == Some(libc::EINVAL) {
                    return Ok(std::iter::once(0..end).collect()); // no SEEK_DATA here
                }
                return Err(err);
            }
            let data = data as u64;
            if data >= end {
                break;
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
            if hole < 0 {
                return Err(io::Error::last_os_error());
            }
            let hole = (hole as u64).min(end);
            ranges.push(data..hole);
            pos = hole;
        }
        Ok(ranges)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Ok(std::iter::once(0..end).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn holes_are_skipped_and_punched() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("d"))
            .unwrap();
        file.set_len(8 << 20).unwrap();
        file.write_all_at(&[7; 4096], 4 << 20).unwrap();
        let ranges = data_ranges(&file, 8 << 20).unwrap();
        assert_eq!(ranges.len(), 1);
        assert!(ranges[0].contains(&(4 << 20)));
        punch_hole(&file, 4 << 20, 4096).unwrap();
        let mut buf = [1u8; 4096];
        file.read_exact_at(&mut buf, 4 << 20).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }
}
