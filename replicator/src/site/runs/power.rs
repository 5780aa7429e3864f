//! Powering on one priority: addresses, dependency waves, boot
//! verification and the heartbeat wait.

use super::*;

/// How soon to look again for a guest that is not there while waiting for
/// its heartbeat.
const GUEST_LOOK_AGAIN: Duration = Duration::from_millis(500);

impl Exec {
    /// A VM's NICs at this site: networks mapped (test networks for a
    /// test), addresses per its IP customization.
    pub(super) fn addresses(&self, vm: &VmPlan, test: bool) -> Vec<NicSeed> {
        let nics = vm.info.as_ref().map(|v| v.nics.clone()).unwrap_or_default();
        let overrides = self.mappings.ip_overrides.iter().find(|o| o.vm_id == vm.id);
        nics.iter()
            .enumerate()
            .map(|(i, nic)| {
                let network = if test {
                    placement::test_network(&self.mappings, &nic.network)
                        .unwrap_or("disconnected")
                        .to_string()
                } else {
                    vm.placeholder
                        .as_ref()
                        .and_then(|p| p.networks.get(i).cloned())
                        .unwrap_or_else(|| nic.network.clone())
                };
                match &vm.settings.ip_customization {
                    IpCustomization::Off => NicSeed {
                        network,
                        ..nic.clone()
                    },
                    IpCustomization::Manual { nics } => {
                        placement::customize(nic, &network, &[], nics.iter().find(|n| n.nic == i))
                    }
                    IpCustomization::Auto => placement::customize(
                        nic,
                        &network,
                        &self.mappings.ip_rules,
                        overrides.and_then(|o| o.nics.iter().find(|n| n.nic == i)),
                    ),
                }
            })
            .collect()
    }

    /// Powers on one priority's VMs in waves: each wave is every VM whose
    /// dependencies have a heartbeat; a wave boots at once.
    pub(super) async fn power_on(&self, priority: u8, step: usize, hb_step: usize) {
        let order: Vec<&VmPlan> = self
            .live()
            .into_iter()
            .filter(|v| v.settings.priority == priority)
            .collect();
        let mut beating: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut pending: Vec<&VmPlan> = order;
        for vm in pending.iter().filter(|v| !v.settings.power_on) {
            self.sub(
                step,
                &vm.id,
                StepState::Skipped,
                "left powered off by the plan",
            );
            self.sub(hb_step, &vm.id, StepState::Skipped, "left powered off");
            beating.insert(vm.id.clone());
        }
        pending.retain(|v| v.settings.power_on);
        while !pending.is_empty() {
            if self.cancelled() {
                return;
            }
            let failed = lock(&self.failed).clone();
            let (wave, rest): (Vec<&VmPlan>, Vec<&VmPlan>) = pending.into_iter().partition(|v| {
                v.settings
                    .depends_on
                    .iter()
                    .all(|d| beating.contains(d) || failed.contains(d))
            });
            pending = rest;
            if wave.is_empty() {
                for vm in &pending {
                    self.sub(
                        step,
                        &vm.id,
                        StepState::Error,
                        "its dependencies never got a heartbeat",
                    );
                }
                return;
            }
            let boots = wave.iter().map(|vm| self.boot_one(vm, step, hb_step));
            for (id, ok) in futures_util::future::join_all(boots).await {
                if ok {
                    beating.insert(id);
                }
            }
        }
    }

    /// Boots one VM and waits for its heartbeat; true when it beats.
    pub(super) async fn boot_one(
        &self,
        vm: &VmPlan,
        step: usize,
        hb_step: usize,
    ) -> (String, bool) {
        if lock(&self.failed)
            .iter()
            .any(|f| vm.settings.depends_on.contains(f))
        {
            self.sub(step, &vm.id, StepState::Error, "a VM it depends on failed");
            return (vm.id.clone(), false);
        }
        self.sub(
            step,
            &vm.id,
            StepState::Running,
            "booting; the guest verifies its disk",
        );
        // A real guest gets the heartbeat timeout to report its disks too.
        let timeout = Duration::from_secs(vm.settings.heartbeat_timeout_seconds);
        let booted = if self.mode == RunMode::Test {
            let size = self.site.size_of(vm.info.as_ref());
            self.site
                .boot_test_vm(&vm.id, &self.addresses(vm, true), size, timeout)
                .await
        } else {
            self.site.power_on_recovered(&vm.id, timeout).await
        };
        let verification = match booted {
            Ok(v) => v,
            Err(e) => {
                self.sub(step, &vm.id, StepState::Error, e.to_string());
                return (vm.id.clone(), false);
            }
        };
        self.vm_record(&vm.id, |v| {
            v.verified = Some(verification.ok);
            v.last_verified_ms = verification.last_time_ms;
            v.compute_data_loss();
        });
        if !verification.ok {
            self.sub(
                step,
                &vm.id,
                StepState::Error,
                format!(
                    "disk verification failed: {}",
                    verification
                        .problem
                        .clone()
                        .unwrap_or_else(|| "unknown problem".into())
                ),
            );
            return (vm.id.clone(), false);
        }
        self.sub(
            step,
            &vm.id,
            StepState::Done,
            format!(
                "powered on; {} records verified, newest #{}",
                verification.records, verification.last_seq
            ),
        );
        self.wait_for_heartbeat(vm, hb_step).await
    }

    /// The "wait for heartbeats" sub-step of `vm`, just powered on: done at
    /// its first heartbeat, an error at its timeout or a cancel.
    async fn wait_for_heartbeat(&self, vm: &VmPlan, hb_step: usize) -> (String, bool) {
        self.sub(
            hb_step,
            &vm.id,
            StepState::Running,
            "waiting for a heartbeat",
        );
        let booted_at = now_ms();
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(vm.settings.heartbeat_timeout_seconds);
        loop {
            let status = self.site.guest_status(&vm.id);
            // Registered before the checks below, so a beat or a cancel
            // after them still wakes the wait at the end.
            let beaten = status.as_ref().map(|s| s.beat.notified());
            let cancelled = self.active.ack.notified();
            tokio::pin!(beaten, cancelled);
            if let Some(beaten) = beaten.as_mut().as_pin_mut() {
                beaten.enable();
            }
            cancelled.as_mut().enable();
            let beat = status
                .as_ref()
                .map(|s| s.heartbeat_ms.load(Ordering::Relaxed))
                .filter(|&t| t + 1000 >= booted_at);
            if let Some(beat) = beat {
                self.vm_record(&vm.id, |v| {
                    v.heartbeat_ms = Some(beat.max(booted_at));
                    if v.result == StepState::Pending {
                        v.result = StepState::Done;
                    }
                });
                self.sub(hb_step, &vm.id, StepState::Done, "heartbeat");
                return (vm.id.clone(), true);
            }
            if tokio::time::Instant::now() >= deadline || self.cancelled() {
                self.sub(
                    hb_step,
                    &vm.id,
                    StepState::Error,
                    format!(
                        "no heartbeat within {} s",
                        vm.settings.heartbeat_timeout_seconds
                    ),
                );
                return (vm.id.clone(), false);
            }
            let beaten = async {
                match beaten.as_pin_mut() {
                    Some(beaten) => beaten.await,
                    // No guest (yet): look again in a while.
                    None => tokio::time::sleep(GUEST_LOOK_AGAIN).await,
                }
            };
            tokio::select! {
                () = beaten => {}
                () = cancelled => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}
