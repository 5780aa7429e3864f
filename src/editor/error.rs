//! Why an editor refuses a change or a save. The app shows the sentence in
//! the status line or the dialog; each variant renders what the operator
//! read before these were typed.

use ferry_api::Invalid;

/// A change or a save an editor (or its picker) refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A field the site's own rules refuse, in words (`say::sentence`).
    #[error("{}", super::say::sentence(Some(&.0.field), &.0.message))]
    Invalid(Invalid),
    /// A new name the rules refuse; the dialog shows it beside the name,
    /// so without the field.
    #[error("{}", .0.message)]
    Name(Invalid),
    #[error("{vm} is already in group {group}; a VM is in one group only")]
    AlreadyInGroup { vm: String, group: String },
    /// A picker item that cannot be chosen, and why.
    #[error("{item}: {why}")]
    Refused { item: String, why: String },
    #[error("the recovery site {0} is not one of the sites")]
    UnknownSite(String),
    #[error("{mappings}: its owner {owner} is not one of the sites")]
    UnknownOwner { mappings: String, owner: String },
    #[error("a plan recovers to one site: these groups recover to {0} and {1}")]
    TwoRecoverySites(String, String),
    #[error("the plan's groups are not known yet")]
    GroupsUnknown,
    #[error("line {line}: {why}")]
    Callout { line: usize, why: CalloutError },
    #[error("no such direction")]
    NoSuchDirection,
    #[error("not changed: {}", super::say::sentence(Some(&.0.field), &.0.message))]
    NotChanged(Invalid),
}

/// What is wrong with one line of callouts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalloutError {
    #[error("expected `pre|post command [Ns]: …` or `pre|post prompt: …`")]
    NoColon,
    #[error("start with `pre` or `post`")]
    NoWhen,
    #[error("nothing after the colon")]
    NothingAfterColon,
    #[error("expected `command`, `command <N>s` or `prompt`")]
    NoKind,
    #[error("timeout: {0}")]
    Timeout(super::check::SecondsError),
}
