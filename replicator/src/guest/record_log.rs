//! The guest's record log lives in the `ferry-guest` crate, shared with the
//! guest agent that runs inside QEMU VMs: one copy of the on-disk format.

pub use ferry_guest::record_log::*;
