//! Doing one step of a run.

use super::*;

impl Exec {
    pub(super) async fn step(&self, i: usize, kind: Kind) -> Result<(), String> {
        match kind {
            Kind::Sync { last } => self.sync(i, last).await,
            Kind::ShutDown => self.shut_down(i).await,
            Kind::TestCopies => {
                for vm in self.live() {
                    self.sub(
                        i,
                        &vm.id,
                        StepState::Running,
                        "copying the newest complete instance",
                    );
                    match self.site.create_test_copy(&vm.id).await {
                        Ok(point) => {
                            self.vm_record(&vm.id, |v| v.point_time_ms = Some(point));
                            self.sub(
                                i,
                                &vm.id,
                                StepState::Done,
                                format!("instance of {}", clock(point)),
                            );
                        }
                        Err(e) => self.sub(i, &vm.id, StepState::Error, e),
                    }
                }
                self.end_step_by_vms(i);
                Ok(())
            }
            Kind::TestNetworks => {
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
                Ok(())
            }
            Kind::Promote => {
                for vm in self.live() {
                    let (Some(info), Some(placeholder)) = (&vm.info, &vm.placeholder) else {
                        self.sub(
                            i,
                            &vm.id,
                            StepState::Error,
                            "no placeholder: check the group's mappings",
                        );
                        continue;
                    };
                    self.sub(i, &vm.id, StepState::Running, "promoting the replica");
                    let nics = self.addresses(vm, false);
                    match self
                        .site
                        .promote(info, &placeholder.folder, &placeholder.resource_pool, nics)
                        .await
                    {
                        Ok(point) => {
                            self.promoted.store(true, Ordering::Relaxed);
                            if let Some(point) = point {
                                self.vm_record(&vm.id, |v| v.point_time_ms = Some(point));
                            }
                            self.sub(
                                i,
                                &vm.id,
                                StepState::Done,
                                match point {
                                    Some(p) => format!(
                                        "writable at {} from the instance of {}",
                                        placeholder.datastore,
                                        clock(p)
                                    ),
                                    None => "already promoted by an earlier run".into(),
                                },
                            );
                        }
                        Err(e) => self.sub(i, &vm.id, StepState::Error, e),
                    }
                }
                self.end_step_by_vms(i);
                Ok(())
            }
            Kind::PlanCallouts { post } => {
                let callouts = if post {
                    &self.plan.spec.post_power_on
                } else {
                    &self.plan.spec.pre_power_on
                };
                match self.callouts(i, None, callouts).await {
                    Ok(out) => {
                        self.run().with(|r| r.steps[i].output = Some(out));
                        self.end_step(i, StepState::Done, "");
                    }
                    Err(e) => self.end_step(i, StepState::Error, e),
                }
                Ok(())
            }
            Kind::VmCallouts { priority, post } => {
                let vms: Vec<&VmPlan> = self
                    .live()
                    .into_iter()
                    .filter(|v| v.settings.priority == priority)
                    .collect();
                for vm in vms {
                    let callouts = if post {
                        &vm.settings.post_power_on
                    } else {
                        &vm.settings.pre_power_on
                    };
                    if callouts.is_empty() {
                        continue;
                    }
                    self.sub(i, &vm.id, StepState::Running, "running");
                    match self.callouts(i, Some(vm), callouts).await {
                        Ok(out) => self.sub(i, &vm.id, StepState::Done, out),
                        Err(e) => self.sub(i, &vm.id, StepState::Error, e),
                    }
                }
                self.run().with(|r| {
                    for s in r.steps[i]
                        .vms
                        .iter_mut()
                        .filter(|s| s.state == StepState::Pending)
                    {
                        s.state = StepState::Skipped;
                    }
                });
                self.end_step_by_vms(i);
                Ok(())
            }
            Kind::Addresses { priority } => {
                for vm in self
                    .live()
                    .into_iter()
                    .filter(|v| v.settings.priority == priority)
                {
                    let test = self.mode == RunMode::Test;
                    let before = vm.info.as_ref().map(|v| v.nics.clone()).unwrap_or_default();
                    let after = self.addresses(vm, test);
                    let text: Vec<String> = before
                        .iter()
                        .zip(&after)
                        .map(|(b, a)| {
                            format!(
                                "{} {} → {} {}",
                                b.network,
                                b.ip.as_deref().unwrap_or("dhcp"),
                                a.network,
                                a.ip.as_deref().unwrap_or("dhcp")
                            )
                        })
                        .collect();
                    let mode = match vm.settings.ip_customization {
                        IpCustomization::Off => "off: ",
                        IpCustomization::Manual { .. } => "manual: ",
                        IpCustomization::Auto => "",
                    };
                    self.sub(
                        i,
                        &vm.id,
                        StepState::Done,
                        format!("{mode}{}", text.join(", ")),
                    );
                }
                self.end_step_by_vms(i);
                Ok(())
            }
            Kind::PowerOn { priority } => {
                let hb = i + 1;
                self.start_step(hb);
                self.power_on(priority, i, hb).await;
                self.end_step_by_vms(i);
                self.end_step_by_vms(hb);
                Ok(())
            }
            // Run together with the power-on step before it.
            Kind::Heartbeats { .. } => Ok(()),
            Kind::PowerOffTests => {
                for vm in &self.vms {
                    let was_on = self.site.power_off_test_vm(&vm.id).await;
                    self.sub(
                        i,
                        &vm.id,
                        StepState::Done,
                        if was_on {
                            "powered off"
                        } else {
                            "was not running"
                        },
                    );
                }
                self.end_step_by_vms(i);
                Ok(())
            }
            Kind::DiscardCopies => {
                for vm in &self.vms {
                    match self.site.discard_test_vm(&vm.id).await {
                        Ok(()) => self.sub(i, &vm.id, StepState::Done, "test copy removed"),
                        Err(e) if self.force => self.sub(
                            i,
                            &vm.id,
                            StepState::Warning,
                            format!("could not remove: {e}"),
                        ),
                        Err(e) => self.sub(i, &vm.id, StepState::Error, e),
                    }
                }
                let left: Vec<String> = self
                    .site
                    .leftover_test_copies()
                    .into_iter()
                    .filter(|id| self.vms.iter().any(|v| &v.id == id))
                    .collect();
                self.end_step_by_vms(i);
                if !left.is_empty() {
                    self.end_step(
                        i,
                        if self.force {
                            StepState::Warning
                        } else {
                            StepState::Error
                        },
                        format!("left behind: {}", left.join(", ")),
                    );
                }
                Ok(())
            }
            Kind::Demote => {
                let run = Some(lock(&self.active.run).id.clone());
                let demote = move |vm_ids| ControlCall::Demote { vm_ids, run };
                let doing = "stopping replication, turning the disks into a seed";
                match self
                    .ask_protected_site(i, doing, demote, CALL_TIMEOUT)
                    .await
                {
                    Ok(outcomes) => {
                        for o in outcomes {
                            match o.error {
                                None => {
                                    self.vm_record(&o.vm_id, |v| {
                                        v.message = o.datastore.clone().unwrap_or_default()
                                    });
                                    self.sub(
                                        i,
                                        &o.vm_id,
                                        StepState::Done,
                                        format!(
                                            "seed in {} at {}",
                                            o.datastore.unwrap_or_default(),
                                            self.plan.protected_site
                                        ),
                                    );
                                }
                                Some(e) => self.sub(i, &o.vm_id, StepState::Error, e),
                            }
                        }
                        self.end_step_by_vms(i);
                        Ok(())
                    }
                    Err(e) => {
                        self.end_step(
                            i,
                            StepState::Error,
                            format!("site {} did not answer: {e}", self.plan.protected_site),
                        );
                        Err(e)
                    }
                }
            }
            Kind::ReverseReplication => {
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
                    let request = ReplicationRequest {
                        rpo_seconds: rpo,
                        datastore,
                        compress: None,
                    };
                    match self.site.configure_replication(&vm.id, request).await {
                        Ok(info) => self.sub(i, &vm.id, StepState::Done, format!("replicating to {} every {} s; the old disks are the seed, so only differing blocks travel", info.target_site.unwrap_or_default(), info.rpo_seconds)),
                        Err(e) => self.sub(i, &vm.id, StepState::Error, e.to_string()),
                    }
                }
                self.end_step_by_vms(i);
                Ok(())
            }
            Kind::Handover => {
                if !lock(&self.failed).is_empty() {
                    self.end_step(
                        i,
                        StepState::Error,
                        "not every VM is reprotected; the plan stays here",
                    );
                    return Ok(());
                }
                let groups: Vec<StoredGroup> = {
                    let p = lock(&self.site.protection);
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
                        Err(e)
                    }
                }
            }
        }
    }
}
