//! Recovery runs, executed here at the plan's recovery site so a dropped
//! SSH session never stops a failover. Every change to a run is recorded in
//! site.db (coalesced to one write per 100 ms) and streamed as an event; a
//! run found unfinished at start ends `interrupted` with its steps intact,
//! and its plan says what to do next.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use super::control::{ControlCall, ControlReply, VmOutcome};
use super::notify::Severity;
use super::protection::{StoredGroup, StoredPlan};
use super::{Site, SiteError};
use crate::api::types::{
    Callout, IpCustomization, MappingSpec, PendingPrompt, Placeholder, PlanState, PlanVm,
    ReplicationRequest, Run, RunMode, RunRequest, RunState, RunVm, SiteEvent, Step, StepState,
    VmInfo,
};
use crate::config::NicSeed;
use crate::recovery::mapping;
use crate::recovery::run::{plan_state_after, plan_state_during};
use crate::replication::sender::now_ms;
use crate::storage::tracked_disk::lock;
use crate::store::{self, DocKind};

/// Output kept of a command callout.
const OUTPUT_TAIL: usize = 4096;
/// How long the protected site may take to synchronize.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a call that does not synchronize may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Runs kept in the history.
const HISTORY: usize = 200;

/// A run in progress.
pub(crate) struct ActiveRun {
    run: Mutex<Run>,
    changed: Notify,
    cancel: AtomicBool,
    ack: Notify,
    /// Held while the run is saved; true once its final state is saved, so
    /// a late progress save never overwrites the end.
    saved_final: tokio::sync::Mutex<bool>,
}

use std::sync::Mutex;

/// One VM as a run sees it.
#[derive(Clone)]
struct VmPlan {
    id: String,
    name: String,
    settings: PlanVm,
    info: Option<VmInfo>,
    placeholder: Option<Placeholder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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

struct Exec {
    site: Arc<Site>,
    active: Arc<ActiveRun>,
    mode: RunMode,
    force: bool,
    plan: StoredPlan,
    mappings: MappingSpec,
    vms: Vec<VmPlan>,
    kinds: Vec<Kind>,
    /// VMs out of the run after an error.
    failed: Mutex<std::collections::HashSet<String>>,
    promoted: AtomicBool,
}

impl ActiveRun {
    fn with<R>(&self, f: impl FnOnce(&mut Run) -> R) -> R {
        let r = f(&mut lock(&self.run));
        self.changed.notify_one();
        r
    }

    fn snapshot(&self) -> Run {
        lock(&self.run).clone()
    }
}

/// `HH:MM:SS` UTC of a time in ms since the epoch.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}Z", s / 3600 % 24, s / 60 % 60, s % 60)
}

fn tail(text: &[u8]) -> String {
    let start = text.len().saturating_sub(OUTPUT_TAIL);
    let mut s = String::from_utf8_lossy(&text[start..]).to_string();
    if start > 0 {
        s.insert(0, '…');
    }
    s
}

/// Runs a command callout on this host: `sh -c`, with the run's context in
/// the environment, killed at its timeout. Ok is the output's tail.
async fn run_command(
    command: &str,
    timeout: u64,
    env: &[(&str, String)],
) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `sh -c`: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(timeout), child.wait_with_output()).await {
        Err(_) => Err(format!("timed out after {timeout} s and was killed")),
        Ok(Err(e)) => Err(format!("failed: {e}")),
        Ok(Ok(out)) => {
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            let text = tail(&all);
            if out.status.success() {
                Ok(text)
            } else {
                Err(format!(
                    "exited with {}{}",
                    out.status,
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    }
                ))
            }
        }
    }
}

impl Exec {
    fn run(&self) -> &ActiveRun {
        &self.active
    }

    fn cancelled(&self) -> bool {
        self.active.cancel.load(Ordering::Relaxed)
    }

    fn live(&self) -> Vec<&VmPlan> {
        let failed = lock(&self.failed);
        self.vms
            .iter()
            .filter(|v| !failed.contains(&v.id))
            .collect()
    }

    fn fail_vm(&self, id: &str) {
        lock(&self.failed).insert(id.to_string());
    }

    fn start_step(&self, i: usize) {
        self.run().with(|r| {
            r.steps[i].state = StepState::Running;
            r.steps[i].started_ms = Some(now_ms());
        });
    }

    fn end_step(&self, i: usize, state: StepState, message: impl Into<String>) {
        let message = message.into();
        self.run().with(|r| {
            let step = &mut r.steps[i];
            step.state = state;
            step.ended_ms = Some(now_ms());
            if !message.is_empty() {
                step.message = message;
            }
        });
    }

