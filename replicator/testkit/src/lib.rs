//! What ferry's tests and benchmarks share, written once (dev-dependency
//! only):
//!
//! - [`chaos`]: a loopback proxy that makes a link slow, lossy or broken.
//! - [`config`]: a typed builder for a test site's `site.toml`.
//! - [`guest`]: the real guest's boot image, for QEMU VMs.
//! - [`link`]: both ends of a replication link in one process (certificates,
//!   a receiver on a free port, the target) and a seeded random source.
//! - [`measure`]: the units benchmarks print in (ms, MiB/s).
//! - [`process`]: one way to start a site process and read its addresses.
//! - [`wait`]: one condition wait with a deadline that says what it waited for.
//!
//! The TUI's render-to-string helper lives with the TUI
//! (`src/ui/testing.rs`), since it needs the app's own types.

pub mod chaos;
pub mod config;
pub mod guest;
pub mod link;
pub mod measure;
pub mod process;
pub mod wait;

pub use chaos::{Chaos, Knobs};
pub use config::SiteConfigBuilder;
pub use guest::{QemuReaper, guest_image};
pub use link::{Rng, TestReceiver};
pub use process::{SiteProcess, free_port, site_fingerprint};
pub use wait::{eventually, wait_until};
