//! Recovery runs, executed here at the plan's recovery site so a dropped
//! SSH session never stops a failover. Every change to a run is recorded in
//! site.db (coalesced to one write per 100 ms) and streamed as an event; a
//! run found unfinished at start ends `interrupted` with its steps intact,
//! and its plan says what to do next.
//!
//! - [`plan_steps`]: which steps a run of each mode has.
//! - [`exec`]: the step loop, the run's bookkeeping, prompts and callouts.
//! - [`steps`]: one unit per step kind; [`power`]: a priority's power-on;
//!   [`protected_site`]: what is asked of the protected site.
//! - [`callout`]: command callouts on this host; [`error`]: why a callout
//!   failed or a step stopped its run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use super::control::{ControlCall, ControlReply, VmOutcome};
use super::notify::Severity;
use super::protection::{StoredGroup, StoredPlan};
use super::{Site, SiteError};
use crate::config::NicSeed;
use crate::recovery::admission::{PlanAtStart, Refusal, admit, groups_free};
use crate::recovery::placement;
use crate::recovery::run::{plan_state_after, plan_state_during};
use crate::replication::sender::now_ms;
use crate::store::{self, DocKind};
use crate::sync::lock;
use ferry_api::types::{
    Callout, IpCustomization, MappingSpec, PendingPrompt, Placeholder, PlanState, PlanVm,
    ReplicationRequest, Run, RunMode, RunRequest, RunState, RunVm, SiteEvent, Step, StepState,
    VmInfo,
};

mod callout;
pub use callout::tail as output_tail;
mod error;
mod exec;
mod plan_steps;
mod power;
mod protected_site;
mod steps;

use callout::{run_command, tail};
use exec::clock;
use plan_steps::{Kind, steps_for};

/// Output kept of a command callout.
const OUTPUT_TAIL: usize = 4096;
/// How long the protected site may take to synchronize.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a call that does not synchronize may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Runs kept in the history.
const HISTORY: usize = 200;

/// The runs executing at this site.
#[derive(Default)]
pub(crate) struct Runs {
    /// Runs in progress here, by id: the executor's handle on each, for
    /// cancel, views and saving at shutdown.
    pub active: Mutex<BTreeMap<String, Arc<ActiveRun>>>,
}

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

