//! Each VM's lifecycle as this site says it (see [`Lifecycle`]): from the
//! runs this site executed, the test copies it runs, and its peer's view
//! (a VM the peer recovered is the old copy here, its replication ended).
//! Changes are streamed as VM and replication events; an ended
//! replication's RPO and error alarms are cleared, as the site.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Site;
use super::notify::Severity;
use super::vms::{VmRuntime, describe};
use crate::store::{self, DocKind};
use crate::sync::lock;
use ferry_api::types::{Lifecycle, Run, RunMode, SiteEvent, TestCopy, VmInfo};

/// What the site remembers to say what each VM is.
#[derive(Default)]
pub(crate) struct Lifecycles {
    /// The runs that touched each VM, newest last seen; read by every
    /// listing, so kept in memory (from the stored runs at start, then at
    /// each run's start) rather than read from site.db each time.
    touched: Mutex<Touched>,
    /// Lifecycles as last streamed, to stream only changes.
    published: Mutex<BTreeMap<String, Lifecycle>>,
}

#[derive(Default)]
struct Touched {
    /// The newest planned migration, disaster recovery or reprotect of
    /// each VM: (run id, mode).
    recovery: BTreeMap<String, (String, RunMode)>,
    /// The newest test run of each VM.
    test: BTreeMap<String, String>,
}

/// Alarms that stop applying once a VM runs at the peer.
const ENDED_ALARMS: [&str; 2] = ["rpo_violated", "replication_error"];

impl Site {
    /// At start: what the stored runs say of each VM.
    pub(super) fn load_lifecycles(&self) -> Result<(), super::SiteError> {
        let mut runs: Vec<Run> = self.store.now(|c| store::list_docs(c, DocKind::Run))?;
        runs.sort_by_key(|r| r.started_ms);
        for run in &runs {
            self.note_run(run);
        }
        Ok(())
    }

    /// Remembers that `run` acts on its VMs (called as it starts).
    pub(crate) fn note_run(&self, run: &Run) {
        let mut t = lock(&self.lifecycles.touched);
        for vm in &run.vms {
            match run.mode {
                RunMode::PlannedMigration | RunMode::DisasterRecovery | RunMode::Reprotect => {
                    t.recovery
                        .insert(vm.vm_id.clone(), (run.id.clone(), run.mode));
                }
                RunMode::Test => {
                    t.test.insert(vm.vm_id.clone(), run.id.clone());
                }
                RunMode::Cleanup => {}
            }
        }
    }

    /// What a VM of this site is now.
    pub(crate) fn lifecycle(&self, vm_id: &str, replicated: bool) -> Lifecycle {
        let peer = self.peer_config().map(|p| p.name).unwrap_or_default();
        let own = lock(&self.lifecycles.touched).recovery.get(vm_id).cloned();
        let running = |run: &str| lock(&self.runs.active).contains_key(run);
        match own {
            Some((run_id, RunMode::Reprotect)) if running(&run_id) => {
                return Lifecycle::Reprotecting { run_id };
            }
            Some((run_id, RunMode::PlannedMigration | RunMode::DisasterRecovery))
                if !replicated =>
            {
                return Lifecycle::Recovered {
                    from_site: peer,
                    run_id: Some(run_id),
                };
            }
            _ => {}
        }
        let (peer_says, test_copy) = match lock(&self.peer.view).as_ref() {
            Some(view) => (
                view.vms
                    .iter()
                    .find(|v| v.id == vm_id)
                    .map(|v| v.lifecycle.clone()),
                view.test_copies.iter().find(|t| t.vm_id == vm_id).cloned(),
            ),
            None => (None, None),
        };
        match peer_says {
            Some(Lifecycle::Recovered { run_id, .. }) => {
                Lifecycle::RecoveredAt { site: peer, run_id }
            }
            Some(Lifecycle::Reprotecting { run_id }) => Lifecycle::Reprotecting { run_id },
            _ if !replicated => Lifecycle::NotProtected,
            _ => match test_copy {
                Some(t) => Lifecycle::TestCopy {
                    site: peer,
                    run_id: t.run_id,
                },
                None => Lifecycle::Protected,
            },
        }
    }

