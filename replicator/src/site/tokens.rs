//! The API tokens a running site accepts, read from site.db and read again
//! whenever another process (`ferry-replicator token revoke`) changed it, so
//! a revoked token is refused from the next call on, without a restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tracing::warn;

use crate::access::{self, TokenEntry};
use crate::store::tokens::{self, TokenError};
use crate::store::{Store, StoreError};
use crate::sync::lock;

/// How often a token's `last used` time is written: often enough for
/// `token list` to tell a live token from a forgotten one, rarely enough
/// that a busy client does not turn every read into a write.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The tokens a caller may present, kept in step with site.db.
pub struct TokenBook {
    /// A connection of its own: asking whether site.db changed must not
    /// wait behind the store's writes and their fsyncs.
    conn: Mutex<Connection>,
    /// The active tokens as of `PRAGMA data_version` `version`.
    cache: Mutex<Cache>,
    /// Where `last used` is written, off the request's path.
    store: Store,
}

struct Cache {
    version: Option<i64>,
    entries: Vec<TokenEntry>,
    touched: HashMap<String, Instant>,
}

impl TokenBook {
    /// Mirrors `config`'s tokens (site.toml's) into site.db at `db`, then
    /// reads the active ones.
    pub fn open(db: &Path, store: Store, config: &[TokenEntry]) -> Result<Self, TokenError> {
        store.now(|c| Ok(tokens::mirror_config(c, config, ferry_api::types::now_ms())))??;
        let conn = Connection::open(db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Self {
            conn: Mutex::new(conn),
            cache: Mutex::new(Cache {
                version: None,
                entries: Vec::new(),
                touched: HashMap::new(),
            }),
            store,
        })
    }

    /// The entry `token` authenticates as, if it is active now. Fails
    /// closed: if site.db cannot be read, nobody is let in.
    pub fn authenticate(&self, token: &str) -> Option<TokenEntry> {
        let entry = {
            let mut cache = lock(&self.cache);
            if let Err(e) = self.refresh(&mut cache) {
                warn!("cannot read the API tokens from site.db: {e}");
                return None;
            }
            let entry = access::authenticate(&cache.entries, token)?.clone();
            let now = Instant::now();
            let due = cache
                .touched
                .get(&entry.name)
                .is_none_or(|at| now.duration_since(*at) >= TOUCH_EVERY);
            if !due {
                return Some(entry);
            }
            cache.touched.insert(entry.name.clone(), now);
            entry
        };
        let name = entry.name.clone();
        let store = self.store.clone();
        tokio::spawn(async move {
            let at = ferry_api::types::now_ms();
            if let Err(e) = store.call(move |c| tokens::touch(c, &name, at)).await {
                warn!("cannot record a token's use: {e}");
            }
        });
        Some(entry)
    }

    /// Reads the active tokens again if another connection committed since.
    fn refresh(&self, cache: &mut Cache) -> Result<(), StoreError> {
        let conn = lock(&self.conn);
        let version = tokens::data_version(&conn)?;
        if cache.version != Some(version) {
            cache.entries = tokens::active(&conn)?;
            cache.version = Some(version);
        }
        Ok(())
    }
}

/// `ferry-replicator token …` on the site of `config`, running or not:
/// each opens site.db beside its site.toml.
pub mod admin {
    use super::*;
    use crate::access::{Role, hash_token, new_token};
    use crate::config::LoadedConfig;
    use crate::store::tokens::TokenRow;

    fn open(config: &LoadedConfig) -> Result<Store, TokenError> {
        super::super::trust::secure_data_dir(&config.dir)?;
        Ok(Store::open(&config.dir.join("site.db"))?)
    }

    /// Makes a token with `role`, named `name` or after its role and the
    /// start of its hash; returns the name and the secret, which is kept
    /// nowhere else.
    pub fn create(
        config: &LoadedConfig,
        role: Role,
        name: Option<String>,
    ) -> Result<(String, String), TokenError> {
        let secret = new_token();
        let hash = hash_token(&secret);
        let name = name.unwrap_or_else(|| format!("{}-{}", role.as_str(), &hash[..8]));
        if !crate::replication::receiver::is_safe_name(&name) {
            return Err(TokenError::BadName(name));
        }
        let store = open(config)?;
        let entry = TokenEntry {
            name: name.clone(),
            role,
            hash,
        };
        store.now(|c| Ok(tokens::create(c, &entry, ferry_api::types::now_ms())))??;
        Ok((name, secret))
    }

    /// Every token, revoked ones too.
    pub fn list(config: &LoadedConfig) -> Result<Vec<TokenRow>, TokenError> {
        Ok(open(config)?.now(|c| tokens::list(c))?)
    }

    /// Revokes `name`; a running site refuses it from its next call.
    pub fn revoke(config: &LoadedConfig, name: &str) -> Result<(), TokenError> {
        open(config)?.now(|c| Ok(tokens::revoke(c, name, ferry_api::types::now_ms())))?
    }
}
