//! Replication between sites: the wire protocol, the two ends of a sync
//! cycle, and the RPO scheduler that decides when cycles run.
//!
//! - [`frame`], [`message`], [`handshake`]: length-prefixed frames with
//!   limits and optional zstd, the typed messages, mutual authentication.
//! - [`tls`]: TLS 1.3 under the frames, each site pinning its peer's
//!   certificate.
//! - [`sender`]: one cycle from the protected site: freeze a consistency
//!   point, ship dirty blocks (delta) or blocks whose hashes differ (full).
//! - [`receiver`]: the recovery site's listener: redo log, commit,
//!   consolidation; [`refusal`]: why it refuses a session's layout or a
//!   hold on a replica.
//! - [`bandwidth`]: the site's bandwidth cap, one limiter every sender
//!   draws from.
//!
//! The protocol (handshake, frame layout, message kinds and fields, the
//! version rule, limits) is written down in `replicator/docs/wire.md`;
//! change it with the code.

pub mod error;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod tls;

pub use error::WireError;
pub use handshake::PairingSecret;
pub use tls::LinkTls;
pub mod bandwidth;
pub mod connection;
pub mod receiver;
pub mod refusal;
pub mod sender;

pub use bandwidth::Limiter;
pub use receiver::{Receiver, ReceiverConfig};
pub use sender::{CycleProgress, CycleReport, SyncTarget, run_cycle, run_cycle_limited};
pub mod schedule;
pub mod scheduler;
pub mod status;
