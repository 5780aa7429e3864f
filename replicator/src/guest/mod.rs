//! The built-in guest: what runs inside a powered-on VM. It boots by
//! verifying its disk, then appends checksummed records to its record log
//! and overwrites blocks in a hot region at the configured rates, all through
//! the replicated block path, and beats a heartbeat.

pub mod record_log;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{GuestSeed, NicSeed};
use crate::replication::sender::now_ms;
use crate::storage::TrackedVm;
use crate::sync::lock;
pub use record_log::Verification;

const TICK: Duration = Duration::from_millis(100);
/// What an attacked guest overwrites per tick per disk: 10 MiB/s, far
/// above a quiet workload's change rate, as a real encryption would be, so
/// that any point taken after its first tick already shows it.
const ATTACK_BYTES_PER_TICK: u64 = 1 << 20;

/// What the guest reports, read by the site and the API.
#[derive(Debug, Default)]
pub struct GuestStatus {
    pub heartbeat_ms: AtomicU64,
    /// Woken at every heartbeat, so a run waiting for one need not poll.
    pub beat: tokio::sync::Notify,
    pub last_seq: AtomicU64,
    pub last_record_ms: AtomicU64,
    pub boot: Mutex<Option<Verification>>,
    /// The IP settings the guest sees on its NICs.
    pub ips: Mutex<Vec<String>>,
    /// A simulated attack (demo only): the guest overwrites its disks
    /// from the start with random data, record log included.
    pub attacked: std::sync::atomic::AtomicBool,
}

impl GuestStatus {
    pub fn boot_verification(&self) -> Option<Verification> {
        lock(&self.boot).clone()
    }
}

/// A running guest; [`Guest::shut_down`] stops it.
pub struct Guest {
    pub status: Arc<GuestStatus>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Guest {
    /// Boots the guest on `vm`'s disks: verifies the record log (reported in
    /// the status), then starts the workload where the log left off.
    pub fn boot(vm: Arc<TrackedVm>, nics: &[NicSeed], seed: GuestSeed) -> std::io::Result<Self> {
        let disk = &vm.disks()[0];
        let size = disk.geometry().disk_size;
        let verification = record_log::verify(size, |buf, at| disk.read_at(buf, at))?;
        let status = Arc::new(GuestStatus::default());
        status
            .last_seq
            .store(verification.last_seq, Ordering::Relaxed);
        status
            .last_record_ms
            .store(verification.last_time_ms.unwrap_or(0), Ordering::Relaxed);
        status.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
        *lock(&status.ips) = nics
            .iter()
            .filter_map(|n| n.ip.as_ref().map(|ip| format!("{}={ip}", n.network)))
            .collect();
        let workload = Workload {
            vm,
            seed,
            next_seq: verification.last_seq + 1,
            prev_sum: verification.head_sum,
            rng: now_ms() | 1,
            status: status.clone(),
            attack_at: 0,
        };
        *lock(&status.boot) = Some(verification);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(workload.run(stopped));
        Ok(Self { status, stop, task })
    }

    /// Stops the guest after its current write (a clean shutdown).
    pub async fn shut_down(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

struct Workload {
    vm: Arc<TrackedVm>,
    seed: GuestSeed,
    next_seq: u64,
    prev_sum: u64,
    rng: u64,
    status: Arc<GuestStatus>,
    /// Where a simulated attack writes next.
    attack_at: u64,
}

impl Workload {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut record_credit, mut overwrite_credit) = (0.0f64, 0.0f64);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = ticker.tick() => {}
            }
            let dt = TICK.as_secs_f64();
            record_credit += self.seed.records_per_second * dt;
            overwrite_credit += self.seed.overwrite_kib_per_second as f64 * 1024.0 * dt;
            let failed = self
                .write(&mut record_credit, &mut overwrite_credit)
                .is_err();
            if !failed {
                self.status.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
                self.status.beat.notify_waiters();
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn write(&mut self, records: &mut f64, overwrite: &mut f64) -> std::io::Result<()> {
        let vm = self.vm.clone();
        let disk = &vm.disks()[0];
        let slots = record_log::log_slots(disk.geometry().disk_size);
        while *records >= 1.0 {
            let now = now_ms();
            let (at, record) = record_log::encode(self.next_seq, now, self.prev_sum, slots);
            disk.write_at(&record, at)?;
            self.prev_sum = record_log::checksum(&record);
            self.status.last_seq.store(self.next_seq, Ordering::Relaxed);
            self.status.last_record_ms.store(now, Ordering::Relaxed);
            self.next_seq += 1;
            *records -= 1.0;
        }
        // An attack encrypts every disk once, as ransomware does, then
        // stops: the damage is done, and kept instances stop growing.
        let largest = self.vm.disks().iter().map(|d| d.geometry().disk_size).max();
        if self.status.attacked.load(Ordering::Relaxed)
            && largest.is_some_and(|size| self.attack_at < size)
        {
            self.encrypt()?;
        }
        // The hot region: the second half of every disk, 4 KiB at a time.
        // Each block is one random word repeated, structured as a database
        // page is, so a quiet guest's writes do not look encrypted and the
        // demo attack stands out against the baseline.
        let mut block = [0u8; 4096];
        while *overwrite >= block.len() as f64 {
            let pick = self.next_random();
            let offset_pick = self.next_random();
            let word = self.next_random().to_le_bytes();
            for chunk in block.chunks_exact_mut(8) {
                chunk.copy_from_slice(&word);
            }
            let vm = self.vm.clone();
            let target = &vm.disks()[(pick % vm.disks().len() as u64) as usize];
            let size = target.geometry().disk_size;
            let hot = size / 2;
            let span = (size - hot) / 4096;
            if span == 0 {
                break;
            }
            target.write_at(&block, hot + (offset_pick % span) * 4096)?;
            *overwrite -= block.len() as f64;
        }
        Ok(())
    }

    /// One tick of a simulated attack: `ATTACK_BYTES_PER_TICK` of random
    /// bytes over every disk, from where the last tick stopped.
    fn encrypt(&mut self) -> std::io::Result<()> {
        let vm = self.vm.clone();
        let mut chunk = vec![0u8; 64 << 10];
        for _ in 0..ATTACK_BYTES_PER_TICK / chunk.len() as u64 {
            for word in chunk.chunks_exact_mut(8) {
                word.copy_from_slice(&self.next_random().to_le_bytes());
            }
            for disk in vm.disks() {
                let size = disk.geometry().disk_size;
                let at = (self.attack_at % size.max(1)) / 4096 * 4096;
                let len = (chunk.len() as u64).min(size - at) as usize;
                disk.write_at(&chunk[..len], at)?;
            }
            self.attack_at += chunk.len() as u64;
        }
        Ok(())
    }
}
