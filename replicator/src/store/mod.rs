//! SQLite persistence of the site's control plane: VMs, replication settings
//! and status history, events, the audit log, the peer.
//!
//! WAL mode with `synchronous=FULL`: a change the API acknowledged survives a
//! power cut. Schema changes are numbered migrations tracked in
//! `user_version`. The connection sits behind a mutex and every call runs on
//! a blocking thread, so an fsync never stalls the async runtime.

mod schema;
pub mod tokens;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::PeerConfig;
use crate::inventory::VmRecord;
use crate::replication::status::LastSync;
use crate::sync::lock;
use ferry_api::retention::RetentionPolicy;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database record is corrupt: {0}")]
    Corrupt(String),
    #[error("database task failed: {0}")]
    Task(String),
}

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

/// Persisted replication settings and progress of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationRow {
    pub vm_id: String,
    pub rpo_seconds: u64,
    pub datastore: String,
    pub compress: bool,
    pub paused: bool,
    pub point_time_ms: Option<u64>,
    pub last_sync: Option<LastSync>,
    /// The older instances the replica keeps.
    pub retention: RetentionPolicy,
}

// Audit entries and events are what the API returns too.
pub use ferry_api::types::{AuditEntry, EventRow};

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` right here; for start-up and shutdown, outside the runtime's
    /// hot paths.
    pub fn now<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        f(&mut lock(&self.conn))
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn insert_vm(conn: &Connection, vm: &VmRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO vms (id, name, power_on, spec) VALUES (?1, ?2, ?3, ?4)",
        params![vm.id, vm.name, vm.power_on, json(vm)],
    )?;
    Ok(())
}

pub fn list_vms(conn: &Connection) -> Result<Vec<VmRecord>, StoreError> {
    let mut stmt = conn.prepare("SELECT spec, power_on FROM vms ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
    rows.map(|row| {
        let (spec, power_on) = row?;
        let mut vm: VmRecord = from_json(&spec)?;
        vm.power_on = power_on;
        Ok(vm)
    })
    .collect()
}

pub fn set_power(conn: &Connection, vm_id: &str, on: bool) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE vms SET power_on = ?2 WHERE id = ?1",
        params![vm_id, on],
    )?;
    Ok(())
}

pub fn upsert_replication(conn: &Connection, r: &ReplicationRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO replications (vm_id, rpo_seconds, datastore, compress, paused, point_time_ms, last_sync, retention)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (vm_id) DO UPDATE SET rpo_seconds = ?2, datastore = ?3, compress = ?4,
           paused = ?5, point_time_ms = ?6, last_sync = ?7, retention = ?8",
        params![
            r.vm_id,
            r.rpo_seconds as i64,
            r.datastore,
            r.compress,
            r.paused,
            r.point_time_ms.map(|p| p as i64),
            r.last_sync.as_ref().map(last_sync_json),
            (!r.retention.newest_only())
                .then(|| serde_json::to_string(&r.retention).unwrap_or_default()),
        ],
    )?;
    Ok(())
}

/// Records a completed cycle: the newest instance's point and the cycle.
pub fn set_replication_progress(
    conn: &Connection,
    vm_id: &str,
    point_time_ms: Option<u64>,
    last_sync: Option<&LastSync>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE replications SET point_time_ms = ?2, last_sync = ?3 WHERE vm_id = ?1",
        params![
            vm_id,
            point_time_ms.map(|p| p as i64),
            last_sync.map(last_sync_json)
        ],
    )?;
    Ok(())
}

pub fn delete_replication(conn: &Connection, vm_id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM replications WHERE vm_id = ?1", params![vm_id])?;
    Ok(())
}

pub fn list_replications(conn: &Connection) -> Result<Vec<ReplicationRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT vm_id, rpo_seconds, datastore, compress, paused, point_time_ms, last_sync, retention FROM replications",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            ReplicationRow {
                vm_id: r.get(0)?,
                rpo_seconds: r.get::<_, i64>(1)? as u64,
                datastore: r.get(2)?,
                compress: r.get(3)?,
                paused: r.get(4)?,
                point_time_ms: r.get::<_, Option<i64>>(5)?.map(|p| p as u64),
                last_sync: None,
                retention: RetentionPolicy::default(),
            },
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<String>>(7)?,
        ))
    })?;
    rows.map(|row| {
        let (mut row, last, retention) = row?;
        row.last_sync = last.as_deref().map(parse_last_sync).transpose()?;
        if let Some(text) = retention {
            row.retention = serde_json::from_str(&text).map_err(|e| {
                StoreError::Corrupt(format!("retention of replication {}: {e}", row.vm_id))
            })?;
        }
        Ok(row)
    })
    .collect()
}

fn last_sync_json(l: &LastSync) -> String {
    serde_json::json!({
        "finished_at_ms": l.finished_at_ms,
        "duration_ms": l.duration.as_millis() as u64,
        "bytes": l.bytes,
        "full": l.full,
        "instance": l.instance,
    })
    .to_string()
}

fn parse_last_sync(text: &str) -> Result<LastSync, StoreError> {
    let v: serde_json::Value = from_json(text)?;
    let field = |name: &str| {
        v.get(name)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| StoreError::Corrupt(format!("last_sync.{name}")))
    };
    Ok(LastSync {
        finished_at_ms: field("finished_at_ms")?,
        duration: std::time::Duration::from_millis(field("duration_ms")?),
        bytes: field("bytes")?,
        full: v
            .get("full")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        instance: field("instance")?,
    })
}

/// Records a replication state change in the status history.
pub fn insert_history(
    conn: &Connection,
    vm_id: &str,
    at_ms: u64,
    state: &str,
    lag_ms: Option<u64>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO replication_history (vm_id, at_ms, state, lag_ms) VALUES (?1, ?2, ?3, ?4)",
        params![vm_id, at_ms as i64, state, lag_ms.map(|l| l as i64)],
    )?;
    Ok(())
}

pub fn insert_event(conn: &Connection, e: &EventRow) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO events (at_ms, kind, severity, vm_id, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![e.at_ms as i64, e.kind, e.severity, e.vm_id, e.message],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn recent_events(conn: &Connection, limit: u32) -> Result<Vec<EventRow>, StoreError> {
    events_where(conn, "1 = 1 ORDER BY id DESC LIMIT ?1", limit as i64)
}

/// One stored event, by id.
pub fn event(conn: &Connection, id: i64) -> Result<Option<EventRow>, StoreError> {
    Ok(events_where(conn, "id = ?1", id)?.into_iter().next())
}

fn events_where(conn: &Connection, filter: &str, arg: i64) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, at_ms, kind, severity, vm_id, message FROM events WHERE {filter}"
    ))?;
    let rows = stmt.query_map(params![arg], |r| {
        Ok(EventRow {
            id: r.get(0)?,
            at_ms: r.get::<_, i64>(1)? as u64,
            kind: r.get(2)?,
            severity: r.get(3)?,
            vm_id: r.get(4)?,
            message: r.get(5)?,
            acked: None,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn insert_audit(conn: &Connection, a: &AuditEntry) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO audit (at_ms, actor, role, action, target, status, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![a.at_ms as i64, a.actor, a.role, a.action, a.target, a.status, a.result],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Deletes audit entries beyond the newest `keep_rows` (by id, so the
/// index does the work: one row per insert once full) and, every 256th
/// entry, those written before `cutoff_ms`.
pub fn prune_audit(
    conn: &Connection,
    newest: i64,
    keep_rows: u64,
    cutoff_ms: u64,
) -> Result<usize, StoreError> {
    let mut gone = conn.execute(
        "DELETE FROM audit WHERE id <= ?1",
        params![newest - keep_rows as i64],
    )?;
    if newest % 256 == 0 {
        gone += conn.execute(
            "DELETE FROM audit WHERE at_ms < ?1",
            params![cutoff_ms as i64],
        )?;
    }
    Ok(gone)
}

pub fn list_audit(conn: &Connection, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, at_ms, actor, role, action, target, status, result FROM audit ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit], |r| {
        Ok(AuditEntry {
            id: r.get(0)?,
            at_ms: r.get::<_, i64>(1)? as u64,
            actor: r.get(2)?,
            role: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            status: r.get(6)?,
            result: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get_peer(conn: &Connection) -> Result<Option<PeerConfig>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT name, url, replication, fingerprint FROM peer WHERE id = 1",
            [],
            |r| {
                Ok(PeerConfig {
                    name: r.get(0)?,
                    url: r.get(1)?,
                    replication: r.get(2)?,
                    fingerprint: r.get(3)?,
                    secret: String::new(),
                })
            },
        )
        .optional()?)
}

pub fn set_peer(conn: &Connection, peer: &PeerConfig) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO peer (id, name, url, replication, secret, fingerprint)
         VALUES (1, ?1, ?2, ?3, '', ?4)
         ON CONFLICT (id) DO UPDATE SET name = ?1, url = ?2, replication = ?3, secret = '',
           fingerprint = ?4",
        params![peer.name, peer.url, peer.replication, peer.fingerprint],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_rows_roundtrip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        let row = ReplicationRow {
            vm_id: "a.db-01".into(),
            rpo_seconds: 15,
            datastore: "ds".into(),
            compress: true,
            paused: false,
            point_time_ms: Some(12345),
            last_sync: Some(LastSync {
                finished_at_ms: 2,
                duration: std::time::Duration::from_millis(30),
                bytes: 4096,
                full: false,
                instance: 9,
            }),
            retention: RetentionPolicy {
                keep_all_seconds: 3_600,
                ..Default::default()
            },
        };
        let vm = VmRecord::from_seed(
            "a",
            &crate::config::VmSeed {
                name: "db-01".into(),
                folder: "f".into(),
                resource_pool: "p".into(),
                power_on: true,
                disks: vec![crate::config::DiskSeed {
                    datastore: "ds".into(),
                    size_mib: 8,
                }],
                nics: Vec::new(),
                guest: Default::default(),
                replication: None,
                memory_mib: None,
                vcpus: None,
            },
            &Default::default(),
        );
        {
            let store = Store::open(&path).unwrap();
            store.now(|c| insert_vm(c, &vm)).unwrap();
            store.now(|c| upsert_replication(c, &row)).unwrap();
            let unknown = ReplicationRow {
                vm_id: "nope".into(),
                ..row.clone()
            };
            assert!(
                store.now(|c| upsert_replication(c, &unknown)).is_err(),
                "a replication needs its VM"
            );
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.now(|c| list_replications(c)).unwrap(),
            vec![row.clone()]
        );
        let moved = LastSync {
            instance: 10,
            ..row.last_sync.unwrap()
        };
        store
            .now(|c| set_replication_progress(c, &row.vm_id, Some(99), Some(&moved)))
            .unwrap();
        let after = store.now(|c| list_replications(c)).unwrap();
        assert_eq!(
            (after[0].point_time_ms, after[0].last_sync),
            (Some(99), Some(moved))
        );
        assert_eq!(store.now(|c| list_vms(c)).unwrap(), vec![vm]);
        let version: i64 = store
            .now(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(version, schema::VERSION);
    }
}

/// The kinds of JSON document the site keeps (see [`put_doc`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Mappings,
    Group,
    Placeholder,
    Plan,
    Run,
    PeerView,
    /// An alarm's acknowledgement, by the alarm's id.
    AlarmAck,
    /// The site's bandwidth cap as last set through the API (id `site`).
    Bandwidth,
}

impl DocKind {
    fn name(self) -> &'static str {
        match self {
            Self::Mappings => "mappings",
            Self::Group => "group",
            Self::Placeholder => "placeholder",
            Self::Plan => "plan",
            Self::Run => "run",
            Self::PeerView => "peer_view",
            Self::AlarmAck => "alarm_ack",
            Self::Bandwidth => "bandwidth",
        }
    }
}

/// Stores (or replaces) one document.
pub fn put_doc<T: serde::Serialize>(
    conn: &Connection,
    kind: DocKind,
    id: &str,
    doc: &T,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(doc)
        .map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", kind.name())))?;
    conn.execute(
        "INSERT INTO documents (kind, id, doc, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, id) DO UPDATE SET doc = ?3, updated_ms = ?4",
        params![
            kind.name(),
            id,
            text,
            crate::replication::sender::now_ms() as i64
        ],
    )?;
    Ok(())
}

pub fn delete_doc(conn: &Connection, kind: DocKind, id: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM documents WHERE kind = ?1 AND id = ?2",
        params![kind.name(), id],
    )?;
    Ok(())
}

/// Every document of a kind, by id.
pub fn list_docs<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    kind: DocKind,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, doc FROM documents WHERE kind = ?1 ORDER BY id")?;
    let rows = stmt.query_map(params![kind.name()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.map(|row| {
        let (id, text) = row?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("{} {id}: {e}", kind.name())))
    })
    .collect()
}

/// Removes a VM from the inventory (with its replication settings).
pub fn delete_vm(conn: &Connection, vm_id: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM replications WHERE vm_id = ?1", params![vm_id])?;
    conn.execute("DELETE FROM vms WHERE id = ?1", params![vm_id])?;
    Ok(())
}
