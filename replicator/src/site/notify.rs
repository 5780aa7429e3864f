//! The site's voice: live events for the API stream, alarms kept in the
//! database, and the audit log of every change an API caller made.

use tokio::sync::broadcast;
use tracing::warn;

use super::Site;
use crate::replication::sender::now_ms;
use crate::store::{self, AuditEntry, EventRow};
use ferry_api::types::SiteEvent;

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
