//! Faults reading the protected VM's own disks, with a real receiver over
//! TLS: a short read (the real disk file cut short under the VM) and EIO
//! (injected at the point the sender reads). Each fails the cycle with an
//! error naming the disk file and the cause, not as a link failure; the
//! replica stays byte for byte at its last complete instance; and the next
//! cycle after the fault is gone brings it level with no full sync.

use std::io;
use std::os::unix::fs::FileExt;

use ferry_replicator::replication::error::WireError;
use ferry_replicator::replication::sender::{CycleProgress, run_cycle};
use ferry_replicator::storage::{Bitmap, FrozenDisk, Geometry, Point, PointSource, TrackedVm};

use super::support::*;

/// Writes a recognisable pattern to `blocks` of `disk`.
fn write(vm: &TrackedVm, disk: usize, blocks: std::ops::Range<u64>, seed: u8) {
    for block in blocks {
        let data: Vec<u8> = (0..4096).map(|i| (i as u8) ^ seed ^ block as u8).collect();
        vm.disks()[disk].write_at(&data, block * 4096).unwrap();
    }
}

#[test]
fn a_source_disk_cut_short_fails_the_cycle_and_the_replica_stays_at_its_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(&tmp.path().join("b"));
    let vm = open_vm(&tmp.path().join("a"), 2, 1 << 20);
    write(&vm, 0, 0..40, 1);
    write(&vm, 1, 200..256, 2);
    cycle(&vm, &receiver.addr).unwrap();
    let at_one = source_contents(&vm);

    write(&vm, 1, 250..256, 3);
    let path = tmp.path().join("a/disk-1.raw");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let tail = &source_contents(&vm)[1][512 << 10..];
    file.set_len(512 << 10).unwrap();
    let failed = cycle(&vm, &receiver.addr).unwrap_err();
    let text = failed.to_string();
    assert!(
        matches!(failed, WireError::SourceRead { disk: 1, .. }),
        "{failed:?}"
    );
    assert!(!failed.is_link_failure(), "a disk fault is not the link's");
    assert!(
        text.contains(&path.display().to_string()) && text.contains("fill whole buffer"),
        "names the file and the cause: {text}"
    );
    let (instance, disks) = replica_contents(&receiver.replica_dir());
    assert_eq!(instance, Some(1));
    assert_same("replica after the failed cycle", &disks, &at_one);

    // The fault is gone: the disk has its size and bytes back.
    file.set_len(1 << 20).unwrap();
    file.write_all_at(tail, 512 << 10).unwrap();
    let report = cycle(&vm, &receiver.addr).unwrap();
    assert!(!report.full, "a source read fault needs no full sync");
    assert_eq!(report.instance, 2);
    let (instance, disks) = replica_contents(&receiver.replica_dir());
    assert_eq!(instance, Some(2));
    assert_same("replica after the fault", &disks, &source_contents(&vm));
}

/// The VM's disks, with EIO on the first `fail` reads of disk 0.
struct Failing<'a> {
    vm: &'a TrackedVm,
    fail: std::sync::atomic::AtomicU32,
}

struct FailingPoint<'a> {
    inner: Box<dyn Point + 'a>,
    fail: &'a std::sync::atomic::AtomicU32,
    path: String,
}

impl PointSource for Failing<'_> {
    fn geometries(&self) -> Vec<Geometry> {
        PointSource::geometries(self.vm)
    }
    fn can_ship_delta_from(&self, base: Option<u64>) -> io::Result<bool> {
        PointSource::can_ship_delta_from(self.vm, base)
    }
    fn dirty_bytes(&self) -> u64 {
        PointSource::dirty_bytes(self.vm)
    }
    fn take_point(
        &self,
        full: bool,
        base: Option<u64>,
        instance: u64,
    ) -> io::Result<Box<dyn Point + '_>> {
        Ok(Box::new(FailingPoint {
            inner: PointSource::take_point(self.vm, full, base, instance)?,
            fail: &self.fail,
            path: "a/disk-0.raw".into(),
        }))
    }
}

impl Point for FailingPoint<'_> {
    fn frozen(&self) -> Vec<FrozenDisk> {
        self.inner.frozen()
    }
    fn blocks(&self, disk: usize) -> Bitmap {
        self.inner.blocks(disk)
    }
    fn read(&mut self, disk: usize, first: u64, count: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if disk == 0 && self.fail.load(SeqCst) > 0 {
            self.fail.fetch_sub(1, SeqCst);
            let eio = io::Error::from_raw_os_error(5);
            return Err(io::Error::new(eio.kind(), format!("{}: {eio}", self.path)));
        }
        self.inner.read(disk, first, count, buf)
    }
    fn shipped(self: Box<Self>) {
        let this = *self;
        this.inner.shipped();
    }
}

#[test]
fn eio_reading_a_source_disk_fails_cycles_until_it_clears_then_replication_heals() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::start(&tmp.path().join("b"));
    let vm = open_vm(&tmp.path().join("a"), 2, 1 << 20);
    write(&vm, 0, 0..64, 4);
    write(&vm, 1, 0..8, 5);
    cycle(&vm, &receiver.addr).unwrap();
    let at_one = source_contents(&vm);
    let failing = Failing {
        vm: &vm,
        fail: 3.into(),
    };
    write(&vm, 0, 10..20, 6);
    for attempt in 0..3 {
        let failed = run_cycle(
            VM,
            &failing,
            &target(&receiver.addr),
            false,
            &CycleProgress::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&failed, WireError::SourceRead { disk: 0, cause } if cause.raw_os_error().is_none()),
            "attempt {attempt}: {failed:?}"
        );
        let text = failed.to_string();
        assert!(
            text.contains("a/disk-0.raw") && text.contains("Input/output error"),
            "{text}"
        );
        assert!(!failed.is_link_failure());
        // Written while the fault lasts: tracked, shipped once it clears.
        write(&vm, 0, 30 + attempt..31 + attempt, 7);
        let (instance, disks) = replica_contents(&receiver.replica_dir());
        assert_eq!(instance, Some(1), "attempt {attempt}");
        assert_same("replica while reads fail", &disks, &at_one);
    }
    let report = run_cycle(
        VM,
        &failing,
        &target(&receiver.addr),
        false,
        &CycleProgress::default(),
    )
    .unwrap();
    assert!(!report.full);
    let (instance, disks) = replica_contents(&receiver.replica_dir());
    assert_eq!(instance, Some(2));
    assert_same("replica after the fault", &disks, &source_contents(&vm));
}
