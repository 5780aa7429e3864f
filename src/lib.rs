//! ferry, the operator's program, as a library: the thin `ferry` binary
//! parses the command line and calls into these modules.
//!
//! - [`feed`]: one live feed per site (fetch, then server-sent events).
//! - [`model`]: what is known of both sites; [`app`]: the UI state machine.
//! - [`editor`]: mappings, protection group and recovery plan editors.
//! - [`ui`]: rendering, pure functions of the app; [`theme`]: styles by role.
//! - [`tui`]: the terminal's owner and the event loop; [`keys`]: key map;
//!   [`stop`]: the signals that quit it like `q`.
//! - [`demo`]: the two-site demo; [`settings`]: config file and paths.
//! - [`export`]: a run's record as JSON and Markdown files.

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
