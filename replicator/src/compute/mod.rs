//! Where a site's VMs run: one compute backend per site, chosen in
//! site.toml's `[compute]`, behind one interface. Runs, the API and the TUI
//! see a [`Machine`] (power off, status, heartbeat, reported IPs, boot
//! verification) and never which backend runs it.
//!
//! - [`builtin`]: the built-in guest, a task of the site process.
//! - [`qemu`]: a `qemu-system-x86_64` process per VM, started and
//!   supervised by the site, found again after a site restart.

pub mod builtin;
pub mod qemu;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{ComputeConfig, GuestSeed, NicSeed};
use crate::guest::{GuestStatus, Verification};
use crate::storage::TrackedVm;
pub use ferry_api::types::ComputeKind;

/// What a VM needs to boot, whatever runs it.
#[derive(Clone)]
pub struct BootSpec {
    pub vm_id: String,
    /// The VM's directory: a QEMU VM's sockets, pid file and console live
    /// here, beside its first disk.
    pub dir: PathBuf,
    /// The disks through the replicated block path (the built-in guest
    /// writes them).
    pub disks: Arc<TrackedVm>,
    /// The disk files in order, as a hypervisor attaches them: a
    /// `disk-N.qcow2` beside `disk-N.raw` is the one attached.
    pub disk_files: Vec<PathBuf>,
    pub nics: Vec<NicSeed>,
    pub guest: GuestSeed,
    pub memory_mib: u32,
    pub vcpus: u32,
}

/// Why a VM could not be powered on or off; every one names the VM.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("{vm}: the QEMU binary {binary:?} is not installed or not executable")]
    MissingBinary { vm: String, binary: String },
    #[error("{vm}: the guest boot image is missing: {message}")]
    MissingImage { vm: String, message: String },
    #[error("{vm}: QEMU refused disk {disk} ({file}): {message}")]
    DiskRefused {
        vm: String,
        disk: usize,
        file: String,
        message: String,
    },
    #[error("{vm}: the QEMU process died at boot ({status}): {message}")]
    DiedAtBoot {
        vm: String,
        status: String,
        message: String,
    },
    #[error("{vm}: QEMU's monitor (QMP) did not answer within {seconds} s: {message}")]
    QmpSilent {
        vm: String,
        seconds: u64,
        message: String,
    },
    #[error("{vm}: cannot hand the guest its boot parameters: {message}")]
    BootParams { vm: String, message: String },
    #[error("{vm}: the guest reported no boot verification within {seconds} s")]
    NoBootReport { vm: String, seconds: u64 },
    #[error("{vm}: the VM stopped before its guest reported: {message}")]
    Stopped { vm: String, message: String },
    #[error("{vm}: {message}")]
    Io { vm: String, message: String },
}

impl ComputeError {
    pub(crate) fn io(vm: &str, what: &str, e: impl std::fmt::Display) -> Self {
        Self::Io {
            vm: vm.to_string(),
            message: format!("{what}: {e}"),
        }
    }
}

/// What the site learns from its backend without asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeEvent {
    /// A VM's process ended without the site asking it to.
    Exited {
        vm_id: String,
        /// Which boot of the VM ended, so a stale report of an earlier
        /// boot never marks a newer one crashed.
        boot: u64,
        cause: String,
    },
}

/// A powered-on VM, whichever backend runs it.
pub enum Machine {
    Builtin(builtin::BuiltinVm),
    Qemu(qemu::QemuVm),
}

impl Machine {
    pub fn status(&self) -> &Arc<GuestStatus> {
        match self {
            Self::Builtin(vm) => vm.status(),
            Self::Qemu(vm) => vm.status(),
        }
    }

    pub fn kind(&self) -> ComputeKind {
        match self {
            Self::Builtin(_) => ComputeKind::Builtin,
            Self::Qemu(_) => ComputeKind::Qemu,
        }
    }

    /// Which boot this is (see [`ComputeEvent::Exited`]).
    pub fn boot(&self) -> u64 {
        match self {
            Self::Builtin(_) => 0,
            Self::Qemu(vm) => vm.boot(),
        }
    }

