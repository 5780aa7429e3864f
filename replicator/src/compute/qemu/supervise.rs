//! Supervision of QEMU processes: an end the site did not ask for is
//! reported (the site makes it an event, an alarm and the VM's `crashed`
//! state), and a site that restarts finds its VMs' processes again through
//! their pid files and QMP sockets.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use super::process::{self, QMP_TIMEOUT};
use super::{PID_FILE, QMP_SOCKET};
use crate::compute::ComputeEvent;

/// A VM's process found again after a restart.
pub struct Found {
    pub pid: u32,
    pub accelerator: &'static str,
}

/// Waits for a started child to end (reaping it), then tells `exited` and,
/// unless the site asked for the end, `events`.
pub fn watch_child(
    vm_id: String,
    boot: u64,
    mut child: tokio::process::Child,
    asked: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<ComputeEvent>,
) -> watch::Receiver<Option<String>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let cause = match child.wait().await {
            Ok(status) => describe(status),
            Err(e) => format!("waiting for the process failed: {e}"),
        };
        ended(vm_id, boot, cause, &asked, &events, &tx);
    });
    rx
}

/// Like [`watch_child`] for a process this site did not start (found again
/// after a restart): a pidfd becomes readable when it ends.
pub fn watch_pid(
    vm_id: String,
    boot: u64,
    pid: u32,
    asked: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<ComputeEvent>,
) -> std::io::Result<watch::Receiver<Option<String>>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing
    // else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd moves into the AsyncFd and stays open, the same
    // descriptor, until the AsyncFd is dropped.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let _ = fd.readable().await;
        let cause = "the process ended (found again after a site restart, so its exit status \
                     is not known)"
            .to_string();
        ended(vm_id, boot, cause, &asked, &events, &tx);
    });
    Ok(rx)
}

fn ended(
    vm_id: String,
    boot: u64,
    cause: String,
    asked: &AtomicBool,
    events: &mpsc::UnboundedSender<ComputeEvent>,
    tx: &watch::Sender<Option<String>>,
) {
    tx.send_replace(Some(cause.clone()));
    if !asked.load(Ordering::SeqCst) {
        let _ = events.send(ComputeEvent::Exited { vm_id, boot, cause });
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => "QEMU exited (status 0): the guest powered off or reset".into(),
        (Some(code), _) => format!("QEMU exited with status {code}"),
        (None, Some(signal)) => format!("QEMU was killed by signal {signal}"),
        (None, None) => "QEMU ended".into(),
    }
}

/// Waits up to `timeout` for the process to end; true when it has.
pub async fn wait_exit(exited: &mut watch::Receiver<Option<String>>, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, exited.wait_for(Option::is_some))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// The process of the VM in `dir`, if it still runs and answers QMP: its
/// pid file names it, its command line names this directory's QMP socket
/// (so a reused pid is not mistaken for it), and `query-status` answers.
pub async fn find_running(dir: &Path) -> Option<Found> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let socket = dir.join(QMP_SOCKET);
    if !cmdline.contains(&socket.display().to_string()) {
        return None;
    }
    process::qmp(&socket, "query-status", QMP_TIMEOUT)
        .await
        .ok()?;
    let accelerator = if cmdline.contains("accel=kvm") {
        "kvm"
    } else {
        "tcg"
    };
    Some(Found { pid, accelerator })
}