    /// Ends a step with the summary of its VMs.
    fn end_step_by_vms(&self, i: usize) {
        self.run().with(|r| {
            let step = &mut r.steps[i];
            for sub in step
                .vms
                .iter_mut()
                .filter(|s| s.state == StepState::Pending)
            {
                sub.state = StepState::Skipped;
                sub.message = "skipped: the VM failed an earlier step".into();
            }
            step.state = step.summary();
            step.ended_ms = Some(now_ms());
            let count = |s: StepState| step.vms.iter().filter(|v| v.state == s).count();
            step.message = format!(
                "{} done, {} warning, {} error, {} skipped",
                count(StepState::Done),
                count(StepState::Warning),
                count(StepState::Error),
                count(StepState::Skipped)
            );
        });
    }

    fn sub(&self, i: usize, vm: &str, state: StepState, message: impl Into<String>) {
        let message = message.into();
        self.run().with(|r| {
            if let Some(s) = r.steps[i].vms.iter_mut().find(|s| s.vm_id == vm) {
                if state == StepState::Running {
                    s.started_ms = Some(now_ms());
                } else {
                    s.started_ms.get_or_insert(now_ms());
                    s.ended_ms = Some(now_ms());
                }
                s.state = state;
                s.message = message;
            }
            if matches!(state, StepState::Error | StepState::Warning)
                && let Some(v) = r.vm_mut(vm)
                && v.result != StepState::Error
            {
                v.result = state;
            }
        });
        if state == StepState::Error {
            self.fail_vm(vm);
        }
    }

    fn vm_record(&self, vm: &str, f: impl FnOnce(&mut RunVm)) {
        self.run().with(|r| {
            if let Some(v) = r.vm_mut(vm) {
                f(v);
            }
        });
    }

    fn env(&self, vm: Option<&VmPlan>) -> Vec<(&'static str, String)> {
        let r = self.active.snapshot();
        let mut env = vec![
            ("FERRY_RUN", r.id),
            ("FERRY_PLAN", r.plan_name),
            ("FERRY_MODE", format!("{:?}", self.mode).to_lowercase()),
            ("FERRY_SITE", self.site.name.clone()),
        ];
        if let Some(vm) = vm {
            env.push(("FERRY_VM", vm.name.clone()));
            env.push(("FERRY_VM_ID", vm.id.clone()));
        }
        env
    }

