//! QEMU VMs: the QMP control channel, the NBD export of a consistency point,
//! and QEMU's own change tracking (dirty bitmaps) for the sync cycle.

pub mod nbd;
pub mod qmp;
pub mod source;
pub mod tracking;

// Test support (unit tests, the engine tests, the bench): a QEMU without
// a guest, written to through its block layer.
#[doc(hidden)]
pub mod test_vm;
