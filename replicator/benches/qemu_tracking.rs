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

use std::sync::Arc;

use ferry_replicator::compute::qemu::qmp::Qmp;
use ferry_replicator::compute::qemu::source::QemuSource;
use ferry_replicator::compute::qemu::test_vm::{TestVm, create_disks, guest_write};
use ferry_replicator::compute::qemu::tracking::QemuTracking;
use ferry_replicator::replication::{CycleProgress, CycleReport, run_cycle};
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, Geometry, PointSource, TrackedVm};
use ferry_testkit::link::{self, Rng, TestReceiver};
use ferry_testkit::measure::{mib_s, ms};

const DISK: u64 = 1 << 30;
const BLOCK: u64 = DEFAULT_BLOCK_SIZE as u64;
const BLOCKS: u64 = DISK / BLOCK;
fn cycle(vm_id: &str, vm: &dyn PointSource, addr: &str) -> CycleReport {
    run_cycle(
        vm_id,
        vm,
        &link::target(addr),
        false,
        &CycleProgress::default(),
    )
    .expect("cycle")
}

fn main() {
    let work = tempfile::Builder::new()
        .prefix("ferry-bench-qemu")
        .tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .expect("work dir");
    let receiver = TestReceiver::start(&work.path().join("ds"));
    let addr = receiver.addr.clone();
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
    let initial_builtin = cycle("vm-builtin", &builtin, &addr);
    let initial_qemu = cycle("vm-qemu", &source, &addr);
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
        // The same blocks for both paths; sorted, as qemu-io writes them.
        let mut blocks = Rng::new(0x5eed + round as u64).blocks(BLOCKS, BLOCKS * percent / 100);
        blocks.sort_unstable();
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
            ("built-in", cycle("vm-builtin", &builtin, &addr)),
            ("QEMU", cycle("vm-qemu", &source, &addr)),
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
