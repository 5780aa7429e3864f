//! The site's voice: live events for the API stream, alarms kept in the
//! database, and the audit log of every change an API caller made.

use tokio::sync::broadcast;
use tracing::warn;

use serde::{Deserialize, Serialize};

use super::{Site, SiteError};
use crate::replication::sender::now_ms;
use crate::store::{self, AuditEntry, DocKind, EventRow};
use ferry_api::types::{Ack, SiteEvent};

/// Events buffered per subscriber before a slow one is told to resync.
const CAPACITY: usize = 4096;

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<SiteEvent>,
}

impl EventBus {
    pub fn new() -> Self {
        Self {
            tx: broadcast::Sender::new(CAPACITY),
        }
    }

    pub fn publish(&self, event: SiteEvent) {
        // No subscriber is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<SiteEvent> {
        self.tx.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// How bad an alarm is.
#[derive(Debug, Clone, Copy)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl Site {
    /// Records an alarm (kept in the database) and streams it.
    pub async fn alarm(
        &self,
        kind: &str,
        severity: Severity,
        vm_id: Option<&str>,
        message: String,
    ) {
        let mut row = EventRow {
            id: 0,
            at_ms: now_ms(),
            kind: kind.to_string(),
            severity: severity.as_str().to_string(),
            vm_id: vm_id.map(str::to_string),
            message,
            acked: None,
        };
        let stored = row.clone();
        match self
            .store
            .call(move |c| store::insert_event(c, &stored))
            .await
        {
            Ok(id) => row.id = id,
            Err(e) => warn!("could not store alarm {kind}: {e}"),
        }
        self.events.publish(SiteEvent::Alarm(row));
    }

    /// Appends to the audit log and streams the entry.
    pub async fn audit(&self, mut entry: AuditEntry) {
        entry.at_ms = now_ms();
        let stored = entry.clone();
        let retention = self.config.site.audit;
        let cutoff = entry.at_ms.saturating_sub(retention.keep_days * 86_400_000);
        match self
            .store
            .call(move |c| {
                let id = store::insert_audit(c, &stored)?;
                store::prune_audit(c, id, retention.keep_rows, cutoff)?;
                Ok(id)
            })
            .await
        {
            Ok(id) => entry.id = id,
            Err(e) => warn!("could not write the audit log: {e}"),
        }
        self.events.publish(SiteEvent::Audit(entry));
    }
}

/// An acknowledgement as stored: beside the alarm, not in its row, so the
/// events table keeps the shape it had.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAck {
    alarm_id: i64,
    ack: Ack,
}

/// Who clears an alarm the site itself found no longer applies.
pub const SITE_ACK: &str = "site";

impl Site {
    /// The newest `limit` alarms, each with its acknowledgement.
    pub async fn alarms(&self, limit: u32) -> Result<Vec<EventRow>, SiteError> {
        Ok(self
            .store
            .call(move |c| {
                let mut rows = store::recent_events(c, limit)?;
                let acks: Vec<StoredAck> = store::list_docs(c, DocKind::AlarmAck)?;
                for row in &mut rows {
                    row.acked = acks
                        .iter()
                        .find(|a| a.alarm_id == row.id)
                        .map(|a| a.ack.clone());
                }
                Ok(rows)
            })
            .await?)
    }

    /// Acknowledges alarm `id` as `by`: kept, marked, and streamed so
    /// every client of the site sees it. Acknowledging again keeps the
    /// first acknowledgement.
    pub async fn ack_alarm(&self, id: i64, by: &str) -> Result<EventRow, SiteError> {
        let by = by.to_string();
        let row = self
            .store
            .call(move |c| {
                let Some(mut row) = store::event(c, id)? else {
                    return Ok(None);
                };
                let key = id.to_string();
                let acks: Vec<StoredAck> = store::list_docs(c, DocKind::AlarmAck)?;
                row.acked = match acks.into_iter().find(|a| a.alarm_id == id) {
                    Some(old) => Some(old.ack),
                    None => {
                        let ack = Ack {
                            by,
                            at_ms: now_ms(),
                        };
                        let stored = StoredAck {
                            alarm_id: id,
                            ack: ack.clone(),
                        };
                        store::put_doc(c, DocKind::AlarmAck, &key, &stored)?;
                        Some(ack)
                    }
                };
                Ok(Some(row))
            })
            .await?
            .ok_or_else(|| SiteError::NotFound(format!("no alarm {id} at site {}", self.name)))?;
        self.events.publish(SiteEvent::Alarm(row.clone()));
        Ok(row)
    }

    /// Clears the unacknowledged alarms of `vm_id` of the given kinds, as
    /// the site: they no longer apply (the VM runs at the peer now).
    pub(crate) async fn clear_alarms(&self, vm_id: &str, kinds: &[&str]) {
        let found = self.alarms(1000).await.map(|rows| {
            rows.into_iter()
                .filter(|r| r.acked.is_none() && r.vm_id.as_deref() == Some(vm_id))
                .filter(|r| kinds.contains(&r.kind.as_str()))
                .map(|r| r.id)
                .collect::<Vec<_>>()
        });
        match found {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = self.ack_alarm(id, SITE_ACK).await {
                        warn!("could not clear alarm {id}: {e}");
                    }
                }
            }
            Err(e) => warn!("could not read alarms to clear: {e}"),
        }
    }
}
