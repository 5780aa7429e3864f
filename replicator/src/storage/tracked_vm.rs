//! A protected VM's source disks, tracked together: one consistency point
//! spans all of them, and the tracking survives a clean shutdown (but not an
//! unclean one, after which the next cycle must be a full sync).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xxhash_rust::xxh3::xxh3_64;

use super::bitmap::Bitmap;
use super::durable;
use super::geometry::Geometry;
use super::tracked_disk::{FrozenDisk, TrackedDisk, lock};

const MAGIC: &[u8; 8] = b"FERRYCTK";
const VERSION: u32 = 1;

/// The disks of one VM and what has been shipped of them.
pub struct TrackedVm {
    tracking_path: PathBuf,
    disks: Vec<TrackedDisk>,
    shipped: Mutex<Shipped>,
}

/// Which replica instances the dirty bitmaps are relative to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shipped {
    /// False after an unclean shutdown: the bitmaps may miss writes.
    tracking_valid: bool,
    /// The newest instance the peer confirmed.
    last: Option<u64>,
    /// An instance sent but not confirmed. If the peer committed it anyway,
    /// the bitmaps (which took its blocks back) are still a superset of what
    /// changed since, so a delta from it is correct too.
    in_flight: Option<u64>,
}

impl TrackedVm {
    /// Opens the VM's disks. Tracking saved by a clean [`TrackedVm::close`] is
    /// loaded and its file removed at once, so that a crash from here on is
    /// seen as unclean at the next open.
    pub fn open(vm_dir: &Path, disks: &[(PathBuf, Geometry)]) -> io::Result<Self> {
        fs::create_dir_all(vm_dir)?;
        let tracking_path = vm_dir.join("tracking.ctk");
        let saved = match fs::read(&tracking_path) {
            Ok(bytes) => decode(&bytes, disks),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        durable::remove_durably(&tracking_path)?;
        let (shipped, bitmaps) = match saved {
            Some((shipped, bitmaps)) => (shipped, bitmaps.into_iter().map(Some).collect()),
            None => (Shipped::default(), vec![None; disks.len()]),
        };
        let disks = disks
            .iter()
            .zip(bitmaps)
            .map(|((path, geometry), dirty)| TrackedDisk::open(path, *geometry, dirty))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            tracking_path,
            disks,
            shipped: Mutex::new(shipped),
        })
    }

    pub fn disks(&self) -> &[TrackedDisk] {
        &self.disks
    }

    pub fn geometries(&self) -> Vec<Geometry> {
        self.disks.iter().map(TrackedDisk::geometry).collect()
    }

    /// True when a cycle against a replica at `base` may ship only dirty
    /// blocks; otherwise it must be a full sync.
    pub fn can_ship_delta_from(&self, base: Option<u64>) -> bool {
        let shipped = lock(&self.shipped);
        shipped.tracking_valid
            && base.is_some()
            && (base == shipped.last || base == shipped.in_flight)
    }

    /// Freezes one consistency point across all disks at once. `full` puts
    /// every block in the point (a full sync); otherwise the dirty ones.
    pub fn freeze(&self, full: bool, instance: u64) -> Vec<FrozenDisk> {
        let mut locks: Vec<_> = self.disks.iter().map(TrackedDisk::lock_state).collect();
        debug_assert!(locks.iter().all(|l| !l.is_frozen()), "point already frozen");
        let frozen = locks.iter_mut().map(|l| l.freeze(full)).collect();
        lock(&self.shipped).in_flight = Some(instance);
        frozen
    }

    /// Ends the frozen point. `shipped` means the peer committed `instance`.
    pub fn thaw(&self, shipped: bool, instance: u64) {
        for disk in &self.disks {
            disk.lock_state().thaw(shipped);
        }
        if shipped {
            let mut state = lock(&self.shipped);
            *state = Shipped {
                tracking_valid: true,
                last: Some(instance),
                in_flight: None,
            };
        }
    }

    /// Clean shutdown: any point in flight counts as not shipped, the disks
    /// are made durable, and the tracking is saved for the next open.
    pub fn close(self) -> io::Result<()> {
        for disk in &self.disks {
            disk.lock_state().thaw(false);
            disk.file().sync_all()?;
        }
        let shipped = *lock(&self.shipped);
        let bitmaps: Vec<Bitmap> = self.disks.iter().map(TrackedDisk::unreplicated).collect();
        durable::write_atomic(&self.tracking_path, &encode(shipped, &bitmaps))
    }
}

