//! Storage: disks as sparse raw files, change tracking on the source side, and
//! replicas with redo logs on the recovery side.
//!
//! - [`TrackedVm`] / [`TrackedDisk`]: the protected side's block path. Every
//!   write marks its blocks; a freeze takes one consistency point across all
//!   of a VM's disks and copy-before-write keeps it readable.
//! - [`PointSource`] / [`Point`]: what the sender asks of a VM's disks, so
//!   that QEMU's own change tracking can stand in for [`TrackedVm`].
//! - [`Replica`]: the recovery side. Incoming blocks go to a [`RedoLogWriter`];
//!   a committed log is consolidated into the base disks, replayed after a
//!   crash.
//! - [`durable`]: fsync discipline (atomic replace, directory fsync, holes).
//! - [`fs`]: the file layer the replica path goes through, and its
//!   fault-injecting test implementation.
//!
//! The contract (what is assumed of the disk, the order of writes and
//! fsyncs, the crash points, every file's byte layout) is written down in
//! `replicator/docs/storage.md`; change it with the code.

pub mod bitmap;
pub mod clean_point;
pub mod content;
pub mod durable;
pub mod fs;
pub mod geometry;
pub mod point;
pub mod promote;
pub mod redo_log;
pub mod replica;
pub mod tracked_disk;
pub mod tracked_vm;

pub use bitmap::Bitmap;
pub use content::{BlockHash, hash_block, is_zero, zero_hash};
pub use geometry::{DEFAULT_BLOCK_SIZE, Geometry};
pub use point::{Point, PointSource};
pub use redo_log::{RedoHeader, RedoLogWriter};
pub use replica::{InstanceError, KeptInstance, Replica, ReplicaState, ScoreRecord};
pub use tracked_disk::{FrozenDisk, TrackedDisk};
pub use tracked_vm::TrackedVm;
#[cfg(test)]
mod faults;
