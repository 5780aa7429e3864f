//! The write bench the host asks for on the agent port: `mib` MiB written
//! in order, 1 MiB at a time with O_DIRECT, to the hot region (the second
//! half) of the first disk, then a flush; timed on the guest's clock, as
//! `dd oflag=direct` would be. The record log lives in the first half, so
//! the VM's workload verifies as before after a bench.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ferry_guest::agent::WriteBench;

use crate::disk::{self, AlignedBuf, Disk};
use crate::workload::Status;

const CHUNK: usize = 1 << 20;

/// Runs one bench and returns its result (a problem says what stopped it).
pub fn run(id: u64, mib: u64) -> WriteBench {
    let started = Instant::now();
    let mut written = 0;
    let problem = write(mib, &mut written).err();
    WriteBench {
        id,
        mib: written,
        ms: started.elapsed().as_millis() as u64,
        problem,
    }
}

fn write(mib: u64, written: &mut u64) -> Result<(), String> {
    let found = disk::find(Path::new("/sys/block")).map_err(|e| format!("listing disks: {e}"))?;
    let (device, size) = found.first().ok_or("no virtio disk to write")?;
    let room = size / 2 / CHUNK as u64;
    if mib > room {
        return Err(format!(
            "{mib} MiB does not fit the {room} MiB hot region of {}",
            device.display()
        ));
    }
    let disk =
        Disk::open(device, *size).map_err(|e| format!("opening {}: {e}", device.display()))?;
    let mut buf = AlignedBuf::new(CHUNK);
    let start = size / 2;
    for i in 0..mib {
        // Each MiB its own bytes, so no layer below can fold them.
        buf.as_mut_slice().fill((i % 251) as u8 + 1);
        disk.write_at(&mut buf, start + i * CHUNK as u64)
            .map_err(|e| format!("writing {}: {e}", device.display()))?;
        *written = i + 1;
    }
    disk.flush()
        .map_err(|e| format!("flushing {}: {e}", device.display()))
}

/// Starts a bench in its own thread unless one runs; the result goes to
/// `status`, which the heartbeat reports.
pub fn start(id: u64, mib: u64, status: Arc<Status>) {
    if status.bench_running.swap(true, Ordering::AcqRel) {
        say!("write bench {id} refused: one is running");
        return;
    }
    std::thread::spawn(move || {
        say!("write bench {id}: {mib} MiB");
        let result = run(id, mib);
        say!(
            "write bench {id}: {} MiB in {} ms ({:.1} MiB/s){}",
            result.mib,
            result.ms,
            result.mib_per_second(),
            result
                .problem
                .as_deref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        );
        *status.write_bench.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        status.bench_running.store(false, Ordering::Release);
    });
}
