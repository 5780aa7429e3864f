//! One live feed per site: an initial fetch, then the server-sent event
//! stream, reconnecting with backoff. It only sends [`FeedUpdate`]s to the
//! UI loop; the UI never waits on the network.

use std::time::Duration;

use ferry_api::types::{ComputeKind, SiteEvent};
use ferry_api::{Client, ClientError, Failure};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::model::{FeedUpdate, Protection};

/// The server sends a keep-alive every 2 s; silence this long means the site
/// (or the path to it) is gone even when no connection error says so.
const SILENCE: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the site's bandwidth cap and rate are read again: the rate
/// moves with every frame, so no event carries it.
const BANDWIDTH_POLL: Duration = Duration::from_secs(2);
/// How often a site's VMs are reread while it runs QEMU VMs, so the
/// details pane's console tail follows what the VM prints.
const CONSOLE_EVERY: Duration = Duration::from_secs(2);

/// Where a site is and how to get in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub token: String,
    /// The pinned certificate of an `https://` site (`sha256:…`).
    pub fingerprint: Option<String>,
}

impl Endpoint {
    /// A typed client for this site, trusting only its pinned certificate.
    pub fn client(&self, timeout: std::time::Duration) -> Result<Client, ferry_api::ClientError> {
        Client::pinned(
            &self.name,
            &self.url,
            &self.token,
            timeout,
            self.fingerprint.as_deref(),
        )
    }
}

/// Keeps site `index` live until the receiver goes away.
pub async fn run(index: usize, endpoint: Endpoint, tx: UnboundedSender<FeedUpdate>) {
    let client = match endpoint.client(REQUEST_TIMEOUT) {
        Ok(client) => client,
        Err(e) => {
            let _ = tx.send(FeedUpdate::Down {
                site: index,
                error: describe(&e),
            });
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = session(&client, index, &tx, &mut backoff).await;
        if tx.is_closed() {
            return;
        }
        if let Err(error) = outcome {
            tracing::info!(site = %endpoint.name, "feed down: {error}");
            if tx.send(FeedUpdate::Down { site: index, error }).is_err() {
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What the dashboard says of a failed call: the transport's short reason,
/// or the call and the site's answer.
fn describe(e: &ClientError) -> String {
    match &e.failure {
        Failure::Unreachable { reason, .. } => reason.clone(),
        failure => format!("{}: {failure}", e.call),
    }
}

/// The site's inventory and protection objects.
async fn protection(client: &Client) -> Result<Protection, ClientError> {
    let inventory = client.inventory().await?;
    let mappings = client.mappings().await?;
    let groups = client.groups().await?;
    let plans = client.plans().await?;
    let runs = client.runs().await?;
    Ok(Protection {
        inventory,
        mappings: mappings.into_iter().map(|m| (m.id.clone(), m)).collect(),
        groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
        plans: plans.into_iter().map(|p| (p.id.clone(), p)).collect(),
        runs: runs.into_iter().map(|r| (r.id.clone(), r)).collect(),
    })
}

/// One connected stretch: snapshot, then events until the stream ends.
async fn session(
    client: &Client,
    index: usize,
    tx: &UnboundedSender<FeedUpdate>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let snapshot = async {
        let info = client.site_info().await?;
        let replications = client.replications().await?;
        let alarms = client.alarms(200).await?;
        let vms = client.vms().await?;
        let protection = protection(client).await?;
        let events = client.events().await?;
        Ok::<_, ClientError>((info, replications, alarms, vms, protection, events))
    };
    let (info, replications, alarms, vms, protection, events) =
        snapshot.await.map_err(|e| describe(&e))?;
    let real = vms.iter().any(|v| v.compute == ComputeKind::Qemu);
    tx.send(FeedUpdate::Snapshot {
        site: index,
        info,
        replications,
        alarms,
        vms,
    })
    .map_err(|_| "UI gone".to_string())?;
    tx.send(FeedUpdate::Protection {
        site: index,
        protection,
    })
    .map_err(|_| "UI gone".to_string())?;
    *backoff = Duration::from_millis(500);
    let mut events = std::pin::pin!(events);
    let mut poll = tokio::time::interval(BANDWIDTH_POLL);
    let mut consoles = tokio::time::interval(CONSOLE_EVERY);
    consoles.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut heard = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(heard + SILENCE, events.next()) => next,
            _ = poll.tick() => {
                // A site without the route (an older one) shows no cap.
                if let Ok(info) = client.bandwidth().await {
                    tx.send(FeedUpdate::Bandwidth { site: index, info })
                        .map_err(|_| "UI gone".to_string())?;
                }
                continue;
            }
            _ = consoles.tick(), if real => {
                let vms = client.vms().await.map_err(|e| describe(&e))?;
                tx.send(FeedUpdate::Vms { site: index, vms })
                    .map_err(|_| "UI gone".to_string())?;
                continue;
            }
        };
        heard = tokio::time::Instant::now();
        let event = match next {
            Err(_) => return Err(format!("silent for {} s", SILENCE.as_secs())),
            Ok(None) => return Err("event stream ended".into()),
            Ok(Some(Err(e))) => return Err(describe(&e)),
            Ok(Some(Ok(None))) => continue, // a keep-alive
            Ok(Some(Ok(Some(event)))) => event,
        };
        if event == SiteEvent::Resync {
            return Ok(()); // refetch everything
        }
        let group_changed = matches!(event, SiteEvent::Group(_) | SiteEvent::GroupRemoved { .. });
        tx.send(FeedUpdate::Event { site: index, event })
            .map_err(|_| "UI gone".to_string())?;
        if group_changed {
            // The site sends no plan event when a group's VMs change, yet
            // the plans of that group now have other VMs.
            let plans = client.plans().await.map_err(|e| describe(&e))?;
            tx.send(FeedUpdate::Plans { site: index, plans })
                .map_err(|_| "UI gone".to_string())?;
        }
    }
}
