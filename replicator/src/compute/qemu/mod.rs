//! The `qemu` backend: one `qemu-system-x86_64` process per powered-on VM,
//! started by the site with its disks on `-blockdev`, QMP and the guest
//! agent's virtio-serial channel on unix sockets in the VM's directory and
//! the serial console logged beside them (`qmp.sock`, `agent.sock`,
//! `console.log`, `qemu.pid`, `qemu.log`, and `boot.json`, the guest's
//! boot report kept for a site that finds the VM again).
//!
//! - [`process`]: the command line, starting and stopping the process, and
//!   the few QMP commands power needs.
//! - [`agent`]: the host's end of the guest agent's channel.
//! - [`parked`]: a powered-off VM's disks held by a QEMU without a guest,
//!   so its tracking goes on.
//! - [`supervise`]: watching a process end, and finding a VM's process
//!   again after a site restart.
//! - [`qmp`]: the QMP client; [`nbd`]: reading a point's export;
//!   [`tracking`] and [`source`]: QEMU's dirty bitmaps as the change
//!   tracking of a sync cycle.

pub mod agent;
pub mod image;
pub mod nbd;
pub mod parked;
pub mod process;
pub mod qmp;
pub mod source;
pub mod supervise;
pub mod tracking;

// Test support (unit tests, the engine tests, the bench): a QEMU without
// a guest, written to through its block layer.
#[doc(hidden)]
pub mod test_vm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OnceCell, mpsc, watch};

use super::{BootSpec, ComputeError, ComputeEvent};
use crate::config::{Accelerator, ComputeConfig};
use crate::guest::{GuestStatus, Verification};

/// The files of a QEMU VM's directory, by the shared contract.
pub const QMP_SOCKET: &str = "qmp.sock";
pub const AGENT_SOCKET: &str = "agent.sock";
pub const CONSOLE_LOG: &str = "console.log";
pub const PID_FILE: &str = "qemu.pid";
/// QEMU's own stderr and stdout: why it refused to start.
pub const QEMU_LOG: &str = "qemu.log";

/// The site's QEMU settings and what it learnt of this host.
pub struct Qemu {
    config: ComputeConfig,
    events: mpsc::UnboundedSender<ComputeEvent>,
    /// The accelerator `auto` settled on, probed once per site process.
    accelerator: OnceCell<&'static str>,
    /// Numbers each boot, so an exit report names the boot it ends.
    boots: AtomicU64,
}

/// A running QEMU VM.
pub struct QemuVm {
    vm_id: String,
    dir: PathBuf,
    pid: u32,
    boot: u64,
    accelerator: &'static str,
    status: Arc<GuestStatus>,
    agent: agent::AgentLink,
    /// The VM's one QMP session, shared by power and the sync cycle's
    /// change tracking (a QMP socket serves one client at a time); `None`
    /// when it could not be opened, and power falls back to short sessions.
    qmp: Option<Arc<qmp::Qmp>>,
    /// Set before the site stops the process, so that exit is no crash.
    asked: Arc<AtomicBool>,
    /// `Some(cause)` once the process has ended.
    exited: watch::Receiver<Option<String>>,
}

impl Qemu {
    pub fn new(config: ComputeConfig, events: mpsc::UnboundedSender<ComputeEvent>) -> Self {
        Self {
            config,
            events,
            accelerator: OnceCell::new(),
            boots: AtomicU64::new(1),
        }
    }

    fn image(&self, vm: &str) -> Result<(PathBuf, PathBuf), ComputeError> {
        let dir = self
            .config
            .guest_image
            .clone()
            .ok_or_else(|| ComputeError::MissingImage {
                vm: vm.to_string(),
                message: "[compute] guest_image is not set".into(),
            })?;
        let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.img"));
        for file in [&kernel, &initrd] {
            if !file.is_file() {
                return Err(ComputeError::MissingImage {
                    vm: vm.to_string(),
                    message: format!(
                        "{} does not exist (run replicator/guest/image.sh)",
                        file.display()
                    ),
                });
            }
        }
        Ok((kernel, initrd))
    }

