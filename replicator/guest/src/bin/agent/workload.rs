//! The built-in guest's workload on real disks: at boot every disk's record
//! log is verified, then each tick appends records to every disk's log (each
//! disk its own chain, so each verifies on its own) and overwrites random
//! 4 KiB blocks in the hot region, the second half of every disk. A tick's
//! records are flushed before the heartbeat reports them, so what the host
//! was told survives a crash of QEMU.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_guest::agent::{DiskBoot, WriteBench};
use ferry_guest::record_log::{self, RECORD, Verification};

use crate::disk::{AlignedBuf, Disk};
use crate::now_ms;

const TICK: Duration = Duration::from_millis(100);
const BLOCK: usize = 4096;

/// What the heartbeat reports, written by the workload.
#[derive(Debug, Default)]
pub struct Status {
    /// The guest's clock at the last tick whose writes all succeeded.
    pub tick_ms: AtomicU64,
    /// The first disk's newest record and its time.
    pub last_seq: AtomicU64,
    pub last_record_ms: AtomicU64,
    /// The last write bench's result (see `bench`), and whether one runs.
    pub write_bench: Mutex<Option<WriteBench>>,
    pub bench_running: AtomicBool,
}

/// Where one disk's log goes on.
struct Log {
    slots: u64,
    next_seq: u64,
    prev_sum: u64,
}

pub struct Workload {
    disks: Vec<Disk>,
    logs: Vec<Log>,
    records_per_second: f64,
    overwrite_bytes_per_second: f64,
    rng: u64,
    pub status: Arc<Status>,
}

/// Verifies the record log of `disk`, read through a page-aligned buffer as
/// O_DIRECT requires.
fn verify(disk: &Disk) -> io::Result<Verification> {
    let mut bounce = AlignedBuf::new(0);
    record_log::verify(disk.size, |buf, at| {
        if bounce.as_mut_slice().len() != buf.len() {
            bounce = AlignedBuf::new(buf.len());
        }
        disk.read_at(&mut bounce, at)?;
        buf.copy_from_slice(bounce.as_mut_slice());
        Ok(())
    })
}

impl Workload {
    /// Verifies every disk and sets up the logs to go on where they end.
    pub fn boot(
        disks: Vec<Disk>,
        records_per_second: f64,
        overwrite_kib_per_second: u64,
    ) -> io::Result<(Self, Vec<DiskBoot>)> {
        let mut logs = Vec::with_capacity(disks.len());
        let mut report = Vec::with_capacity(disks.len());
        for disk in &disks {
            let v = verify(disk)?;
            say!(
                "{} verified: ok={} last_seq={} records={}{}",
                disk.device.display(),
                v.ok,
                v.last_seq,
                v.records,
                v.problem
                    .as_deref()
                    .map(|p| format!(" problem: {p}"))
                    .unwrap_or_default()
            );
            logs.push(Log {
                slots: record_log::log_slots(disk.size),
                next_seq: v.last_seq + 1,
                prev_sum: v.head_sum,
            });
            report.push(DiskBoot {
                device: disk.device.display().to_string(),
                verification: v,
            });
        }
        let status = Arc::new(Status::default());
        if let Some(first) = report.first() {
            let v = &first.verification;
            status.last_seq.store(v.last_seq, Ordering::Relaxed);
            status
                .last_record_ms
                .store(v.last_time_ms.unwrap_or(0), Ordering::Relaxed);
        }
        status.tick_ms.store(now_ms(), Ordering::Relaxed);
        let workload = Self {
            disks,
            logs,
            records_per_second,
            overwrite_bytes_per_second: overwrite_kib_per_second as f64 * 1024.0,
            rng: now_ms() | 1,
            status,
        };
        Ok((workload, report))
    }

    /// Runs until `stop` is set, then flushes every disk.
    pub fn run(&mut self, stop: &AtomicBool) {
        let (mut records, mut overwrite) = (0.0f64, 0.0f64);
        let mut next = Instant::now() + TICK;
        let mut failing = false;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += TICK;
            let dt = TICK.as_secs_f64();
            records += self.records_per_second * dt;
            overwrite += self.overwrite_bytes_per_second * dt;
            match self.write(&mut records, &mut overwrite) {
                Ok(()) => {
                    failing = false;
                    self.status.tick_ms.store(now_ms(), Ordering::Relaxed);
                }
                // Said once per failing spell: the heartbeat's stalled clock
                // tells the host the rest.
                Err(e) if !failing => {
                    failing = true;
                    say!("a write failed: {e}");
                }
                Err(_) => {}
            }
        }
        for disk in &self.disks {
            if let Err(e) = disk.flush() {
                say!("flushing {}: {e}", disk.device.display());
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn write(&mut self, records: &mut f64, overwrite: &mut f64) -> io::Result<()> {
        let mut record = AlignedBuf::new(RECORD);
        let mut newest = None;
        while *records >= 1.0 {
            let now = now_ms();
            for (disk, log) in self.disks.iter().zip(&mut self.logs) {
                let (at, r) = record_log::encode(log.next_seq, now, log.prev_sum, log.slots);
                record.as_mut_slice().copy_from_slice(&r);
                disk.write_at(&mut record, at)?;
                log.prev_sum = record_log::checksum(&r);
                log.next_seq += 1;
            }
            newest = self.logs.first().map(|log| (log.next_seq - 1, now));
            *records -= 1.0;
        }
        let mut block = AlignedBuf::new(BLOCK);
        while *overwrite >= BLOCK as f64 && !self.disks.is_empty() {
            let pick = self.next_random() % self.disks.len() as u64;
            let offset_pick = self.next_random();
            for i in 0..BLOCK / 8 {
                let word = self.next_random().to_le_bytes();
                block.as_mut_slice()[i * 8..i * 8 + 8].copy_from_slice(&word);
            }
            let disk = &self.disks[pick as usize];
            // Page-aligned for O_DIRECT; the log ends at or before half.
            let hot = (disk.size / 2).next_multiple_of(BLOCK as u64);
            let span = disk.size.saturating_sub(hot) / BLOCK as u64;
            if span == 0 {
                break;
            }
            disk.write_at(&mut block, hot + (offset_pick % span) * BLOCK as u64)?;
            *overwrite -= BLOCK as f64;
        }
        // Records are commits: flushed (through the disk's write cache, so
        // through QEMU's qcow2 metadata to the host file) before the
        // heartbeat reports them. Without it a QEMU crash loses every
        // write since the last flush, reported or not.
        if let Some((seq, time_ms)) = newest {
            for disk in &self.disks {
                disk.flush()?;
            }
            self.status.last_seq.store(seq, Ordering::Relaxed);
            self.status.last_record_ms.store(time_ms, Ordering::Relaxed);
        }
        Ok(())
    }
}