    /// Waits for an operator's acknowledgement (or a cancel).
    async fn prompt(&self, step: usize, vm: Option<&VmPlan>, message: &str) -> bool {
        self.run().with(|r| {
            r.state = RunState::Waiting;
            r.steps[step].state = StepState::Waiting;
            r.message = format!("waiting for an operator: {message}");
            r.prompt = Some(PendingPrompt {
                step,
                message: message.to_string(),
                vm_id: vm.map(|v| v.id.clone()),
            });
        });
        loop {
            let acked = self.active.ack.notified();
            if self.cancelled() {
                self.run().with(|r| r.prompt = None);
                return false;
            }
            if lock(&self.active.run).prompt.is_none() {
                break;
            }
            tokio::select! {
                () = acked => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        self.run().with(|r| {
            r.state = RunState::Running;
            r.steps[step].state = StepState::Running;
            r.message.clear();
        });
        true
    }

    /// Runs callouts in order; Err is the first failure.
    async fn callouts(
        &self,
        step: usize,
        vm: Option<&VmPlan>,
        callouts: &[Callout],
    ) -> Result<String, String> {
        let mut outputs = Vec::new();
        for callout in callouts {
            match callout {
                Callout::Command {
                    command,
                    timeout_seconds,
                } => {
                    let out = run_command(command, *timeout_seconds, &self.env(vm))
                        .await
                        .map_err(|e| format!("`{command}` {e}"))?;
                    outputs.push(out);
                }
                Callout::Prompt { message } => {
                    if !self.prompt(step, vm, message).await {
                        return Err("cancelled while waiting for an operator".into());
                    }
                    outputs.push(format!("acknowledged: {message}"));
                }
            }
        }
        Ok(tail(outputs.join("\n").as_bytes()))
    }

    /// Marks the live VMs running in step `i` and asks the protected site
    /// to do `call` to them.
    async fn ask_protected_site(
        &self,
        i: usize,
        doing: &str,
        call: impl FnOnce(Vec<String>) -> ControlCall,
        timeout: Duration,
    ) -> Result<Vec<VmOutcome>, String> {
        let ids: Vec<String> = self.live().iter().map(|v| v.id.clone()).collect();
        for id in &ids {
            self.sub(i, id, StepState::Running, doing);
        }
        self.call_peer(call(ids), timeout).await
    }

    async fn call_peer(
        &self,
        call: ControlCall,
        timeout: Duration,
    ) -> Result<Vec<VmOutcome>, String> {
        match self.site.call_peer(&call, timeout).await? {
            ControlReply::Vms { vms } => Ok(vms),
            ControlReply::Done => Ok(Vec::new()),
            other => Err(format!("unexpected answer from the peer: {other:?}")),
        }
    }

    /// A protected-site failure: stops a planned migration; a warning for a
    /// disaster recovery (the site may be gone).
    fn protected_site_failure(&self) -> StepState {
        if self.mode == RunMode::DisasterRecovery {
            StepState::Warning
        } else {
            StepState::Error
        }
    }

    async fn step(&self, i: usize, kind: Kind) -> Result<(), String> {
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
                            mapping::test_network(&self.mappings, &n.network).map_or_else(
                                || format!("{} → (disconnected)", n.network),
                                |t| format!("{} → {t}", n.network),
                            )
                        })
                        .collect();
                    let all = nics
                        .iter()
                        .all(|n| mapping::test_network(&self.mappings, &n.network).is_some());
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
                let demote = |vm_ids| ControlCall::Demote { vm_ids };
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

    async fn sync(&self, i: usize, last: bool) -> Result<(), String> {
        let call = |vm_ids| ControlCall::Sync {
            vm_ids,
            timeout_seconds: SYNC_TIMEOUT.as_secs(),
        };
        let timeout = SYNC_TIMEOUT + Duration::from_secs(5);
        match self
            .ask_protected_site(i, "synchronizing", call, timeout)
            .await
        {
            Ok(outcomes) => {
                for o in outcomes {
                    match (o.point_time_ms, o.error) {
                        (Some(point), _) => {
                            if last {
                                self.vm_record(&o.vm_id, |v| v.point_time_ms = Some(point));
                            }
                            self.sub(
                                i,
                                &o.vm_id,
                                StepState::Done,
                                format!(
                                    "instance of {} complete at {}",
                                    clock(point),
                                    self.site.name
                                ),
                            );
                        }
                        (None, Some(e)) => {
                            let state = if self.mode == RunMode::Test {
                                StepState::Warning
                            } else {
                                self.protected_site_failure()
                            };
                            self.sub(i, &o.vm_id, state, e);
                        }
                        (None, None) => {}
                    }
                }
                self.end_step_by_vms(i);
                self.stop_migration_on_error(i, "the protected site could not synchronize")
            }
            Err(e) => self.peer_down(i, e),
        }
    }

    /// A planned migration stops at a protected-site error, before anything
    /// changes at the recovery site: nothing may be lost.
    fn stop_migration_on_error(&self, i: usize, why: &str) -> Result<(), String> {
        if self.mode == RunMode::PlannedMigration
            && lock(&self.active.run).steps[i].state == StepState::Error
        {
            return Err(format!("{why}; nothing was changed at the recovery site"));
        }
        Ok(())
    }

    /// The protected site did not answer at all.
    fn peer_down(&self, i: usize, e: String) -> Result<(), String> {
        let state = match self.mode {
            RunMode::Test | RunMode::DisasterRecovery => StepState::Warning,
            _ => StepState::Error,
        };
        self.run().with(|r| {
            for s in r.steps[i].vms.iter_mut() {
                s.state = StepState::Skipped;
            }
        });
        let message = format!("site {} did not answer: {e}", self.plan.protected_site);
        self.end_step(
            i,
            state,
            if state == StepState::Warning {
                format!("{message}; skipped")
            } else {
                message.clone()
            },
        );
        if state == StepState::Error {
            Err(message)
        } else {
            Ok(())
        }
    }

    async fn shut_down(&self, i: usize) -> Result<(), String> {
        let call = |vm_ids| ControlCall::ShutDown { vm_ids };
        match self
            .ask_protected_site(i, "shutting down", call, CALL_TIMEOUT)
            .await
        {
            Ok(outcomes) => {
                for o in outcomes {
                    match o.error {
                        None => {
                            self.vm_record(&o.vm_id, |v| {
                                if o.last_write_ms.is_some() {
                                    v.last_write_ms = o.last_write_ms;
                                }
                            });
                            self.sub(i, &o.vm_id, StepState::Done, "shut down cleanly");
                        }
                        Some(e) => self.sub(i, &o.vm_id, self.protected_site_failure(), e),
                    }
                }
                self.end_step_by_vms(i);
                self.stop_migration_on_error(i, "a protected VM could not be shut down")
            }
            Err(e) => self.peer_down(i, e),
        }
    }

    /// A VM's NICs at this site: networks mapped (test networks for a
    /// test), addresses per its IP customization.
    fn addresses(&self, vm: &VmPlan, test: bool) -> Vec<NicSeed> {
        let nics = vm.info.as_ref().map(|v| v.nics.clone()).unwrap_or_default();
        let overrides = self.mappings.ip_overrides.iter().find(|o| o.vm_id == vm.id);
        nics.iter()
            .enumerate()
            .map(|(i, nic)| {
                let network = if test {
                    mapping::test_network(&self.mappings, &nic.network)
                        .unwrap_or("disconnected")
                        .to_string()
                } else {
                    vm.placeholder
                        .as_ref()
                        .and_then(|p| p.networks.get(i).cloned())
                        .unwrap_or_else(|| nic.network.clone())
                };
                match &vm.settings.ip_customization {
                    IpCustomization::Off => NicSeed {
                        network,
                        ..nic.clone()
                    },
                    IpCustomization::Manual { nics } => {
                        mapping::customize(nic, &network, &[], nics.iter().find(|n| n.nic == i))
                    }
                    IpCustomization::Auto => mapping::customize(
                        nic,
                        &network,
                        &self.mappings.ip_rules,
                        overrides.and_then(|o| o.nics.iter().find(|n| n.nic == i)),
                    ),
                }
            })
            .collect()
    }

    /// Powers on one priority's VMs in waves: each wave is every VM whose
    /// dependencies have a heartbeat; a wave boots at once.
    async fn power_on(&self, priority: u8, step: usize, hb_step: usize) {
        let order: Vec<&VmPlan> = self
            .live()
            .into_iter()
            .filter(|v| v.settings.priority == priority)
            .collect();
        let mut beating: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut pending: Vec<&VmPlan> = order;
        for vm in pending.iter().filter(|v| !v.settings.power_on) {
            self.sub(
                step,
                &vm.id,
                StepState::Skipped,
                "left powered off by the plan",
            );
            self.sub(hb_step, &vm.id, StepState::Skipped, "left powered off");
            beating.insert(vm.id.clone());
        }
        pending.retain(|v| v.settings.power_on);
        while !pending.is_empty() {
            if self.cancelled() {
                return;
            }
            let failed = lock(&self.failed).clone();
            let (wave, rest): (Vec<&VmPlan>, Vec<&VmPlan>) = pending.into_iter().partition(|v| {
                v.settings
                    .depends_on
                    .iter()
                    .all(|d| beating.contains(d) || failed.contains(d))
            });
            pending = rest;
            if wave.is_empty() {
                for vm in &pending {
                    self.sub(
                        step,
                        &vm.id,
                        StepState::Error,
                        "its dependencies never got a heartbeat",
                    );
                }
                return;
            }
            let boots = wave.iter().map(|vm| self.boot_one(vm, step, hb_step));
            for (id, ok) in futures_util::future::join_all(boots).await {
                if ok {
                    beating.insert(id);
                }
            }
        }
    }

    /// Boots one VM and waits for its heartbeat; true when it beats.
    async fn boot_one(&self, vm: &VmPlan, step: usize, hb_step: usize) -> (String, bool) {
        if lock(&self.failed)
            .iter()
            .any(|f| vm.settings.depends_on.contains(f))
        {
            self.sub(step, &vm.id, StepState::Error, "a VM it depends on failed");
            return (vm.id.clone(), false);
        }
        self.sub(
            step,
            &vm.id,
            StepState::Running,
            "booting; the guest verifies its disk",
        );
        let booted = if self.mode == RunMode::Test {
            self.site
                .boot_test_vm(&vm.id, &self.addresses(vm, true))
                .await
        } else {
            self.site.power_on_recovered(&vm.id).await
        };
        let verification = match booted {
            Ok(v) => v,
            Err(e) => {
                self.sub(step, &vm.id, StepState::Error, e);
                return (vm.id.clone(), false);
            }
        };
        self.vm_record(&vm.id, |v| {
            v.verified = Some(verification.ok);
            v.last_verified_ms = verification.last_time_ms;
            v.compute_data_loss();
        });
        if !verification.ok {
            self.sub(
                step,
                &vm.id,
                StepState::Error,
                format!(
                    "disk verification failed: {}",
                    verification
                        .problem
                        .clone()
                        .unwrap_or_else(|| "unknown problem".into())
                ),
            );
            return (vm.id.clone(), false);
        }
        self.sub(
            step,
            &vm.id,
            StepState::Done,
            format!(
                "powered on; {} records verified, newest #{}",
                verification.records, verification.last_seq
            ),
        );
        self.sub(
            hb_step,
            &vm.id,
            StepState::Running,
            "waiting for a heartbeat",
        );
        let booted_at = now_ms();
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(vm.settings.heartbeat_timeout_seconds);
        loop {
            let beat = self
                .site
                .guest_status(&vm.id)
                .map(|s| s.heartbeat_ms.load(Ordering::Relaxed))
                .filter(|&t| t + 1000 >= booted_at);
            if let Some(beat) = beat {
                self.vm_record(&vm.id, |v| {
                    v.heartbeat_ms = Some(beat.max(booted_at));
                    if v.result == StepState::Pending {
                        v.result = StepState::Done;
                    }
                });
                self.sub(hb_step, &vm.id, StepState::Done, "heartbeat");
                return (vm.id.clone(), true);
            }
            if tokio::time::Instant::now() >= deadline || self.cancelled() {
                self.sub(
                    hb_step,
                    &vm.id,
                    StepState::Error,
                    format!(
                        "no heartbeat within {} s",
                        vm.settings.heartbeat_timeout_seconds
                    ),
                );
                return (vm.id.clone(), false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn execute(self) {
        let mut stopped: Option<String> = None;
        for (i, kind) in self.kinds.clone().into_iter().enumerate() {
            if self.cancelled() {
                stopped = Some(format!(
                    "cancelled before \"{}\"",
                    lock(&self.active.run).steps[i].name
                ));
                break;
            }
            if matches!(kind, Kind::Heartbeats { .. }) {
                continue;
            }
            self.start_step(i);
            if let Err(e) = self.step(i, kind).await {
                stopped = Some(e);
                break;
            }
            if !lock(&self.active.run).steps[i].is_finished() {
                self.end_step_by_vms(i);
            }
        }
        self.finish(stopped).await;
    }

    async fn finish(self, stopped: Option<String>) {
        let cancelled = self.cancelled();
        let promoted = self.promoted.load(Ordering::Relaxed);
        let run = {
            let mut run = self.active.snapshot();
            let r = &mut run;
            for s in r.steps.iter_mut().filter(|s| !s.is_finished()) {
                s.state = StepState::Skipped;
                for v in s.vms.iter_mut().filter(|v| v.state == StepState::Pending) {
                    v.state = StepState::Skipped;
                }
            }
            for v in r.vms.iter_mut().filter(|v| v.result == StepState::Pending) {
                v.result = StepState::Skipped;
            }
            r.compute_rto();
            r.state = if cancelled {
                RunState::Cancelled
            } else if stopped.is_some() {
                RunState::Failed
            } else {
                r.outcome()
            };
            r.ended_ms = Some(now_ms());
            r.prompt = None;
            r.message = match (&stopped, r.state) {
                (Some(why), _) => why.clone(),
                (None, RunState::Succeeded) => format!("{} complete", r.mode.label()),
                (None, state) => {
                    let first = r
                        .steps
                        .iter()
                        .find(|s| matches!(s.state, StepState::Error | StepState::Warning))
                        .map(|s| format!(": first at \"{}\": {}", s.name, s.message))
                        .unwrap_or_default();
                    format!("{} {}{first}", r.mode.label(), state.label())
                }
            };
            run
        };
        let mut plan_state = plan_state_after(self.mode, run.state, promoted);
        let handed_over = self.mode == RunMode::Reprotect
            && run.steps.last().is_some_and(|s| s.state == StepState::Done);
        if self.mode == RunMode::Reprotect && !handed_over {
            plan_state = PlanState::Interrupted;
        }
        let site = self.site.clone();
        if let Err(e) = site
            .end_run(&run, &self.plan, plan_state, handed_over)
            .await
        {
            warn!(run = %run.id, "recording the end of the run failed: {e}");
        }
        self.active.changed.notify_one();
        let severity = match run.state {
            RunState::Succeeded => Severity::Info,
            RunState::SucceededWithWarnings | RunState::Cancelled => Severity::Warning,
            _ => Severity::Critical,
        };
        site.alarm(
            "run_finished",
            severity,
            None,
            format!(
                "{} of plan {:?}: {}",
                run.mode.label(),
                run.plan_name,
                run.message
            ),
        )
        .await;
        info!(run = %run.id, state = ?run.state, "run finished");
    }
}

impl Site {
    /// Every run this site knows, newest first.
    pub async fn runs(&self) -> Result<Vec<Run>, SiteError> {
        let mut runs: Vec<Run> = self
            .store
            .call(|c| store::list_docs(c, DocKind::Run))
            .await?;
        let active: BTreeMap<String, Run> = lock(&self.active_runs)
            .iter()
            .map(|(id, a)| (id.clone(), a.snapshot()))
            .collect();
        for r in runs.iter_mut() {
            if let Some(live) = active.get(&r.id) {
                *r = live.clone();
            }
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
        Ok(runs)
    }

    pub async fn run(&self, id: &str) -> Result<Run, SiteError> {
        if let Some(a) = lock(&self.active_runs).get(id) {
            return Ok(a.snapshot());
        }
        self.runs()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| SiteError::NotFound(format!("no run {id} at site {}", self.name)))
    }

    /// Asks a run to stop at its next safe point.
    pub fn cancel_run(&self, id: &str) -> Result<Run, SiteError> {
        let active = lock(&self.active_runs).get(id).cloned().ok_or_else(|| {
            SiteError::Conflict(format!(
                "run {id} is not running here; only a running run can be cancelled"
            ))
        })?;
        active.cancel.store(true, Ordering::Relaxed);
        active.with(|r| {
            r.cancel_requested = true;
            r.message = "cancel requested: stopping at the next safe point".into();
        });
        active.ack.notify_waiters();
        Ok(active.snapshot())
    }

    /// Answers the prompt a run waits on.
    pub fn ack_run(&self, id: &str, who: &str) -> Result<Run, SiteError> {
        let active = lock(&self.active_runs)
            .get(id)
            .cloned()
            .ok_or_else(|| SiteError::Conflict(format!("run {id} is not running here")))?;
        let acked = active.with(|r| {
            let prompt = r.prompt.take()?;
            r.steps[prompt.step].message = format!("acknowledged by {who}: {}", prompt.message);
            Some(prompt)
        });
        if acked.is_none() {
            return Err(SiteError::Conflict(format!(
                "run {id} is not waiting for an operator"
            )));
        }
        active.ack.notify_waiters();
        Ok(active.snapshot())
    }

    /// Starts a run of a plan this site owns.
    pub async fn start_run(
        self: &Arc<Self>,
        plan_id: &str,
        request: RunRequest,
        by: &str,
    ) -> Result<Run, SiteError> {
        let mut plan = self.own_plan(plan_id)?;
        // The freshest view of the protected site, when it answers; after a
        // disaster, the last one seen.
        if let Ok(ControlReply::View(view)) = self
            .call_peer(&ControlCall::View, Duration::from_secs(3))
            .await
        {
            self.take_peer_view(*view).await;
        }
        let view = self.plan_view(&plan);
        if !view.allowed.contains(&request.mode) {
            return Err(SiteError::Conflict(format!(
                "plan {:?} is {}; it cannot start a {} now ({})",
                plan.spec.name,
                plan.state.label(),
                request.mode.label(),
                view.next
            )));
        }
        if request.mode.is_destructive()
            && request.confirm.as_deref() != Some(plan.spec.name.as_str())
        {
            return Err(SiteError::invalid(
                "confirm",
                format!(
                    "a {} must be confirmed with the plan's name: \"confirm\": {:?}",
                    request.mode.label(),
                    plan.spec.name
                ),
            ));
        }
        if request.sync.is_some() && request.mode != RunMode::Test {
            return Err(SiteError::invalid("sync", "only a test run takes `sync`"));
        }
        if request.force.is_some() && request.mode != RunMode::Cleanup {
            return Err(SiteError::invalid("force", "only a cleanup takes `force`"));
        }
        let run_id = super::protection::new_id("run");
        // Take every group's lock, or none.
        let groups: Vec<StoredGroup> = {
            let mut p = lock(&self.protection);
            for g in &plan.spec.groups {
                if let Some(holder) = p.groups.get(g).and_then(|g| g.locked_by.clone()) {
                    return Err(SiteError::Conflict(format!(
                        "protection group {g} is in use by run {holder}; wait for it or cancel it"
                    )));
                }
            }
            plan.spec
                .groups
                .iter()
                .filter_map(|g| {
                    let group = p.groups.get_mut(g)?;
                    group.locked_by = Some(run_id.clone());
                    Some(group.clone())
                })
                .collect()
        };
        for g in groups {
            self.save_group(g).await?;
        }
        let peer = self.peer_view();
        let placeholders: BTreeMap<String, Placeholder> = self
            .own_groups()
            .into_iter()
            .flat_map(|g| g.vms)
            .filter_map(|v| v.placeholder.map(|p| (v.vm_id, p)))
            .collect();
        let members = self.plan_members(&plan.spec.groups);
        let vms: Vec<VmPlan> = view
            .vms
            .iter()
            .map(|settings| {
                let info = peer
                    .as_ref()
                    .and_then(|v| v.vms.iter().find(|x| x.id == settings.vm_id).cloned())
                    .or_else(|| self.vm(&settings.vm_id).ok());
                VmPlan {
                    id: settings.vm_id.clone(),
                    name: members
                        .get(&settings.vm_id)
                        .map_or(settings.vm_id.clone(), |m| m.name.clone()),
                    settings: settings.clone(),
                    info,
                    placeholder: placeholders.get(&settings.vm_id).cloned(),
                }
            })
            .collect();
        let mappings = lock(&self.protection)
            .mappings
            .get(&super::protection::mapping_id(
                &plan.protected_site,
                &plan.recovery_site,
            ))
            .map(|m| m.spec.clone())
            .unwrap_or_default();
        let (steps, kinds) = steps_for(&request, &plan, &vms);
        let run = Run {
            id: run_id.clone(),
            plan_id: plan.id.clone(),
            plan_name: plan.spec.name.clone(),
            mode: request.mode,
            state: RunState::Running,
            protected_site: plan.protected_site.clone(),
            recovery_site: plan.recovery_site.clone(),
            started_by: by.to_string(),
            started_ms: now_ms(),
            ended_ms: None,
            rto_seconds: None,
            steps,
            vms: vms
                .iter()
                .map(|v| {
                    let replication = peer
                        .as_ref()
                        .and_then(|p| p.replications.iter().find(|r| r.vm_id == v.id));
                    RunVm {
                        vm_id: v.id.clone(),
                        vm: v.name.clone(),
                        priority: v.settings.priority,
                        rpo_seconds: replication.map(|r| r.rpo_seconds),
                        point_time_ms: None,
                        // The newest write the protected site reported; a
                        // clean shutdown replaces it with the exact one.
                        last_write_ms: v
                            .info
                            .as_ref()
                            .and_then(|i| i.guest.as_ref())
                            .and_then(|g| g.last_record_ms),
                        last_verified_ms: None,
                        data_loss_seconds: None,
                        verified: None,
                        heartbeat_ms: None,
                        result: StepState::Pending,
                        message: String::new(),
                    }
                })
                .collect(),
            prompt: None,
            message: String::new(),
            cancel_requested: false,
        };
        plan.state = plan_state_during(request.mode);
        plan.last_run = Some(run_id.clone());
        plan.last_mode = Some(request.mode);
        plan.updated_ms = now_ms();
        let stored = run.clone();
        self.store
            .call(move |c| store::put_doc(c, DocKind::Run, &stored.id, &stored))
            .await?;
        self.save_plan(plan.clone()).await?;
        let active = Arc::new(ActiveRun {
            run: Mutex::new(run.clone()),
            changed: Notify::new(),
            cancel: AtomicBool::new(false),
            ack: Notify::new(),
            saved_final: tokio::sync::Mutex::new(false),
        });
        lock(&self.active_runs).insert(run_id.clone(), active.clone());
        tokio::spawn(record(Arc::downgrade(self), active.clone()));
        let exec = Exec {
            site: self.clone(),
            active,
            mode: request.mode,
            force: request.force.unwrap_or(false),
            plan,
            mappings,
            vms,
            kinds,
            failed: Mutex::new(Default::default()),
            promoted: AtomicBool::new(false),
        };
        tokio::spawn(exec.execute());
        self.events.publish(SiteEvent::Run(run.clone()));
        info!(run = %run_id, mode = ?request.mode, plan = %run.plan_name, "run started by {by}");
        Ok(run)
    }

    /// Records a finished run: the run, the plan's new state (or its
    /// handover to the peer), the groups unlocked.
    async fn end_run(
        &self,
        run: &Run,
        plan: &StoredPlan,
        state: PlanState,
        handed_over: bool,
    ) -> Result<(), SiteError> {
        // The plan's state first: whoever sees the run ended sees the plan
        // as the run left it.
        let plan_saved = self.end_plan(run, plan, state, handed_over).await;
        let active = lock(&self.active_runs).get(&run.id).cloned();
        let mut saving = match &active {
            Some(a) => Some(a.saved_final.lock().await),
            None => None,
        };
        let stored = run.clone();
        self.store
            .call(move |c| {
                store::put_doc(c, DocKind::Run, &stored.id, &stored)?;
                // Keep the history bounded.
                let runs: Vec<Run> = store::list_docs(c, DocKind::Run)?;
                if runs.len() > HISTORY {
                    let mut old: Vec<&Run> = runs.iter().collect();
                    old.sort_by_key(|r| r.started_ms);
                    for r in old.iter().take(runs.len() - HISTORY) {
                        store::delete_doc(c, DocKind::Run, &r.id)?;
                    }
                }
                Ok(())
            })
            .await?;
        if let Some(saved) = saving.as_deref_mut() {
            *saved = true;
        }
        if let Some(active) = lock(&self.active_runs).remove(&run.id) {
            *lock(&active.run) = run.clone();
        }
        self.events.publish(SiteEvent::Run(run.clone()));
        plan_saved
    }

    async fn end_plan(
        &self,
        run: &Run,
        plan: &StoredPlan,
        state: PlanState,
        handed_over: bool,
    ) -> Result<(), SiteError> {
        if handed_over {
            for g in &plan.spec.groups {
                let key = g.clone();
                self.store
                    .call(move |c| store::delete_doc(c, DocKind::Group, &key))
                    .await?;
                lock(&self.protection).groups.remove(g);
                self.events
                    .publish(SiteEvent::GroupRemoved { id: g.clone() });
            }
            let key = plan.id.clone();
            self.store
                .call(move |c| store::delete_doc(c, DocKind::Plan, &key))
                .await?;
            lock(&self.protection).plans.remove(&plan.id);
            self.events.publish(SiteEvent::PlanRemoved {
                id: plan.id.clone(),
            });
            self.refresh_protection().await;
            return Ok(());
        }
        self.unlock_groups(&run.id).await?;
        let current = self.own_plan(&plan.id)?;
        self.save_plan(StoredPlan {
            state,
            updated_ms: now_ms(),
            ..current
        })
        .await?;
        Ok(())
    }

    async fn unlock_groups(&self, run_id: &str) -> Result<(), SiteError> {
        let held: Vec<StoredGroup> = lock(&self.protection)
            .groups
            .values()
            .filter(|g| g.locked_by.as_deref() == Some(run_id))
            .cloned()
            .collect();
        for mut g in held {
            g.locked_by = None;
            self.save_group(g).await?;
        }
        Ok(())
    }

    /// At start: runs a restart cut short end `interrupted`, steps intact.
    pub(crate) async fn interrupt_unfinished_runs(&self) -> Result<(), SiteError> {
        let runs: Vec<Run> = self
            .store
            .call(|c| store::list_docs(c, DocKind::Run))
            .await?;
        for mut run in runs.into_iter().filter(|r| !r.state.is_finished()) {
            let why = format!("interrupted: site {} restarted during the run", self.name);
            for s in run.steps.iter_mut().filter(|s| !s.is_finished()) {
                if s.state != StepState::Pending {
                    s.state = StepState::Error;
                    s.message = why.clone();
                    s.ended_ms = Some(now_ms());
                }
                for v in s
                    .vms
                    .iter_mut()
                    .filter(|v| matches!(v.state, StepState::Running | StepState::Waiting))
                {
                    v.state = StepState::Error;
                    v.message = why.clone();
                }
            }
            run.state = RunState::Interrupted;
            run.ended_ms = Some(now_ms());
            run.prompt = None;
            run.compute_rto();
            let (_, next) = super::protection::allowed(PlanState::Interrupted, Some(run.mode));
            run.message = format!("{why}; {next}");
            let stored = run.clone();
            self.store
                .call(move |c| store::put_doc(c, DocKind::Run, &stored.id, &stored))
                .await?;
            self.unlock_groups(&run.id).await?;
            if let Ok(plan) = self.own_plan(&run.plan_id) {
                self.save_plan(StoredPlan {
                    state: PlanState::Interrupted,
                    last_mode: Some(run.mode),
                    updated_ms: now_ms(),
                    ..plan
                })
                .await?;
            }
            warn!(run = %run.id, "run interrupted by a restart");
        }
        Ok(())
    }
}

/// Saves and streams a run as it changes, at most every 100 ms, until it
/// has finished and its last state is out.
async fn record(site: std::sync::Weak<Site>, active: Arc<ActiveRun>) {
    loop {
        active.changed.notified().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(site) = site.upgrade() else { return };
        let saved_final = active.saved_final.lock().await;
        let run = active.snapshot();
        if *saved_final || run.state.is_finished() {
            // `end_run` saved the final state itself.
            return;
        }
        let stored = run.clone();
        if let Err(e) = site
            .store
            .call(move |c| store::put_doc(c, DocKind::Run, &stored.id, &stored))
            .await
        {
            warn!(run = %run.id, "saving the run failed: {e}");
        }
        drop(saved_final);
        site.events.publish(SiteEvent::Run(run));
    }
}

/// The steps of a run, in order, with what each does.
fn steps_for(request: &RunRequest, plan: &StoredPlan, vms: &[VmPlan]) -> (Vec<Step>, Vec<Kind>) {
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