    /// The process running the VM, for a backend that has one.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::Builtin(_) => None,
            Self::Qemu(vm) => Some(vm.pid()),
        }
    }

    pub fn accelerator(&self) -> Option<&'static str> {
        match self {
            Self::Builtin(_) => None,
            Self::Qemu(vm) => Some(vm.accelerator()),
        }
    }

    /// The newest lines of the VM's console, for a backend that has one.
    pub fn console_tail(&self, lines: usize) -> Option<String> {
        match self {
            Self::Builtin(_) => None,
            Self::Qemu(vm) => Some(vm.console_tail(lines)),
        }
    }

    /// A QEMU VM's QMP session, for its change tracking.
    pub fn qmp(&self) -> Option<Arc<qemu::qmp::Qmp>> {
        match self {
            Self::Builtin(_) => None,
            Self::Qemu(vm) => vm.qmp(),
        }
    }

    /// The directory a QEMU VM runs in.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            Self::Builtin(_) => None,
            Self::Qemu(vm) => Some(vm.dir()),
        }
    }

    /// Waits for the guest's boot verification of its disks: at once for
    /// the built-in guest, when the agent reports it for a QEMU VM.
    pub async fn boot_verified(&self, timeout: Duration) -> Result<Verification, ComputeError> {
        match self {
            Self::Builtin(vm) => Ok(vm.verification()),
            Self::Qemu(vm) => vm.boot_verified(timeout).await,
        }
    }

    /// Powers the VM off: a clean shutdown within `timeout`, then a hard
    /// stop. Returns how it ended, for the log.
    pub async fn power_off(self, timeout: Duration) -> Result<&'static str, ComputeError> {
        match self {
            Self::Builtin(vm) => {
                vm.shut_down().await;
                Ok("clean shutdown")
            }
            Self::Qemu(vm) => vm.power_off(timeout).await,
        }
    }

    /// Lets go of the VM without stopping it (a QEMU VM keeps running when
    /// the site stops, and the next start finds it again); the built-in
    /// guest, a task of the site, is shut down.
    pub async fn release(self) {
        match self {
            Self::Builtin(vm) => vm.shut_down().await,
            Self::Qemu(vm) => vm.release(),
        }
    }
}

/// The site's compute backend.
pub struct Compute {
    config: ComputeConfig,
    qemu: qemu::Qemu,
}

impl Compute {
    /// The backend `config` names; unasked exits are sent to `events`.
    pub fn new(config: ComputeConfig, events: mpsc::UnboundedSender<ComputeEvent>) -> Self {
        Self {
            qemu: qemu::Qemu::new(config.clone(), events),
            config,
        }
    }

    pub fn kind(&self) -> ComputeKind {
        self.config.backend
    }

    pub fn config(&self) -> &ComputeConfig {
        &self.config
    }

    /// How long a clean shutdown may take before a hard stop.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.config.shutdown_timeout_seconds)
    }

    /// Powers a VM on. The built-in guest has verified its disk on return;
    /// a QEMU VM's process runs and answers QMP, and its guest reports
    /// later (see [`Machine::boot_verified`]).
    pub async fn power_on(&self, spec: BootSpec) -> Result<Machine, ComputeError> {
        match self.config.backend {
            ComputeKind::Builtin => builtin::BuiltinVm::boot(spec).map(Machine::Builtin),
            ComputeKind::Qemu => self.qemu.start(spec).await.map(Machine::Qemu),
        }
    }

    /// At a site's start, a VM recorded as powered on: the built-in guest
    /// boots again (it never outlives the site); a QEMU VM's process still
    /// running is found again, one that the site stopped cleanly (no pid
    /// file left) boots again, and one that vanished without a clean stop
    /// gives `Ok(None)`: it crashed while the site was away.
    pub async fn find_again(&self, spec: BootSpec) -> Result<Option<Machine>, ComputeError> {
        match self.config.backend {
            ComputeKind::Builtin => {
                builtin::BuiltinVm::boot(spec).map(|m| Some(Machine::Builtin(m)))
            }
            ComputeKind::Qemu => {
                let stopped_cleanly = !spec.dir.join(qemu::PID_FILE).exists();
                match self.qemu.find_again(&spec).await {
                    Some(found) => Ok(Some(Machine::Qemu(found))),
                    None if stopped_cleanly => self.power_on(spec).await.map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// Prepares a new VM's disks for this backend (QEMU: qcow2 files).
    pub async fn create_disks(
        &self,
        vm_id: &str,
        files: &[(PathBuf, u64)],
    ) -> Result<(), ComputeError> {
        match self.config.backend {
            ComputeKind::Builtin => Ok(()),
            ComputeKind::Qemu => self.qemu.create_disks(vm_id, files).await,
        }
    }
}
