//! The host's end of ferry's guest agent: JSON lines on the VM's
//! virtio-serial port (`agent.sock`). The guest reports its boot
//! verification once and a heartbeat every second; the host asks it to shut
//! down. Reports land in the same [`GuestStatus`] the built-in guest fills.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_guest::agent::{self as protocol, DiskBoot, GuestMessage, HostMessage};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::task::JoinHandle;

use super::AGENT_SOCKET;
use crate::guest::{GuestStatus, Verification};
use crate::replication::sender::now_ms;
use crate::sync::lock;

/// The open channel to a VM's agent.
pub struct AgentLink {
    /// `None` when the channel could not be opened; power then goes
    /// through ACPI alone.
    writer: tokio::sync::Mutex<Option<OwnedWriteHalf>>,
    reader: Option<JoinHandle<()>>,
}

impl Drop for AgentLink {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

impl AgentLink {
    /// Connects to the VM's agent socket (QEMU listens on it once QMP
    /// answers) and reads the guest's reports into `status`.
    pub async fn connect(dir: &Path, status: Arc<GuestStatus>) -> Self {
        let socket = dir.join(AGENT_SOCKET);
        let report = dir.join(BOOT_REPORT);
        let stream = match tokio::time::timeout(
            Duration::from_secs(5),
            UnixStream::connect(&socket),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!("cannot open {}: {e}", socket.display());
                return Self {
                    writer: tokio::sync::Mutex::new(None),
                    reader: None,
                };
            }
            Err(_) => {
                tracing::warn!("{} did not accept", socket.display());
                return Self {
                    writer: tokio::sync::Mutex::new(None),
                    reader: None,
                };
            }
        };
        let (read, write) = stream.into_split();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match protocol::parse_guest(&line) {
                    Ok(message) => {
                        apply(&status, message);
                        keep_boot_report(&report, &status);
                    }
                    Err(e) => tracing::debug!("the guest agent said {line:?}: {e}"),
                }
            }
        });
        Self {
            writer: tokio::sync::Mutex::new(Some(write)),
            reader: Some(reader),
        }
    }

    /// Asks the guest to stop its workload, fsync and power off; false
    /// when there is no channel to ask on.
    pub async fn shutdown(&self) -> bool {
        let mut writer = self.writer.lock().await;
        let Some(w) = writer.as_mut() else {
            return false;
        };
        let line = protocol::encode(&HostMessage::Shutdown);
        w.write_all(line.as_bytes()).await.is_ok()
    }
}

/// Where the guest's boot verification is kept beside the VM, so a site
/// that restarts and finds the VM running knows it without a new report.
pub const BOOT_REPORT: &str = "boot.json";

fn keep_boot_report(file: &Path, status: &GuestStatus) {
    if file.exists() {
        return;
    }
    if let Some(v) = status.boot_verification()
        && let Ok(json) = serde_json::to_vec(&v)
        && let Err(e) = std::fs::write(file, json)
    {
        tracing::warn!("cannot keep {}: {e}", file.display());
    }
}

/// The boot report kept by [`keep_boot_report`] for a VM found again.
pub fn kept_boot_report(dir: &Path, status: &GuestStatus) {
    let kept = std::fs::read(dir.join(BOOT_REPORT))
        .ok()
        .and_then(|b| serde_json::from_slice::<Verification>(&b).ok());
    if let Some(v) = kept {
        status.last_seq.store(v.last_seq, Ordering::Relaxed);
        *lock(&status.boot) = Some(v);
    }
}

/// Folds a report into the status and wakes whoever waits for a beat.
fn apply(status: &GuestStatus, report: GuestMessage) {
    match report {
        GuestMessage::Boot { disks } => {
            let v = combine(disks);
            status.last_seq.store(v.last_seq, Ordering::Relaxed);
            status
                .last_record_ms
                .store(v.last_time_ms.unwrap_or(0), Ordering::Relaxed);
            *lock(&status.boot) = Some(v);
        }
        GuestMessage::Heartbeat(beat) => {
            status.last_seq.store(beat.last_seq, Ordering::Relaxed);
            if beat.last_record_ms > 0 {
                status
                    .last_record_ms
                    .store(beat.last_record_ms, Ordering::Relaxed);
            }
            *lock(&status.ips) = beat.ips;
        }
    }
    // The host's clock: a run compares the beat with its own boot time.
    status.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    status.beat.notify_waiters();
}

/// One verification for the VM: every disk must be intact; the newest
/// record is the first disk's (as for the built-in guest), the count is
/// over all disks, and a problem names its device.
fn combine(disks: Vec<DiskBoot>) -> Verification {
    let mut out = Verification {
        ok: true,
        last_seq: 0,
        last_time_ms: None,
        records: 0,
        problem: None,
        head_sum: 0,
    };
    if disks.is_empty() {
        out.ok = false;
        out.problem = Some("the guest found no disk".into());
    }
    for (i, d) in disks.into_iter().enumerate() {
        if i == 0 {
            out.last_seq = d.verification.last_seq;
            out.last_time_ms = d.verification.last_time_ms;
        }
        out.records += d.verification.records;
        if !d.verification.ok && out.ok {
            out.ok = false;
            out.problem = Some(format!(
                "{}: {}",
                d.device,
                d.verification
                    .problem
                    .unwrap_or_else(|| "not intact".into())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_fill_the_status() {
        let status = GuestStatus::default();
        let boot = r#"{"kind":"boot","disks":[
            {"device":"/dev/vda","verification":{"ok":true,"last_seq":7,"last_time_ms":1000,"records":7,"problem":null}},
            {"device":"/dev/vdb","verification":{"ok":false,"last_seq":3,"last_time_ms":900,"records":3,"problem":"record 4 torn"}}]}"#;
        apply(
            &status,
            protocol::parse_guest(&boot.replace('\n', "")).unwrap(),
        );
        let v = status.boot_verification().unwrap();
        assert!(!v.ok);
        assert_eq!((v.last_seq, v.records), (7, 10));
        assert_eq!(v.problem.as_deref(), Some("/dev/vdb: record 4 torn"));
        let beat = r#"{"kind":"heartbeat","time_ms":5,"last_seq":9,"last_record_ms":1200,"ips":["prod=10.0.0.5/24"]}"#;
        apply(&status, protocol::parse_guest(beat).unwrap());
        assert_eq!(status.last_seq.load(Ordering::Relaxed), 9);
        assert_eq!(*lock(&status.ips), vec!["prod=10.0.0.5/24".to_string()]);
        assert!(status.heartbeat_ms.load(Ordering::Relaxed) > 0);
    }
}
