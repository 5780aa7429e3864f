//! The `builtin` backend: a powered-on VM is the built-in guest, a task of
//! the site writing through the replicated block path. It has verified its
//! disk by the time it is powered on, and it ends with the site.

use std::sync::Arc;

use super::{BootSpec, ComputeError};
use crate::guest::{Guest, GuestStatus, Verification};

/// A running built-in guest.
pub struct BuiltinVm {
    guest: Guest,
    /// What the guest found on its disk at boot, kept apart from the
    /// status so a run always gets it back.
    verification: Verification,
}

impl BuiltinVm {
    pub(super) fn boot(spec: BootSpec) -> Result<Self, ComputeError> {
        let guest = Guest::boot(spec.disks, &spec.nics, spec.guest)
            .map_err(|e| ComputeError::io(&spec.vm_id, "the guest could not read its disk", e))?;
        let verification =
            guest
                .status
                .boot_verification()
                .ok_or_else(|| ComputeError::Stopped {
                    vm: spec.vm_id.clone(),
                    message: "the guest reported no boot verification".into(),
                })?;
        Ok(Self {
            guest,
            verification,
        })
    }

    pub fn status(&self) -> &Arc<GuestStatus> {
        &self.guest.status
    }

    pub fn verification(&self) -> Verification {
        self.verification.clone()
    }

    /// Stops the guest after its current write.
    pub async fn shut_down(self) {
        self.guest.shut_down().await;
    }
}
