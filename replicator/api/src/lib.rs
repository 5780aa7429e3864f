//! ferry's site API as both ends see it: what the `ferry` TUI, the demo, the
//! tests and the benches need to talk to a site, without the site itself
//! (no axum, SQLite or compression here).
//!
//! A tour, bottom up; a module uses only the ones listed before it:
//!
//! - [`time`]: wall-clock times as people read them (UTC).
//! - [`lifecycle`]: what a VM is now across both sites.
//! - [`readiness`]: whether a plan can run now, as its owner finds it.
//! - [`retention`]: which point-in-time instances a policy keeps (pure).
//! - [`bandwidth`]: the site's replication cap and its time windows (pure).
//! - [`model`]: the protection objects (mappings, groups, plans, runs) the
//!   bodies carry; re-exported by [`types`].
//! - [`mapping`], [`plan`], [`placement`]: the pure checks and derivations
//!   the site enforces and the TUI runs before sending, so both agree.
//! - [`run`]: a run's record and how it changes (pure; the site's executor
//!   does the work and records it here).
//! - [`scrub`]: what a scrub of a replica found, block by block.
//! - [`types`]: request, response and event bodies of `/api/v1`.
//! - [`call`]: every change a client can ask for, typed, and the one place
//!   paths are spelled.
//! - [`pin`]: trust in an `https://` site's pinned certificate.
//! - [`client`]: a typed async client for one site.

pub mod bandwidth;
pub mod call;
pub mod client;
pub mod lifecycle;
pub mod mapping;
pub mod model;
pub mod pin;
pub mod placement;
pub mod plan;
pub mod readiness;
pub mod retention;
pub mod run;
pub mod scrub;
pub mod time;
pub mod types;

pub use call::{Call, Method, ReplicationVerb};
pub use client::{Client, ClientError, Failure};
pub use types::now_ms;

/// A value out of range or inconsistent, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
