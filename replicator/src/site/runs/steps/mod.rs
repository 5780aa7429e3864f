//! One unit per step kind, each in a file named as the run view names the
//! step; `step` below is the table from a step's kind to its unit. Steps
//! that ask the protected site (synchronize, shut down) are in
//! [`super::protected_site`], the power-on of a priority in
//! [`super::power`]. A step that returns `Err` stops the run with that
//! message; the others record their outcome per VM and let it go on.

use super::error::StopRun;
use super::*;

mod connect_test_networks;
mod create_test_copies;
mod discard_test_copies;
mod hand_over_the_plan;
mod ip_customization;
mod make_replicas_writable;
mod plan_callouts;
mod power_off_test_vms;
mod replicate_back;
mod turn_disks_into_seeds;
mod vm_callouts;

impl Exec {
    /// Does step `i`, of kind `kind`.
    pub(super) async fn step(&self, i: usize, kind: Kind) -> Result<(), StopRun> {
        match kind {
            Kind::Sync { last } => return self.sync(i, last).await,
            Kind::ShutDown => return self.shut_down(i).await,
            Kind::TestCopies => self.create_test_copies(i).await,
            Kind::TestNetworks => self.connect_test_networks(i).await,
            Kind::Promote => self.make_replicas_writable(i).await,
            Kind::PlanCallouts { post } => self.plan_callouts(i, post).await,
            Kind::VmCallouts { priority, post } => self.vm_callouts(i, priority, post).await,
            Kind::Addresses { priority } => self.ip_customization(i, priority).await,
            Kind::PowerOn { priority } => self.power_on_with_heartbeats(i, priority).await,
            // Run together with the power-on step before it.
            Kind::Heartbeats { .. } => {}
            Kind::PowerOffTests => self.power_off_test_vms(i).await,
            Kind::DiscardCopies => self.discard_test_copies(i).await,
            Kind::Demote => return self.turn_disks_into_seeds(i).await,
            Kind::ReverseReplication => self.replicate_back(i).await,
            Kind::Handover => return self.hand_over_the_plan(i).await,
        }
        Ok(())
    }

    /// "Priority N: power on" and the "wait for heartbeats" step after it,
    /// which run together.
    async fn power_on_with_heartbeats(&self, i: usize, priority: u8) {
        let hb = i + 1;
        self.start_step(hb);
        self.power_on(priority, i, hb).await;
        self.end_step_by_vms(i);
        self.end_step_by_vms(hb);
    }
}
