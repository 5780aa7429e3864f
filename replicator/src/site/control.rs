//! Calls between paired sites over the authenticated replication port:
//! each site's view of itself (inventory, VMs, replications and the
//! protection objects it owns), fetched by the peer watch every two seconds,
//! and the commands a recovery run sends to the protected site.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Site;
use super::protection::{StoredGroup, StoredPlan};
use super::site_view::SiteView;
use crate::replication::WireError;
use crate::replication::connection::Connection;
use crate::replication::receiver::ControlHandler;
use crate::replication::sender::now_ms;
use crate::sync::lock;
use ferry_api::types::Mappings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum ControlCall {
    View,
    /// Synchronize now and wait for an instance newer than the call.
    Sync {
        vm_ids: Vec<String>,
        timeout_seconds: u64,
    },
    /// Shut the VMs down cleanly, for the caller's run `run`, which must
    /// hold the lock of every VM's protection group.
    ShutDown {
        vm_ids: Vec<String>,
        #[serde(default)]
        run: Option<String>,
    },
    /// Reprotect: the VMs leave this site and their disks become seeds
    /// (for the caller's run `run`, as for `ShutDown`).
    Demote {
        vm_ids: Vec<String>,
        #[serde(default)]
        run: Option<String>,
    },
    /// Reprotect: this site becomes the recovery site of the plan.
    Adopt {
        plan: Box<StoredPlan>,
        groups: Vec<StoredGroup>,
    },
}

/// What a call did to one VM.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VmOutcome {
    pub vm_id: String,
    pub error: Option<String>,
    pub point_time_ms: Option<u64>,
    pub last_write_ms: Option<u64>,
    pub datastore: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ControlReply {
    View(Box<SiteView>),
    Vms { vms: Vec<VmOutcome> },
    Done,
    Error { message: String },
}

impl Site {
    /// This site as the peer should see it.
    pub fn view(&self) -> SiteView {
        // One lock at a time: a guard in a struct literal would live to its end.
        let mappings: Vec<Mappings> = lock(&self.protection.objects)
            .mappings
            .values()
            .cloned()
            .collect();
        let plans: Vec<_> = lock(&self.protection.objects)
            .plans
            .values()
            .cloned()
            .collect();
        SiteView {
            site: self.name.clone(),
            inventory: self.inventory(),
            vms: self.vms(),
            replications: self.replications(),
            mappings,
            groups: self.own_groups(),
            plans: plans.iter().map(|p| self.plan_view(p)).collect(),
            test_copies: self.test_copies(),
            at_ms: now_ms(),
        }
    }

    /// The peer as last seen (kept across restarts).
    pub fn peer_view(&self) -> Option<SiteView> {
        lock(&self.peer.view).clone()
    }

    pub(crate) fn set_peer_view(&self, view: SiteView) {
        *lock(&self.peer.view) = Some(view);
    }

    /// Answers one call from the peer: checked against what the peer may
    /// ask now, carried out, and audited either way.
    async fn answer(self: Arc<Self>, body: &[u8]) -> ControlReply {
        let call = match serde_json::from_slice::<ControlCall>(body) {
            Ok(call) => call,
            Err(e) => {
                let message = format!("this site does not understand the call: {e}");
                self.audit_call("control", "", Err(&message)).await;
                return ControlReply::Error { message };
            }
        };
        let (action, target) = call.describe();
        if let Err(refusal) = self.authorize(&call).await {
            let message = refusal.to_string();
            self.audit_call(action, &target, Err(&message)).await;
            return ControlReply::Error { message };
        }
        let reply = self.clone().carry_out(call).await;
        if action != "control.view" {
            let result = match &reply {
                ControlReply::Error { message } => Err(message.as_str()),
                _ => Ok(()),
            };
            self.audit_call(action, &target, result).await;
        }
        reply
    }

