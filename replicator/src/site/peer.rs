//! The paired site: pairing, and a watch on whether it answers. Liveness is
//! an authenticated handshake on the peer's replication listener every two
//! seconds: it proves the peer is up, holds the pinned certificate's key and
//! can take replication traffic, which is what an operator means by
//! "connected".

use std::future::Future;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use super::control::{ControlCall, ControlReply, PeerCallError};
use super::notify::Severity;
use super::site_view::SiteView;
use super::{Site, SiteError};
use crate::config::{PeerConfig, check_peer};
use crate::identity::Fingerprint;
use crate::replication::connection::Connection;
use crate::replication::sender::now_ms;
use crate::store::{self, DocKind};
use crate::sync::lock;
use ferry_api::types::{PeerInfo, PeerRequest, PeerStatus, SiteEvent};

const CHECK_EVERY: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a peer never reached since start (or pairing) is waited for
/// before it is called unreachable: paired sites start one after the other
/// (the demo starts site-b first), and a peer still starting is no disaster.
const FIRST_CONTACT_GRACE: Duration = Duration::from_secs(30);

/// What one failed check makes of the peer's status: a peer never reached
/// since `since`, within the grace, is still `Unknown` (waiting for first
/// contact), not `Unreachable`.
fn failed_status(last_contact_ms: Option<u64>, since: Instant, now: Instant) -> PeerStatus {
    if last_contact_ms.is_none() && now.duration_since(since) < FIRST_CONTACT_GRACE {
        PeerStatus::Unknown
    } else {
        PeerStatus::Unreachable
    }
}

/// The paired site as this site knows it.
pub(crate) struct Peer {
    /// Settings and liveness: changed by pairing and the watch, read by
    /// every call to the peer.
    pub state: Mutex<PeerState>,
    /// The peer as it last described itself. A lock of its own: the view is
    /// large and cloned by every listing, which must not wait on the watch.
    pub view: Mutex<Option<SiteView>>,
}

impl Peer {
    pub fn new(config: Option<PeerConfig>) -> Self {
        Self {
            state: Mutex::new(PeerState::new(config)),
            view: Mutex::new(None),
        }
    }
}

pub struct PeerState {
    pub config: Option<PeerConfig>,
    status: PeerStatus,
    last_contact_ms: Option<u64>,
    error: Option<String>,
    /// When the peer's view was last saved.
    saved_view_ms: u64,
    /// When this site started watching this peer (start or pairing).
    since: Instant,
}

impl PeerState {
    pub fn new(config: Option<PeerConfig>) -> Self {
        Self {
            config,
            status: PeerStatus::Unknown,
            last_contact_ms: None,
            error: None,
            saved_view_ms: 0,
            since: Instant::now(),
        }
    }

    fn info(&self) -> Option<PeerInfo> {
        self.config.as_ref().map(|c| PeerInfo {
            name: c.name.clone(),
            url: c.url.clone(),
            status: self.status,
            last_contact_ms: self.last_contact_ms,
            error: self.error.clone(),
            fingerprint: Some(c.fingerprint.clone()),
        })
    }
}

impl Site {
    pub fn peer_info(&self) -> Option<PeerInfo> {
        lock(&self.peer.state).info()
    }

    /// Pairs with a (new) peer: persisted, the link pins the peer's
    /// certificate, and every replication is pointed at the peer. Pinning a
    /// certificate other than the one pinned now needs `replace`, and is
    /// raised as an alarm (the API audits the call itself).
    pub async fn pair(&self, request: PeerRequest) -> Result<PeerInfo, SiteError> {
        let peer = PeerConfig {
            name: request.name,
            url: request.url,
            replication: request.replication,
            fingerprint: request.fingerprint,
            secret: String::new(),
        };
        check_peer(&peer)
            .map_err(|e| SiteError::invalid(e.key.trim_start_matches("peer."), e.why))?;
        let pinned = self.peer_config().map(|old| old.fingerprint);
        let replaced = pinned.as_ref().filter(|old| {
            old.parse::<Fingerprint>().ok() != peer.fingerprint.parse::<Fingerprint>().ok()
        });
        if let Some(old) = replaced
            && !request.replace
        {
            return Err(SiteError::Conflict(format!(
                "the peer certificate pinned now is {old}; pinning {} instead needs \"replace\": true",
                peer.fingerprint
            )));
        }
        let stored = peer.clone();
        self.store
            .call(move |c| store::set_peer(c, &stored))
            .await?;
        self.pin_peer(&peer)?;
        if let Some(old) = replaced {
            let message = format!(
                "peer site {} re-paired: certificate {old} replaced by {}",
                peer.name, peer.fingerprint
            );
            self.alarm(
                "peer_certificate_replaced",
                Severity::Warning,
                None,
                message,
            )
            .await;
        }
        *lock(&self.peer.state) = PeerState::new(Some(peer));
        self.retarget_replications();
        let info = self
            .peer_info()
            .ok_or_else(|| SiteError::Conflict("pairing lost".into()))?;
        self.events.publish(SiteEvent::Peer(info.clone()));
        Ok(info)
    }

