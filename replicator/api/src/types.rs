//! Request and response bodies of the HTTP API, shared with the `ferry`
//! client so both ends agree on every field.

use crate::retention::RetentionPolicy;
use serde::{Deserialize, Serialize};

pub use crate::lifecycle::{Lifecycle, TestCopy};
pub use crate::model::*;
pub use crate::readiness::{GroupReadiness, Readiness, SkippedVm};

/// `{"error": "<code>", "message": "<what and why>"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// The field at fault, for `invalid_value`: `networks[0].target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub name: String,
    /// The role of the token that asked: what the caller may do here.
    pub role: Role,
    pub peer: Option<PeerInfo>,
    /// VMs at this site, and how many of them replicate.
    pub vm_count: usize,
    pub replicated_count: usize,
    /// SHA-256 of this site's certificate on the replication link, for
    /// the peer to pin (`sha256:` and 64 hex digits).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Where this site's replication listener is bound (`host:port`), for
    /// the peer to send to once paired (`ferry pair` reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<String>,
}

/// API roles, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also runs tests and cleanups, powers VMs on and off.
    Operator,
    /// Everything: replication settings, real failover, edits.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    /// Not checked yet since this site started.
    Unknown,
    Connected,
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub name: String,
    pub url: String,
    pub status: PeerStatus,
    /// Last successful contact, ms since the Unix epoch.
    pub last_contact_ms: Option<u64>,
    /// Why the last contact failed, while unreachable.
    pub error: Option<String>,
    /// The peer certificate this site pinned.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// `PUT /api/v1/site/peer`: pairs this site with its peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRequest {
    pub name: String,
    pub url: String,
    pub replication: String,
    /// The peer's certificate fingerprint, as its own `GET /api/v1/site`
    /// shows it: the link will accept only that certificate.
    pub fingerprint: String,
    /// Needed to pin a certificate other than the one pinned now.
    #[serde(default)]
    pub replace: bool,
    /// The pairing secret of older versions: accepted, and ignored.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    On,
    Off,
    /// Its process ended without being asked to (a QEMU VM), or it could
    /// not be found again after a site restart: never asked for, only
    /// reported, with the cause in [`VmInfo::problem`].
    Crashed,
}

/// Which compute backend runs a VM (chosen per site in site.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeKind {
    /// The built-in guest, a task of the site process.
    #[default]
    Builtin,
    /// A `qemu-system-x86_64` process the site starts and supervises.
    Qemu,
}

