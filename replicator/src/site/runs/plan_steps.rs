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

/// The steps of a run, in order, with what each does: one function per
/// mode below.
pub(super) fn steps_for(
    request: &RunRequest,
    plan: &StoredPlan,
    vms: &[VmPlan],
) -> (Vec<Step>, Vec<Kind>) {
    let mut steps = Steps {
        all: vms.iter().map(|v| (v.id.clone(), v.name.clone())).collect(),
        protected: &plan.protected_site,
        steps: Vec::new(),
        kinds: Vec::new(),
    };
    match request.mode {
        RunMode::Test => {
            steps.test(request.sync.unwrap_or(true));
            steps.power_on(plan, vms);
        }
        RunMode::PlannedMigration | RunMode::DisasterRecovery => {
            steps.failover();
            steps.power_on(plan, vms);
        }
        RunMode::Cleanup => steps.cleanup(),
        RunMode::Reprotect => steps.reprotect(),
    }
    (steps.steps, steps.kinds)
}

/// The steps of a run as they are added.
struct Steps<'a> {
    /// Every VM of the run, as (id, name).
    all: Vec<(String, String)>,
    protected: &'a str,
    steps: Vec<Step>,
    kinds: Vec<Kind>,
}

impl Steps<'_> {
    fn add(&mut self, step: Step, kind: Kind) {
        self.steps.push(step);
        self.kinds.push(kind);
    }

    fn per_vm(&mut self, name: impl Into<String>, kind: Kind) {
        let step = Step::per_vm(name, &self.all);
        self.add(step, kind);
    }

    /// A test: copies of the replicas on test networks (then powered on).
    fn test(&mut self, sync: bool) {
        if sync {
            self.per_vm("Synchronize storage", Kind::Sync { last: false });
        }
        self.per_vm("Create test copies of the replicas", Kind::TestCopies);
        self.per_vm("Connect test networks", Kind::TestNetworks);
    }

    /// A planned migration or a disaster recovery: the protected VMs
    /// stopped and shipped, the replicas made writable (then powered on).
    fn failover(&mut self) {
        let protected = self.protected;
        self.per_vm(
            format!("Pre-synchronize storage from {protected}"),
            Kind::Sync { last: false },
        );
        self.per_vm(
            format!("Shut down protected VMs at {protected}"),
            Kind::ShutDown,
        );
        self.per_vm("Final synchronize storage", Kind::Sync { last: true });
        self.per_vm("Make replicas writable", Kind::Promote);
    }

    /// A cleanup after a test.
    fn cleanup(&mut self) {
        self.per_vm("Power off test VMs", Kind::PowerOffTests);
        self.per_vm("Discard test copies", Kind::DiscardCopies);
    }

    /// A reprotect: replication reversed and the plan handed to the peer.
    fn reprotect(&mut self) {
        let protected = self.protected;
        self.per_vm(
            format!("Turn the disks at {protected} into seeds"),
            Kind::Demote,
        );
        self.per_vm(
            format!("Replicate back to {protected}"),
            Kind::ReverseReplication,
        );
        self.add(
            Step::new(format!("Hand the plan to {protected}")),
            Kind::Handover,
        );
    }

    /// Powering on, priority by priority, between the plan's callouts.
    fn power_on(&mut self, plan: &StoredPlan, vms: &[VmPlan]) {
        if !plan.spec.pre_power_on.is_empty() {
            self.add(
                Step::new("Plan callouts before power-on"),
                Kind::PlanCallouts { post: false },
            );
        }
        for priority in 1..=5u8 {
            self.priority(priority, vms);
        }
        if !plan.spec.post_power_on.is_empty() {
            self.add(
                Step::new("Plan callouts after power-on"),
                Kind::PlanCallouts { post: true },
            );
        }
    }

    /// One priority's steps, if it has VMs.
    fn priority(&mut self, priority: u8, vms: &[VmPlan]) {
        let at = |with: &dyn Fn(&PlanVm) -> bool| -> Vec<(String, String)> {
            vms.iter()
                .filter(|v| v.settings.priority == priority && with(&v.settings))
                .map(|v| (v.id.clone(), v.name.clone()))
                .collect()
        };
        let all = at(&|_| true);
        if all.is_empty() {
            return;
        }
        let pre = at(&|s| !s.pre_power_on.is_empty());
        if !pre.is_empty() {
            self.add(
                Step::per_vm(format!("Priority {priority}: pre power-on callouts"), &pre),
                Kind::VmCallouts {
                    priority,
                    post: false,
                },
            );
        }
        self.add(
            Step::per_vm(format!("Priority {priority}: IP customization"), &all),
            Kind::Addresses { priority },
        );
        self.add(
            Step::per_vm(format!("Priority {priority}: power on"), &all),
            Kind::PowerOn { priority },
        );
        self.add(
            Step::per_vm(format!("Priority {priority}: wait for heartbeats"), &all),
            Kind::Heartbeats { priority },
        );
        let post = at(&|s| !s.post_power_on.is_empty());
        if !post.is_empty() {
            self.add(
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
}
