//! The sync cycle of a QEMU VM: QEMU's dirty bitmaps and NBD export feed the
//! same sender, wire and receiver as ferry's own tracked disks. Real QEMU
//! under TCG, no guest: "guest" writes go through the disks' devices with
//! the monitor's qemu-io.

use std::sync::Arc;

use ferry_replicator::compute::qemu::qmp::Qmp;
use ferry_replicator::compute::qemu::source::QemuSource;
use ferry_replicator::compute::qemu::test_vm::{TestVm, create_disks, guest_flush, guest_write};
use ferry_replicator::compute::qemu::tracking::QemuTracking;
use ferry_replicator::replication::{CycleProgress, CycleReport, run_cycle};
use ferry_replicator::storage::{Geometry, Point, PointSource};

use super::support::{TestReceiver, VM, assert_same, replica_contents, target};

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 65536;
const DISK: u64 = 4 * MIB;

/// A running QEMU VM, its tracking, and what its disks should hold.
struct Source {
    runtime: tokio::runtime::Runtime,
    vm: TestVm,
    qmp: Arc<Qmp>,
    source: QemuSource,
    model: Vec<Vec<u8>>,
}

impl Source {
    fn start(dir: &std::path::Path, disks: usize, model: Vec<Vec<u8>>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let files = create_disks(dir, disks, DISK);
        let vm = TestVm::start(dir, &files);
        let qmp = Arc::new(runtime.block_on(vm.qmp()));
        let geometries = vec![Geometry::new(DISK, BLOCK as u32); disks];
        let tracking = QemuTracking::with_session(VM, dir, qmp.clone(), geometries);
        let source = QemuSource::new(Arc::new(tracking), runtime.handle().clone());
        Self {
            runtime,
            vm,
            qmp,
            source,
            model,
        }
    }

    /// Writes `len` bytes of `pattern` at `offset` of `disk`, flushed.
    fn write(&mut self, disk: usize, pattern: u8, offset: u64, len: u64) {
        self.runtime.block_on(async {
            guest_write(&self.qmp, disk, pattern, offset, len).await;
            guest_flush(&self.qmp, disk).await;
        });
        self.model[disk][offset as usize..(offset + len) as usize].fill(pattern);
    }

    fn cycle(&self, addr: &str) -> CycleReport {
        run_cycle(
            VM,
            &self.source,
            &target(addr),
            false,
            &CycleProgress::default(),
        )
        .expect("cycle")
    }
}

#[test]
fn deltas_ship_only_the_changed_blocks_and_a_crashed_qemu_means_a_full_sync_by_hash() {
    let site_a = tempfile::tempdir().unwrap();
    let site_b = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(site_b.path());
    let mut vm = Source::start(site_a.path(), 2, vec![vec![0; DISK as usize]; 2]);

    vm.write(0, 0xa0, 0, 3 * BLOCK);
    vm.write(1, 0xa1, MIB, BLOCK);
    let first = vm.cycle(&receiver.addr);
    assert!(first.full, "the first cycle is a full sync");
    assert_eq!(
        first.blocks_sent, 4,
        "only blocks that differ from the empty replica"
    );
    assert_same(
        "after the first cycle",
        &replica_contents(&receiver.replica_dir()).1,
        &vm.model,
    );

    vm.write(0, 0xb0, BLOCK + 10, 100); // one block, twice
    vm.write(0, 0xb1, BLOCK + 4096, 100);
    vm.write(0, 0xb2, 2 * MIB, 2 * BLOCK);
    vm.write(1, 0xb3, 3 * MIB + 512, 512);
    let delta = vm.cycle(&receiver.addr);
    assert!(!delta.full);
    assert_eq!(delta.instance, 2);
    assert_eq!(delta.blocks_sent, 4, "the dirty blocks, each once");
    assert_eq!(delta.scanned_bytes, 4 * BLOCK, "nothing else was read");
    assert_eq!(
        delta.frozen.iter().map(|f| f.blocks).collect::<Vec<_>>(),
        [3, 1]
    );
    let (instance, replica) = replica_contents(&receiver.replica_dir());
    assert_eq!(instance, Some(2));
    assert_same("after a delta", &replica, &vm.model);

    let quiet = vm.cycle(&receiver.addr);
    assert!(!quiet.full);
    assert_eq!(quiet.blocks_sent, 0, "no write, nothing to ship");

    // QEMU dies: its bitmaps die with it. The disks keep what was flushed.
    vm.write(0, 0xc0, 5 * BLOCK, 2 * BLOCK);
    vm.write(1, 0xc1, 0, 4096);
    vm.vm.kill();
    let model = std::mem::take(&mut vm.model);
    drop(vm);
    let vm = Source::start(site_a.path(), 2, model);
    let resync = vm.cycle(&receiver.addr);
    assert!(resync.full, "no bitmap to trust: a full sync");
    assert_eq!(resync.blocks_sent, 3, "only the blocks whose hashes differ");
    assert_eq!(resync.scanned_bytes, 2 * DISK);
    assert_same(
        "after the resync",
        &replica_contents(&receiver.replica_dir()).1,
        &vm.model,
    );

    let after = vm.cycle(&receiver.addr);
    assert!(!after.full, "tracking again from the resync's point");
    assert_eq!(after.blocks_sent, 0);
}

