//! The step "Hand the plan to <protected>": the reversed plan and groups go
//! to the peer, which owns them from then on.

use super::*;
use crate::site::runs::error::StopRun;

impl Exec {
    pub(super) async fn hand_over_the_plan(&self, i: usize) -> Result<(), StopRun> {
        if !lock(&self.failed).is_empty() {
            self.end_step(
                i,
                StepState::Error,
                "not every VM is reprotected; the plan stays here",
            );
            return Ok(());
        }
        let groups: Vec<StoredGroup> = {
            let p = lock(&self.site.protection.objects);
            self.plan
                .spec
                .groups
                .iter()
                .filter_map(|g| p.groups.get(g).cloned())
                .collect()
        };
        let reversed: Vec<StoredGroup> = groups
            .into_iter()
            .map(|g| StoredGroup {
                protected_site: g.recovery_site.clone(),
                recovery_site: g.protected_site.clone(),
                locked_by: None,
                updated_ms: now_ms(),
                ..g
            })
            .collect();
        let plan = StoredPlan {
            protected_site: self.plan.recovery_site.clone(),
            recovery_site: self.plan.protected_site.clone(),
            state: PlanState::Ready,
            last_run: Some(self.active.snapshot().id),
            last_mode: Some(RunMode::Reprotect),
            updated_ms: now_ms(),
            ..self.plan.clone()
        };
        match self
            .site
            .call_peer(
                &ControlCall::Adopt {
                    plan: Box::new(plan),
                    groups: reversed,
                },
                CALL_TIMEOUT,
            )
            .await
        {
            Ok(_) => {
                self.end_step(
                    i,
                    StepState::Done,
                    format!(
                        "the plan now recovers to {}; it lives there",
                        self.plan.protected_site
                    ),
                );
                Ok(())
            }
            Err(e) => {
                self.end_step(
                    i,
                    StepState::Error,
                    format!(
                        "site {} did not take the plan: {e}",
                        self.plan.protected_site
                    ),
                );
                Err(e.into())
            }
        }
    }
}