impl ComputeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::Qemu => "qemu",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    pub state: PowerState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskInfo {
    pub datastore: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestInfo {
    pub heartbeat_ms: u64,
    pub last_seq: u64,
    pub last_record_ms: Option<u64>,
    /// `network=ip/prefix` as the guest sees its NICs.
    pub ips: Vec<String>,
    pub boot_verification: Option<Verification>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmInfo {
    pub id: String,
    pub name: String,
    pub folder: String,
    pub resource_pool: String,
    pub power_state: PowerState,
    pub nics: Vec<NicSeed>,
    pub disks: Vec<DiskInfo>,
    pub guest: Option<GuestInfo>,
    pub replicated: bool,
    /// The backend that runs it: `builtin` or `qemu`.
    #[serde(default)]
    pub compute: ComputeKind,
    #[serde(default)]
    pub memory_mib: u32,
    #[serde(default)]
    pub vcpus: u32,
    /// A running QEMU VM's process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The accelerator a running QEMU VM uses: `kvm` or `tcg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// Why the VM is crashed or failed to boot, naming the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The last lines of a QEMU VM's serial console (`GET /vms/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_tail: Option<String>,
    /// What the VM is now, across both sites, as this site says.
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressInfo {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSyncInfo {
    pub finished_at: u64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub full: bool,
    pub instance: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationInfo {
    pub vm: String,
    pub vm_id: String,
    pub source_site: String,
    pub target_site: Option<String>,
    /// ok, syncing, initial_full_sync, full_sync, rpo_violation, paused,
    /// not_active, error; `ended` once the VM was recovered at the peer
    /// (see `lifecycle`).
    pub state: String,
    pub rpo_seconds: u64,
    pub lag_seconds: Option<f64>,
    pub rpo_violated: bool,
    pub progress: Option<ProgressInfo>,
    pub last_sync: Option<LastSyncInfo>,
    /// Consistency point of the newest complete instance at the peer.
    pub point_time_ms: Option<u64>,
    pub datastore: String,
    pub compress: bool,
    pub paused: bool,
    pub last_error: Option<String>,
    /// The VM's lifecycle, the same as on its [`VmInfo`] (protected when
    /// an older site leaves it out).
    #[serde(default = "Lifecycle::protected")]
    pub lifecycle: Lifecycle,
    /// The older instances the replica keeps (newest only by default).
    #[serde(default)]
    pub retention: RetentionPolicy,
}

/// `PUT /api/v1/replications/{vm_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationRequest {
    pub rpo_seconds: u64,
    /// The datastore at the peer that holds the replica.
    pub datastore: Option<String>,
    pub compress: Option<bool>,
    /// The older instances the replica keeps; absent keeps the policy in
    /// force (newest only for a new replication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
}

/// Everything the event stream carries, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SiteEvent {
    Replication(ReplicationInfo),
    ReplicationRemoved {
        vm_id: String,
    },
    VmPower {
        vm_id: String,
        vm: String,
        power_state: PowerState,
    },
    /// A VM appeared or its lifecycle changed.
    Vm(VmInfo),
    /// A VM left this site's inventory (its disks became a seed).
    VmRemoved {
        vm_id: String,
    },
    VmHeartbeat {
        vm_id: String,
        vm: String,
        heartbeat_ms: u64,
        last_seq: u64,
    },
    Peer(PeerInfo),
    Mappings(Mappings),
    MappingsRemoved {
        id: String,
    },
    Group(ProtectionGroup),
    GroupRemoved {
        id: String,
    },
    Plan(Plan),
    PlanRemoved {
        id: String,
    },
    Run(Run),
    Alarm(EventRow),
    Audit(AuditEntry),
    /// The stream fell behind and dropped events: refetch everything.
    Resync,
}

impl SiteEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Replication(_) => "replication",
            Self::ReplicationRemoved { .. } => "replication_removed",
            Self::VmPower { .. } => "vm_power",
            Self::Vm(_) => "vm",
            Self::VmRemoved { .. } => "vm_removed",
            Self::VmHeartbeat { .. } => "vm_heartbeat",
            Self::Peer(_) => "peer",
            Self::Mappings(_) => "mappings",
            Self::MappingsRemoved { .. } => "mappings_removed",
            Self::Group(_) => "group",
            Self::GroupRemoved { .. } => "group_removed",
            Self::Plan(_) => "plan",
            Self::PlanRemoved { .. } => "plan_removed",
            Self::Run(_) => "run",
            Self::Alarm(_) => "alarm",
            Self::Audit(_) => "audit",
            Self::Resync => "resync",
        }
    }
}

/// A VM's NIC as the site's inventory seeds it: `nics` of [`VmInfo`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NicSeed {
    pub network: String,
    /// IPv4 or IPv6 with prefix, e.g. `10.0.1.11/24`.
    pub ip: Option<String>,
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
}

/// What a boot-time check of the record log found; one type with the
/// guest's, which writes and verifies the log.
pub use ferry_guest::record_log::Verification;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: u64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub status: u16,
    pub result: String,
}

/// One stored event (alarms and notable changes, not progress ticks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: i64,
    pub at_ms: u64,
    pub kind: String,
    pub severity: String,
    pub vm_id: Option<String>,
    pub message: String,
    /// Who acknowledged it and when; an acknowledged alarm is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<Ack>,
}

/// An alarm's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The caller's token name, or `site` when the site cleared it itself
    /// (an RPO alarm of a VM recovered at the peer).
    pub by: String,
    pub at_ms: u64,
}

/// Wall-clock time in ms since the Unix epoch, the unit of every `*_ms`
/// field above (0 if the clock is before the epoch).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One kept point-in-time instance of a replica, as
/// `GET /api/v1/vms/{id}/instances` lists them at the site holding it,
/// newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// What a run's `"instance"` names.
    pub id: String,
    pub point_time_ms: u64,
    /// Bytes of the blocks this instance changed; `None` when it was not
    /// scored (the initial sync).
    pub bytes_changed: Option<u64>,
    pub score: Option<InstanceScore>,
    /// It, or an earlier instance since an alarm, looks attacked.
    pub suspicious: bool,
    /// The newest instance that is not suspicious: the clean point.
    pub recommended: bool,
}

/// How an instance's change compares with its VM's learned baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InstanceScore {
    /// Bytes changed per second since the instance before.
    pub rate: f64,
    /// Share (0 to 1) of the sampled changed blocks that look encrypted.
    pub encrypted_share: f64,
    pub baseline_rate: f64,
    pub baseline_share: f64,
    /// The first instance of an encryption-like jump (the alarm's).
    pub jump: bool,
}
