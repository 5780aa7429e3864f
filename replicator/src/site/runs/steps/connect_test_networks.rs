//! The step "Connect test networks": each NIC on its mapped test network, or
//! left disconnected with a warning.

use super::*;

impl Exec {
    pub(super) async fn connect_test_networks(&self, i: usize) {
        for vm in self.live() {
            let nics = vm.info.as_ref().map(|v| v.nics.clone()).unwrap_or_default();
            let mapped: Vec<String> = nics
                .iter()
                .map(|n| {
                    placement::test_network(&self.mappings, &n.network).map_or_else(
                        || format!("{} → (disconnected)", n.network),
                        |t| format!("{} → {t}", n.network),
                    )
                })
                .collect();
            let all = nics
                .iter()
                .all(|n| placement::test_network(&self.mappings, &n.network).is_some());
            self.sub(
                i,
                &vm.id,
                if all {
                    StepState::Done
                } else {
                    StepState::Warning
                },
                if all {
                    mapped.join(", ")
                } else {
                    format!(
                        "no test network mapped; NIC left disconnected: {}",
                        mapped.join(", ")
                    )
                },
            );
        }
        self.end_step_by_vms(i);
    }
}
