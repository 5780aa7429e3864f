//! Pinned runs of the editors' fixture plan Tier-1 (db-01, db-02 at
//! site-b) for the run view's and history's tests and snapshots.

use ferry_api::types::{PendingPrompt, Run, RunMode, RunState, RunVm, Step, StepState, SubStep};

use crate::editor::fixture::T0;
use crate::model::FeedUpdate;

fn sub(
    vm: &str,
    state: StepState,
    started: Option<u64>,
    ended: Option<u64>,
    message: &str,
) -> SubStep {
    SubStep {
        vm_id: format!("site-a.{vm}"),
        vm: vm.into(),
        state,
        started_ms: started,
        ended_ms: ended,
        message: message.into(),
    }
}

fn step(
    name: &str,
    state: StepState,
    started: Option<u64>,
    ended: Option<u64>,
    message: &str,
) -> Step {
    Step {
        name: name.into(),
        state,
        started_ms: started,
        ended_ms: ended,
        message: message.into(),
        output: None,
        vms: Vec::new(),
    }
}

fn vm(name: &str, result: StepState) -> RunVm {
    RunVm {
        vm_id: format!("site-a.{name}"),
        vm: name.into(),
        priority: 1,
        rpo_seconds: Some(15),
        point_time_ms: None,
        last_write_ms: None,
        last_verified_ms: None,
        data_loss_seconds: None,
        verified: None,
        heartbeat_ms: None,
        result,
        message: String::new(),
        instance: None,
        newest_point_ms: None,
        retention: None,
    }
}

/// A test run of Tier-1, 95 s in, waiting on a prompt before power-on,
/// with its sub-steps half done.
pub fn waiting() -> Run {
    let t = |s: u64| Some(T0 - 95_000 + s * 1000);
    let mut copies = step(
        "Create test copies",
        StepState::Done,
        t(12),
        t(20),
        "2 writable copies",
    );
    copies.vms = vec![
        sub(
            "db-01",
            StepState::Done,
            t(12),
            t(16),
            "copy of instance 41",
        ),
        sub(
            "db-02",
            StepState::Done,
            t(12),
            t(20),
            "copy of instance 40",
        ),
    ];
    let mut power = step("Power on priority 1", StepState::Running, t(40), None, "");
    power.vms = vec![
        sub(
            "db-01",
            StepState::Done,
            t(40),
            t(52),
            "heartbeat after 12 s",
        ),
        sub(
            "db-02",
            StepState::Running,
            t(52),
            None,
            "waiting for heartbeat",
        ),
    ];
    let mut prompt = step(
        "Prompt: tell the DBAs",
        StepState::Waiting,
        t(60),
        None,
        "waiting for an operator",
    );
    prompt.vms = Vec::new();
    Run {
        id: "run-3".into(),
        plan_id: "plan-tier-1".into(),
        plan_name: "Tier-1".into(),
        mode: RunMode::Test,
        state: RunState::Waiting,
        protected_site: "site-a".into(),
        recovery_site: "site-b".into(),
        started_by: "admin".into(),
        started_ms: T0 - 95_000,
        skipped: Vec::new(),
        ended_ms: None,
        rto_seconds: None,
        steps: vec![
            step(
                "Synchronize storage",
                StepState::Done,
                t(0),
                t(12),
                "2 VMs synchronized",
            ),
            copies,
            step(
                "Connect test networks",
                StepState::Done,
                t(20),
                t(21),
                "prod-db → test-bubble",
            ),
            power,
            prompt,
            step("Post power-on callouts", StepState::Pending, None, None, ""),
        ],
        vms: vec![
            vm("db-01", StepState::Done),
            vm("db-02", StepState::Pending),
        ],
        prompt: Some(PendingPrompt {
            step: 4,
            message: "Tell the DBAs the test copies are up".into(),
            vm_id: None,
        }),
        message: "waiting for an operator: Tell the DBAs the test copies are up".into(),
        cancel_requested: false,
    }
}

/// A disaster recovery of Tier-1 an hour ago: storage sync warned (site-a
/// was down), db-02 failed its verification.
pub fn finished() -> Run {
    let start = T0 - 3_600_000;
    let t = |s: u64| Some(start + s * 1000);
    let mut sync = step(
        "Synchronize storage",
        StepState::Warning,
        t(0),
        t(5),
        "site-a unreachable: a | b",
    );
    sync.vms = vec![sub("db-01", StepState::Done, t(0), t(5), "instance 41")];
    let mut db1 = vm("db-01", StepState::Done);
    db1.data_loss_seconds = Some(3.2);
    db1.verified = Some(true);
    db1.heartbeat_ms = t(40);
    let mut db2 = vm("db-02", StepState::Error);
    db2.verified = Some(false);
    db2.message = "record log torn at 812".into();
    Run {
        id: "run-7".into(),
        mode: RunMode::DisasterRecovery,
        state: RunState::SucceededWithWarnings,
        started_ms: start,
        ended_ms: Some(start + 45_000),
        rto_seconds: Some(42.5),
        steps: vec![
            sync,
            step("Promote replicas", StepState::Done, t(5), t(9), ""),
            step(
                "Power on priority 1",
                StepState::Error,
                t(9),
                t(45),
                "db-02 failed verification",
            ),
        ],
        vms: vec![db1, db2],
        prompt: None,
        message: "1 VM failed".into(),
        ..waiting()
    }
}

/// Both runs, as site-b's feed would bring them.
pub fn feed() -> Vec<FeedUpdate> {
    [finished(), waiting()]
        .into_iter()
        .map(|run| FeedUpdate::Event {
            site: 1,
            event: ferry_api::types::SiteEvent::Run(run),
        })
        .collect()
}
