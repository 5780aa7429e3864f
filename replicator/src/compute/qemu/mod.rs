//! QEMU VMs: the QMP control channel, the NBD export of a consistency point,
//! and QEMU's own change tracking (dirty bitmaps) for the sync cycle.

pub mod nbd;
pub mod qmp;
pub mod tracking;

#[cfg(test)]
pub(crate) mod test_vm;
