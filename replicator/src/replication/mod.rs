//! Replication between sites: the wire protocol, the two ends of a sync
//! cycle, and the RPO scheduler that decides when cycles run.
//!
//! - [`frame`], [`message`], [`handshake`]: length-prefixed frames with
//!   limits and optional zstd, the typed messages, mutual authentication.
//! - [`sender`]: one cycle from the protected site: freeze a consistency
//!   point, ship dirty blocks (delta) or blocks whose hashes differ (full).
//! - [`receiver`]: the recovery site's listener: redo log, commit,
//!   consolidation.
//!
//! The protocol (handshake, frame layout, message kinds and fields, the
//! version rule, limits) is written down in `replicator/docs/wire.md`;
//! change it with the code.

pub mod error;
pub mod frame;
pub mod handshake;
pub mod message;

pub use error::WireError;
pub use handshake::PairingSecret;
pub mod connection;
pub mod receiver;
pub mod sender;

pub use receiver::{Receiver, ReceiverConfig};
pub use sender::{CycleProgress, CycleReport, SyncTarget, run_cycle};
pub mod schedule;
pub mod scheduler;
pub mod status;
