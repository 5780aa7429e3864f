//! Trust between this site and its peer: the TLS settings of the link (our
//! identity, the peer certificate pinned at pairing) and the alarm raised
//! when the link refuses a stranger or a tampered session.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Weak};

use super::notify::Severity;
use super::{Site, SiteError};
use crate::config::PeerConfig;
use crate::identity::{Fingerprint, Identity};
use crate::replication::LinkTls;
use crate::replication::receiver::RefusedHandler;

/// The link's TLS settings for `identity`, pinning `peer`'s certificate.
/// Nobody is accepted while unpaired, nor by a peer paired before pinning
/// existed (its fingerprint is empty until it is paired again).
pub fn link_tls(identity: &Identity, peer: Option<&PeerConfig>) -> Result<LinkTls, SiteError> {
    let pinned = peer
        .filter(|p| !p.fingerprint.is_empty())
        .map(|p| p.fingerprint.parse::<Fingerprint>())
        .transpose()
        .map_err(|e| SiteError::invalid("peer.fingerprint", e.to_string()))?;
    LinkTls::new(identity, pinned)
        .map_err(|e| SiteError::invalid("identity", format!("TLS refused the site's key: {e}")))
}

/// Keeps the site's state to its owner: the data directory mode 0700, and
/// site.db (with its WAL files, which SQLite creates with the database's
/// mode) 0600, created so before SQLite opens it.
pub fn secure_data_dir(dir: &Path) -> std::io::Result<()> {
    private_dir(dir)?;
    let db = dir.join("site.db");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&db)?;
    for name in ["site.db", "site.db-wal", "site.db-shm"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Creates `dir` (and its parents) mode 0700, or narrows it to 0700. A
/// directory the site may not change (a shared mount) is left as it is,
/// with a warning.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0
        && let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    {
        tracing::warn!("{} stays mode {:o}: {e}", dir.display(), mode & 0o777);
    }
    Ok(())
}

/// Alarms for refusals from one address at most this often; each refusal
/// is logged all the same.
const REFUSED_ALARM_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Raises a critical alarm for connections TLS refused (at most one a
/// minute per address, so a scanner or a mispaired peer retrying every
/// two seconds does not flood the alarm list), from the receiver's
/// blocking thread.
pub fn refused_handler(site: Weak<Site>) -> Arc<RefusedHandler> {
    let runtime = tokio::runtime::Handle::current();
    let last = std::sync::Mutex::new(std::collections::HashMap::new());
    Arc::new(move |addr: SocketAddr, why: &str| {
        let Some(site) = site.upgrade() else { return };
        let now = std::time::Instant::now();
        {
            let mut last = crate::sync::lock(&last);
            last.retain(|_, at: &mut std::time::Instant| {
                now.duration_since(*at) < REFUSED_ALARM_EVERY
            });
            if last.contains_key(&addr.ip()) {
                return;
            }
            last.insert(addr.ip(), now);
        }
        let message = format!("replication connection from {addr} refused: {why}");
        runtime.spawn(async move {
            site.alarm("link_refused", Severity::Critical, None, message)
                .await;
        });
    })
}

/// Raises a replica's history alarms (an instance that looks attacked,
/// instances a budget forced out) from the receiver's blocking thread.
pub fn history_handler(site: Weak<Site>) -> Arc<crate::replication::receiver::HistoryHandler> {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |vm: &str, kind: &str, message: &str| {
        let Some(site) = site.upgrade() else { return };
        let (vm, kind, message) = (vm.to_string(), kind.to_string(), message.to_string());
        let severity = if kind == "clean_point" {
            Severity::Critical
        } else {
            Severity::Warning
        };
        runtime.spawn(async move {
            site.alarm(&kind, severity, Some(&vm), message).await;
        });
    })
}

impl Site {
    /// This site's certificate fingerprint, which the peer pins.
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint
    }

    /// The TLS settings the link uses now (for outgoing connections too).
    pub fn link(&self) -> LinkTls {
        self.replications.receiver.tls()
    }

    /// Pins `peer`'s certificate for the link from now on.
    pub(crate) fn pin_peer(&self, peer: &PeerConfig) -> Result<(), SiteError> {
        self.replications
            .receiver
            .set_tls(link_tls(&self.identity, Some(peer))?);
        Ok(())
    }
}
