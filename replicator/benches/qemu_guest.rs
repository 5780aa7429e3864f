//! A real guest's write throughput on its QEMU disk, unprotected and while
//! ferry tracks it, and what each VM costs: boot time and resident memory.
//! Release build; needs qemu-system-x86_64, qemu-img and the guest image
//! (`replicator/guest/image.sh`, built on first use). TCG, as on this
//! machine KVM hangs nested.
//!
//! `cargo bench -p ferry-replicator --bench qemu_guest`
//! (`FERRY_BENCH_MIB`, default 128: how much the guest writes.)
//!
//! Two VMs are booted one after the other, each with one fresh 512 MiB qcow2
//! disk and no workload. The host asks each guest's agent (on its
//! virtio-serial port) to write `FERRY_BENCH_MIB` MiB in 1 MiB O_DIRECT
//! writes and flush, timed on the guest's clock as `dd oflag=direct` would
//! be. The first VM is unprotected. The second is protected as a site
//! protects it: QEMU's dirty bitmap on its disk, a full sync before the
//! bench, and a sync cycle every second to a receiver on loopback (each a
//! point in one QMP transaction and a delta read through NBD) for as long
//! as the guest writes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_guest::agent::{self, GuestMessage, HostMessage, WriteBench};
use ferry_replicator::compute::qemu::process::{self, Launch};
use ferry_replicator::compute::qemu::qmp::Qmp;
use ferry_replicator::compute::qemu::source::QemuSource;
use ferry_replicator::compute::qemu::test_vm::create_disks;
use ferry_replicator::compute::qemu::tracking::QemuTracking;
use ferry_replicator::compute::qemu::{AGENT_SOCKET, QMP_SOCKET};
use ferry_replicator::config::GuestSeed;
use ferry_replicator::replication::{CycleProgress, CycleReport, run_cycle};
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, Geometry, PointSource};
use ferry_testkit::link::{self, TestReceiver};
use ferry_testkit::{QemuReaper, guest_image};

/// One sync cycle of `vm` to the receiver at `addr`.
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

const DISK: u64 = 512 << 20;
const BOOT_DEADLINE: Duration = Duration::from_secs(180);
const CYCLE_EVERY: Duration = Duration::from_secs(1);
const BENCH_DEADLINE: Duration = Duration::from_secs(600);

/// A booted VM with its agent's port open; killed when dropped.
struct Vm {
    dir: PathBuf,
    pid: u32,
    child: tokio::process::Child,
    port: BufReader<UnixStream>,
    writer: UnixStream,
    /// From starting QEMU to the agent's boot message.
    boot: Duration,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Vm {
    fn boot(runtime: &tokio::runtime::Runtime, image: &Path, dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("VM dir");
        let disks = create_disks(dir, 1, DISK);
        let quiet = GuestSeed {
            records_per_second: 0.0,
            overwrite_kib_per_second: 0,
        };
        let launch = Launch {
            binary: process::find_binary("qemu-system-x86_64").expect("qemu-system-x86_64"),
            dir: dir.to_path_buf(),
            accelerator: "tcg",
            memory_mib: 128,
            vcpus: 1,
            kernel: image.join("vmlinuz"),
            initrd: image.join("initrd.img"),
            append: process::kernel_append(name, &[], &quiet).expect("kernel command line"),
            disks: process::attached_disks(&disks),
        };
        let started_at = Instant::now();
        let started = runtime
            .block_on(process::start(name, &launch))
            .expect("QEMU starts");
        let stream = UnixStream::connect(dir.join(AGENT_SOCKET)).expect("the agent's port");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut vm = Self {
            dir: dir.to_path_buf(),
            pid: started.pid,
            child: started.child,
            writer: stream.try_clone().expect("port"),
            port: BufReader::new(stream),
            boot: Duration::ZERO,
        };
        let deadline = Instant::now() + BOOT_DEADLINE;
        loop {
            if let GuestMessage::Boot { disks } = vm.next(deadline) {
                assert!(disks.iter().all(|d| d.verification.ok), "{disks:?}");
                break;
            }
        }
        vm.boot = started_at.elapsed();
        vm
    }

    /// The agent's next message; panics with the console at the deadline.
    fn next(&mut self, deadline: Instant) -> GuestMessage {
        let mut line = String::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "the agent is silent; console:\n{}",
                process::tail(&self.dir.join("console.log"), 20)
            );
            line.clear();
            match self.port.read_line(&mut line) {
                Ok(0) => panic!(
                    "the agent's port closed; console:\n{}",
                    process::tail(&self.dir.join("console.log"), 20)
                ),
                Ok(_) => return agent::parse_guest(&line).expect("an agent message"),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the agent's port: {e}"),
            }
        }
    }

    /// Has the guest write `mib` MiB and waits for its result.
    fn write_bench(&mut self, id: u64, mib: u64) -> WriteBench {
        let line = agent::encode(&HostMessage::WriteBench { id, mib });
        self.writer
            .write_all(line.as_bytes())
            .expect("asking the agent");
        let deadline = Instant::now() + BENCH_DEADLINE;
        loop {
            if let GuestMessage::Heartbeat(beat) = self.next(deadline)
                && let Some(result) = beat.write_bench
                && result.id == id
            {
                assert!(result.problem.is_none(), "write bench: {result:?}");
                return result;
            }
        }
    }

    /// Resident memory of the QEMU process (VmRSS), MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("the VM's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .expect("VmRSS")
            / 1024.0
    }
}

