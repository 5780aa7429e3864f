//! Replication of the site's VMs to the peer: settings kept in the database,
//! one scheduler task per VM, and a forwarder that turns status changes into
//! events, alarms, status history and persisted progress.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::notify::Severity;
use super::{Site, SiteError};
use crate::compute::qemu::source::QemuSource;
use crate::compute::qemu::tracking::QemuTracking;
use crate::config::LoadedConfig;
use crate::inventory::VmRecord;
use crate::replication::receiver::Receiver;
use crate::replication::receiver::is_safe_name;
use crate::replication::schedule::check_rpo;
use crate::replication::scheduler::{ReplicationHandle, ReplicationSettings, Scheduler};
use crate::replication::sender::{SyncTarget, now_ms};
use crate::replication::status::{ReplicationState, ReplicationStatus};
use crate::storage::PointSource;
use crate::store::{self, ReplicationRow, Store, StoreError};
use crate::sync::lock;
use ferry_api::types::{
    LastSyncInfo, Lifecycle, ProgressInfo, ReplicationInfo, ReplicationRequest, SiteEvent,
};

/// Replication out of this site and into it.
pub(crate) struct Replications {
    /// Bounds the cycles running at once across the site's VMs.
    pub scheduler: Scheduler,
    /// Takes the peer's cycles into replicas here; shared with the
    /// listener task that serves it.
    pub receiver: Arc<Receiver>,
}

/// A replicated VM's task and its forwarder.
pub(crate) struct Replicated {
    pub row: ReplicationRow,
    handle: ReplicationHandle,
    forwarder: JoinHandle<()>,
}

impl Replicated {
    /// Holds its scheduler (`true`) or frees it unless an operator paused
    /// it; see [`Site::hold_ended`].
    pub fn hold(&self, held: bool) {
        if held {
            self.handle.pause();
        } else if !self.row.paused {
            self.handle.resume();
        }
    }

    pub async fn stop(self) {
        self.forwarder.abort();
        self.handle.stop().await;
    }
}

/// Creates the seed inventory of a first start.
pub(super) fn seed(store: &Store, config: &LoadedConfig) -> Result<(), SiteError> {
    let default_datastore = config.site.datastores[0].name.clone();
    store.now(|conn| {
        let tx = conn.transaction()?;
        for seed in &config.site.vms {
            let record = VmRecord::from_seed(&config.site.name, seed, &config.site.compute);
            store::insert_vm(&tx, &record)?;
            if let Some(r) = &seed.replication {
                store::upsert_replication(
                    &tx,
                    &ReplicationRow {
                        vm_id: record.id.clone(),
                        rpo_seconds: r.rpo_seconds,
                        datastore: r
                            .datastore
                            .clone()
                            .unwrap_or_else(|| default_datastore.clone()),
                        compress: r.compress,
                        paused: false,
                        point_time_ms: None,
                        last_sync: None,
                    },
                )?;
            }
        }
        tx.commit().map_err(StoreError::from)
    })?;
    Ok(())
}

impl Site {
    fn sync_target(&self, row: &ReplicationRow) -> Option<SyncTarget> {
        let peer = self.peer_config()?;
        Some(SyncTarget {
            addr: peer.replication,
            tls: self.link(),
            site: self.name.clone(),
            datastore: row.datastore.clone(),
            compress: row.compress,
        })
    }

    fn settings(&self, row: &ReplicationRow) -> Option<ReplicationSettings> {
        Some(ReplicationSettings {
            rpo: Duration::from_secs(row.rpo_seconds),
            target: self.sync_target(row)?,
        })
    }

    /// Starts the scheduler task of a VM from its stored row.
    pub(super) fn start_replication(self: &Arc<Self>, row: ReplicationRow) {
        let Some(settings) = self.settings(&row) else {
            tracing::warn!(vm = %row.vm_id, "replication configured but the site is not paired");
            return;
        };
        let mut vms = lock(&self.inventory.vms);
        let Some(vm) = vms.get_mut(&row.vm_id) else {
            return;
        };
        let source = qemu_source(vm).unwrap_or_else(|| vm.disks.clone());
        let handle = self.replications.scheduler.spawn(
            row.vm_id.clone(),
            source,
            settings,
            row.paused,
            row.point_time_ms,
        );
        let forwarder = tokio::spawn(forward(
            Arc::downgrade(self),
            row.vm_id.clone(),
            handle.status.clone(),
        ));
        vm.replication = Some(Replicated {
            row,
            handle,
            forwarder,
        });
    }

