//! ferry, the operator's program, as a library: the thin `ferry` binary
//! parses the command line and calls into these modules. It talks to sites
//! only through `ferry-api`'s typed client.
//!
//! A tour, bottom up (the modules' arrows are checked for circles by
//! `replicator/tests/engine/architecture.rs`):
//!
//! - [`stop`]: the signals that quit it like `q`; [`theme`]: styles by role.
//! - [`feed`]: one live feed per site (fetch, then server-sent events);
//!   [`settings`]: config file and paths; [`pinning`]: the pinned
//!   certificates of `https://` sites, kept in that config file.
//! - [`model`]: what is known of both sites.
//! - [`editor`]: mappings, protection group and recovery plan editors.
//! - [`app`]: the UI state machine; [`keys`]: the key map.
//! - [`ui`]: rendering, pure functions of the app.
//! - [`export`]: a run's record as JSON and Markdown files.
//! - [`tui`]: the terminal's owner and the event loop.
//! - [`cli`]: the scripted commands (`ferry status`, `plan`, `run` ...).
//! - [`demo`]: the two-site demo.

pub mod app;
pub mod cli;
pub mod demo;
pub mod editor;
pub mod export;
pub mod feed;
pub mod keys;
pub mod model;
pub mod pinning;
pub mod settings;
pub mod stop;
pub mod theme;
pub mod tui;
pub mod ui;

/// UI choices that come from the command line.
#[derive(Debug, Clone, Default)]
pub struct UiOptions {
    pub theme: Option<String>,
    pub read_only: bool,
    pub noc: bool,
}
