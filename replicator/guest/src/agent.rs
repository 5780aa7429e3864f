//! The guest agent's protocol: one JSON object per line on the virtio-serial
//! port named [`PORT_NAME`] (the host side is the VM's `agent.sock`).
//!
//! Guest to host: one [`GuestMessage::Boot`] after every disk is verified
//! (sent again whenever the guest sees the host reconnect, so a site that
//! restarted learns it too; a host that closes and reopens the socket within
//! a fraction of a second may not be seen to have left, and gets heartbeats
//! only), then a [`GuestMessage::Heartbeat`] every second. Host to guest:
//! [`HostMessage::Shutdown`] stops the workload, flushes the disks and powers
//! the VM off; [`HostMessage::WriteBench`] has the guest time a sequential
//! O_DIRECT write, whose result every later heartbeat carries.

use serde::{Deserialize, Serialize};

use crate::record_log::Verification;

/// The virtio-serial port's name (`-device virtserialport,name=...`).
pub const PORT_NAME: &str = "org.ferry.agent.0";

/// The longest line either side accepts: a boot message for a few dozen
/// disks fits many times over; a stream without newlines is garbage.
pub const MAX_LINE: usize = 64 * 1024;

/// What the guest sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GuestMessage {
    /// The boot-time verification of every disk, in device order.
    Boot {
        disks: Vec<DiskBoot>,
    },
    Heartbeat(Heartbeat),
}

/// One disk as the guest found it at boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskBoot {
    /// The guest's device, e.g. `/dev/vda` (the first `-blockdev` disk).
    pub device: String,
    pub verification: Verification,
}

/// The guest is alive and writing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The guest's clock at its last healthy workload tick: it stops moving
    /// when the workload cannot write, as the built-in guest's does.
    pub time_ms: u64,
    /// The newest record on the first disk (`/dev/vda`).
    pub last_seq: u64,
    /// Its timestamp (0 before the first record).
    pub last_record_ms: u64,
    /// `NIC=ADDR/PREFIX` for every IP setting applied and seen in the guest.
    pub ips: Vec<String>,
    /// The last write bench's result, once one has finished; repeated in
    /// every beat so a host that connects late still reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bench: Option<WriteBench>,
}

/// A timed sequential write of `mib` MiB in 1 MiB O_DIRECT writes to the
/// hot region (the second half) of the first disk, then a flush.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteBench {
    /// The bench's number, as the host asked, so runs are told apart.
    pub id: u64,
    pub mib: u64,
    /// From the first write to the end of the flush, on the guest's clock.
    pub ms: u64,
    /// Why the bench stopped early; `None` when all of it was written.
    pub problem: Option<String>,
}

impl WriteBench {
    pub fn mib_per_second(&self) -> f64 {
        self.mib as f64 / (self.ms.max(1) as f64 / 1e3)
    }
}

/// What the host sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HostMessage {
    /// Stop the workload, flush every disk, power off.
    Shutdown,
    /// Time a write of `mib` MiB (see [`WriteBench`]); one at a time.
    WriteBench { id: u64, mib: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("agent line of {0} bytes is over the limit of {MAX_LINE}")]
    TooLong(usize),
    #[error("agent line is not a message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// One message as a line, newline included.
pub fn encode<T: Serialize>(message: &T) -> String {
    // Serializing these types cannot fail: no maps with non-string keys, no
    // failing Serialize impls.
    let mut line = serde_json::to_string(message).unwrap_or_default();
    line.push('\n');
    line
}

fn parse<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, ProtocolError> {
    if line.len() > MAX_LINE {
        return Err(ProtocolError::TooLong(line.len()));
    }
    Ok(serde_json::from_str(line.trim_end_matches(['\r', '\n']))?)
}

/// A line from the guest (with or without its newline).
pub fn parse_guest(line: &str) -> Result<GuestMessage, ProtocolError> {
    parse(line)
}

/// A line from the host (with or without its newline).
pub fn parse_host(line: &str) -> Result<HostMessage, ProtocolError> {
    parse(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verification(last_seq: u64) -> Verification {
        Verification {
            ok: true,
            last_seq,
            last_time_ms: Some(1_700_000_000_000),
            records: last_seq,
            problem: None,
            head_sum: 42,
        }
    }

    #[test]
    fn messages_are_json_lines_tagged_by_kind() {
        let boot = GuestMessage::Boot {
            disks: vec![DiskBoot {
                device: "/dev/vda".into(),
                verification: verification(7),
            }],
        };
        let line = encode(&boot);
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["kind"], "boot");
        assert_eq!(value["disks"][0]["device"], "/dev/vda");
        assert_eq!(value["disks"][0]["verification"]["last_seq"], 7);
        // The chain's head checksum stays in the guest.
        assert!(value["disks"][0]["verification"].get("head_sum").is_none());

        let beat = GuestMessage::Heartbeat(Heartbeat {
            time_ms: 5,
            last_seq: 3,
            last_record_ms: 4,
            ips: vec!["lan=10.0.1.11/24".into()],
            write_bench: None,
        });
        assert_eq!(
            encode(&beat),
            "{\"kind\":\"heartbeat\",\"time_ms\":5,\"last_seq\":3,\"last_record_ms\":4,\"ips\":[\"lan=10.0.1.11/24\"]}\n"
        );
        assert_eq!(encode(&HostMessage::Shutdown), "{\"kind\":\"shutdown\"}\n");
    }

    #[test]
    fn parsing_round_trips_and_refuses_garbage() {
        let beat = GuestMessage::Heartbeat(Heartbeat {
            time_ms: 1,
            last_seq: 2,
            last_record_ms: 3,
            ips: vec![],
            write_bench: Some(WriteBench {
                id: 1,
                mib: 64,
                ms: 800,
                problem: None,
            }),
        });
        assert_eq!(parse_guest(&encode(&beat)).unwrap(), beat);
        assert_eq!(
            parse_host("{\"kind\":\"write_bench\",\"id\":1,\"mib\":64}").unwrap(),
            HostMessage::WriteBench { id: 1, mib: 64 }
        );
        let mut v = verification(9);
        let boot = GuestMessage::Boot {
            disks: vec![DiskBoot {
                device: "/dev/vdb".into(),
                verification: v.clone(),
            }],
        };
        v.head_sum = 0; // not on the wire
        assert_eq!(
            parse_guest(&encode(&boot)).unwrap(),
            GuestMessage::Boot {
                disks: vec![DiskBoot {
                    device: "/dev/vdb".into(),
                    verification: v,
                }]
            }
        );
        assert_eq!(
            parse_host("{\"kind\":\"shutdown\"}\r\n").unwrap(),
            HostMessage::Shutdown
        );
        assert!(matches!(
            parse_host("{\"kind\":\"reboot\"}"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            parse_guest("not json"),
            Err(ProtocolError::Malformed(_))
        ));
        let long = format!("\"{}\"", "x".repeat(MAX_LINE));
        assert!(matches!(parse_guest(&long), Err(ProtocolError::TooLong(_))));
    }
}