    /// Points every replication at the peer as paired now.
    pub(super) fn retarget_replications(&self) {
        let vms = lock(&self.inventory.vms);
        for vm in vms.values() {
            if let Some(r) = &vm.replication
                && let Some(settings) = self.settings(&r.row)
            {
                r.handle.configure(settings);
            }
        }
    }

    /// The API view of one VM's replication.
    pub fn replication_info(&self, vm_id: &str) -> Option<ReplicationInfo> {
        let vms = lock(&self.inventory.vms);
        let vm = vms.get(vm_id)?;
        let r = vm.replication.as_ref()?;
        let status = r.handle.status.borrow().clone();
        Some(self.describe(&vm.record, &r.row, &status))
    }

    /// The status channel of `vm_id`'s replication, to wait on a change.
    pub(crate) fn replication_status(
        &self,
        vm_id: &str,
    ) -> Option<watch::Receiver<ReplicationStatus>> {
        let vms = lock(&self.inventory.vms);
        Some(vms.get(vm_id)?.replication.as_ref()?.handle.status.clone())
    }

    pub fn replications(&self) -> Vec<ReplicationInfo> {
        let vms = lock(&self.inventory.vms);
        vms.values()
            .filter_map(|vm| {
                let r = vm.replication.as_ref()?;
                Some(self.describe(&vm.record, &r.row, &r.handle.status.borrow()))
            })
            .collect()
    }

    fn describe(
        &self,
        vm: &VmRecord,
        row: &ReplicationRow,
        s: &ReplicationStatus,
    ) -> ReplicationInfo {
        let lifecycle = self.lifecycle(&vm.id, true);
        if lifecycle.has_ended() {
            return ended(self.describe_status(vm, row, s), lifecycle);
        }
        ReplicationInfo {
            lifecycle,
            ..self.describe_status(vm, row, s)
        }
    }

    fn describe_status(
        &self,
        vm: &VmRecord,
        row: &ReplicationRow,
        s: &ReplicationStatus,
    ) -> ReplicationInfo {
        ReplicationInfo {
            vm: vm.name.clone(),
            vm_id: vm.id.clone(),
            source_site: self.name.clone(),
            target_site: self.peer_config().map(|p| p.name),
            state: s.state.as_str().to_string(),
            rpo_seconds: row.rpo_seconds,
            lag_seconds: s.lag.map(|l| l.as_secs_f64()),
            rpo_violated: s.rpo_violated,
            progress: s.progress.map(|p| ProgressInfo {
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
            }),
            last_sync: s.last_sync.map(|l| LastSyncInfo {
                finished_at: l.finished_at_ms,
                duration_ms: l.duration.as_millis() as u64,
                bytes: l.bytes,
                full: l.full,
                instance: l.instance,
            }),
            point_time_ms: s.point_time_ms,
            datastore: row.datastore.clone(),
            compress: row.compress,
            paused: row.paused,
            last_error: s.last_error.clone(),
            lifecycle: Default::default(),
        }
    }

    fn vm_name(&self, vm_id: &str) -> Result<String, SiteError> {
        lock(&self.inventory.vms)
            .get(vm_id)
            .map(|vm| vm.record.name.clone())
            .ok_or_else(|| SiteError::NotFound(format!("no VM {vm_id:?} at site {}", self.name)))
    }

    /// Configures (or changes) a VM's replication.
    pub async fn configure_replication(
        self: &Arc<Self>,
        vm_id: &str,
        request: ReplicationRequest,
    ) -> Result<ReplicationInfo, SiteError> {
        self.vm_name(vm_id)?;
        check_rpo(Duration::from_secs(request.rpo_seconds))
            .map_err(|e| SiteError::invalid("rpo_seconds", e.to_string()))?;
        if let Some(ds) = &request.datastore
            && !is_safe_name(ds)
        {
            return Err(SiteError::invalid(
                "datastore",
                format!("{ds:?} must be letters, digits, '-', '_' or '.'"),
            ));
        }
        if self.peer_config().is_none() {
            return Err(SiteError::Conflict(format!(
                "site {} is not paired with a peer: pair it first (PUT /api/v1/site/peer)",
                self.name
            )));
        }
        let existing = lock(&self.inventory.vms)
            .get(vm_id)
            .and_then(|vm| vm.replication.as_ref().map(|r| r.row.clone()));
        let default_ds = self.config.site.datastores[0].name.clone();
        let row = match existing {
            Some(old) => ReplicationRow {
                rpo_seconds: request.rpo_seconds,
                datastore: request.datastore.unwrap_or(old.datastore.clone()),
                compress: request.compress.unwrap_or(old.compress),
                ..old
            },
            None => ReplicationRow {
                vm_id: vm_id.to_string(),
                rpo_seconds: request.rpo_seconds,
                datastore: request.datastore.unwrap_or(default_ds),
                compress: request.compress.unwrap_or(false),
                paused: false,
                point_time_ms: None,
                last_sync: None,
            },
        };
        let stored = row.clone();
        self.store
            .call(move |c| store::upsert_replication(c, &stored))
            .await?;
        let running = {
            let mut vms = lock(&self.inventory.vms);
            let vm = vms.get_mut(vm_id);
            match vm.and_then(|vm| vm.replication.as_mut()) {
                Some(r) => {
                    r.row = row.clone();
                    if let Some(settings) = self.settings(&row) {
                        r.handle.configure(settings);
                    }
                    true
                }
                None => false,
            }
        };
        if !running {
            self.start_replication(row);
        }
        self.replication_info(vm_id)
            .ok_or_else(|| SiteError::Conflict("replication did not start".into()))
    }

