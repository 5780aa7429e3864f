//! Numbered schema migrations. Each runs once, in a transaction, and bumps
//! `user_version`; a database from a newer ferry is refused, not guessed at.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the site service.
    "CREATE TABLE vms (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        power_on INTEGER NOT NULL,
        spec TEXT NOT NULL
    );
    CREATE TABLE replications (
        vm_id TEXT PRIMARY KEY REFERENCES vms(id),
        rpo_seconds INTEGER NOT NULL,
        datastore TEXT NOT NULL,
        compress INTEGER NOT NULL,
        paused INTEGER NOT NULL,
        point_time_ms INTEGER,
        last_sync TEXT
    );
    CREATE TABLE replication_history (
        id INTEGER PRIMARY KEY,
        vm_id TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        lag_ms INTEGER
    );
    CREATE INDEX replication_history_vm ON replication_history (vm_id, at_ms);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        vm_id TEXT,
        message TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        status INTEGER NOT NULL,
        result TEXT NOT NULL
    );
    CREATE TABLE peer (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        url TEXT NOT NULL,
        replication TEXT NOT NULL,
        secret TEXT NOT NULL
    );",
    // 2: protection and recovery. Mappings, groups, placeholders, plans,
    // runs and the last view of the peer, each a JSON document by kind.
    "CREATE TABLE documents (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        doc TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    );",
    // 3: the link pins the peer's certificate; the pairing secret is no
    // longer kept (a site paired before must be paired again, with the
    // peer's fingerprint).
    "ALTER TABLE peer ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
     UPDATE peer SET secret = '';",
    // 4: API tokens managed by `ferry-replicator token`, and those of
    // site.toml mirrored at start so they can be listed and revoked too.
    // A revoked token keeps its row (who, when) until its name is reused.
    "CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        hash TEXT NOT NULL,
        origin TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        last_used_ms INTEGER,
        revoked_ms INTEGER
    );",
    // 5: a replication's retention of older instances, a JSON
    // `RetentionPolicy` (NULL: newest only, as before).
    "ALTER TABLE replications ADD COLUMN retention TEXT;",
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Err(StoreError::Corrupt(format!(
            "schema version {current} is newer than this ferry knows ({VERSION})"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