fn encode(shipped: Shipped, bitmaps: &[Bitmap]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(u8::from(shipped.tracking_valid));
    for instance in [shipped.last, shipped.in_flight] {
        out.extend_from_slice(&instance.map_or(0, |i| i + 1).to_le_bytes());
    }
    out.extend_from_slice(&(bitmaps.len() as u32).to_le_bytes());
    for bitmap in bitmaps {
        out.extend_from_slice(&bitmap.len().to_le_bytes());
        for word in bitmap.words() {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Whether saved tracking would be trusted for `disks` (for the fuzzers).
pub(crate) fn tracking_is_trusted(bytes: &[u8], disks: &[(PathBuf, Geometry)]) -> bool {
    decode(bytes, disks).is_some()
}

/// Parses saved tracking; anything off (checksum, version, disk layout) means
/// the tracking is not trusted and the next cycle is a full sync.
fn decode(bytes: &[u8], disks: &[(PathBuf, Geometry)]) -> Option<(Shipped, Vec<Bitmap>)> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if xxh3_64(body).to_le_bytes() != sum {
        return None;
    }
    let mut r = body.strip_prefix(MAGIC.as_slice())?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = r.split_at_checked(n)?;
        r = tail;
        Some(head)
    };
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    if u32::from_le_bytes(take(4)?.try_into().ok()?) != VERSION {
        return None;
    }
    let valid = take(1)?[0] == 1;
    let last = u64_of(take(8)?).checked_sub(1);
    let in_flight = u64_of(take(8)?).checked_sub(1);
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    if count != disks.len() {
        return None;
    }
    let mut bitmaps = Vec::with_capacity(count);
    for (_, geometry) in disks {
        let len = u64_of(take(8)?);
        if len != geometry.block_count() {
            return None;
        }
        let words = take(len.div_ceil(64) as usize * 8)?
            .chunks_exact(8)
            .map(u64_of)
            .collect();
        bitmaps.push(Bitmap::from_words(len, words)?);
    }
    let shipped = Shipped {
        tracking_valid: valid,
        last,
        in_flight,
    };
    Some((shipped, bitmaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry::new(1 << 20, 65536)
    }

    fn open(dir: &Path) -> TrackedVm {
        let disks = vec![
            (dir.join("d0.raw"), geometry()),
            (dir.join("d1.raw"), geometry()),
        ];
        TrackedVm::open(dir, &disks).unwrap()
    }

    #[test]
    fn clean_close_keeps_tracking_unclean_loses_it() {
        let dir = tempfile::tempdir().unwrap();
        let vm = open(dir.path());
        assert!(!vm.can_ship_delta_from(Some(1)));
        vm.freeze(true, 1);
        vm.thaw(true, 1);
        vm.disks()[1].write_at(&[1; 10], 70_000).unwrap();
        vm.close().unwrap();

        let vm = open(dir.path());
        assert!(vm.can_ship_delta_from(Some(1)));
        assert!(!vm.can_ship_delta_from(None));
        assert_eq!(vm.disks()[1].unreplicated().iter().collect::<Vec<_>>(), [1]);
        drop(vm); // no close: as after a crash

        let vm = open(dir.path());
        assert!(!vm.can_ship_delta_from(Some(1)));
    }

    #[test]
    fn unshipped_point_returns_to_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let vm = open(dir.path());
        vm.disks()[0].write_at(&[1; 10], 0).unwrap();
        let frozen = vm.freeze(false, 1);
        assert_eq!(frozen[0].blocks, 1);
        assert_eq!(vm.disks()[0].dirty_blocks(), 0);
        vm.thaw(false, 1);
        assert_eq!(vm.disks()[0].dirty_blocks(), 1);
    }

    #[test]
    fn copy_before_write_keeps_the_point() {
        let dir = tempfile::tempdir().unwrap();
        let vm = open(dir.path());
        let disk = &vm.disks()[0];
        disk.write_at(&[1; 65536], 0).unwrap();
        vm.freeze(false, 1);
        disk.write_at(&[2; 100], 10).unwrap();
        let mut buf = vec![0; 65536];
        disk.read_frozen(0, 1, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 1));
        // Released: a later write is not copied aside any more.
        disk.write_at(&[3; 100], 10).unwrap();
        assert!(disk.read_frozen(0, 1, &mut buf).is_err());
    }

    #[test]
    fn corrupt_tracking_file_means_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let vm = open(dir.path());
        vm.freeze(true, 1);
        vm.thaw(true, 1);
        vm.close().unwrap();
        let path = dir.path().join("tracking.ctk");
        let mut bytes = fs::read(&path).unwrap();
        bytes[12] ^= 1;
        fs::write(&path, bytes).unwrap();
        let vm = open(dir.path());
        assert!(!vm.can_ship_delta_from(Some(1)));
    }
}
