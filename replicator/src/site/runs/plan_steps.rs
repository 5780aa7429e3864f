//! Which steps a run of each mode has, in order, and what each does.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Sync { last: bool },
    ShutDown,
    TestCopies,
    TestNetworks,
    Promote,
    PlanCallouts { post: bool },
    VmCallouts { priority: u8, post: bool },
    Addresses { priority: u8 },
    PowerOn { priority: u8 },
    Heartbeats { priority: u8 },
    PowerOffTests,
    DiscardCopies,
    Demote,
    ReverseReplication,
    Handover,
}

/// The steps of a run, in order, with what each does.
pub(super) fn steps_for(
    request: &RunRequest,
    plan: &StoredPlan,
    vms: &[VmPlan],
) -> (Vec<Step>, Vec<Kind>) {
    let all: Vec<(String, String)> = vms.iter().map(|v| (v.id.clone(), v.name.clone())).collect();
    let mut steps = Vec::new();
    let mut kinds = Vec::new();
    let mut add = |step: Step, kind: Kind| {
        steps.push(step);
        kinds.push(kind);
    };
    let protected = &plan.protected_site;
    match request.mode {
        RunMode::Test => {
            if request.sync.unwrap_or(true) {
                add(
                    Step::per_vm("Synchronize storage", &all),
                    Kind::Sync { last: false },
                );
            }
            add(
                Step::per_vm("Create test copies of the replicas", &all),
                Kind::TestCopies,
            );
            add(
                Step::per_vm("Connect test networks", &all),
                Kind::TestNetworks,
            );
        }
        RunMode::PlannedMigration | RunMode::DisasterRecovery => {
            add(
                Step::per_vm(format!("Pre-synchronize storage from {protected}"), &all),
                Kind::Sync { last: false },
            );
            add(
                Step::per_vm(format!("Shut down protected VMs at {protected}"), &all),
                Kind::ShutDown,
            );
            add(
                Step::per_vm("Final synchronize storage", &all),
                Kind::Sync { last: true },
            );
            add(Step::per_vm("Make replicas writable", &all), Kind::Promote);
        }
        RunMode::Cleanup => {
            add(
                Step::per_vm("Power off test VMs", &all),
                Kind::PowerOffTests,
            );
            add(
                Step::per_vm("Discard test copies", &all),
                Kind::DiscardCopies,
            );
            return (steps, kinds);
        }
        RunMode::Reprotect => {
            add(
                Step::per_vm(format!("Turn the disks at {protected} into seeds"), &all),
                Kind::Demote,
            );
            add(
                Step::per_vm(format!("Replicate back to {protected}"), &all),
                Kind::ReverseReplication,
            );
            add(
                Step::new(format!("Hand the plan to {protected}")),
                Kind::Handover,
            );
            return (steps, kinds);
        }
    }
    if !plan.spec.pre_power_on.is_empty() {
        add(
            Step::new("Plan callouts before power-on"),
            Kind::PlanCallouts { post: false },
        );
    }
    for priority in 1..=5u8 {
        let at: Vec<(String, String)> = vms
            .iter()
            .filter(|v| v.settings.priority == priority)
            .map(|v| (v.id.clone(), v.name.clone()))
            .collect();
        if at.is_empty() {
            continue;
        }
        let with = |post: bool| -> Vec<(String, String)> {
            vms.iter()
                .filter(|v| v.settings.priority == priority)
                .filter(|v| {
                    if post {
                        !v.settings.post_power_on.is_empty()
                    } else {
                        !v.settings.pre_power_on.is_empty()
                    }
                })
                .map(|v| (v.id.clone(), v.name.clone()))
                .collect()
        };
        let pre = with(false);
        if !pre.is_empty() {
            add(
                Step::per_vm(format!("Priority {priority}: pre power-on callouts"), &pre),
                Kind::VmCallouts {
                    priority,
                    post: false,
                },
            );
        }
        add(
            Step::per_vm(format!("Priority {priority}: IP customization"), &at),
            Kind::Addresses { priority },
        );
        add(
            Step::per_vm(format!("Priority {priority}: power on"), &at),
            Kind::PowerOn { priority },
        );
        add(
            Step::per_vm(format!("Priority {priority}: wait for heartbeats"), &at),
            Kind::Heartbeats { priority },
        );
        let post = with(true);
        if !post.is_empty() {
            add(
                Step::per_vm(
                    format!("Priority {priority}: post power-on callouts"),
                    &post,
                ),
                Kind::VmCallouts {
                    priority,
                    post: true,
                },
            );
        }
    }
    if !plan.spec.post_power_on.is_empty() {
        add(
            Step::new("Plan callouts after power-on"),
            Kind::PlanCallouts { post: true },
        );
    }
    (steps, kinds)
}
