//! Where a sync cycle's consistency points come from. The sender sees a
//! VM's disks only through [`PointSource`] and [`Point`], so the wire, the
//! receiver, the redo log and consolidation are the same whether the point
//! was frozen by ferry's own tracked disks ([`TrackedVm`]) or by QEMU's
//! dirty bitmaps (`compute::qemu`).

use std::io;

use super::bitmap::Bitmap;
use super::geometry::Geometry;
use super::tracked_disk::FrozenDisk;
use super::tracked_vm::TrackedVm;

/// A protected VM's disks, able to take consistency points.
pub trait PointSource: Send + Sync {
    fn geometries(&self) -> Vec<Geometry>;

    /// True when a cycle against a replica at `base` may ship only the
    /// blocks changed since (a delta); otherwise it must be a full sync.
    fn can_ship_delta_from(&self, base: Option<u64>) -> io::Result<bool>;

    /// About how many bytes the next delta would ship, for the scheduler's
    /// estimate. Cheap and non-blocking: it is asked from async code.
    fn dirty_bytes(&self) -> u64;

    /// Takes one consistency point across all disks at once for `instance`:
    /// the blocks changed since `base` or, when `full`, every block.
    fn take_point(
        &self,
        full: bool,
        base: Option<u64>,
        instance: u64,
    ) -> io::Result<Box<dyn Point + '_>>;
}

/// One consistency point while the sender ships it. Dropping it without
/// [`Point::shipped`] means the peer did not commit it: its blocks count as
/// changed again and nothing is lost.
pub trait Point {
    /// What the point captured of each disk.
    fn frozen(&self) -> Vec<FrozenDisk>;

    /// The blocks of disk `disk` in the point, in order.
    fn blocks(&self, disk: usize) -> Bitmap;

    /// Reads blocks `first..first + count` of disk `disk` as they were at the
    /// point. Each block is read at most once.
    fn read(&mut self, disk: usize, first: u64, count: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The peer committed the point's instance.
    fn shipped(self: Box<Self>);
}

impl PointSource for TrackedVm {
    fn geometries(&self) -> Vec<Geometry> {
        TrackedVm::geometries(self)
    }

    fn can_ship_delta_from(&self, base: Option<u64>) -> io::Result<bool> {
        Ok(TrackedVm::can_ship_delta_from(self, base))
    }

    fn dirty_bytes(&self) -> u64 {
        self.disks()
            .iter()
            .map(|d| d.dirty_blocks() * u64::from(d.geometry().block_size))
            .sum()
    }

    fn take_point(
        &self,
        full: bool,
        _base: Option<u64>,
        instance: u64,
    ) -> io::Result<Box<dyn Point + '_>> {
        let frozen = self.freeze(full, instance);
        Ok(Box::new(TrackedPoint {
            vm: self,
            instance,
            frozen,
            shipped: false,
        }))
    }
}

/// A frozen point of a [`TrackedVm`]; thawed when dropped.
struct TrackedPoint<'a> {
    vm: &'a TrackedVm,
    instance: u64,
    frozen: Vec<FrozenDisk>,
    shipped: bool,
}

impl Point for TrackedPoint<'_> {
    fn frozen(&self) -> Vec<FrozenDisk> {
        self.frozen.clone()
    }

    fn blocks(&self, disk: usize) -> Bitmap {
        self.vm.disks()[disk].frozen_blocks()
    }

    fn read(&mut self, disk: usize, first: u64, count: u64, buf: &mut [u8]) -> io::Result<()> {
        self.vm.disks()[disk].read_frozen(first, count, buf)
    }

    fn shipped(mut self: Box<Self>) {
        self.shipped = true;
    }
}

impl Drop for TrackedPoint<'_> {
    fn drop(&mut self) {
        self.vm.thaw(self.shipped, self.instance);
    }
}
