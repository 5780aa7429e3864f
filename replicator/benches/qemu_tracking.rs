//! A delta cycle of a 1 GiB disk: QEMU's change tracking (dirty bitmaps, a
//! point in one QMP transaction, read through NBD) against ferry's built-in
//! tracked disk, in the same run, over loopback to the same kind of
//! receiver. Release build; needs qemu-system-x86_64 and qemu-img.
//!
//! `cargo bench -p ferry-replicator --bench qemu_tracking`
//!
//! Both paths get the same change: 1% and then 10% of the disk's 64 KiB
//! blocks, chosen at random, each filled with one byte value (QEMU's
//! `qemu-io write -P` through the disk's device; `TrackedDisk::write_at` for
//! the built-in path). Only the cycle is timed, not the writes: from the
//! consistency point to the replica's consolidated instance.

mod link;

use std::sync::Arc;
use std::time::Duration;

use ferry_replicator::compute::qemu::qmp::Qmp;
use ferry_replicator::compute::qemu::source::QemuSource;
use ferry_replicator::compute::qemu::test_vm::{TestVm, create_disks, guest_write};
use ferry_replicator::compute::qemu::tracking::QemuTracking;
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, Geometry, TrackedVm};

const DISK: u64 = 1 << 30;
const BLOCK: u64 = DEFAULT_BLOCK_SIZE as u64;
const BLOCKS: u64 = DISK / BLOCK;
/// `n` distinct random blocks (xorshift64*, fixed seed: both paths alike).
fn random_blocks(seed: u64, n: u64) -> Vec<u64> {
    let mut state = seed;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut all: Vec<u64> = (0..BLOCKS).collect();
    for i in 0..n as usize {
        let j = i + (next() % (BLOCKS - i as u64)) as usize;
        all.swap(i, j);
    }
    all.truncate(n as usize);
    all.sort_unstable();
    all
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn main() {
    let work = tempfile::Builder::new()
        .prefix("ferry-bench-qemu")
        .tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .expect("work dir");
    let addr = link::start_receiver(&work.path().join("ds"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // The built-in path: a sparse raw file behind TrackedDisk.
    let builtin_dir = work.path().join("builtin");
    let builtin = TrackedVm::open(
        &builtin_dir,
        &[(
            builtin_dir.join("disk-0.raw"),
            Geometry::new(DISK, DEFAULT_BLOCK_SIZE),
        )],
    )
    .expect("open VM");
    // The QEMU path: a qcow2 disk of a QEMU without a guest (-S, TCG).
    let qemu_dir = work.path().join("qemu");
    std::fs::create_dir_all(&qemu_dir).expect("qemu dir");
    let disks = create_disks(&qemu_dir, 1, DISK);
    let qemu = TestVm::start(&qemu_dir, &disks);
    let qmp: Arc<Qmp> = Arc::new(runtime.block_on(qemu.qmp()));
    let tracking = QemuTracking::with_session(
        "vm-qemu",
        &qemu_dir,
        qmp.clone(),
        vec![Geometry::new(DISK, DEFAULT_BLOCK_SIZE)],
    );
    let source = QemuSource::new(Arc::new(tracking), runtime.handle().clone());

    println!("ferry delta cycle, 1 GiB disk, 64 KiB blocks, loopback: QEMU tracking vs built-in\n");
    let initial_builtin = link::cycle("vm-builtin", &builtin, &addr);
    let initial_qemu = link::cycle("vm-qemu", &source, &addr);
    println!(
        "initial full sync of an empty disk: built-in {:.0} ms, QEMU (NBD read of every block) {:.0} ms\n",
        ms(initial_builtin.duration),
        ms(initial_qemu.duration)
    );
    println!(
        "{:<22} {:<9} {:>8} {:>10} {:>11} {:>9} {:>12}",
        "change", "path", "blocks", "commit ms", "cycle ms", "MiB/s", "wire bytes"
    );
    for (round, percent) in [1u64, 10].into_iter().enumerate() {
        let blocks = random_blocks(0x5eed + round as u64, BLOCKS * percent / 100);
        let pattern = 0x40 + round as u8;
        let data = vec![pattern; BLOCK as usize];
        for &block in &blocks {
            builtin.disks()[0]
                .write_at(&data, block * BLOCK)
                .expect("write");
        }
        runtime.block_on(async {
            for &block in &blocks {
                guest_write(&qmp, 0, pattern, block * BLOCK, BLOCK).await;
            }
        });
        let changed = blocks.len() as u64 * BLOCK;
        let label = format!("{percent}% ({} MiB)", changed >> 20);
        for (path, report) in [
            ("built-in", link::cycle("vm-builtin", &builtin, &addr)),
            ("QEMU", link::cycle("vm-qemu", &source, &addr)),
        ] {
            assert!(!report.full, "{path}: a delta");
            assert_eq!(
                report.blocks_sent,
                blocks.len() as u64,
                "{path}: the dirty blocks"
            );
            println!(
                "{:<22} {:<9} {:>8} {:>10.1} {:>11.1} {:>9.0} {:>12}",
                label,
                path,
                report.blocks_sent,
                ms(report.commit_duration),
                ms(report.duration),
                mib_s(changed, report.duration),
                report.wire_bytes
            );
        }
    }
    drop(source);
    drop(qemu);
}
