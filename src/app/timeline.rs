//! The instances timeline in a VM's detail pane: the replica's kept
//! instances as its site lists them, a cursor over them, a test of a plan
//! holding the VM started at the selected instance (the same confirmation
//! as a test from the plans view), and the demo attack on the VM.

use ferry_api::Call;
use ferry_api::types::{InstanceInfo, Role, RunMode};

use super::*;

/// The timeline of the VM whose detail pane is open.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    pub vm_id: String,
    /// The site holding the replica, which lists the instances.
    pub site: Option<usize>,
    /// `None` until the site answered.
    pub instances: Option<Result<Vec<InstanceInfo>, String>>,
    pub selected: usize,
}

impl Timeline {
    /// The instance under the cursor.
    pub fn selected(&self) -> Option<&InstanceInfo> {
        match &self.instances {
            Some(Ok(list)) => list.get(self.selected),
            _ => None,
        }
    }
}

impl App {
    /// Opens the detail pane of `vm_id` and asks the site holding its
    /// replica for the instances.
    pub(super) fn open_detail(&mut self, vm_id: String) -> Option<Effect> {
        let target = self
            .model
            .replications()
            .find(|(_, r)| r.vm_id == vm_id)
            .and_then(|(_, r)| r.target_site.clone());
        let site = target.and_then(|t| self.model.site_index(&t));
        self.overlay = Overlay::Detail(vm_id.clone());
        self.timeline = Timeline {
            vm_id: vm_id.clone(),
            site,
            instances: None,
            selected: 0,
        };
        match site {
            Some(site) => Some(Effect::Instances { site, vm_id }),
            None => {
                self.timeline.instances = Some(Err(
                    "its replica's site is not one of this TUI's sites".into(),
                ));
                None
            }
        }
    }

    /// The site holding the replica of `vm_id` answered.
    pub fn instances_replied(&mut self, vm_id: &str, outcome: Result<Vec<InstanceInfo>, String>) {
        if self.timeline.vm_id != vm_id {
            return;
        }
        // Keep the cursor on the same instance when the list refreshes.
        let kept = self.timeline.selected().map(|i| i.id.clone());
        if let Ok(list) = &outcome {
            self.timeline.selected = kept
                .and_then(|id| list.iter().position(|i| i.id == id))
                .or_else(|| list.iter().position(|i| i.recommended))
                .unwrap_or(0);
        }
        self.timeline.instances = Some(outcome);
    }

    /// Keys in the detail pane: move over the timeline, test at the
    /// selected instance, the demo attack.
    pub(super) fn on_detail(&mut self, action: Action) -> Option<Effect> {
        let count = match &self.timeline.instances {
            Some(Ok(list)) => list.len(),
            _ => 0,
        };
        let at = self.timeline.selected;
        match action {
            Action::Up => self.timeline.selected = at.saturating_sub(1),
            Action::Down => self.timeline.selected = (at + 1).min(count.saturating_sub(1)),
            Action::Top => self.timeline.selected = 0,
            Action::Bottom => self.timeline.selected = count.saturating_sub(1),
            Action::StartRun(RunMode::Test) => return self.test_at_instance(),
            Action::Attack => return self.attack(),
            Action::Tick if self.ticks.is_multiple_of(REFRESH_TICKS) => {
                let site = self.timeline.site?;
                return Some(Effect::Instances {
                    site,
                    vm_id: self.timeline.vm_id.clone(),
                });
            }
            _ => {}
        }
        None
    }

    /// The plan a test of the pane's VM at an instance runs: one holding
    /// the VM whose recovery site holds the replica.
    fn plan_of_timeline(&self) -> Option<&ferry_api::types::Plan> {
        let site = self.model.sites.get(self.timeline.site?)?;
        self.model.plans().into_iter().find(|p| {
            p.recovery_site == site.name && p.vms.iter().any(|v| v.vm_id == self.timeline.vm_id)
        })
    }

    /// Whether `t` is offered: a plan holds the VM and the token may test
    /// it there.
    pub fn may_test_at_instance(&self) -> bool {
        self.plan_of_timeline()
            .is_some_and(|p| self.may(role_for(RunMode::Test), Some(&p.recovery_site)))
    }

    /// Whether `A` is offered: the admin role at the VM's own site.
    pub fn may_attack(&self) -> bool {
        self.attack_site()
            .is_some_and(|s| self.may(Role::Admin, Some(&s)))
    }

    fn attack_site(&self) -> Option<String> {
        self.model
            .replications()
            .find(|(_, r)| r.vm_id == self.timeline.vm_id)
            .map(|(_, r)| r.source_site.clone())
    }

    fn test_at_instance(&mut self) -> Option<Effect> {
        if self.read_only {
            self.status = Some("read-only: no actions here".into());
            return None;
        }
        let vm = self.model.vm_name(&self.timeline.vm_id);
        let Some(instance) = self.timeline.selected().map(|i| i.id.clone()) else {
            self.status = Some(format!("{vm}: no instance is listed to test at"));
            return None;
        };
        let Some(plan) = self.plan_of_timeline().cloned() else {
            self.status = Some(format!(
                "{vm}: no plan holding it recovers at its replica's site"
            ));
            return None;
        };
        if !self.may(role_for(RunMode::Test), Some(&plan.recovery_site)) {
            self.status = Some(format!(
                "{} does not give this token the operator role a test needs",
                plan.recovery_site
            ));
            return None;
        }
        if !plan.allowed.contains(&RunMode::Test) {
            self.status = Some(format!(
                "plan {} is {}: no test now; {}",
                plan.name,
                plan.state.label(),
                plan.next
            ));
            return None;
        }
        let site = self.model.site_index(&plan.recovery_site)?;
        self.overlay = Overlay::None;
        self.run_dialog = Some(RunDialog::Start(Start {
            plan_id: plan.id.clone(),
            plan_name: plan.name.clone(),
            site,
            mode: RunMode::Test,
            force: false,
            instance: Some((self.timeline.vm_id.clone(), vm, instance)),
        }));
        None
    }

    fn attack(&mut self) -> Option<Effect> {
        if self.read_only {
            self.status = Some("read-only: no actions here".into());
            return None;
        }
        let site_name = self.attack_site()?;
        let vm = self.model.vm_name(&self.timeline.vm_id);
        if !self.may(Role::Admin, Some(&site_name)) {
            self.status = Some(format!(
                "{site_name} does not give this token the admin role the demo attack needs"
            ));
            return None;
        }
        let site = self.model.site_index(&site_name)?;
        self.status = Some(format!("starting the demo attack on {vm}…"));
        Some(Effect::Post {
            site,
            call: Call::SimulateAttack {
                vm_id: self.timeline.vm_id.clone(),
            },
            vm,
        })
    }
}

/// Ticks between refreshes of an open timeline: a new instance shows
/// within one RPO of the fastest demo VM.
const REFRESH_TICKS: u32 = 5;