/// One VM as a run sees it.
#[derive(Clone)]
struct VmPlan {
    id: String,
    name: String,
    settings: PlanVm,
    info: Option<VmInfo>,
    placeholder: Option<Placeholder>,
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

/// A refused run as the API reports it: a field at fault, else a conflict.
fn refused(r: Refusal) -> SiteError {
    match r.field() {
        Some(field) => SiteError::invalid(field, r.to_string()),
        None => SiteError::Conflict(r.to_string()),
    }
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

impl Site {
    /// Every run this site knows, newest first.
    pub async fn runs(&self) -> Result<Vec<Run>, SiteError> {
        let mut runs: Vec<Run> = self
            .store
            .call(|c| store::list_docs(c, DocKind::Run))
            .await?;
        let active: BTreeMap<String, Run> = lock(&self.runs.active)
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
        if let Some(a) = lock(&self.runs.active).get(id) {
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
        let active = lock(&self.runs.active).get(id).cloned().ok_or_else(|| {
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
        let active = lock(&self.runs.active)
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

    /// Starts a run of a plan this site owns: admission, the groups' locks,
    /// the run's plan of VMs and steps, saved, then executed in a task.
    pub async fn start_run(
        self: &Arc<Self>,
        plan_id: &str,
        request: RunRequest,
        by: &str,
    ) -> Result<Run, SiteError> {
        self.own_plan(plan_id)?;
        // The freshest view of the protected site and whether it answers,
        // for the plan's readiness; after a disaster, the last view seen.
        self.check_peer().await;
        // From admission to the plan saved in its run's state, no edit of
        // the plan or its groups comes between (see `Protection::edits`).
        let edits = self.protection.edits.lock().await;
        let mut plan = self.own_plan(plan_id)?;
        let view = self.plan_view(&plan);
        let at_start = PlanAtStart {
            name: &plan.spec.name,
            state: plan.state.label(),
            allowed: &view.allowed,
            next: &view.next,
        };
        admit(&at_start, &request).map_err(refused)?;
        let vms = self.vm_plans(&plan, &view);
        let names: Vec<(String, String)> =
            vms.iter().map(|v| (v.id.clone(), v.name.clone())).collect();
        let chosen = self.choose_instances(&request, &names).await?;
        let run_id = super::protection::new_id("run");
        self.lock_groups(&plan, &run_id).await?;
        let (steps, kinds) = steps_for(&request, &plan, &vms);
        let mut run = self.new_run(&run_id, &plan, &request, by, steps, &vms);
        for v in &mut run.vms {
            if let Some(c) = chosen.get(&v.vm_id) {
                v.instance = Some(c.instance.to_string());
                v.point_time_ms = Some(c.point_time_ms);
                v.newest_point_ms = Some(c.newest_point_ms);
            }
        }
        // Cleanup removes what a test made; the others would miss these.
        if request.mode != RunMode::Cleanup {
            run.skipped = view.readiness.skipped.clone();
        }
        plan.state = plan_state_during(request.mode);
        plan.last_run = Some(run_id.clone());
        plan.last_mode = Some(request.mode);
        plan.updated_ms = now_ms();
        self.save_start(&run, &plan).await?;
        drop(edits);
        info!(run = %run_id, mode = ?request.mode, plan = %run.plan_name, "run started by {by}");
        self.spawn_run(run.clone(), request, plan, vms, kinds);
        Ok(run)
    }

    /// Takes every group's lock for `run_id`, or none.
    async fn lock_groups(&self, plan: &StoredPlan, run_id: &str) -> Result<(), SiteError> {
        let groups: Vec<StoredGroup> = {
            let mut p = lock(&self.protection.objects);
            groups_free(plan.spec.groups.iter().map(|g| {
                let holder = p.groups.get(g).and_then(|g| g.locked_by.as_deref());
                (g.as_str(), holder)
            }))
            .map_err(refused)?;
            plan.spec
                .groups
                .iter()
                .filter_map(|g| {
                    let group = p.groups.get_mut(g)?;
                    group.locked_by = Some(run_id.to_string());
                    Some(group.clone())
                })
                .collect()
        };
        for g in groups {
            self.save_group(g).await?;
        }
        Ok(())
    }

    /// Each VM of the plan as the run will recover it: its settings, what
    /// the protected site last said of it, and its placeholder here.
    fn vm_plans(&self, plan: &StoredPlan, view: &ferry_api::types::Plan) -> Vec<VmPlan> {
        let peer = self.peer_view();
        let placeholders: BTreeMap<String, Placeholder> = self
            .own_groups()
            .into_iter()
            .flat_map(|g| g.vms)
            .filter_map(|v| v.placeholder.map(|p| (v.vm_id, p)))
            .collect();
        let members = self.plan_members(&plan.spec.groups);
        view.vms
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
            .collect()
    }

    /// The run as it starts: every step and VM pending.
    fn new_run(
        &self,
        run_id: &str,
        plan: &StoredPlan,
        request: &RunRequest,
        by: &str,
        steps: Vec<Step>,
        vms: &[VmPlan],
    ) -> Run {
        let peer = self.peer_view();
        Run {
            id: run_id.to_string(),
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
                        instance: None,
                        newest_point_ms: None,
                        retention: replication.map(|r| r.retention),
                    }
                })
                .collect(),
            prompt: None,
            message: String::new(),
            cancel_requested: false,
            skipped: Vec::new(),
        }
    }

    /// Saves the run as it starts and the plan in its run's state.
    async fn save_start(&self, run: &Run, plan: &StoredPlan) -> Result<(), SiteError> {
        let stored = run.clone();
        self.store
            .call(move |c| store::put_doc(c, DocKind::Run, &stored.id, &stored))
            .await?;
        self.save_plan(plan.clone()).await?;
        Ok(())
    }

    /// Registers the run and executes it in a task of its own, with a
    /// second task that saves and streams it as it changes.
    fn spawn_run(
        self: &Arc<Self>,
        run: Run,
        request: RunRequest,
        plan: StoredPlan,
        vms: Vec<VmPlan>,
        kinds: Vec<Kind>,
    ) {
        let mappings = lock(&self.protection.objects)
            .mappings
            .get(&super::protection::mapping_id(
                &plan.protected_site,
                &plan.recovery_site,
            ))
            .map(|m| m.spec.clone())
            .unwrap_or_default();
        let active = Arc::new(ActiveRun {
            run: Mutex::new(run.clone()),
            changed: Notify::new(),
            cancel: AtomicBool::new(false),
            ack: Notify::new(),
            saved_final: tokio::sync::Mutex::new(false),
        });
        lock(&self.runs.active).insert(run.id.clone(), active.clone());
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
        self.note_run(&run);
        self.events.publish(SiteEvent::Run(run));
        let site = self.clone();
        tokio::spawn(async move { site.refresh_lifecycles().await });
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
        let active = lock(&self.runs.active).get(&run.id).cloned();
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
        if let Some(active) = lock(&self.runs.active).remove(&run.id) {
            *lock(&active.run) = run.clone();
        }
        self.events.publish(SiteEvent::Run(run.clone()));
        self.refresh_lifecycles().await;
        plan_saved
    }

    async fn end_plan(
        &self,
        run: &Run,
        plan: &StoredPlan,
        state: PlanState,
        handed_over: bool,
    ) -> Result<(), SiteError> {
        let _edits = self.protection.edits.lock().await;
        if handed_over {
            for g in &plan.spec.groups {
                let key = g.clone();
                self.store
                    .call(move |c| store::delete_doc(c, DocKind::Group, &key))
                    .await?;
                lock(&self.protection.objects).groups.remove(g);
                self.events
                    .publish(SiteEvent::GroupRemoved { id: g.clone() });
            }
            let key = plan.id.clone();
            self.store
                .call(move |c| store::delete_doc(c, DocKind::Plan, &key))
                .await?;
            lock(&self.protection.objects).plans.remove(&plan.id);
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
        let held: Vec<StoredGroup> = lock(&self.protection.objects)
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

    /// At shutdown: every run in progress saved as it is now, so the next
    /// start finds its steps as they were (and ends it `interrupted`).
    pub(crate) async fn save_active_runs(&self) {
        let runs: Vec<Run> = lock(&self.runs.active)
            .values()
            .map(|a| a.snapshot())
            .collect();
        for run in runs {
            let id = run.id.clone();
            let saved = self
                .store
                .call(move |c| store::put_doc(c, DocKind::Run, &run.id, &run))
                .await;
            if let Err(e) = saved {
                warn!(run = %id, "saving the run at shutdown failed: {e}");
            }
        }
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
            let _edits = self.protection.edits.lock().await;
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
        // A promote or demote of this step changes what its VMs are.
        site.refresh_lifecycles().await;
    }
}
