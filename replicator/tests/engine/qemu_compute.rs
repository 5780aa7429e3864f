//! The QEMU compute backend with real `qemu-system-x86_64` processes under
//! TCG and the real guest image: a VM boots, its agent verifies its disks
//! and beats, it shuts down cleanly, a kill is reported as a crash, a
//! released VM is found again; and each bad input is an error naming the
//! VM and its cause, with no process left behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_replicator::compute::{BootSpec, Compute, ComputeError, ComputeEvent};
use ferry_replicator::config::{Accelerator, ComputeConfig, ComputeKind, GuestSeed};
use ferry_replicator::storage::{DEFAULT_BLOCK_SIZE, Geometry, TrackedVm};
use tokio::sync::mpsc;

/// Boots are slow under TCG on a busy two-core machine: generous, but a
/// deadline all the same.
const BOOT: Duration = Duration::from_secs(120);

fn config(binary: &str) -> ComputeConfig {
    ComputeConfig {
        backend: ComputeKind::Qemu,
        qemu_binary: binary.into(),
        accelerator: Accelerator::Tcg,
        guest_image: Some(ferry_testkit::guest_image()),
        memory_mib: 128,
        vcpus: 1,
        shutdown_timeout_seconds: 30,
    }
}

/// A VM directory with `disks` qcow2 disks of 16 MiB each.
async fn spec(compute: &Compute, dir: &Path, disks: usize) -> BootSpec {
    std::fs::create_dir_all(dir).unwrap();
    let files: Vec<PathBuf> = (0..disks)
        .map(|i| dir.join(format!("disk-{i}.raw")))
        .collect();
    let layout: Vec<(PathBuf, Geometry)> = files
        .iter()
        .map(|f| (f.clone(), Geometry::new(16 << 20, DEFAULT_BLOCK_SIZE)))
        .collect();
    let tracked = Arc::new(TrackedVm::open(dir, &layout).unwrap());
    let qcow2: Vec<(PathBuf, u64)> = files
        .iter()
        .map(|f| (f.with_extension("qcow2"), 16 << 20))
        .collect();
    compute.create_disks("vm-q", &qcow2).await.unwrap();
    BootSpec {
        vm_id: "vm-q".into(),
        dir: dir.to_path_buf(),
        disks: tracked,
        disk_files: files,
        nics: vec![ferry_testkit::config::nic("net", "10.0.0.7/24")],
        guest: GuestSeed {
            records_per_second: 20.0,
            overwrite_kib_per_second: 64,
        },
        memory_mib: 128,
        vcpus: 1,
    }
}

/// Running, not a zombie nobody reaped.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qemu_vm_boots_verifies_beats_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = ferry_testkit::QemuReaper(std::path::absolute(dir.path()).unwrap());
    let (tx, mut events) = mpsc::unbounded_channel();
    let compute = Compute::new(config("qemu-system-x86_64"), tx);
    let machine = compute
        .power_on(spec(&compute, dir.path(), 2).await)
        .await
        .unwrap();
    let pid = machine.pid().unwrap();
    assert_eq!(machine.accelerator(), Some("tcg"));
    let v = machine.boot_verified(BOOT).await.unwrap();
    assert!(v.ok, "{v:?}");
    // The workload writes records: wait for a heartbeat that says so.
    let status = machine.status().clone();
    ferry_testkit::eventually("records in a heartbeat", BOOT, || {
        let seq = status.last_seq.load(Ordering::Relaxed);
        std::future::ready((seq > 3).then_some(()))
    })
    .await;
    assert!(
        status
            .ips
            .lock()
            .unwrap()
            .iter()
            .any(|ip| ip == "net=10.0.0.7/24")
    );
    let console = machine.console_tail(50).unwrap();
    assert!(!console.trim().is_empty(), "the console logs the boot");
    let how = machine.power_off(Duration::from_secs(30)).await.unwrap();
    assert_eq!(how, "clean shutdown by the guest agent");
    assert!(!alive(pid));
    assert!(events.try_recv().is_err(), "an asked-for exit is no crash");

    // Booted again, its disks verify with the records it wrote before.
    let machine = compute
        .power_on(spec(&compute, dir.path(), 2).await)
        .await
        .unwrap();
    let again = machine.boot_verified(BOOT).await.unwrap();
    assert!(
        again.ok && again.last_seq > 3,
        "{again:?}\n{}",
        machine.console_tail(30).unwrap()
    );
    machine.power_off(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_qemu_is_reported_and_a_released_one_found_again() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = ferry_testkit::QemuReaper(std::path::absolute(dir.path()).unwrap());
    let (tx, mut events) = mpsc::unbounded_channel();
    let compute = Compute::new(config("qemu-system-x86_64"), tx);
    let machine = compute
        .power_on(spec(&compute, dir.path(), 1).await)
        .await
        .unwrap();
    machine.boot_verified(BOOT).await.unwrap();
    let pid = machine.pid().unwrap();

    // A site that stops without stopping its VM (as after a kill -9)...
    machine.release().await;
    assert!(alive(pid));
    let (tx2, mut events2) = mpsc::unbounded_channel();
    let restarted = Compute::new(config("qemu-system-x86_64"), tx2);
    let found = restarted
        .find_again(spec(&restarted, dir.path(), 1).await)
        .await
        .unwrap();
    let found = found.expect("the running process is found again");
    assert_eq!(found.pid(), Some(pid));
    // ...hears from its agent again, which repeats its boot report.
    found.boot_verified(BOOT).await.unwrap();

    // An unasked end is reported, once, naming the cause.
    // SAFETY: the pid is the QEMU this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let event = tokio::time::timeout(BOOT, events2.recv())
        .await
        .unwrap()
        .unwrap();
    let ComputeEvent::Exited { vm_id, boot, cause } = event;
    assert_eq!((vm_id.as_str(), boot), ("vm-q", found.boot()));
    assert!(cause.contains("ended"), "{cause}");
    assert!(
        events.try_recv().is_err(),
        "the first site's handle was released"
    );
    drop(found);

    // Gone for good: a restart finds nothing.
    let (tx3, _events3) = mpsc::unbounded_channel();
    let third = Compute::new(config("qemu-system-x86_64"), tx3);
    assert!(
        third
            .find_again(spec(&third, dir.path(), 1).await)
            .await
            .unwrap()
            .is_none()
    );
}