    pub(crate) async fn check_peer(&self) {
        let Some(peer) = self.peer_config() else {
            return;
        };
        let name = self.name.clone();
        let tls = self.link();
        let outcome = tokio::time::timeout(
            CHECK_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                let mut conn = Connection::connect(&peer.replication, &tls, &name)?;
                // Connected; the view is a bonus that must not fail the check.
                let call = serde_json::to_vec(&ControlCall::View).unwrap_or_default();
                let view = conn
                    .call(&call, CHECK_TIMEOUT)
                    .ok()
                    .and_then(|body| serde_json::from_slice::<ControlReply>(&body).ok())
                    .and_then(|reply| match reply {
                        ControlReply::View(view) => Some(*view),
                        _ => None,
                    });
                Ok::<_, PeerCallError>(view)
            }),
        )
        .await;
        let result = match outcome {
            Ok(Ok(Ok(view))) => {
                if let Some(view) = view {
                    self.take_peer_view(view).await;
                }
                Ok(())
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(PeerCallError::Task(e)),
            Err(_) => Err(PeerCallError::NoAnswer {
                seconds: CHECK_TIMEOUT.as_secs(),
            }),
        };
        let (changed, first_wait, info) = {
            let mut state = lock(&self.peer.state);
            let before = state.status;
            let waited_before = state.error.is_some();
            match &result {
                Ok(()) => {
                    state.status = PeerStatus::Connected;
                    state.last_contact_ms = Some(now_ms());
                    state.error = None;
                }
                Err(e) => {
                    state.status =
                        failed_status(state.last_contact_ms, state.since, Instant::now());
                    state.error = Some(e.to_string());
                }
            }
            let first_wait = state.status == PeerStatus::Unknown && !waited_before;
            (before != state.status, first_wait, state.info())
        };
        let Some(info) = info else { return };
        if first_wait {
            let why = info.error.clone().unwrap_or_default();
            self.alarm(
                "peer_waiting",
                Severity::Info,
                None,
                format!(
                    "waiting for first contact with peer site {}: {why}",
                    info.name
                ),
            )
            .await;
        }
        if changed {
            match info.status {
                PeerStatus::Connected => {
                    self.alarm(
                        "peer_connected",
                        Severity::Info,
                        None,
                        format!("peer site {} is reachable", info.name),
                    )
                    .await;
                }
                _ => {
                    let why = info.error.clone().unwrap_or_default();
                    self.alarm(
                        "peer_unreachable",
                        Severity::Critical,
                        None,
                        format!("peer site {} is unreachable: {why}", info.name),
                    )
                    .await;
                }
            }
        }
        self.events.publish(SiteEvent::Peer(info));
        if changed {
            // Plans' readiness follows the peer's liveness.
            self.publish_changed_plans();
        }
    }

    /// Takes the peer's fresh view: kept in memory, saved when its shape
    /// changed (or a minute passed), and this site's groups re-derived.
    pub(crate) async fn take_peer_view(&self, view: SiteView) {
        let save = self.peer_view().is_none_or(|old| {
            !old.same_shape(&view)
                || view
                    .at_ms
                    .saturating_sub(lock(&self.peer.state).saved_view_ms)
                    > 60_000
        });
        if save {
            let stored = view.clone();
            match self
                .store
                .call(move |c| store::put_doc(c, DocKind::PeerView, "peer", &stored))
                .await
            {
                Ok(()) => lock(&self.peer.state).saved_view_ms = view.at_ms,
                Err(e) => tracing::warn!("saving the peer's view failed: {e}"),
            }
        }
        self.set_peer_view(view);
        self.refresh_protection().await;
    }
}

/// Checks the peer every two seconds until `stopped` completes.
pub async fn monitor(site: Weak<Site>, stopped: impl Future<Output = ()>) {
    tokio::pin!(stopped);
    loop {
        let Some(strong) = site.upgrade() else { return };
        strong.check_peer().await;
        drop(strong);
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_never_reached_is_waited_for_then_unreachable() {
        let since = Instant::now();
        assert_eq!(
            failed_status(None, since, since + Duration::from_secs(5)),
            PeerStatus::Unknown,
            "still starting: waiting for first contact"
        );
        assert_eq!(
            failed_status(None, since, since + FIRST_CONTACT_GRACE),
            PeerStatus::Unreachable,
            "never came: unreachable"
        );
        assert_eq!(
            failed_status(Some(1), since, since + Duration::from_secs(5)),
            PeerStatus::Unreachable,
            "reached once and lost: unreachable at once"
        );
    }
}
