//! Crash consistency: the receiver process is aborted at named points of the
//! redo-log and consolidation path (as a power cut would stop it). After a
//! restart, every disk of a two-disk VM holds the same complete instance, N
//! or N+1, byte for byte.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_replicator::identity::Fingerprint;
use ferry_replicator::replication::{CycleProgress, CycleReport, WireError, run_cycle};
use ferry_replicator::storage::TrackedVm;

use super::support::*;

const POINTS: [&str; 7] = [
    "redo.append:1",
    "redo.append:9",
    "redo.before-commit",
    "redo.after-commit",
    "consolidate.mid",
    "consolidate.before-state",
    "consolidate.before-remove",
];

struct ReceiverProcess {
    child: Child,
    addr: String,
    /// The receiver's certificate, for the sender to pin.
    fingerprint: Fingerprint,
}

impl ReceiverProcess {
    fn start(datastore: &Path, identity_dir: &Path, crash_at: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferry-replicator"));
        command
            .args(["receive", "--listen", "127.0.0.1:0", "--identity-dir"])
            .arg(identity_dir)
            .arg("--peer-fingerprint")
            .arg(SENDER.fingerprint.to_string())
            .arg("--datastore")
            .arg(format!("ds={}", datastore.display()))
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(point) = crash_at {
            command.env("FERRY_CRASH_AT", point);
        }
        let mut child = command.spawn().expect("start ferry-replicator");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let fingerprint = line
            .trim()
            .strip_prefix("fingerprint ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self {
            child,
            addr,
            fingerprint,
        }
    }

    /// One cycle of `vm` into this receiver.
    fn cycle(&self, vm: &TrackedVm) -> Result<CycleReport, WireError> {
        let target = target_pinning(&self.addr, self.fingerprint);
        run_cycle(VM, vm, &target, false, &CycleProgress::default())
    }

