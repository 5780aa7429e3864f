//! What an operator edits before anything can fail over, and what a run
//! records: inventory mappings, protection groups, recovery plans and runs.
//! These are the API's bodies too (re-exported by `api::types`), so the
//! `ferry` client and the site agree on every field.

use crate::retention::RetentionPolicy;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- mappings

/// One source object and where it lands at the recovery site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub source: String,
    pub target: String,
}

/// Rewrites addresses of one subnet into another, keeping the host part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRule {
    /// `10.1.0.0/24` or `fd00:1::/64`.
    pub from_subnet: String,
    #[serde(default)]
    pub from_gateway: Option<String>,
    pub to_subnet: String,
    #[serde(default)]
    pub to_gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
}

/// A fixed address for one NIC of one VM at the recovery site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NicAddress {
    /// Index of the NIC in the VM's NIC list.
    pub nic: usize,
    /// `10.2.0.5/24`.
    #[serde(default)]
    pub ipv4: Option<String>,
    #[serde(default)]
    pub ipv4_gateway: Option<String>,
    /// `fd00:2::5/64`.
    #[serde(default)]
    pub ipv6: Option<String>,
    #[serde(default)]
    pub ipv6_gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
}

/// Per-VM address overrides in a mapping set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpOverride {
    pub vm_id: String,
    pub nics: Vec<NicAddress>,
}

/// The body of `POST`/`PUT /api/v1/mappings[/{id}]`: where the objects of
/// `from_site` land at `to_site`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    pub from_site: String,
    pub to_site: String,
    #[serde(default)]
    pub networks: Vec<Pair>,
    /// Source network → isolated network used only by test runs.
    #[serde(default)]
    pub test_networks: Vec<Pair>,
    #[serde(default)]
    pub folders: Vec<Pair>,
    #[serde(default)]
    pub resource_pools: Vec<Pair>,
    #[serde(default)]
    pub datastores: Vec<Pair>,
    #[serde(default)]
    pub ip_rules: Vec<IpRule>,
    #[serde(default)]
    pub ip_overrides: Vec<IpOverride>,
}

/// A mapping set as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mappings {
    /// `<from_site>-to-<to_site>`.
    pub id: String,
    /// The site that stores and edits it: the recovery site, `to_site`.
    pub owner: String,
    #[serde(flatten)]
    pub spec: MappingSpec,
    pub updated_ms: u64,
}

/// The objects of one site that mappings can name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Inventory {
    pub site: String,
    pub networks: Vec<NetworkInfo>,
    pub folders: Vec<String>,
    pub resource_pools: Vec<String>,
    pub datastores: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub name: String,
    /// An isolated network for test runs.
    pub test: bool,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

// ------------------------------------------------------- protection groups

/// The body of `POST`/`PUT /api/v1/protection-groups[/{id}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    /// VM ids, replicated from the peer to this site.
    pub vms: Vec<String>,
}

/// Where a VM would be recovered: the placeholder at the recovery site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    pub folder: String,
    pub resource_pool: String,
    /// The datastore holding the replica.
    pub datastore: String,
    /// Recovery network per NIC, in NIC order.
    pub networks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVm {
    pub vm_id: String,
    pub vm: String,
    /// `ok`, `mapping missing: <kind>` or `not replicated`.
    pub status: String,
    pub placeholder: Option<Placeholder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionGroup {
    pub id: String,
    pub name: String,
    /// Where the VMs run now.
    pub protected_site: String,
    /// Where they are recovered to; it owns the group.
    pub recovery_site: String,
    pub vms: Vec<GroupVm>,
    /// The run that holds the group's lock, if any.
    pub locked_by: Option<String>,
    pub updated_ms: u64,
}

// ------------------------------------------------------------------- plans

/// A step of its own in a run: a command on the recovery site's host, or a
/// prompt that pauses the run until an operator acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Callout {
    Command {
        command: String,
        #[serde(default = "default_callout_timeout")]
        timeout_seconds: u64,
    },
    Prompt {
        message: String,
    },
}

pub const DEFAULT_CALLOUT_TIMEOUT: u64 = 300;
pub const DEFAULT_HEARTBEAT_TIMEOUT: u64 = 300;
pub const DEFAULT_PRIORITY: u8 = 3;

fn default_callout_timeout() -> u64 {
    DEFAULT_CALLOUT_TIMEOUT
}
fn default_heartbeat_timeout() -> u64 {
    DEFAULT_HEARTBEAT_TIMEOUT
}
fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}
fn yes() -> bool {
    true
}

/// How a recovered VM gets its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum IpCustomization {
    /// From the mapping's subnet rules and per-VM overrides.
    #[default]
    Auto,
    /// Keep the protected site's addresses.
    Off,
    Manual {
        nics: Vec<NicAddress>,
    },
}

/// One VM's recovery settings in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanVm {
    pub vm_id: String,
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// VMs of the same priority that must have a heartbeat first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default = "yes")]
    pub power_on: bool,
    #[serde(default = "default_heartbeat_timeout")]
    pub heartbeat_timeout_seconds: u64,
    #[serde(default)]
    pub pre_power_on: Vec<Callout>,
    #[serde(default)]
    pub post_power_on: Vec<Callout>,
    #[serde(default)]
    pub ip_customization: IpCustomization,
}

impl PlanVm {
    pub fn new(vm_id: &str) -> Self {
        Self {
            vm_id: vm_id.to_string(),
            priority: DEFAULT_PRIORITY,
            depends_on: Vec::new(),
            power_on: true,
            heartbeat_timeout_seconds: DEFAULT_HEARTBEAT_TIMEOUT,
            pre_power_on: Vec::new(),
            post_power_on: Vec::new(),
            ip_customization: IpCustomization::Auto,
        }
    }
}

