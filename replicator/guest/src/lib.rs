//! ferry's guest, shared by the site and by the guest agent inside a VM.
//!
//! - [`record_log`]: the on-disk record log the workload appends and a boot
//!   verifies; one format for the built-in guest and the agent.
//! - [`agent`]: the JSON-lines protocol between a site and the guest agent on
//!   the VM's virtio-serial port.
//! - [`boot`]: the `ferry.*` kernel command line that tells the agent its VM,
//!   its IP settings and its workload rates.
//!
//! The agent binary itself (`ferry-guest-agent`, built static for the guest
//! image by `image.sh`) lives under `src/bin/agent/`.

pub mod agent;
pub mod boot;
pub mod record_log;
