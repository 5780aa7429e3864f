//! ferry-replicator: one per site. It owns the site's disks, tracks every
//! block a protected VM writes, ships the changes to the paired site on an
//! RPO schedule and keeps every replica crash-consistent.
//!
//! A tour, bottom up (arrows point down only):
//!
//! - [`storage`]: sparse disk files, change tracking with copy-before-write,
//!   redo logs and replicas that are always at a complete instance.
//! - [`replication`]: the wire protocol between sites, the sender and
//!   receiver of a sync cycle (delta or full), and the RPO scheduler.
//! - [`crash`]: named crash points, armed only by crash-consistency tests.

pub mod access;
pub mod api;
pub mod config;
pub mod crash;
pub mod demo_pair;
pub mod guest;
pub mod inventory;
pub mod recovery;
pub mod replication;
pub mod site;
pub mod storage;
pub mod store;