/// One cycle starts every second until `stop` (so the guest's writes meet
/// several points and delta reads); the count and bytes sent. A cycle
/// longer than a second is followed at once by the next.
fn cycle_loop(
    source: QemuSource,
    addr: String,
    stop: Arc<AtomicBool>,
    cycles: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let next = Instant::now() + CYCLE_EVERY;
            let report = cycle("vm-protected", &source, &addr);
            cycles.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(
                report.blocks_sent * DEFAULT_BLOCK_SIZE as u64,
                Ordering::Relaxed,
            );
            while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
}

fn main() {
    let mib = std::env::var("FERRY_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128u64);
    let image = guest_image();
    let work = tempfile::Builder::new()
        .prefix("ferry-bench-guest")
        .tempdir_in(std::env::var_os("FERRY_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .expect("work dir");
    let _reaper = QemuReaper(work.path().to_path_buf());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let receiver = TestReceiver::start(&work.path().join("ds"));
    let addr = receiver.addr.clone();
    println!(
        "guest write throughput, {mib} MiB in 1 MiB O_DIRECT writes + flush, 512 MiB qcow2, TCG, 128 MiB guest"
    );

    let mut plain = Vm::boot(&runtime, &image, &work.path().join("plain"), "vm-plain");
    let unprotected = plain.write_bench(1, mib);
    let plain_rss = plain.rss_mib();
    let plain_boot = plain.boot;
    drop(plain);

    let mut vm = Vm::boot(
        &runtime,
        &image,
        &work.path().join("protected"),
        "vm-protected",
    );
    let qmp = Arc::new(
        runtime
            .block_on(Qmp::connect("vm-protected", &vm.dir.join(QMP_SOCKET)))
            .expect("QMP"),
    );
    let tracking = QemuTracking::with_session(
        "vm-protected",
        &vm.dir,
        qmp,
        vec![Geometry::new(DISK, DEFAULT_BLOCK_SIZE)],
    );
    let source = QemuSource::new(Arc::new(tracking), runtime.handle().clone());
    let initial = cycle("vm-protected", &source, &addr);
    assert!(initial.full, "the first cycle is a full sync");
    let (stop, cycles, bytes) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let looping = cycle_loop(source, addr, stop.clone(), cycles.clone(), bytes.clone());
    let protected = vm.write_bench(2, mib);
    stop.store(true, Ordering::Relaxed);
    looping.join().expect("the cycle loop");
    let protected_rss = vm.rss_mib();
    let protected_boot = vm.boot;
    drop(vm);

    println!(
        "{:<12} {:>9} {:>8} {:>7} {:>8}",
        "VM", "MiB/s", "ms", "boot s", "RSS MiB"
    );
    for (name, bench, boot, rss) in [
        ("unprotected", &unprotected, plain_boot, plain_rss),
        ("protected", &protected, protected_boot, protected_rss),
    ] {
        println!(
            "{:<12} {:>9.1} {:>8} {:>7.1} {:>8.0}",
            name,
            bench.mib_per_second(),
            bench.ms,
            boot.as_secs_f64(),
            rss
        );
    }
    println!(
        "protected / unprotected: {:.2} (target >= 0.95); while the guest wrote: {} cycles, {} MiB sent; initial full sync {:.1} s",
        protected.mib_per_second() / unprotected.mib_per_second(),
        cycles.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed) >> 20,
        initial.duration.as_secs_f64()
    );
}
