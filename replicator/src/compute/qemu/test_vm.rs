//! A real QEMU without a guest, for tests: `-S` (CPUs never start), TCG,
//! qcow2 disks attached as the compute backend attaches them, QMP on a unix
//! socket. Tests write "guest" data through QEMU's block layer with the
//! monitor's `qemu-io -d vd-N`, which goes through the disk's device exactly
//! as a guest's writes do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::qmp::Qmp;

/// A QEMU process killed when dropped.
pub struct TestVm {
    pub dir: PathBuf,
    child: Child,
}

impl Drop for TestVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `count` qcow2 disks of `size` bytes in `dir` (kept if present).
pub fn create_disks(dir: &Path, count: usize, size: u64) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let path = dir.join(format!("disk-{i}.qcow2"));
            if !path.exists() {
                let status = Command::new("qemu-img")
                    .args(["create", "-q", "-f", "qcow2"])
                    .arg(&path)
                    .arg(size.to_string())
                    .status()
                    .expect("qemu-img (install qemu-utils)");
                assert!(status.success(), "qemu-img create {}", path.display());
            }
            path
        })
        .collect()
}

impl TestVm {
    /// Starts QEMU on `dir`'s disks (see [`create_disks`]).
    pub fn start(dir: &Path, disks: &[PathBuf]) -> Self {
        let qmp = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&qmp);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-machine",
            "q35,accel=tcg",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-S",
            "-m",
            "64",
        ]);
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()));
        for (i, disk) in disks.iter().enumerate() {
            cmd.arg("-blockdev").arg(format!(
                "driver=file,filename={},node-name=file-{i}",
                disk.display()
            ));
            cmd.arg("-blockdev")
                .arg(format!("driver=qcow2,file=file-{i},node-name=disk-{i}"));
            cmd.arg("-device")
                .arg(format!("virtio-blk-pci,drive=disk-{i},id=vd-{i}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .expect("qemu-system-x86_64 (install qemu-system-x86)");
        let vm = Self {
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        // Listening, not only the socket file made (QEMU makes it first).
        while std::os::unix::net::UnixStream::connect(&qmp).is_err() {
            assert!(Instant::now() < deadline, "QEMU does not listen on QMP");
            std::thread::sleep(Duration::from_millis(10));
        }
        vm
    }

    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// Connects to QMP. QEMU creates the socket file a moment before it
    /// listens on it, so a refused connection is retried until a deadline.
    pub async fn qmp(&self) -> Qmp {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Qmp::connect("test-vm", &self.qmp_socket()).await {
                Ok(qmp) => return qmp,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "QMP not listening yet");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("QMP connects: {e}"),
            }
        }
    }

    /// Kills QEMU as a crash would (no bitmaps saved).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for QEMU to exit by itself (after `quit`).
    pub fn wait_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("wait on QEMU").is_none() {
            assert!(Instant::now() < deadline, "QEMU did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Writes `len` bytes of `pattern` at `offset` of disk `disk` through its
/// device, as the guest would.
pub async fn guest_write(qmp: &Qmp, disk: usize, pattern: u8, offset: u64, len: u64) {
    let line =
        format!("qemu-io -d vd-{disk}/virtio-backend \"write -P 0x{pattern:02x} {offset} {len}\"");
    let out = qmp.human_monitor_command(&line).await.expect("qemu-io");
    // qemu-io prints nothing back through QMP when the write succeeds.
    assert!(
        !out.contains("rror") && !out.contains("failed"),
        "qemu-io {line}: {out}"
    );
}

/// Flushes disk `disk` to its image, as a guest's fsync does (so the data
/// outlives a QEMU killed afterwards).
pub async fn guest_flush(qmp: &Qmp, disk: usize) {
    let line = format!("qemu-io -d vd-{disk}/virtio-backend \"flush\"");
    let out = qmp.human_monitor_command(&line).await.expect("qemu-io");
    assert!(!out.contains("rror"), "qemu-io {line}: {out}");
}
