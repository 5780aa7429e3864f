//! A plan's readiness as its owner finds it (see [`Readiness`]), and what
//! it allows next: the plan's state says which runs make sense, the
//! readiness takes away what cannot work now and says why.

use ferry_api::types::{GroupReadiness, PeerStatus, Readiness, SkippedVm};

use super::*;

impl Site {
    /// Streams this site's plans whose view (readiness included) changed
    /// since last published.
    pub(crate) fn publish_changed_plans(&self) {
        let stored: Vec<StoredPlan> = lock(&self.protection.objects)
            .plans
            .values()
            .cloned()
            .collect();
        let views: Vec<Plan> = stored.iter().map(|p| self.plan_view(p)).collect();
        let changed: Vec<Plan> = {
            let mut objects = lock(&self.protection.objects);
            let changed = views
                .iter()
                .filter(|p| objects.published_plans.get(&p.id) != Some(*p))
                .cloned()
                .collect();
            objects.published_plans = views.into_iter().map(|p| (p.id.clone(), p)).collect();
            changed
        };
        for p in changed {
            self.events.publish(SiteEvent::Plan(p));
        }
    }

    /// What stands in the way of a run of `p` now.
    pub(crate) fn readiness(&self, p: &StoredPlan) -> Readiness {
        let view = self.peer_view();
        let reachable = self
            .peer_info()
            .is_some_and(|i| i.status == PeerStatus::Connected);
        let (own, elsewhere): (Vec<StoredGroup>, Vec<ProtectionGroup>) = {
            let objects = lock(&self.protection.objects);
            let own = p
                .spec
                .groups
                .iter()
                .filter_map(|g| objects.groups.get(g).cloned())
                .collect();
            let elsewhere = view
                .as_ref()
                .map(|v| {
                    v.groups
                        .iter()
                        .filter(|g| {
                            p.spec.groups.contains(&g.id) && !objects.groups.contains_key(&g.id)
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (own, elsewhere)
        };
        let mut r = Readiness {
            protected_site_reachable: reachable,
            recovery_site_reachable: true,
            ..Readiness::default()
        };
        let tests = self.test_copies();
        for g in &own {
            let shown = self.group_view(g, view.as_ref());
            r.groups.push(GroupReadiness {
                id: g.id.clone(),
                name: g.name.clone(),
                protected_site: Some(g.protected_site.clone()),
                recovery_site: Some(g.recovery_site.clone()),
                locked_by: g.locked_by.clone(),
                vm_count: g.vms.len(),
            });
            for vm in &shown.vms {
                if let Some(kind) = vm.status.strip_prefix("mapping missing: ") {
                    r.missing_mappings.push(format!("{}: {kind}", vm.vm));
                }
                let synced = view.as_ref().is_some_and(|v| {
                    v.replications
                        .iter()
                        .any(|x| x.vm_id == vm.vm_id && x.point_time_ms.is_some())
                });
                if !synced && p.state == PlanState::Ready {
                    r.not_replicated.push(vm.vm.clone());
                }
                if tests.iter().any(|t| t.vm_id == vm.vm_id) {
                    r.test_copies.push(vm.vm.clone());
                }
            }
        }
        for g in &elsewhere {
            r.groups.push(GroupReadiness {
                id: g.id.clone(),
                name: g.name.clone(),
                protected_site: Some(g.protected_site.clone()),
                recovery_site: Some(g.recovery_site.clone()),
                locked_by: g.locked_by.clone(),
                vm_count: g.vms.len(),
            });
            let why = format!(
                "group {} now recovers to {}, the other way",
                g.name, g.recovery_site
            );
            r.skipped.extend(g.vms.iter().map(|v| SkippedVm {
                vm_id: v.vm_id.clone(),
                vm: v.vm.clone(),
                why: why.clone(),
            }));
        }
        for id in &p.spec.groups {
            if !r.groups.iter().any(|g| &g.id == id) {
                r.groups.push(GroupReadiness {
                    id: id.clone(),
                    name: id.clone(),
                    protected_site: None,
                    recovery_site: None,
                    locked_by: None,
                    vm_count: 0,
                });
            }
        }
        r
    }
}

/// What a plan in `state` allows now, given its readiness, and the advice
/// that goes with it.
pub fn allowed_now(
    state: PlanState,
    last_mode: Option<RunMode>,
    protected_site: &str,
    r: &Readiness,
) -> (Vec<RunMode>, String) {
    use RunMode::*;
    let (mut allowed, mut next) = allowed(state, last_mode);
    let in_progress = allowed.is_empty();
    if !r.protected_site_reachable && !in_progress {
        // Only what the recovery site can do alone: recover from its
        // replicas, or clean up its own test copies.
        allowed.retain(|m| matches!(m, DisasterRecovery | Cleanup));
        next = if allowed.contains(&DisasterRecovery) {
            format!("protected site {protected_site} unreachable: only disaster recovery (d)")
        } else if allowed.contains(&Cleanup) {
            format!("protected site {protected_site} unreachable: {next}")
        } else {
            // The advice without its state word: "recovered: reprotect …"
            // reads "… wait for it to answer, then reprotect …".
            let advice = next.split_once(": ").map_or(next.as_str(), |(_, a)| a);
            format!(
                "protected site {protected_site} unreachable: wait for it to answer, then {advice}"
            )
        };
    }
    let locked = r.groups.iter().find_map(|g| g.locked_by.as_ref());
    if let Some(run) = locked
        && !in_progress
    {
        allowed.clear();
        next = format!("waiting: a group of this plan is locked by {run}");
    }
    let notes: Vec<String> = r
        .notes()
        .into_iter()
        .filter(|n| !n.starts_with("group ") || locked.is_none())
        .collect();
    if !notes.is_empty() && !in_progress {
        next = format!("{next} ({})", notes.join("; "));
    }
    (allowed, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_protected_site_leaves_only_disaster_recovery() {
        let r = Readiness {
            recovery_site_reachable: true,
            ..Readiness::default()
        };
        let (allowed, next) = allowed_now(PlanState::Ready, None, "site-a", &r);
        assert_eq!(allowed, vec![RunMode::DisasterRecovery]);
        assert_eq!(
            next,
            "protected site site-a unreachable: only disaster recovery (d)"
        );
        let (allowed, _) = allowed_now(PlanState::TestComplete, None, "site-a", &r);
        assert_eq!(allowed, vec![RunMode::Cleanup]);
        // After a disaster recovery, a reprotect needs the old site back.
        let (allowed, next) = allowed_now(PlanState::RecoveryComplete, None, "site-a", &r);
        assert!(allowed.is_empty());
        assert_eq!(
            next,
            "protected site site-a unreachable: wait for it to answer, then reprotect to \
             replicate back to the old protected site"
        );
    }

    #[test]
    fn skipped_vms_and_locks_are_said() {
        let mut r = Readiness {
            protected_site_reachable: true,
            recovery_site_reachable: true,
            ..Readiness::default()
        };
        r.skipped.push(SkippedVm {
            vm_id: "site-a.web-01".into(),
            vm: "web-01".into(),
            why: "group Web now recovers to site-a, the other way".into(),
        });
        let (allowed, next) = allowed_now(PlanState::Ready, None, "site-a", &r);
        assert_eq!(allowed.len(), 3);
        assert!(
            next.contains("1 VM would be skipped (group Web now recovers to site-a"),
            "{next}"
        );
        r.groups.push(GroupReadiness {
            id: "pg-1".into(),
            name: "Web".into(),
            protected_site: None,
            recovery_site: None,
            locked_by: Some("run-7".into()),
            vm_count: 1,
        });
        let (allowed, next) = allowed_now(PlanState::Ready, None, "site-a", &r);
        assert!(allowed.is_empty());
        assert!(
            next.starts_with("waiting: a group of this plan is locked by run-7"),
            "{next}"
        );
    }
}
