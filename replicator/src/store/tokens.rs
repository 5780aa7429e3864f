//! API tokens in site.db: those `ferry-replicator token create` made and
//! those of site.toml (mirrored at start), each with its role, the hash of
//! its secret (never the secret), when it was made and last used, and when
//! it was revoked. The site reads the active ones; the CLI writes them from
//! another process, which the site notices on its next call.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::access::{Role, TokenEntry};

/// Where a token was made: site.toml (changed by editing it) or the CLI.
pub const ORIGIN_CONFIG: &str = "site.toml";
pub const ORIGIN_CLI: &str = "cli";

/// A token as `token list` shows it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub name: String,
    pub role: Role,
    pub origin: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
}

/// Why a token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token named {0:?} exists already (revoke it first to reuse the name)")]
    NameTaken(String),
    #[error("no active token named {0:?}")]
    NotFound(String),
    #[error(
        "token {0:?} is in site.toml and in site.db (made by `token create`): \
         rename one of them"
    )]
    ConfigClash(String),
    #[error(
        "token name {0:?} must be 1-128 letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    BadName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("site data directory: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for TokenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

fn role(text: &str) -> Result<Role, StoreError> {
    match text {
        "viewer" => Ok(Role::Viewer),
        "operator" => Ok(Role::Operator),
        "admin" => Ok(Role::Admin),
        other => Err(StoreError::Corrupt(format!("token role {other:?}"))),
    }
}

/// Mirrors site.toml's tokens: a new name is added; a known one with the
/// same hash keeps its row (a token revoked stays revoked across restarts
/// until site.toml gives it a new secret); a new hash for the name replaces
/// the row, active again; a name gone from site.toml is gone here too.
pub fn mirror_config(
    conn: &mut Connection,
    tokens: &[TokenEntry],
    now_ms: u64,
) -> Result<(), TokenError> {
    let tx = conn.transaction()?;
    let names: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM tokens WHERE origin = ?1")?;
        let rows = stmt.query_map(params![ORIGIN_CONFIG], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for name in names
        .iter()
        .filter(|n| !tokens.iter().any(|t| &t.name == *n))
    {
        tx.execute("DELETE FROM tokens WHERE name = ?1", params![name])?;
    }
    for t in tokens {
        let known: Option<(String, String)> = tx
            .query_row(
                "SELECT hash, origin FROM tokens WHERE name = ?1",
                params![t.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match known {
            Some((_, origin)) if origin != ORIGIN_CONFIG => {
                return Err(TokenError::ConfigClash(t.name.clone()));
            }
            Some((hash, _)) if hash == t.hash => {
                tx.execute(
                    "UPDATE tokens SET role = ?2 WHERE name = ?1",
                    params![t.name, t.role.as_str()],
                )?;
            }
            _ => {
                tx.execute(
                    "INSERT OR REPLACE INTO tokens (name, role, hash, origin, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        t.name,
                        t.role.as_str(),
                        t.hash,
                        ORIGIN_CONFIG,
                        now_ms as i64
                    ],
                )?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Adds a token by the hash of its secret. A revoked token's name may be
/// reused; an active one's may not.
pub fn create(conn: &Connection, entry: &TokenEntry, now_ms: u64) -> Result<(), TokenError> {
    let changed = conn.execute(
        "INSERT INTO tokens (name, role, hash, origin, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO UPDATE SET role = ?2, hash = ?3, origin = ?4, created_ms = ?5,
           last_used_ms = NULL, revoked_ms = NULL
         WHERE revoked_ms IS NOT NULL",
        params![
            entry.name,
            entry.role.as_str(),
            entry.hash,
            ORIGIN_CLI,
            now_ms as i64
        ],
    )?;
    if changed == 0 {
        return Err(TokenError::NameTaken(entry.name.clone()));
    }
    Ok(())
}

/// Revokes the active token `name`: the site refuses it from its next call.
pub fn revoke(conn: &Connection, name: &str, now_ms: u64) -> Result<(), TokenError> {
    let changed = conn.execute(
        "UPDATE tokens SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
        params![name, now_ms as i64],
    )?;
    if changed == 0 {
        return Err(TokenError::NotFound(name.to_string()));
    }
    Ok(())
}

/// Every token, revoked ones too, by name.
pub fn list(conn: &Connection) -> Result<Vec<TokenRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT name, role, origin, created_ms, last_used_ms, revoked_ms FROM tokens ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (name, role_text, origin, created, used, revoked) = row?;
        Ok(TokenRow {
            name,
            role: role(&role_text)?,
            origin,
            created_ms: created as u64,
            last_used_ms: used.map(|u| u as u64),
            revoked_ms: revoked.map(|r| r as u64),
        })
    })
    .collect()
}

/// The tokens a caller may present now.
pub fn active(conn: &Connection) -> Result<Vec<TokenEntry>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT name, role, hash FROM tokens WHERE revoked_ms IS NULL ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (name, role_text, hash) = row?;
        Ok(TokenEntry {
            name,
            role: role(&role_text)?,
            hash,
        })
    })
    .collect()
}

/// Records that `name` was used at `now_ms`.
pub fn touch(conn: &Connection, name: &str, now_ms: u64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE tokens SET last_used_ms = ?2 WHERE name = ?1",
        params![name, now_ms as i64],
    )?;
    Ok(())
}

/// SQLite's count of commits by other connections: it changes when another
/// process (the CLI) changed the database, and is cheap to ask.
pub fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::hash_token;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("site.db")).unwrap();
        drop(store);
        let conn = Connection::open(dir.path().join("site.db")).unwrap();
        (dir, conn)
    }

    fn entry(name: &str, role: Role, secret: &str) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            role,
            hash: hash_token(secret),
        }
    }

    #[test]
    fn a_revoked_token_is_no_longer_active_and_its_name_can_be_reused() {
        let (_dir, conn) = db();
        create(&conn, &entry("ci", Role::Operator, "s1"), 1).unwrap();
        assert!(matches!(
            create(&conn, &entry("ci", Role::Admin, "s2"), 2),
            Err(TokenError::NameTaken(_))
        ));
        revoke(&conn, "ci", 3).unwrap();
        assert!(active(&conn).unwrap().is_empty());
        assert!(matches!(
            revoke(&conn, "ci", 4),
            Err(TokenError::NotFound(_))
        ));
        assert_eq!(list(&conn).unwrap()[0].revoked_ms, Some(3));
        create(&conn, &entry("ci", Role::Admin, "s2"), 5).unwrap();
        let now = active(&conn).unwrap();
        assert_eq!(
            (now[0].role, now[0].hash.clone()),
            (Role::Admin, hash_token("s2"))
        );
    }

    #[test]
    fn site_toml_tokens_stay_revoked_until_their_secret_changes() {
        let (_dir, mut conn) = db();
        let config = [entry("ops", Role::Operator, "a")];
        mirror_config(&mut conn, &config, 1).unwrap();
        revoke(&conn, "ops", 2).unwrap();
        mirror_config(&mut conn, &config, 3).unwrap();
        assert!(
            active(&conn).unwrap().is_empty(),
            "still revoked after a restart"
        );
        mirror_config(&mut conn, &[entry("ops", Role::Operator, "b")], 4).unwrap();
        assert_eq!(active(&conn).unwrap()[0].hash, hash_token("b"));
        create(&conn, &entry("cli", Role::Viewer, "c"), 5).unwrap();
        assert!(matches!(
            mirror_config(&mut conn, &[entry("cli", Role::Viewer, "c")], 6),
            Err(TokenError::ConfigClash(_))
        ));
    }
}