    fn replicated_row(&self, vm_id: &str) -> Result<ReplicationRow, SiteError> {
        let name = self.vm_name(vm_id)?;
        lock(&self.inventory.vms)
            .get(vm_id)
            .and_then(|vm| vm.replication.as_ref().map(|r| r.row.clone()))
            .ok_or_else(|| SiteError::NotFound(format!("VM {name} is not replicated")))
    }

    /// Pauses or resumes a VM's replication.
    pub async fn set_paused(
        &self,
        vm_id: &str,
        paused: bool,
    ) -> Result<ReplicationInfo, SiteError> {
        let row = ReplicationRow {
            paused,
            ..self.replicated_row(vm_id)?
        };
        let stored = row.clone();
        self.store
            .call(move |c| store::upsert_replication(c, &stored))
            .await?;
        // A resume of an ended replication is kept for when it is one
        // again; its scheduler stays held.
        let ended = self.is_old_copy(&self.lifecycle(vm_id, true));
        if let Some(r) = lock(&self.inventory.vms)
            .get_mut(vm_id)
            .and_then(|vm| vm.replication.as_mut())
        {
            r.row.paused = paused;
            if paused {
                r.handle.pause();
            } else if !ended {
                r.handle.resume();
            }
        }
        self.wait_for_state(vm_id, |s| (s.state == ReplicationState::Paused) == paused)
            .await;
        self.replication_info(vm_id)
            .ok_or_else(|| SiteError::NotFound(format!("VM {vm_id} is not replicated")))
    }

    /// Starts a cycle now.
    pub fn sync_now(&self, vm_id: &str) -> Result<ReplicationInfo, SiteError> {
        let row = self.replicated_row(vm_id)?;
        if let ended @ Lifecycle::RecoveredAt { .. } = self.lifecycle(vm_id, true) {
            return Err(SiteError::Conflict(format!(
                "replication of {} ended: the VM is {}",
                self.vm_name(vm_id)?,
                ended.words()
            )));
        }
        if row.paused {
            return Err(SiteError::Conflict(format!(
                "replication of {vm_id} is paused: resume it first"
            )));
        }
        if let Some(r) = lock(&self.inventory.vms)
            .get(vm_id)
            .and_then(|vm| vm.replication.as_ref())
        {
            r.handle.sync_now();
        }
        self.replication_info(vm_id)
            .ok_or_else(|| SiteError::NotFound(format!("VM {vm_id} is not replicated")))
    }

    /// Stops replicating a VM. The replica at the peer is kept: it may be
    /// the only copy an operator wants, and a later configure re-uses it as
    /// a seed.
    pub async fn stop_replication(&self, vm_id: &str) -> Result<(), SiteError> {
        self.replicated_row(vm_id)?;
        let owned = vm_id.to_string();
        self.store
            .call(move |c| store::delete_replication(c, &owned))
            .await?;
        let replicated = lock(&self.inventory.vms)
            .get_mut(vm_id)
            .and_then(|vm| vm.replication.take());
        if let Some(r) = replicated {
            r.stop().await;
        }
        self.events.publish(SiteEvent::ReplicationRemoved {
            vm_id: vm_id.to_string(),
        });
        Ok(())
    }

    /// Gives the scheduler a moment to reflect a control, so the response
    /// shows its effect.
    async fn wait_for_state(&self, vm_id: &str, done: impl Fn(&ReplicationStatus) -> bool) {
        let status = lock(&self.inventory.vms)
            .get(vm_id)
            .and_then(|vm| vm.replication.as_ref().map(|r| r.handle.status.clone()));
        if let Some(mut status) = status {
            let _ = tokio::time::timeout(Duration::from_secs(2), status.wait_for(done)).await;
        }
    }
}

