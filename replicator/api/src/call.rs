//! Every change a client can ask of a site, typed: the one place that knows
//! which method and path under `/api/v1` each one is.

use serde::Serialize;

use crate::bandwidth::BandwidthPolicy;
use crate::types::{
    GroupSpec, MappingSpec, PeerRequest, PlanSpec, PowerRequest, ReplicationRequest, RunRequest,
};

/// The HTTP method of a [`Call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Delete,
}

/// What a replication can be told to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationVerb {
    Sync,
    Pause,
    Resume,
}

impl ReplicationVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }
}

/// One change to a site, with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    PairPeer(PeerRequest),
    Power {
        vm_id: String,
        request: PowerRequest,
    },
    Protect {
        vm_id: String,
        request: ReplicationRequest,
    },
    Unprotect {
        vm_id: String,
    },
    /// Demo sites only (admin): the VM's guest starts overwriting its
    /// disk with random data, as ransomware would.
    SimulateAttack {
        vm_id: String,
    },
    Replication {
        vm_id: String,
        verb: ReplicationVerb,
    },
    /// `id: None` creates, `Some` replaces.
    SaveMappings {
        id: Option<String>,
        spec: MappingSpec,
    },
    DeleteMappings {
        id: String,
    },
    SaveGroup {
        id: Option<String>,
        spec: GroupSpec,
    },
    DeleteGroup {
        id: String,
    },
    SavePlan {
        id: Option<String>,
        spec: PlanSpec,
    },
    DeletePlan {
        id: String,
    },
    StartRun {
        plan_id: String,
        request: RunRequest,
    },
    CancelRun {
        run_id: String,
    },
    AckRun {
        run_id: String,
    },
    /// Acknowledges an alarm of the site: kept, marked, audited.
    AckAlarm {
        id: i64,
    },
    /// Replaces the site's replication bandwidth cap (admin only).
    SetBandwidth(BandwidthPolicy),
    /// Scrubs the replica of a VM held at this site now: every block of
    /// its newest instance against the sums recorded when it arrived.
    ScrubReplica {
        vm_id: String,
    },
}

impl Call {
    pub fn method(&self) -> Method {
        match self {
            Self::PairPeer(_) | Self::Protect { .. } | Self::SetBandwidth(_) => Method::Put,
            Self::SaveMappings { id, .. }
            | Self::SaveGroup { id, .. }
            | Self::SavePlan { id, .. } => {
                if id.is_some() {
                    Method::Put
                } else {
                    Method::Post
                }
            }
            Self::Unprotect { .. }
            | Self::DeleteMappings { .. }
            | Self::DeleteGroup { .. }
            | Self::DeletePlan { .. } => Method::Delete,
            Self::Power { .. }
            | Self::SimulateAttack { .. }
            | Self::Replication { .. }
            | Self::StartRun { .. }
            | Self::CancelRun { .. }
            | Self::AckRun { .. }
            | Self::AckAlarm { .. }
            | Self::ScrubReplica { .. } => Method::Post,
        }
    }

    /// Where the call goes, under `/api/v1`.
    pub fn path(&self) -> String {
        let under = |base: &str, id: &Option<String>| match id {
            Some(id) => format!("{base}/{id}"),
            None => base.to_string(),
        };
        match self {
            Self::PairPeer(_) => "/site/peer".into(),
            Self::SetBandwidth(_) => "/site/bandwidth".into(),
            Self::Power { vm_id, .. } => format!("/vms/{vm_id}/power"),
            Self::SimulateAttack { vm_id } => format!("/vms/{vm_id}/attack"),
            Self::Protect { vm_id, .. } | Self::Unprotect { vm_id } => {
                format!("/replications/{vm_id}")
            }
            Self::Replication { vm_id, verb } => {
                format!("/replications/{vm_id}/{}", verb.as_str())
            }
            Self::SaveMappings { id, .. } => under("/mappings", id),
            Self::DeleteMappings { id } => format!("/mappings/{id}"),
            Self::SaveGroup { id, .. } => under("/protection-groups", id),
            Self::DeleteGroup { id } => format!("/protection-groups/{id}"),
            Self::SavePlan { id, .. } => under("/plans", id),
            Self::DeletePlan { id } => format!("/plans/{id}"),
            Self::StartRun { plan_id, .. } => format!("/plans/{plan_id}/runs"),
            Self::CancelRun { run_id } => format!("/runs/{run_id}/cancel"),
            Self::AckRun { run_id } => format!("/runs/{run_id}/ack"),
            Self::AckAlarm { id } => format!("/alarms/{id}/ack"),
            Self::ScrubReplica { vm_id } => format!("/vms/{vm_id}/scrub"),
        }
    }

    /// The JSON body, if the call has one.
    pub fn body(&self) -> Option<serde_json::Value> {
        fn json(value: &impl Serialize) -> Option<serde_json::Value> {
            // These bodies are plain data: serializing cannot fail.
            serde_json::to_value(value).ok()
        }
        match self {
            Self::PairPeer(r) => json(r),
            Self::SetBandwidth(p) => json(p),
            Self::Power { request, .. } => json(request),
            Self::Protect { request, .. } => json(request),
            Self::SaveMappings { spec, .. } => json(spec),
            Self::SaveGroup { spec, .. } => json(spec),
            Self::SavePlan { spec, .. } => json(spec),
            Self::StartRun { request, .. } => json(request),
            Self::Unprotect { .. }
            | Self::SimulateAttack { .. }
            | Self::Replication { .. }
            | Self::DeleteMappings { .. }
            | Self::DeleteGroup { .. }
            | Self::DeletePlan { .. }
            | Self::CancelRun { .. }
            | Self::AckRun { .. }
            | Self::AckAlarm { .. }
            | Self::ScrubReplica { .. } => None,
        }
    }
}
