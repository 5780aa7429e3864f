//! A powered-off QEMU VM's disks held open by a QEMU with no machine and
//! no guest (`-machine none -S`), so its replication keeps reading through
//! QEMU's own dirty bitmaps while the VM is off: the final cycle of a
//! planned migration, after the clean shutdown, is a delta like any other.
//! QEMU loads the persistent bitmaps the VM's clean exit stored in the
//! qcow2 files and stores them again at its own clean exit (`quit`), so the
//! tracking carries across power off and on.
//!
//! Files in the VM's directory: `parked-qmp.sock`, `parked.pid` and
//! `parked.log`. A parked QEMU left behind by a site that was killed holds
//! the disks' write lock; the next park or power-on ends it first.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use super::process::QMP_TIMEOUT;
use super::qmp::Qmp;
use crate::compute::ComputeError;

pub const PARKED_SOCKET: &str = "parked-qmp.sock";
pub const PARKED_PID: &str = "parked.pid";
pub const PARKED_LOG: &str = "parked.log";

/// A running parked QEMU.
pub struct Parked {
    vm: String,
    child: tokio::process::Child,
    qmp: Arc<Qmp>,
}

impl Parked {
    /// Starts QEMU on the qcow2 `disks` (in order, as `disk-N` nodes, the
    /// names the tracking uses) and connects to its QMP.
    pub async fn start(
        vm: &str,
        binary: &Path,
        dir: &Path,
        disks: &[PathBuf],
    ) -> Result<Self, ComputeError> {
        end_stale(dir).await;
        let socket = dir.join(PARKED_SOCKET);
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(dir.join(PARKED_LOG))
            .map_err(|e| ComputeError::io(vm, "creating parked.log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| ComputeError::io(vm, "parked.log", e))?;
        let mut args: Vec<String> = [
            "-machine",
            "none",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-S",
        ]
        .map(String::from)
        .into();
        args.push("-qmp".into());
        args.push(format!("unix:{},server=on,wait=off", socket.display()));
        args.push("-pidfile".into());
        args.push(dir.join(PARKED_PID).display().to_string());
        for (i, disk) in disks.iter().enumerate() {
            args.push("-blockdev".into());
            args.push(format!(
                "driver=file,filename={},node-name=file-{i}",
                disk.display()
            ));
            args.push("-blockdev".into());
            args.push(format!("driver=qcow2,file=file-{i},node-name=disk-{i}"));
        }
        let mut child = tokio::process::Command::new(binary)
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|_| ComputeError::MissingBinary {
                vm: vm.to_string(),
                binary: binary.display().to_string(),
            })?;
        let deadline = tokio::time::Instant::now() + QMP_TIMEOUT;
        let connect = async {
            loop {
                match Qmp::connect(vm, &socket).await {
                    Ok(qmp) => return Ok(qmp),
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    // QEMU makes the socket file a moment before it listens.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        };
        tokio::select! {
            status = child.wait() => {
                let said = super::process::tail(&dir.join(PARKED_LOG), 3);
                Err(ComputeError::DiedAtBoot {
                    vm: vm.to_string(),
                    status: status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    message: format!("QEMU holding the powered-off VM's disks: {}", said.trim()),
                })
            }
            qmp = connect => match qmp {
                Ok(qmp) => Ok(Self { vm: vm.to_string(), child, qmp: Arc::new(qmp) }),
                Err(e) => {
                    let _ = child.kill().await;
                    Err(ComputeError::QmpSilent {
                        vm: vm.to_string(),
                        seconds: QMP_TIMEOUT.as_secs(),
                        message: e.to_string(),
                    })
                }
            }
        }
    }

    /// Its QMP session, for the VM's change tracking.
    pub fn qmp(&self) -> Arc<Qmp> {
        self.qmp.clone()
    }

    /// Ends QEMU cleanly (`quit`: the bitmaps are stored in the qcow2
    /// files), killing it only when it does not end.
    pub async fn stop(mut self) {
        let _ = self.qmp.quit().await;
        if tokio::time::timeout(QMP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(vm = %self.vm, "parked QEMU did not quit; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// Ends a parked QEMU of `dir` that a killed site left running: the pid
/// file names it, and its command line names this directory's socket.
async fn end_stale(dir: &Path) {
    let Some(pid) = std::fs::read_to_string(dir.join(PARKED_PID))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return;
    };
    let socket = dir.join(PARKED_SOCKET).display().to_string();
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&socket));
    if !ours {
        return;
    }
    // SAFETY: kill(2) on a pid whose command line names this VM's parked
    // socket, so it is the QEMU this site started for it.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = tokio::time::Instant::now() + QMP_TIMEOUT;
    while Path::new(&format!("/proc/{pid}")).exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
