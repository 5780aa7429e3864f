//! Compute: where a site's VMs run (the built-in guest or QEMU processes).

pub mod qemu;
