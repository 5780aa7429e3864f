//! The step "Replicate back to <protected>": each recovered VM replicates to
//! the old protected site, seeded by its old disks.

use super::*;

impl Exec {
    pub(super) async fn replicate_back(&self, i: usize) {
        for vm in self.live() {
            let datastore = lock(&self.active.run)
                .vms
                .iter()
                .find(|v| v.vm_id == vm.id)
                .map(|v| v.message.clone())
                .filter(|d| !d.is_empty());
            let rpo = lock(&self.active.run)
                .vms
                .iter()
                .find(|v| v.vm_id == vm.id)
                .and_then(|v| v.rpo_seconds)
                .unwrap_or(300);
            // The policy follows the replication to its new direction.
            let retention = lock(&self.active.run)
                .vms
                .iter()
                .find(|v| v.vm_id == vm.id)
                .and_then(|v| v.retention);
            let request = ReplicationRequest {
                rpo_seconds: rpo,
                datastore,
                compress: None,
                retention,
            };
            match self.site.configure_replication(&vm.id, request).await {
                Ok(info) => self.sub(i, &vm.id, StepState::Done, format!("replicating to {} every {} s; the old disks are the seed, so only differing blocks travel", info.target_site.unwrap_or_default(), info.rpo_seconds)),
                Err(e) => self.sub(i, &vm.id, StepState::Error, e.to_string()),
            }
        }
        self.end_step_by_vms(i);
    }
}
