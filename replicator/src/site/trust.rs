//! Trust between this site and its peer: the TLS settings of the link (our
//! identity, the peer certificate pinned at pairing) and the alarm raised
//! when the link refuses a stranger or a tampered session.

use std::net::SocketAddr;
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
        .map_err(|e| SiteError::invalid("peer.fingerprint", e))?;
    LinkTls::new(identity, pinned)
        .map_err(|e| SiteError::invalid("identity", format!("TLS refused the site's key: {e}")))
}

/// Raises a critical alarm for every connection TLS refused, from the
/// receiver's blocking thread.
pub fn refused_handler(site: Weak<Site>) -> Arc<RefusedHandler> {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |addr: SocketAddr, why: &str| {
        let Some(site) = site.upgrade() else { return };
        let message = format!("replication connection from {addr} refused: {why}");
        runtime.spawn(async move {
            site.alarm("link_refused", Severity::Critical, None, message)
                .await;
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
        self.receiver.tls()
    }

    /// Pins `peer`'s certificate for the link from now on.
    pub(crate) fn pin_peer(&self, peer: &PeerConfig) -> Result<(), SiteError> {
        self.receiver.set_tls(link_tls(&self.identity, Some(peer))?);
        Ok(())
    }
}
