//! End-to-end tests of the replication engine: real files, real fsync, real
//! TCP on 127.0.0.1, and real process kills for crash consistency.

mod engine {
    pub mod architecture;
    pub mod bad_frames;
    pub mod chaos;
    pub mod crash;
    pub mod hardening;
    pub mod long_link;
    pub mod qemu;
    pub mod qemu_compute;
    pub mod qemu_site;
    pub mod racing;
    pub mod reconnect;
    pub mod restart;
    pub mod scheduler;
    pub mod source_faults;
    pub mod support;
    pub mod tamper;
    pub mod tokens;
}
