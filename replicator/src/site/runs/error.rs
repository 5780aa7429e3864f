//! Why a callout failed and why a step stops its run: typed, so the step
//! loop and the callers can tell a cancel from a failure, and each renders
//! the sentence the run view shows.

use std::process::ExitStatus;

use crate::site::control::PeerCallError;

/// Why a command callout failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start `sh -c`: {0}")]
    Start(std::io::Error),
    #[error("timed out after {seconds} s and was killed")]
    TimedOut { seconds: u64 },
    #[error("failed: {0}")]
    Wait(std::io::Error),
    /// Ran and exited non-zero; `tail` is the end of its output.
    #[error(
        "exited with {status}{}",
        if tail.is_empty() { String::new() } else { format!(": {tail}") }
    )]
    Exited { status: ExitStatus, tail: String },
}

/// Why a list of callouts stopped at one of them.
#[derive(Debug, thiserror::Error)]
pub enum CalloutError {
    #[error("`{command}` {source}")]
    Command {
        command: String,
        source: CommandError,
    },
    #[error("cancelled while waiting for an operator")]
    Cancelled,
}

/// Why a step stops its run (the other failures are recorded per VM and
/// let it go on).
#[derive(Debug, thiserror::Error)]
pub enum StopRun {
    /// The protected site did not answer, where the mode needs it to.
    #[error("site {site} did not answer: {source}")]
    PeerDown { site: String, source: PeerCallError },
    /// The protected site refused or failed a call that has no way round.
    #[error(transparent)]
    Peer(#[from] PeerCallError),
    /// A planned migration stops before the recovery site changes.
    #[error("{why}; nothing was changed at the recovery site")]
    MigrationStopped { why: &'static str },
}