    /// Whether a VM of this site is the old copy of one running at the
    /// peer: recovered there, or being reprotected there by the peer's run
    /// (not by a run of this site, whose new replications must cycle).
    /// The peer refuses its replication's cycles until the reprotect
    /// replaces it.
    pub(crate) fn is_old_copy(&self, lifecycle: &Lifecycle) -> bool {
        match lifecycle {
            Lifecycle::RecoveredAt { .. } => true,
            Lifecycle::Reprotecting { run_id } => !lock(&self.runs.active).contains_key(run_id),
            _ => false,
        }
    }

    /// Holds or frees the scheduler of a replication whose VM runs at the
    /// peer now: the peer refuses cycles into the replica it promoted, so
    /// retrying them would only log failures. Not stored: the lifecycle is
    /// worked out again at every start, and an operator's pause is kept.
    pub(crate) fn hold_ended(&self, vm_id: &str, ended: bool) {
        if let Some(r) = lock(&self.inventory.vms)
            .get(vm_id)
            .and_then(|vm| vm.replication.as_ref())
        {
            r.hold(ended);
        }
    }

    /// The API view of one VM, with its lifecycle.
    pub(crate) fn vm_info(&self, vm: &VmRuntime) -> VmInfo {
        let mut info = describe(vm, self);
        info.lifecycle = self.lifecycle(&info.id, info.replicated);
        info
    }

    /// The test copies this site runs for its peer's VMs.
    pub fn test_copies(&self) -> Vec<TestCopy> {
        let ids: Vec<String> = lock(&self.inventory.test_vms).keys().cloned().collect();
        let t = lock(&self.lifecycles.touched);
        ids.into_iter()
            .map(|vm_id| TestCopy {
                run_id: t.test.get(&vm_id).cloned(),
                vm_id,
            })
            .collect()
    }

    /// Streams the VMs whose lifecycle changed since last time (their VM
    /// and replication events), and clears the alarms of replications that
    /// just ended.
    pub(crate) async fn refresh_lifecycles(&self) {
        let ended = self.publish_lifecycles();
        for (vm_id, name, lifecycle, announce) in ended {
            self.clear_alarms(&vm_id, &ENDED_ALARMS).await;
            if announce {
                self.alarm(
                    "replication_ended",
                    Severity::Info,
                    Some(&vm_id),
                    format!("{name}: replication ended, the VM is {}", lifecycle.words()),
                )
                .await;
            }
        }
    }

    /// The streaming half of [`Site::refresh_lifecycles`]: returns the
    /// VMs whose replication just ended, and whether to announce it (not
    /// at start, when it ended before).
    fn publish_lifecycles(&self) -> Vec<(String, String, Lifecycle, bool)> {
        let infos: Vec<VmInfo> = self.vms();
        let mut published = lock(&self.lifecycles.published);
        let first = published.is_empty();
        let mut ended = Vec::new();
        for info in &infos {
            let before = published.get(&info.id);
            if before == Some(&info.lifecycle) {
                continue;
            }
            // Before streaming, so no client sees an ended replication
            // still cycling.
            self.hold_ended(&info.id, self.is_old_copy(&info.lifecycle));
            if info.lifecycle.has_ended() {
                let announce = !first && before.is_some_and(|b| !b.has_ended());
                ended.push((
                    info.id.clone(),
                    info.name.clone(),
                    info.lifecycle.clone(),
                    announce,
                ));
            }
            self.events.publish(SiteEvent::Vm(info.clone()));
            if let Some(r) = self.replication_info(&info.id) {
                self.events.publish(SiteEvent::Replication(r));
            }
        }
        for gone in published
            .keys()
            .filter(|id| !infos.iter().any(|i| &i.id == *id))
        {
            self.events.publish(SiteEvent::VmRemoved {
                vm_id: gone.clone(),
            });
        }
        *published = infos.into_iter().map(|i| (i.id, i.lifecycle)).collect();
        ended
    }
}
