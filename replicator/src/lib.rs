//! ferry-replicator: one per site. It owns the site's disks, tracks every
//! block a protected VM writes, ships the changes to the paired site on an
//! RPO schedule and keeps every replica crash-consistent.
//!
//! A tour, bottom up; a module uses only the ones listed before it (the
//! arrows point down, checked by `tests/engine/architecture.rs`):
//!
//! - [`crash`]: named crash points, armed only by crash-consistency tests.
//! - [`sync`]: taking a mutex a panicked task poisoned, and why.
//! - [`identity`]: the site's key and self-signed certificate on the
//!   replication link, and the fingerprint its peer pins.
//! - [`storage`]: sparse disk files, change tracking with copy-before-write,
//!   redo logs and replicas that are always at a complete instance.
//! - [`replication`]: the wire protocol between sites, the sender and
//!   receiver of a sync cycle (delta or full), and the RPO scheduler.
//! - [`access`]: API roles and bearer tokens, stored as hashes.
//! - [`config`]: `site.toml`, parsed then checked as a whole.
//! - [`inventory`]: the site's VMs as records.
//! - [`guest`]: the built-in guest a powered-on VM runs, with its record log.
//! - [`compute`]: where VMs run: the built-in guest or a QEMU process per
//!   VM, behind one interface; QEMU's control channel (QMP), its NBD export
//!   and its dirty bitmaps as the change tracking of a sync cycle.
//! - [`store`]: SQLite persistence of the site's control plane.
//! - [`recovery`]: the protection objects and their pure rules (from the
//!   `ferry-api` crate), and whether a run may start.
//! - [`site`]: a running site: VMs, replications, peer, protection, runs.
//! - [`api`]: the HTTP API over a site, one router per resource.
//! - [`server`]: one site process: the site with its API and listeners,
//!   from a config file to a clean stop.
//! - [`demo_pair`]: the files of a demo pair of sites (configs pinning
//!   each other, tokens), for `ferry demo`.
//! - `fuzzing` (hidden): the fuzzers' entry points into the parsers.

pub mod access;
pub mod api;
pub mod compute;
pub mod config;
pub mod crash;
pub mod demo_pair;
#[doc(hidden)]
pub mod fuzzing;
pub mod guest;
pub mod identity;
pub mod inventory;
pub mod recovery;
pub mod replication;
pub mod server;
pub mod site;
pub mod storage;
pub mod store;
pub mod sync;
