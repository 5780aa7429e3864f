//! Editing protection objects: mappings, protection groups and recovery
//! plans. Pure state like the rest of the app: an editor holds a draft and
//! what was last saved, checks edits with the site's own rules
//! (`ferry_api`), and builds the [`Request`] that saves
//! it, a typed [`Call`]; a task sends it and the [`Reply`] comes back to the app.
//!
//! - [`form`]: forms and pickers, the dialogs every editor uses.
//! - [`mappings`], [`groups`], [`plans`]: one editor each.
//! - [`callouts`]: callouts as lines of text; [`check`]: reading fields;
//!   [`error`]: why an editor refuses.

pub mod callouts;
pub mod check;
pub mod error;
#[cfg(test)]
pub mod fixture;
pub mod form;
pub mod groups;
pub mod mappings;
pub mod nic;
pub mod plans;
pub mod say;

use ferry_api::Call;
pub use ferry_api::Method;
use ferry_api::types::ErrorBody;

/// What a request is for; its reply comes back with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    SaveMappings {
        id: String,
    },
    SaveGroup,
    SavePlan,
    /// `what` names the object for the operator (`group db-tier`), `call`
    /// is the deletion, which says what to forget when it succeeds.
    Delete {
        what: String,
        /// Boxed: a call may carry a whole plan.
        call: Box<Call>,
    },
}

/// A change for a site's API, sent to the site that owns the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub site: usize,
    pub call: Call,
    pub purpose: Purpose,
}

/// A site's answer: the object it stored (or nothing), or its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub purpose: Purpose,
    pub outcome: Result<serde_json::Value, ErrorBody>,
}

/// A field path as the site names it, split: `ip_rules[1].to_gateway` is
/// `[("ip_rules", Some(1)), ("to_gateway", None)]`.
pub fn path(field: &str) -> Vec<(&str, Option<usize>)> {
    field
        .split('.')
        .map(|part| match part.split_once('[') {
            Some((name, index)) => (name, index.trim_end_matches(']').parse().ok()),
            None => (part, None),
        })
        .collect()
}

/// The last name in a field path, which is what a form's field is called.
pub fn leaf(field: &str) -> &str {
    path(field).last().map_or("", |(name, _)| name)
}

/// A refusal for a status line, as a sentence, with the field in words
/// when there is one.
pub fn describe(e: &ErrorBody) -> String {
    say::sentence(e.field.as_deref(), &e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        assert_eq!(
            path("ip_overrides[0].nics[12].ipv4"),
            [
                ("ip_overrides", Some(0)),
                ("nics", Some(12)),
                ("ipv4", None)
            ]
        );
        assert_eq!(leaf("vms[2].depends_on"), "depends_on");
        assert_eq!(path("name"), [("name", None)]);
    }
}