/// The replication of a VM that runs at the peer now: ended, with no lag
/// to age, no progress and no failure (the peer refusing cycles into the
/// replica it promoted is the end, not an error).
fn ended(info: ReplicationInfo, lifecycle: ferry_api::types::Lifecycle) -> ReplicationInfo {
    ReplicationInfo {
        state: "ended".into(),
        lag_seconds: None,
        rpo_violated: false,
        progress: None,
        last_error: None,
        lifecycle,
        ..info
    }
}

/// True when two statuses differ in more than the ageing of the lag.
fn differs(a: &ReplicationStatus, b: &ReplicationStatus) -> bool {
    a.state != b.state
        || a.rpo_violated != b.rpo_violated
        || a.progress != b.progress
        || a.last_sync != b.last_sync
        || a.point_time_ms != b.point_time_ms
        || a.last_error != b.last_error
        || a.rpo != b.rpo
}

/// Turns a VM's status changes into events, alarms, history and storage.
async fn forward(site: Weak<Site>, vm_id: String, mut status: watch::Receiver<ReplicationStatus>) {
    let mut last: Option<ReplicationStatus> = None;
    loop {
        if status.changed().await.is_err() {
            return;
        }
        let now = status.borrow_and_update().clone();
        if last.as_ref().is_some_and(|l| !differs(l, &now)) {
            continue;
        }
        let Some(site) = site.upgrade() else { return };
        let before = last.replace(now.clone());
        site.record_change(&vm_id, before.as_ref(), &now).await;
        if let Some(info) = site.replication_info(&vm_id) {
            site.events.publish(SiteEvent::Replication(info));
        }
    }
}

impl Site {
    async fn record_change(
        &self,
        vm_id: &str,
        before: Option<&ReplicationStatus>,
        now: &ReplicationStatus,
    ) {
        let name = self.vm_name(vm_id).unwrap_or_else(|_| vm_id.to_string());
        if before.is_none_or(|b| b.last_sync != now.last_sync) && now.last_sync.is_some() {
            let (id, point, last) = (vm_id.to_string(), now.point_time_ms, now.last_sync);
            let result = self
                .store
                .call(move |c| store::set_replication_progress(c, &id, point, last.as_ref()))
                .await;
            if let Err(e) = result {
                tracing::warn!(vm = %vm_id, "could not save replication progress: {e}");
            }
        }
        // A VM recovered at the peer: its replication ended, and what its
        // scheduler meets now (a promoted replica) is no alarm.
        let ended = self.is_old_copy(&self.lifecycle(vm_id, true));
        let state_changed = before.is_none_or(|b| b.state != now.state);
        if state_changed {
            let (id, state, lag) = (
                vm_id.to_string(),
                now.state.as_str(),
                now.lag.map(|l| l.as_millis() as u64),
            );
            let _ = self
                .store
                .call(move |c| store::insert_history(c, &id, now_ms(), state, lag))
                .await;
            if now.state == ReplicationState::Error && !ended {
                let why = now.last_error.clone().unwrap_or_default();
                self.alarm(
                    "replication_error",
                    Severity::Warning,
                    Some(vm_id),
                    format!("{name}: replication failing: {why}"),
                )
                .await;
            }
        }
        match (before.is_some_and(|b| b.rpo_violated), now.rpo_violated) {
            (false, true) if !ended => {
                let lag = now.lag.map_or(0, |l| l.as_secs());
                self.alarm(
                    "rpo_violated",
                    Severity::Critical,
                    Some(vm_id),
                    format!(
                        "{name}: RPO violated, lag {lag} s against an RPO of {} s",
                        now.rpo.as_secs()
                    ),
                )
                .await;
            }
            (true, false) if !ended => {
                self.alarm(
                    "rpo_restored",
                    Severity::Info,
                    Some(vm_id),
                    format!("{name}: back within its RPO"),
                )
                .await;
            }
            _ => {}
        }
    }
}

/// A running QEMU VM on qcow2 disks replicates from QEMU's own change
/// tracking (its dirty bitmaps, read through NBD) over its QMP session;
/// anything else from the site's block path.
fn qemu_source(vm: &super::VmRuntime) -> Option<Arc<dyn PointSource>> {
    let machine = vm.machine.as_ref()?;
    let (qmp, dir) = (machine.qmp()?, machine.dir()?);
    if !dir.join("disk-0.qcow2").exists() {
        return None;
    }
    // This machine's one session, for as long as the machine runs: a new
    // machine gets a new source.
    let (_, session) = tokio::sync::watch::channel(Some(qmp));
    let tracking = QemuTracking::new(&vm.record.id, dir, session, vm.disks.geometries());
    Some(Arc::new(QemuSource::new(
        Arc::new(tracking),
        tokio::runtime::Handle::current(),
    )))
}
