//! A QEMU VM's change tracking as the sender's [`PointSource`]: the sender
//! runs on a blocking thread, so the QMP steps of a point are driven on the
//! site's runtime from there.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::runtime::Handle;

use super::tracking::{QemuPoint, QemuTracking};
use crate::storage::{Bitmap, FrozenDisk, Geometry, Point, PointSource};

/// A running QEMU VM's disks, seen by the sender.
pub struct QemuSource {
    tracking: Arc<QemuTracking>,
    runtime: Handle,
    /// Bytes of the newest point: the scheduler's guess of the next delta
    /// (asking QEMU would block the scheduler's async task).
    last_point_bytes: AtomicU64,
}

impl QemuSource {
    /// `runtime`: where the QMP session's tasks run (the site's runtime).
    pub fn new(tracking: Arc<QemuTracking>, runtime: Handle) -> Self {
        Self {
            tracking,
            runtime,
            last_point_bytes: AtomicU64::new(0),
        }
    }
}

impl PointSource for QemuSource {
    fn geometries(&self) -> Vec<Geometry> {
        self.tracking.geometries().to_vec()
    }

    fn can_ship_delta_from(&self, base: Option<u64>) -> io::Result<bool> {
        Ok(self.runtime.block_on(self.tracking.tracks_since(base))?)
    }

    fn dirty_bytes(&self) -> u64 {
        self.last_point_bytes.load(Ordering::Relaxed)
    }

    fn take_point(
        &self,
        full: bool,
        base: Option<u64>,
        instance: u64,
    ) -> io::Result<Box<dyn Point + '_>> {
        let base = if full { None } else { base };
        let point = self
            .runtime
            .block_on(self.tracking.take_point(instance, base))?;
        let geometries = self.geometries();
        let bytes = geometries
            .iter()
            .enumerate()
            .map(|(disk, g)| point.blocks(disk).count() * u64::from(g.block_size))
            .sum();
        self.last_point_bytes.store(bytes, Ordering::Relaxed);
        Ok(Box::new(SourcePoint {
            point: Some(point),
            geometries,
            runtime: self.runtime.clone(),
        }))
    }
}

impl Drop for SourcePoint {
    /// Not shipped: the point folds back into the tracking before the
    /// sender's cycle returns (it runs on a blocking thread).
    fn drop(&mut self) {
        if let Some(point) = self.point.take()
            && let Err(e) = self.runtime.block_on(point.finish(false))
        {
            tracing::warn!(error = %e, "ending an unshipped QEMU point");
        }
    }
}

/// A QEMU point while the sender ships it.
struct SourcePoint {
    /// `None` once shipped.
    point: Option<QemuPoint>,
    geometries: Vec<Geometry>,
    runtime: Handle,
}

impl SourcePoint {
    fn point(&self) -> &QemuPoint {
        self.point
            .as_ref()
            .expect("a point is present until shipped")
    }
}

impl Point for SourcePoint {
    fn frozen(&self) -> Vec<FrozenDisk> {
        (0..self.geometries.len())
            .map(|disk| FrozenDisk {
                blocks: self.point().blocks(disk).count(),
                // QEMU counts no writes for us; the guest's own log tells.
                writes_applied: 0,
            })
            .collect()
    }

    fn blocks(&self, disk: usize) -> Bitmap {
        self.point().blocks(disk).clone()
    }

    fn read(&mut self, disk: usize, first: u64, count: u64, buf: &mut [u8]) -> io::Result<()> {
        let g = self.geometries[disk];
        let offset = g.block_offset(first);
        let len = (g.block_offset(first + count).min(g.disk_size) - offset) as usize;
        let point = self
            .point
            .as_mut()
            .ok_or_else(|| io::Error::other("read of a point already shipped"))?;
        point
            .read(disk, offset, &mut buf[..len])
            .map_err(io::Error::other)
    }

    fn shipped(mut self: Box<Self>) {
        if let Some(point) = self.point.take()
            && let Err(e) = self.runtime.block_on(point.finish(true))
        {
            // The instance is committed; a bitmap left behind is removed
            // by the next point.
            tracing::warn!(error = %e, "ending a shipped QEMU point");
        }
    }
}