/// A source that runs `after` right after each point is taken, while the
/// cycle still has every block to read: a guest writing during the cycle.
struct WritesAfterThePoint<'a, F: Fn() + Send + Sync> {
    source: &'a QemuSource,
    after: F,
}

impl<F: Fn() + Send + Sync> PointSource for WritesAfterThePoint<'_, F> {
    fn geometries(&self) -> Vec<Geometry> {
        self.source.geometries()
    }
    fn can_ship_delta_from(&self, base: Option<u64>) -> std::io::Result<bool> {
        self.source.can_ship_delta_from(base)
    }
    fn dirty_bytes(&self) -> u64 {
        self.source.dirty_bytes()
    }
    fn take_point(
        &self,
        full: bool,
        base: Option<u64>,
        instance: u64,
    ) -> std::io::Result<Box<dyn Point + '_>> {
        let point = self.source.take_point(full, base, instance)?;
        (self.after)();
        Ok(point)
    }
}

#[test]
fn the_instance_holds_the_point_and_not_the_writes_after_it() {
    let site_a = tempfile::tempdir().unwrap();
    let site_b = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(site_b.path());
    let mut vm = Source::start(site_a.path(), 2, vec![vec![0; DISK as usize]; 2]);
    vm.write(0, 0xa0, 0, 2 * BLOCK);
    vm.write(1, 0xa1, MIB, BLOCK);
    let at_point = vm.model.clone();
    let write_b = || {
        vm.runtime.block_on(async {
            guest_write(&vm.qmp, 0, 0xb0, 0, BLOCK).await; // over A
            guest_write(&vm.qmp, 1, 0xb1, 2 * MIB, BLOCK).await; // new
        })
    };
    let hooked = WritesAfterThePoint {
        source: &vm.source,
        after: write_b,
    };
    for (round, full) in [(1, true), (2, false)] {
        let report = run_cycle(
            VM,
            &hooked,
            &target(&receiver.addr),
            false,
            &CycleProgress::default(),
        )
        .expect("cycle");
        assert_eq!((report.instance, report.full), (round, full));
        if round == 1 {
            let (_, replica) = replica_contents(&receiver.replica_dir());
            assert_same("instance 1: A, not B", &replica, &at_point);
        } else {
            assert_eq!(report.blocks_sent, 2, "B's blocks, written after point 1");
        }
    }
    // Instance 2's point came after B (and before B's second copy, which
    // writes the same bytes): B is in it, shipped as a delta.
    let mut with_b = at_point;
    with_b[0][..BLOCK as usize].fill(0xb0);
    with_b[1][2 * MIB as usize..(2 * MIB + BLOCK) as usize].fill(0xb1);
    assert_same(
        "instance 2: B",
        &replica_contents(&receiver.replica_dir()).1,
        &with_b,
    );
}