/// The body of `POST`/`PUT /api/v1/plans[/{id}]`. VMs of the plan's groups
/// that `vms` does not list get the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Protection group ids.
    pub groups: Vec<String>,
    #[serde(default)]
    pub vms: Vec<PlanVm>,
    /// Run before the first priority's power-on steps.
    #[serde(default)]
    pub pre_power_on: Vec<Callout>,
    /// Run after the last priority's power-on steps.
    #[serde(default)]
    pub post_power_on: Vec<Callout>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    Ready,
    TestInProgress,
    TestComplete,
    CleanupInProgress,
    RecoveryInProgress,
    RecoveryComplete,
    ReprotectInProgress,
    Interrupted,
}

impl PlanState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::TestInProgress => "test in progress",
            Self::TestComplete => "test complete",
            Self::CleanupInProgress => "cleanup in progress",
            Self::RecoveryInProgress => "recovery in progress",
            Self::RecoveryComplete => "recovery complete",
            Self::ReprotectInProgress => "reprotect in progress",
            Self::Interrupted => "interrupted",
        }
    }
}

/// A plan as the API shows it: the spec with every VM's settings resolved,
/// its direction, state and computed start order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub description: String,
    pub protected_site: String,
    /// Owns the plan and executes its runs.
    pub recovery_site: String,
    pub groups: Vec<String>,
    /// Every VM of the plan's groups, with its settings.
    pub vms: Vec<PlanVm>,
    pub pre_power_on: Vec<Callout>,
    pub post_power_on: Vec<Callout>,
    pub state: PlanState,
    /// What the owning site found in the way, or not: `allowed` and
    /// `next` follow from it.
    #[serde(default)]
    pub readiness: crate::readiness::Readiness,
    /// The modes a run may be started in now.
    pub allowed: Vec<RunMode>,
    /// What to do next, in words.
    pub next: String,
    /// VM ids by priority 1..=5, each in dependency order.
    pub start_order: Vec<Vec<String>>,
    pub last_run: Option<String>,
    pub updated_ms: u64,
}

// -------------------------------------------------------------------- runs

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    Test,
    Cleanup,
    PlannedMigration,
    DisasterRecovery,
    Reprotect,
}

impl RunMode {
    pub fn label(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Cleanup => "cleanup",
            Self::PlannedMigration => "planned migration",
            Self::DisasterRecovery => "disaster recovery",
            Self::Reprotect => "reprotect",
        }
    }

    /// Real failover and reprotect: admin role and a typed confirmation.
    pub fn is_destructive(self) -> bool {
        matches!(
            self,
            Self::PlannedMigration | Self::DisasterRecovery | Self::Reprotect
        )
    }
}

/// `POST /api/v1/plans/{id}/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub mode: RunMode,
    /// The plan's name, typed; required for real failover and reprotect.
    #[serde(default)]
    pub confirm: Option<String>,
    /// Test only: synchronize storage first (default true).
    #[serde(default)]
    pub sync: Option<bool>,
    /// Cleanup only: go on past errors and report what was left.
    #[serde(default)]
    pub force: Option<bool>,
    /// Test only: the kept instance to recover, by VM id (`GET
    /// /vms/{id}/instances` lists them); other VMs recover the newest.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub instances: std::collections::BTreeMap<String, String>,
    /// Test only: every VM of the plan at its newest kept instance at or
    /// before this time (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Paused on a prompt.
    Waiting,
    Succeeded,
    SucceededWithWarnings,
    Failed,
    Cancelled,
    Interrupted,
}

impl RunState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting for an operator",
            Self::Succeeded => "succeeded",
            Self::SucceededWithWarnings => "succeeded with warnings",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Running | Self::Waiting)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Waiting,
    Done,
    Warning,
    Error,
    Skipped,
}

/// One VM's part of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubStep {
    pub vm_id: String,
    pub vm: String,
    pub state: StepState,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub state: StepState,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub message: String,
    /// The last 4 KiB of a command callout's output.
    pub output: Option<String>,
    pub vms: Vec<SubStep>,
}

/// A prompt waiting for `POST /api/v1/runs/{id}/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPrompt {
    pub step: usize,
    pub message: String,
    pub vm_id: Option<String>,
}

/// What a run did to one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunVm {
    pub vm_id: String,
    pub vm: String,
    pub priority: u8,
    pub rpo_seconds: Option<u64>,
    /// Consistency point of the instance recovered.
    pub point_time_ms: Option<u64>,
    /// The protected copy's last write, as its guest last reported it.
    pub last_write_ms: Option<u64>,
    /// The newest record the recovered guest verified on boot.
    pub last_verified_ms: Option<u64>,
    pub data_loss_seconds: Option<f64>,
    pub verified: Option<bool>,
    pub heartbeat_ms: Option<u64>,
    /// done, warning, error, skipped or pending.
    pub result: StepState,
    pub message: String,
    /// The kept instance recovered when the run chose one (`None`: the
    /// newest, as it was when the run took it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The newest complete instance's point when an older one was chosen:
    /// the choice gives up everything between the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_point_ms: Option<u64>,
    /// The replication's retention, so that replicating back keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub plan_id: String,
    pub plan_name: String,
    pub mode: RunMode,
    pub state: RunState,
    pub protected_site: String,
    pub recovery_site: String,
    pub started_by: String,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// Start to the last VM's heartbeat.
    pub rto_seconds: Option<f64>,
    pub steps: Vec<Step>,
    pub vms: Vec<RunVm>,
    pub prompt: Option<PendingPrompt>,
    /// How it ended, or what it is waiting for, in words.
    pub message: String,
    pub cancel_requested: bool,
    /// VMs of the plan the run left out, and why: a run that skipped any
    /// never reads as plain success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<crate::readiness::SkippedVm>,
}
