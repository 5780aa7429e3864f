//! What a VM's replication looks like from outside: the state an operator
//! sees, the lag, the running cycle's progress and the last cycle.

use std::time::Duration;

/// The replication state of one VM, in the operator's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicationState {
    /// No complete instance yet; the first full sync is due or running.
    InitialFullSync,
    /// Inside the RPO, no cycle running.
    Ok,
    /// A delta cycle is running.
    Syncing,
    /// A full sync (after lost tracking or on request) is running.
    FullSync,
    /// The newest complete instance is older than the RPO (past its grace).
    RpoViolation,
    Paused,
    /// The peer site cannot be reached; cycles are retried with backoff.
    NotActive,
    /// The last cycle failed for a reason other than the link.
    Error,
}

impl ReplicationState {
    /// The API and UI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InitialFullSync => "initial_full_sync",
            Self::Ok => "ok",
            Self::Syncing => "syncing",
            Self::FullSync => "full_sync",
            Self::RpoViolation => "rpo_violation",
            Self::Paused => "paused",
            Self::NotActive => "not_active",
            Self::Error => "error",
        }
    }
}

/// Bytes of the running cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// The last completed cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSync {
    pub finished_at_ms: u64,
    pub duration: Duration,
    /// Bytes of blocks that travelled.
    pub bytes: u64,
    pub full: bool,
    pub instance: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationStatus {
    pub state: ReplicationState,
    pub rpo: Duration,
    /// Age of the newest complete instance; `None` before the first one.
    pub lag: Option<Duration>,
    /// The consistency point of the newest complete instance.
    pub point_time_ms: Option<u64>,
    pub rpo_violated: bool,
    pub progress: Option<Progress>,
    pub last_sync: Option<LastSync>,
    /// Why the last cycle failed, while the state is `not_active` or `error`.
    pub last_error: Option<String>,
    /// Set while the bandwidth cap gives the VM less than its RPO needs.
    pub bandwidth_short: Option<BandwidthShort>,
}

/// A VM's RPO cannot be met under the bandwidth cap: what it needs and what
/// its share of the cap gives it, bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthShort {
    pub needed: u64,
    pub gets: u64,
}

impl ReplicationStatus {
    pub fn new(rpo: Duration) -> Self {
        Self {
            state: ReplicationState::InitialFullSync,
            rpo,
            lag: None,
            point_time_ms: None,
            rpo_violated: false,
            progress: None,
            last_sync: None,
            last_error: None,
            bandwidth_short: None,
        }
    }
}

/// What the scheduler knows, reduced to the one state shown. The order of
/// the checks is the precedence: a cause (paused, unreachable, failing)
/// outranks its symptom (a violation), and a violation outranks routine work.
pub struct StateInputs {
    pub paused: bool,
    pub link_down: bool,
    pub failing: bool,
    pub running_full: Option<bool>,
    pub has_instance: bool,
    pub violated: bool,
}

pub fn derive_state(i: &StateInputs) -> ReplicationState {
    use ReplicationState::*;
    if i.paused {
        Paused
    } else if i.link_down {
        NotActive
    } else if i.failing {
        Error
    } else if !i.has_instance {
        InitialFullSync
    } else if i.running_full == Some(true) {
        FullSync
    } else if i.violated {
        RpoViolation
    } else if i.running_full == Some(false) {
        Syncing
    } else {
        Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let base = StateInputs {
            paused: false,
            link_down: false,
            failing: false,
            running_full: None,
            has_instance: true,
            violated: false,
        };
        assert_eq!(derive_state(&base), ReplicationState::Ok);
        let running = StateInputs {
            running_full: Some(false),
            ..base
        };
        assert_eq!(derive_state(&running), ReplicationState::Syncing);
        let late = StateInputs {
            violated: true,
            ..running
        };
        assert_eq!(derive_state(&late), ReplicationState::RpoViolation);
        let down = StateInputs {
            link_down: true,
            ..late
        };
        assert_eq!(derive_state(&down), ReplicationState::NotActive);
        let paused = StateInputs {
            paused: true,
            ..down
        };
        assert_eq!(derive_state(&paused), ReplicationState::Paused);
    }
}