    async fn carry_out(self: Arc<Self>, call: ControlCall) -> ControlReply {
        let each = |vm_ids: Vec<String>| vm_ids.into_iter();
        match call {
            ControlCall::View => ControlReply::View(Box::new(self.view())),
            ControlCall::Sync {
                vm_ids,
                timeout_seconds,
            } => {
                let timeout = Duration::from_secs(timeout_seconds);
                let waits = each(vm_ids).map(|id| {
                    let site = self.clone();
                    async move {
                        let result = site.sync_and_wait(&id, timeout).await;
                        VmOutcome {
                            point_time_ms: result.as_ref().ok().copied(),
                            error: result.err().map(|e| e.to_string()),
                            vm_id: id,
                            ..VmOutcome::default()
                        }
                    }
                });
                ControlReply::Vms {
                    vms: futures_util::future::join_all(waits).await,
                }
            }
            ControlCall::ShutDown { vm_ids, .. } => {
                let stops = each(vm_ids).map(|id| {
                    let site = self.clone();
                    async move {
                        let result = site.shut_down_vm(&id).await;
                        VmOutcome {
                            last_write_ms: result.as_ref().ok().copied().flatten(),
                            error: result.err().map(|e| e.to_string()),
                            vm_id: id,
                            ..VmOutcome::default()
                        }
                    }
                });
                ControlReply::Vms {
                    vms: futures_util::future::join_all(stops).await,
                }
            }
            ControlCall::Demote { vm_ids, .. } => {
                let mut vms = Vec::new();
                for id in vm_ids {
                    let result = self.demote(&id).await;
                    vms.push(VmOutcome {
                        datastore: result.as_ref().ok().cloned(),
                        error: result.err().map(|e| e.to_string()),
                        vm_id: id,
                        ..VmOutcome::default()
                    });
                }
                ControlReply::Vms { vms }
            }
            ControlCall::Adopt { plan, groups } => match self.adopt(*plan, groups).await {
                Ok(()) => ControlReply::Done,
                Err(e) => ControlReply::Error {
                    message: e.to_string(),
                },
            },
        }
    }

    /// Calls the peer, waiting up to `timeout` for its answer.
    pub async fn call_peer(
        &self,
        call: &ControlCall,
        timeout: Duration,
    ) -> Result<ControlReply, PeerCallError> {
        let peer = self.peer_config().ok_or(PeerCallError::NotPaired)?;
        let name = self.name.clone();
        let tls = self.link();
        let body = serde_json::to_vec(call).map_err(PeerCallError::Encode)?;
        let outcome = tokio::time::timeout(
            timeout + Duration::from_secs(1),
            tokio::task::spawn_blocking(move || {
                let mut conn = Connection::connect(&peer.replication, &tls, &name)?;
                let reply = conn.call(&body, timeout)?;
                serde_json::from_slice::<ControlReply>(&reply).map_err(PeerCallError::NotUnderstood)
            }),
        )
        .await;
        match outcome {
            Ok(Ok(Ok(ControlReply::Error { message }))) => Err(PeerCallError::Refused(message)),
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(PeerCallError::Task(e)),
            Err(_) => Err(PeerCallError::NoAnswer {
                seconds: timeout.as_secs(),
            }),
        }
    }
}

/// Why a call to the peer has no answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum PeerCallError {
    #[error("this site is not paired")]
    NotPaired,
    #[error("{0}")]
    Encode(serde_json::Error),
    /// The link failed: connect, TLS, handshake or the frame exchange.
    #[error("{0}")]
    Link(#[from] WireError),
    #[error("the peer's answer is not understood: {0}")]
    NotUnderstood(serde_json::Error),
    /// The peer answered with its own error, in its words.
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer from the peer: {0:?}")]
    Unexpected(Box<ControlReply>),
    #[error("{0}")]
    Task(tokio::task::JoinError),
    #[error("no answer within {seconds} s")]
    NoAnswer { seconds: u64 },
}

/// The handler the receiver runs for the peer's calls (on a blocking
/// thread, so it may wait on the runtime).
pub fn handler(site: Weak<Site>) -> Arc<ControlHandler> {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |_peer: &str, body: &[u8]| {
        let reply = match site.upgrade() {
            Some(site) => runtime.block_on(site.answer(body)),
            None => ControlReply::Error {
                message: "the site is stopping".into(),
            },
        };
        serde_json::to_vec(&reply).unwrap_or_default()
    })
}