    /// Waits for the process to die at its crash point.
    fn wait_crashed(&mut self) {
        wait_for("the receiver to crash", Duration::from_secs(20), || {
            self.child.try_wait().unwrap().is_some()
        });
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "the receiver should have aborted");
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scribble(vm: &ferry_replicator::storage::TrackedVm, rng: &mut Rng, writes: usize) {
    for _ in 0..writes {
        let disk = rng.below(2) as usize;
        let mut data = vec![0u8; 4096 * (1 + rng.below(3) as usize)];
        rng.fill(&mut data);
        let size = vm.disks()[disk].geometry().disk_size;
        let offset = rng.below(size / 4096 - 3) * 4096 + rng.below(2) * 100;
        vm.disks()[disk].write_at(&data, offset).unwrap();
    }
}

fn crash_at(point: &str, seed: u64) {
    let work = tempfile::tempdir().unwrap();
    let identity_dir = work.path().join("receiver-identity");
    let datastore = work.path().join("ds");
    let vm = open_vm(&work.path().join("source"), 2, 1 << 20);
    let mut rng = Rng::new(seed);

    // Instance N: a clean receiver takes the initial full sync.
    scribble(&vm, &mut rng, 40);
    let instance_n = source_contents(&vm);
    {
        let receiver = ReceiverProcess::start(&datastore, &identity_dir, None);
        receiver.cycle(&vm).unwrap();
    }
    // Instance N+1 dies on the way in.
    scribble(&vm, &mut rng, 30);
    let instance_n1 = source_contents(&vm);
    let mut receiver = ReceiverProcess::start(&datastore, &identity_dir, Some(point));
    let outcome = receiver.cycle(&vm);
    receiver.wait_crashed();
    drop(receiver);

    let (instance, disks) = replica_contents(&replica_dir(&datastore));
    match instance {
        Some(1) => assert_same(&format!("{point} seed {seed}: N"), &disks, &instance_n),
        Some(2) => assert_same(&format!("{point} seed {seed}: N+1"), &disks, &instance_n1),
        other => panic!("{point} seed {seed}: replica at instance {other:?}"),
    }
    // A crash before the commit record must never surface N+1, and one after
    // it must never lose it.
    let committed = !point.starts_with("redo.append") && point != "redo.before-commit";
    assert_eq!(instance, Some(if committed { 2 } else { 1 }), "{point}");
    if point.starts_with("consolidate") {
        assert!(outcome.is_err() || instance == Some(2));
    }

    // And replication carries on: the next cycle brings the replica level.
    scribble(&vm, &mut rng, 10);
    let receiver = ReceiverProcess::start(&datastore, &identity_dir, None);
    let report = receiver.cycle(&vm).unwrap();
    assert!(
        !report.full,
        "{point}: the tracking survives a receiver crash"
    );
    drop(receiver);
    let (_, disks) = replica_contents(&replica_dir(&datastore));
    assert_same(
        &format!("{point} seed {seed}: after"),
        &disks,
        &source_contents(&vm),
    );
}

#[test]
fn a_receiver_crash_anywhere_leaves_a_complete_instance() {
    for seed in 1..=3 {
        for point in POINTS {
            crash_at(point, seed);
        }
    }
}

#[test]
fn an_interrupted_initial_sync_resumes_with_only_the_missing_blocks() {
    let work = tempfile::tempdir().unwrap();
    let identity_dir = work.path().join("receiver-identity");
    let datastore = work.path().join("ds");
    let vm = open_vm(&work.path().join("source"), 2, 1 << 20);
    let mut rng = Rng::new(11);
    for disk in vm.disks() {
        let mut data = vec![0u8; 1 << 20];
        rng.fill(&mut data);
        disk.write_at(&data, 0).unwrap();
    }
    let mut receiver = ReceiverProcess::start(&datastore, &identity_dir, Some("seed.append:100"));
    assert!(receiver.cycle(&vm).is_err());
    receiver.wait_crashed();
    drop(receiver);
    let (instance, _) = replica_contents(&replica_dir(&datastore));
    assert_eq!(instance, None, "an unfinished initial sync is no instance");

    let receiver = ReceiverProcess::start(&datastore, &identity_dir, None);
    let report = receiver.cycle(&vm).unwrap();
    assert!(report.full);
    // 512 blocks in all; 99 or so landed before the crash and are not resent.
    assert!(
        report.blocks_sent <= 512 - 90,
        "sent {} blocks, expected the ones that landed to be skipped",
        report.blocks_sent
    );
    drop(receiver);
    let (instance, disks) = replica_contents(&replica_dir(&datastore));
    assert_eq!(instance, Some(1));
    assert_same("resumed initial sync", &disks, &source_contents(&vm));
}

#[test]
fn a_crash_before_the_initial_sync_is_recorded_resends_nothing() {
    let work = tempfile::tempdir().unwrap();
    let identity_dir = work.path().join("receiver-identity");
    let datastore = work.path().join("ds");
    let vm = open_vm(&work.path().join("source"), 2, 1 << 20);
    let mut rng = Rng::new(12);
    scribble(&vm, &mut rng, 40);
    let mut receiver = ReceiverProcess::start(&datastore, &identity_dir, Some("seed.before-state"));
    assert!(receiver.cycle(&vm).is_err());
    receiver.wait_crashed();
    drop(receiver);
    let (instance, _) = replica_contents(&replica_dir(&datastore));
    assert_eq!(instance, None, "no state, no instance");

    // The disks were synced before the crash: the next full sync finds
    // every block in place.
    let receiver = ReceiverProcess::start(&datastore, &identity_dir, None);
    let report = receiver.cycle(&vm).unwrap();
    assert!(report.full);
    assert_eq!(report.blocks_sent, 0, "every block landed before the crash");
    drop(receiver);
    let (instance, disks) = replica_contents(&replica_dir(&datastore));
    assert_eq!(instance, Some(1));
    assert_same("recorded initial sync", &disks, &source_contents(&vm));
}

#[test]
fn a_committed_log_corrupt_at_rest_is_refused_and_the_replica_stays_at_n() {
    let work = tempfile::tempdir().unwrap();
    let identity_dir = work.path().join("receiver-identity");
    let datastore = work.path().join("ds");
    let vm = open_vm(&work.path().join("source"), 2, 1 << 20);
    let mut rng = Rng::new(13);
    scribble(&vm, &mut rng, 40);
    let instance_n = source_contents(&vm);
    {
        let receiver = ReceiverProcess::start(&datastore, &identity_dir, None);
        receiver.cycle(&vm).unwrap();
    }
    // N+1 is committed, then the receiver dies before consolidating it.
    scribble(&vm, &mut rng, 30);
    let mut receiver = ReceiverProcess::start(&datastore, &identity_dir, Some("redo.after-commit"));
    let _ = receiver.cycle(&vm);
    receiver.wait_crashed();
    drop(receiver);
    // A bit flips at rest inside the last block's data.
    let log = replica_dir(&datastore).join("redo.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() - 33 - 100;
    bytes[at] ^= 0x20;
    std::fs::write(&log, &bytes).unwrap();

    // The receiver refuses the VM's cycles with the reason, naming the VM,
    // the file and the cause; the replica reads as instance N meanwhile.
    let receiver = ReceiverProcess::start(&datastore, &identity_dir, None);
    let refused = receiver.cycle(&vm).unwrap_err().to_string();
    assert!(
        refused.contains(VM) && refused.contains("redo.log") && refused.contains("checksum"),
        "{refused}"
    );
    drop(receiver);
    let (instance, disks) = replica_contents(&replica_dir(&datastore));
    assert_eq!(instance, Some(1));
    assert_same("instance N behind a corrupt log", &disks, &instance_n);
}
