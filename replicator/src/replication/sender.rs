//! One sync cycle from the protected site.
//!
//! Connect and authenticate, ask the replica which instance it holds, then
//! freeze one consistency point across all the VM's disks: only the dirty
//! blocks when the replica is at an instance our tracking is relative to
//! (delta), otherwise every block (full sync, where both sides hash and only
//! blocks whose hashes differ travel). The point is thawed as shipped only
//! once the receiver says the instance is committed; on any failure its
//! blocks go back to dirty and nothing is lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::bandwidth::Limiter;
use super::connection::{self, Connection};
use super::error::WireError;
use super::frame::{FrameReader, FrameWriter};
use super::handshake::unexpected;
use super::message::{BLOCKS_KIND, Message, begin_blocks, push_block, set_block_count};
use super::tls::{LinkReader, LinkTls, LinkWriter};
use crate::storage::{BlockHash, FrozenDisk, Geometry, Point, PointSource, hash_block, is_zero};

/// Largest run of blocks read from a disk at once, and the batch size of a
/// `Blocks` frame: big enough to amortise syscalls, small enough to pipeline.
const BATCH_BYTES: usize = 1 << 20;
/// Consolidation of a large full sync can take a while after commit.
const CONSOLIDATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Where and how a VM replicates.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// The peer's replication listener, `host:port`.
    pub addr: String,
    /// This site's identity and the peer certificate it pinned.
    pub tls: LinkTls,
    /// Our own site name, as the peer will see it.
    pub site: String,
    /// The datastore at the peer that holds the replica.
    pub datastore: String,
    pub compress: bool,
    /// The older instances the replica keeps; travels in every `Open`.
    pub retention: RetentionPolicy,
}

/// Live progress of the running cycle, read by the scheduler and the API.
#[derive(Debug, Default)]
pub struct CycleProgress {
    pub bytes_done: AtomicU64,
    pub bytes_total: AtomicU64,
    pub full: AtomicBool,
}

impl CycleProgress {
    fn start(&self, total: u64, full: bool) {
        self.bytes_done.store(0, Ordering::Relaxed);
        self.bytes_total.store(total, Ordering::Relaxed);
        self.full.store(full, Ordering::Relaxed);
    }

    fn add(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What a completed cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub instance: u64,
    pub full: bool,
    /// The consistency point, ms since the Unix epoch.
    pub point_time_ms: u64,
    /// Blocks that travelled (data or zero records).
    pub blocks_sent: u64,
    /// Block bytes that travelled (zero blocks count nothing).
    pub data_bytes: u64,
    /// Every byte on the wire both ways, headers and handshake included.
    pub wire_bytes: u64,
    /// Bytes of disk scanned: the frozen blocks, or whole disks for a full sync.
    pub scanned_bytes: u64,
    /// Until the receiver committed the instance.
    pub commit_duration: Duration,
    /// Until the receiver had consolidated it into the replica.
    pub duration: Duration,
    /// What the freeze captured of each disk.
    pub frozen: Vec<FrozenDisk>,
}

pub use ferry_api::now_ms;
use ferry_api::retention::RetentionPolicy;

/// Runs one cycle for the VM `vm_id`, whose disks are `vm` (ferry's tracked
/// disks or a QEMU VM's). `force_full` asks for a full sync even when a
/// delta would do. Blocking: run it on a blocking thread.
pub fn run_cycle(
    vm_id: &str,
    vm: &dyn PointSource,
    target: &SyncTarget,
    force_full: bool,
    progress: &CycleProgress,
) -> Result<CycleReport, WireError> {
    run_cycle_limited(vm_id, vm, target, force_full, progress, &Limiter::default())
}

/// [`run_cycle`] with its `Blocks` frames drawn from the site's bandwidth
/// cap.
pub fn run_cycle_limited(
    vm_id: &str,
    vm: &dyn PointSource,
    target: &SyncTarget,
    force_full: bool,
    progress: &CycleProgress,
    limiter: &Limiter,
) -> Result<CycleReport, WireError> {
    let started = Instant::now();
    let mut conn = Connection::connect(&target.addr, &target.tls, &target.site)?;
    if target.compress {
        conn.writer.enable_compression()?;
    }
    let geometries = vm.geometries();
    let block_size = geometries.first().map_or(0, |g| g.block_size);
    if geometries.iter().any(|g| g.block_size != block_size) {
        return Err(WireError::malformed(
            "the disks of one VM must share a block size",
        ));
    }
    conn.send_now(&Message::Open {
        vm: vm_id,
        datastore: &target.datastore,
        block_size,
        disk_sizes: geometries.iter().map(|g| g.disk_size).collect(),
        retention: target.retention,
    })?;
    let base = match conn.recv()? {
        Message::Opened { instance, .. } => instance,
        other => return Err(unexpected("Opened", &other)),
    };
    let full = force_full || !vm.can_ship_delta_from(base)?;
    let instance = base.map_or(1, |b| b + 1);
    let point_time_ms = now_ms();
    // Dropped on any failure below: the point's blocks count as changed again.
    let mut point = vm.take_point(full, base, instance)?;
    let frozen = point.frozen();
    let scanned_bytes: u64 = if full {
        geometries.iter().map(|g| g.disk_size).sum()
    } else {
        frozen
            .iter()
            .zip(&geometries)
            .map(|(f, g)| f.blocks * u64::from(g.block_size))
            .sum()
    };
    progress.start(scanned_bytes, full);
    conn.send_now(&Message::Begin {
        instance,
        point_time_ms,
        full,
    })?;
    let (blocks_sent, data_bytes) = if full {
        let _sending = limiter.sending();
        ship_full(&mut conn, &mut *point, &geometries, progress, limiter)?
    } else {
        let _sending = limiter.sending();
        ship_delta(
            &mut conn.writer,
            &mut *point,
            &geometries,
            progress,
            limiter,
        )?
    };
    conn.send_now(&Message::End {
        instance,
        blocks: blocks_sent,
    })?;
    connection::expect_instance(&mut conn, "Committed", instance, |m| match m {
        Message::Committed { instance } => Some(*instance),
        _ => None,
    })?;
    point.shipped();
    let commit_duration = started.elapsed();
    conn.set_read_timeout(CONSOLIDATION_TIMEOUT)?;
    connection::expect_instance(&mut conn, "Consolidated", instance, |m| match m {
        Message::Consolidated { instance } => Some(*instance),
        _ => None,
    })?;
    Ok(CycleReport {
        instance,
        full,
        point_time_ms,
        blocks_sent,
        data_bytes,
        wire_bytes: conn.wire_bytes(),
        scanned_bytes,
        commit_duration,
        duration: started.elapsed(),
        frozen,
    })
}

/// Collects blocks into `Blocks` frames of about [`BATCH_BYTES`], each
/// charged to the bandwidth cap as it is written.
struct Batcher<'a> {
    limiter: &'a Limiter,
    payload: Vec<u8>,
    disk: u16,
    count: u32,
    blocks_sent: u64,
    data_bytes: u64,
}