/// Starts a VM that must fail; returns the error, after checking that no
/// QEMU process of this directory is left.
async fn refused(compute: &Compute, dir: &Path, spec: BootSpec) -> ComputeError {
    let err = match compute.power_on(spec).await {
        Ok(m) => {
            let _ = m.power_off(Duration::from_secs(5)).await;
            panic!("the VM started")
        }
        Err(e) => e,
    };
    let pid_file = dir.join("qemu.pid");
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let pid: u32 = pid.trim().parse().unwrap();
        ferry_testkit::eventually("no QEMU left", Duration::from_secs(10), || {
            std::future::ready((!alive(pid)).then_some(()))
        })
        .await;
    }
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_name_the_vm_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = ferry_testkit::QemuReaper(std::path::absolute(dir.path()).unwrap());
    let (tx, _events) = mpsc::unbounded_channel();

    let missing = Compute::new(config("/nonexistent/qemu-system-x86_64"), tx.clone());
    let e = refused(&missing, dir.path(), spec(&missing, dir.path(), 1).await).await;
    assert!(matches!(e, ComputeError::MissingBinary { .. }), "{e}");
    assert!(
        e.to_string().contains("vm-q") && e.to_string().contains("/nonexistent/"),
        "{e}"
    );

    // A disk-0.qcow2 that is not qcow2 at all.
    let compute = Compute::new(config("qemu-system-x86_64"), tx.clone());
    let bad = tempfile::tempdir().unwrap();
    let s = spec(&compute, bad.path(), 1).await;
    std::fs::write(bad.path().join("disk-0.qcow2"), vec![0x55u8; 1 << 20]).unwrap();
    let e = refused(&compute, bad.path(), s).await;
    assert!(
        matches!(e, ComputeError::DiskRefused { disk: 0, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("vm-q") && e.to_string().contains("qcow2"),
        "{e}"
    );

    // A kernel QEMU cannot load: the process dies at boot.
    let image = tempfile::tempdir().unwrap();
    std::fs::write(image.path().join("vmlinuz"), b"not a kernel").unwrap();
    std::fs::write(image.path().join("initrd.img"), b"").unwrap();
    let broken = Compute::new(
        ComputeConfig {
            guest_image: Some(image.path().to_path_buf()),
            ..config("qemu-system-x86_64")
        },
        tx.clone(),
    );
    let died = tempfile::tempdir().unwrap();
    let e = refused(&broken, died.path(), spec(&broken, died.path(), 1).await).await;
    assert!(matches!(e, ComputeError::DiedAtBoot { .. }), "{e}");
    assert!(
        e.to_string().contains("vm-q") && e.to_string().contains("kernel"),
        "{e}"
    );

    // A monitor that never answers: a stand-in binary that opens the QMP
    // socket and stays silent.
    let silent = tempfile::tempdir().unwrap();
    let fake = silent.path().join("silent-qemu");
    std::fs::write(
        &fake,
        "#!/usr/bin/env python3\nimport socket,sys,time\nargs=sys.argv\n\
         path=[a for a in args if a.startswith('unix:')][0][5:].split(',')[0]\n\
         s=socket.socket(socket.AF_UNIX);s.bind(path);s.listen(1)\ntime.sleep(600)\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mute = Compute::new(config(fake.to_str().unwrap()), tx);
    let vm = silent.path().join("vm");
    let e = refused(&mute, &vm, spec(&mute, &vm, 1).await).await;
    assert!(matches!(e, ComputeError::QmpSilent { .. }), "{e}");
    assert!(
        e.to_string().contains("vm-q") && e.to_string().contains("QMP"),
        "{e}"
    );
}

/// `auto` settles on TCG when no KVM guest talks within the probe's
/// deadline: on this machine a Linux guest hangs under nested KVM, so a
/// short deadline must end in `tcg`, and the probe VM must be gone after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kvm_probe_falls_back_to_tcg_within_its_deadline() {
    use ferry_replicator::compute::qemu::process::{find_binary, probe_kvm};
    let image = ferry_testkit::guest_image();
    let binary = find_binary("qemu-system-x86_64").expect("qemu-system-x86_64 installed");
    let accelerator = probe_kvm(
        &binary,
        Some((image.join("vmlinuz"), image.join("initrd.img"))),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(accelerator, "tcg");
    let probe_dir = std::env::temp_dir().join(format!("ferry-kvm-probe-{}", std::process::id()));
    assert!(!probe_dir.exists(), "{} left behind", probe_dir.display());
    let probe = probe_dir.display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&probe) && c.contains("qemu-system"))
        .collect();
    assert!(left.is_empty(), "probe VM still running: {left:?}");
}