    async fn accelerator(&self, vm: &str, binary: &Path) -> &'static str {
        match self.config.accelerator {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
            Accelerator::Auto => {
                *self
                    .accelerator
                    .get_or_init(|| async {
                        let image = self.image(vm).ok();
                        process::probe_kvm(binary, image, process::KVM_PROBE).await
                    })
                    .await
            }
        }
    }

    /// Starts the VM's process and waits until QMP answers and the agent's
    /// channel is open. Any failure leaves no process behind.
    pub(super) async fn start(&self, mut spec: BootSpec) -> Result<QemuVm, ComputeError> {
        absolute(&mut spec)?;
        let binary = process::find_binary(&self.config.qemu_binary).ok_or_else(|| {
            ComputeError::MissingBinary {
                vm: spec.vm_id.clone(),
                binary: self.config.qemu_binary.clone(),
            }
        })?;
        let (kernel, initrd) = self.image(&spec.vm_id)?;
        let disks = process::attached_disks(&spec.disk_files);
        let accelerator = self.accelerator(&spec.vm_id, &binary).await;
        let launch = process::Launch {
            binary,
            dir: spec.dir.clone(),
            accelerator,
            memory_mib: spec.memory_mib,
            vcpus: spec.vcpus,
            kernel,
            initrd,
            append: process::kernel_append(&spec.vm_id, &spec.nics, &spec.guest)?,
            disks,
        };
        let started = process::start(&spec.vm_id, &launch).await?;
        let boot = self.boots.fetch_add(1, Ordering::Relaxed);
        let status = Arc::new(GuestStatus::default());
        let asked = Arc::new(AtomicBool::new(false));
        let exited = supervise::watch_child(
            spec.vm_id.clone(),
            boot,
            started.child,
            asked.clone(),
            self.events.clone(),
        );
        let agent = agent::AgentLink::connect(&spec.dir, status.clone()).await;
        let qmp = session(&spec.vm_id, &spec.dir).await;
        Ok(QemuVm {
            vm_id: spec.vm_id,
            dir: spec.dir,
            pid: started.pid,
            boot,
            accelerator,
            status,
            agent,
            qmp,
            asked,
            exited,
        })
    }

    /// The VM's process still running from before a site restart, found
    /// through its pid file and QMP socket; `None` when it is gone.
    pub(super) async fn find_again(&self, spec: &BootSpec) -> Option<QemuVm> {
        let mut spec = spec.clone();
        absolute(&mut spec).ok()?;
        let found = supervise::find_running(&spec.dir).await?;
        let boot = self.boots.fetch_add(1, Ordering::Relaxed);
        let status = Arc::new(GuestStatus::default());
        let asked = Arc::new(AtomicBool::new(false));
        let exited = supervise::watch_pid(
            spec.vm_id.clone(),
            boot,
            found.pid,
            asked.clone(),
            self.events.clone(),
        )
        .ok()?;
        agent::kept_boot_report(&spec.dir, &status);
        let agent = agent::AgentLink::connect(&spec.dir, status.clone()).await;
        let qmp = session(&spec.vm_id, &spec.dir).await;
        Some(QemuVm {
            vm_id: spec.vm_id.clone(),
            dir: spec.dir.clone(),
            pid: found.pid,
            boot,
            accelerator: found.accelerator,
            status,
            agent,
            qmp,
            asked,
            exited,
        })
    }

    /// Creates each missing disk as a qcow2 file of its size.
    pub(super) async fn create_disks(
        &self,
        vm: &str,
        files: &[(PathBuf, u64)],
    ) -> Result<(), ComputeError> {
        for (i, (file, size)) in files.iter().enumerate() {
            if !file.exists() {
                process::create_qcow2(vm, i, file, *size).await?;
            }
        }
        Ok(())
    }
}

/// Opens the VM's QMP session, kept for its life.
async fn session(vm: &str, dir: &Path) -> Option<Arc<qmp::Qmp>> {
    match qmp::Qmp::connect(vm, &dir.join(QMP_SOCKET)).await {
        Ok(q) => Some(Arc::new(q)),
        Err(e) => {
            tracing::warn!(vm = %vm, "no QMP session: {e}");
            None
        }
    }
}