impl<'a> Batcher<'a> {
    fn new(limiter: &'a Limiter) -> Self {
        Self {
            limiter,
            payload: Vec::with_capacity(BATCH_BYTES + (64 << 10)),
            disk: 0,
            count: 0,
            blocks_sent: 0,
            data_bytes: 0,
        }
    }

    /// Adds a block, sending the batch first when it would overflow.
    fn push(
        &mut self,
        conn: &mut FrameWriter<LinkWriter>,
        disk: u16,
        block: u64,
        data: &[u8],
    ) -> Result<(), WireError> {
        if self.count > 0 && (disk != self.disk || self.payload.len() + data.len() > BATCH_BYTES) {
            self.flush(conn)?;
        }
        if self.count == 0 {
            begin_blocks(&mut self.payload, disk);
            self.disk = disk;
        }
        let zero = is_zero(data);
        push_block(
            &mut self.payload,
            block,
            data.len() as u32,
            (!zero).then_some(data),
        );
        self.count += 1;
        self.blocks_sent += 1;
        if !zero {
            self.data_bytes += data.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut FrameWriter<LinkWriter>) -> Result<(), WireError> {
        if self.count == 0 {
            return Ok(());
        }
        set_block_count(&mut self.payload, self.count);
        let before = out.bytes();
        out.write(BLOCKS_KIND, &self.payload)?;
        self.limiter.charge(out.bytes() - before);
        self.count = 0;
        Ok(())
    }
}

/// Runs of consecutive blocks from an ascending list, at most `max` long.
fn runs(blocks: impl Iterator<Item = u64>, max: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut blocks = blocks.peekable();
    std::iter::from_fn(move || {
        let first = blocks.next()?;
        let mut count = 1;
        while count < max && blocks.peek() == Some(&(first + count)) {
            blocks.next();
            count += 1;
        }
        Some((first, count))
    })
}

fn ship_delta(
    conn: &mut FrameWriter<LinkWriter>,
    point: &mut dyn Point,
    geometries: &[Geometry],
    progress: &CycleProgress,
    limiter: &Limiter,
) -> Result<(u64, u64), WireError> {
    let mut batch = Batcher::new(limiter);
    let mut buf = vec![0u8; BATCH_BYTES];
    for (index, &g) in geometries.iter().enumerate() {
        let per_run = (BATCH_BYTES / g.block_size as usize).max(1) as u64;
        for (first, count) in runs(point.blocks(index).iter(), per_run) {
            let run = Run {
                geometry: g,
                index: index as u16,
                first,
                count,
            };
            ship_run(conn, &mut batch, &mut buf, point, run, progress, |_| true)?;
        }
    }
    batch.flush(conn)?;
    Ok((batch.blocks_sent, batch.data_bytes))
}

fn run_len(g: Geometry, first: u64, count: u64) -> usize {
    (g.block_offset(first + count).min(g.disk_size) - g.block_offset(first)) as usize
}

/// A run of consecutive blocks of one disk of the point.
struct Run {
    geometry: Geometry,
    index: u16,
    first: u64,
    count: u64,
}

/// Reads a run as it was at the point and ships the blocks that `differs`
/// says must travel (each block's bytes in order).
fn ship_run(
    conn: &mut FrameWriter<LinkWriter>,
    batch: &mut Batcher<'_>,
    buf: &mut [u8],
    point: &mut dyn Point,
    run: Run,
    progress: &CycleProgress,
    mut differs: impl FnMut(&[u8]) -> bool,
) -> Result<(), WireError> {
    let g = run.geometry;
    let len = run_len(g, run.first, run.count);
    point
        .read(
            usize::from(run.index),
            run.first,
            run.count,
            &mut buf[..len],
        )
        .map_err(|cause| WireError::SourceRead {
            disk: run.index,
            cause,
        })?;
    let mut at = 0;
    for block in run.first..run.first + run.count {
        let bytes = &buf[at..at + g.block_len(block)];
        if differs(bytes) {
            batch.push(conn, run.index, block, bytes)?;
        }
        at += bytes.len();
    }
    progress.add(len as u64);
    Ok(())
}

/// Full sync: the receiver streams the hashes of its replica while we read
/// and hash the frozen disks; only blocks whose hashes differ travel.
fn ship_full(
    conn: &mut Connection,
    point: &mut dyn Point,
    geometries: &[Geometry],
    progress: &CycleProgress,
    limiter: &Limiter,
) -> Result<(u64, u64), WireError> {
    let total_blocks: u64 = geometries.iter().map(|g| g.block_count()).sum();
    let (tx, rx) = mpsc::sync_channel(64);
    let Connection { reader, writer, .. } = conn;
    std::thread::scope(|scope| {
        let stream = reader.get_ref().tcp().try_clone()?;
        let receiving = scope.spawn(move || {
            if let Err(e) = receive_hashes(reader, total_blocks, &tx) {
                let _ = tx.send(Err(e));
            }
        });
        let sent = compare_and_ship(writer, point, geometries, progress, &rx, limiter);
        if sent.is_err() {
            // The receiving thread may be blocked on the socket: end it.
            drop(rx);
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        let _ = receiving.join();
        sent
    })
}

type HashBatch = Result<(u16, u64, Vec<BlockHash>), WireError>;

fn receive_hashes(
    reader: &mut FrameReader<LinkReader>,
    total_blocks: u64,
    tx: &mpsc::SyncSender<HashBatch>,
) -> Result<(), WireError> {
    let mut received = 0;
    while received < total_blocks {
        match connection::recv(reader)? {
            Message::Hashes {
                disk,
                first_block,
                hashes,
            } => {
                received += hashes.len() as u64;
                if tx.send(Ok((disk, first_block, hashes))).is_err() {
                    return Ok(());
                }
            }
            other => return Err(unexpected("Hashes", &other)),
        }
    }
    Ok(())
}

fn compare_and_ship(
    conn: &mut FrameWriter<LinkWriter>,
    point: &mut dyn Point,
    geometries: &[Geometry],
    progress: &CycleProgress,
    rx: &mpsc::Receiver<HashBatch>,
    limiter: &Limiter,
) -> Result<(u64, u64), WireError> {
    let mut theirs: VecDeque<BlockHash> = VecDeque::new();
    let mut next_expected = (0u16, 0u64);
    let mut batch = Batcher::new(limiter);
    let mut buf = vec![0u8; BATCH_BYTES];
    for (index, &g) in geometries.iter().enumerate() {
        let per_run = (BATCH_BYTES / g.block_size as usize).max(1) as u64;
        for (first, count) in runs(0..g.block_count(), per_run) {
            while (theirs.len() as u64) < count {
                let (hdisk, hfirst, hashes) = rx
                    .recv_timeout(connection::IDLE_TIMEOUT)
                    .map_err(|_| WireError::malformed("the receiver stopped sending hashes"))??;
                if (hdisk, hfirst) != next_expected {
                    return Err(WireError::malformed(format!(
                        "hashes for disk {hdisk} block {hfirst}, expected disk {} block {}",
                        next_expected.0, next_expected.1
                    )));
                }
                next_expected.1 += hashes.len() as u64;
                if next_expected.1 >= g.block_count() && usize::from(hdisk) == index {
                    next_expected = (hdisk + 1, 0);
                }
                theirs.extend(hashes);
            }
            let run = Run {
                geometry: g,
                index: index as u16,
                first,
                count,
            };
            ship_run(conn, &mut batch, &mut buf, point, run, progress, |data| {
                theirs.pop_front() != Some(hash_block(data))
            })?;
        }
    }
    batch.flush(conn)?;
    Ok((batch.blocks_sent, batch.data_bytes))
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_split_at_gaps_and_at_max() {
        let got: Vec<_> = runs([1, 2, 3, 5, 6, 7, 8, 9, 20].into_iter(), 3).collect();
        assert_eq!(got, vec![(1, 3), (5, 3), (8, 2), (20, 1)]);
    }
}
