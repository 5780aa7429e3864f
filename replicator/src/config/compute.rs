//! `[compute]` of site.toml: the backend that runs the site's VMs (the
//! built-in guest or QEMU), its program, accelerator and VM sizes, and the
//! checks on them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{KeyError, key_err};
pub use ferry_api::types::ComputeKind;

/// `[compute]`: the backend that runs the site's VMs and its settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    /// `builtin` (the default) or `qemu`.
    #[serde(default)]
    pub backend: ComputeKind,
    /// The QEMU binary: a path, or a name looked up on `PATH`.
    #[serde(default = "qemu_binary")]
    pub qemu_binary: String,
    #[serde(default)]
    pub accelerator: Accelerator,
    /// The directory with the guest boot image (`vmlinuz`, `initrd.img`),
    /// as `replicator/guest/image.sh` prints it. Needed by `qemu`.
    pub guest_image: Option<PathBuf>,
    /// A VM's memory unless its own record says otherwise.
    #[serde(default = "memory_mib")]
    pub memory_mib: u32,
    #[serde(default = "one")]
    pub vcpus: u32,
    /// How long a clean shutdown (the agent, then ACPI) may take before
    /// the VM is stopped hard.
    #[serde(default = "shutdown_timeout")]
    pub shutdown_timeout_seconds: u64,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            backend: ComputeKind::Builtin,
            qemu_binary: qemu_binary(),
            accelerator: Accelerator::Auto,
            guest_image: None,
            memory_mib: memory_mib(),
            vcpus: one(),
            shutdown_timeout_seconds: shutdown_timeout(),
        }
    }
}

fn qemu_binary() -> String {
    "qemu-system-x86_64".into()
}
fn memory_mib() -> u32 {
    128
}
fn one() -> u32 {
    1
}
fn shutdown_timeout() -> u64 {
    30
}

/// Which accelerator QEMU runs a VM with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    /// KVM when a probe boot succeeds on this host, else TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// A VM's memory and vCPUs, in the ranges QEMU and this host take.
pub const MEMORY_MIB: std::ops::RangeInclusive<u32> = 16..=1 << 20;
pub const VCPUS: std::ops::RangeInclusive<u32> = 1..=64;

pub(super) fn check_compute(c: &ComputeConfig) -> Result<(), KeyError> {
    if c.qemu_binary.trim().is_empty() {
        return Err(key_err("compute.qemu_binary", "must name a program"));
    }
    if !MEMORY_MIB.contains(&c.memory_mib) {
        return Err(key_err("compute.memory_mib", "must be 16 to 1048576"));
    }
    if !VCPUS.contains(&c.vcpus) {
        return Err(key_err("compute.vcpus", "must be 1 to 64"));
    }
    if !(1..=3600).contains(&c.shutdown_timeout_seconds) {
        return Err(key_err(
            "compute.shutdown_timeout_seconds",
            "must be 1 to 3600",
        ));
    }
    if c.backend == ComputeKind::Qemu && c.guest_image.is_none() {
        return Err(key_err(
            "compute.guest_image",
            "the qemu backend needs the guest boot image's directory \
             (the last line replicator/guest/image.sh prints)",
        ));
    }
    Ok(())
}