/// QEMU runs in the VM's directory but is told absolute paths, which the
/// pid check after a restart also compares.
fn absolute(spec: &mut BootSpec) -> Result<(), ComputeError> {
    let abs = |p: &Path| {
        std::path::absolute(p).map_err(|e| ComputeError::io(&spec.vm_id, "resolving a path", e))
    };
    let dir = abs(&spec.dir)?;
    let files = spec
        .disk_files
        .iter()
        .map(|f| abs(f))
        .collect::<Result<Vec<_>, _>>()?;
    spec.dir = dir;
    spec.disk_files = files;
    Ok(())
}

impl QemuVm {
    pub fn status(&self) -> &Arc<GuestStatus> {
        &self.status
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn boot(&self) -> u64 {
        self.boot
    }

    pub fn accelerator(&self) -> &'static str {
        self.accelerator
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn console_tail(&self, lines: usize) -> String {
        process::tail(&self.dir.join(CONSOLE_LOG), lines)
    }

    /// Waits for the agent's boot report, the process's end or `timeout`.
    pub async fn boot_verified(&self, timeout: Duration) -> Result<Verification, ComputeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut exited = self.exited.clone();
        loop {
            let beat = self.status.beat.notified();
            tokio::pin!(beat);
            beat.as_mut().enable();
            if let Some(v) = self.status.boot_verification() {
                return Ok(v);
            }
            if let Some(cause) = exited.borrow().clone() {
                return Err(ComputeError::Stopped {
                    vm: self.vm_id.clone(),
                    message: format!("{cause}; console: {}", self.console_tail(3)),
                });
            }
            tokio::select! {
                () = beat => {}
                _ = exited.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(ComputeError::NoBootReport {
                        vm: self.vm_id.clone(),
                        seconds: timeout.as_secs(),
                    });
                }
            }
        }
    }

    /// Stops the VM: the agent's shutdown, then ACPI's power button, then
    /// QMP `quit`, then SIGKILL, each given its share of `timeout`.
    pub async fn power_off(self, timeout: Duration) -> Result<&'static str, ComputeError> {
        self.asked.store(true, Ordering::SeqCst);
        let mut exited = self.exited.clone();
        let half = timeout / 2;
        if self.agent.shutdown().await && supervise::wait_exit(&mut exited, half).await {
            return Ok("clean shutdown by the guest agent");
        }
        if self.monitor("system_powerdown").await && supervise::wait_exit(&mut exited, half).await {
            return Ok("clean shutdown by ACPI");
        }
        if self.monitor("quit").await
            && supervise::wait_exit(&mut exited, process::QMP_TIMEOUT).await
        {
            return Ok("stopped by QMP quit after the guest did not shut down");
        }
        // SAFETY: kill(2) on the pid this site started or found by its QMP
        // socket; one already gone only returns ESRCH.
        unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        if supervise::wait_exit(&mut exited, process::QMP_TIMEOUT).await {
            Ok("killed after QEMU did not stop")
        } else {
            Err(ComputeError::Io {
                vm: self.vm_id.clone(),
                message: format!("process {} did not end after SIGKILL", self.pid),
            })
        }
    }

    /// The VM's QMP session, for the sync cycle's change tracking.
    pub fn qmp(&self) -> Option<Arc<qmp::Qmp>> {
        self.qmp.clone()
    }

    /// One power command on the shared session, or a short one of its own
    /// when there is none; true when QEMU accepted it.
    async fn monitor(&self, command: &str) -> bool {
        match &self.qmp {
            Some(q) if !q.is_closed() => match command {
                "quit" => q.quit().await.is_ok(),
                _ => q.execute_raw(command, None).await.is_ok(),
            },
            _ => process::qmp(&self.dir.join(QMP_SOCKET), command, process::QMP_TIMEOUT)
                .await
                .is_ok(),
        }
    }

    /// Lets the process run on without the site (see [`super::Machine::release`]).
    pub fn release(self) {
        self.asked.store(true, Ordering::SeqCst);
    }
}
