//! One live feed per site: an initial fetch, then the server-sent event
//! stream, reconnecting with backoff. It only sends [`FeedUpdate`]s to the
//! UI loop; the UI never waits on the network.

use std::time::Duration;

use ferry_replicator::api::types::{
    Mappings, Plan, ProtectionGroup, ReplicationInfo, Run, SiteEvent, SiteInfo, VmInfo,
};
use ferry_replicator::store::EventRow;
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::model::{FeedUpdate, Protection};

/// The server sends a keep-alive every 2 s; silence this long means the site
/// (or the path to it) is gone even when no connection error says so.
const SILENCE: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where a site is and how to get in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    pub token: String,
}

/// Keeps site `index` live until the receiver goes away.
pub async fn run(index: usize, endpoint: Endpoint, tx: UnboundedSender<FeedUpdate>) {
    let client = match reqwest::Client::builder()
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            let _ = tx.send(FeedUpdate::Down {
                site: index,
                error: format!("no HTTP client: {e}"),
            });
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = session(&client, index, &endpoint, &tx, &mut backoff).await;
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

async fn get<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    path: &str,
) -> Result<T, String> {
    let response = client
        .get(format!("{}/api/v1{path}", endpoint.url))
        .bearer_auth(&endpoint.token)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{path}: {status}: {body}"));
    }
    response.json().await.map_err(|e| format!("{path}: {e}"))
}

/// Like [`get`], but a site that does not serve `path` (404) gives `None`.
async fn get_optional<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    path: &str,
) -> Result<Option<T>, String> {
    match get(client, endpoint, path).await {
        Ok(value) => Ok(Some(value)),
        Err(e)
            if e.starts_with(&format!("{path}: 404")) || e.starts_with(&format!("{path}: 403")) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The site's inventory and protection objects.
async fn protection(client: &reqwest::Client, endpoint: &Endpoint) -> Result<Protection, String> {
    let inventory = get_optional(client, endpoint, "/inventory").await?;
    let mappings: Vec<Mappings> = get_optional(client, endpoint, "/mappings")
        .await?
        .unwrap_or_default();
    let groups: Vec<ProtectionGroup> = get_optional(client, endpoint, "/protection-groups")
        .await?
        .unwrap_or_default();
    let plans: Vec<Plan> = get_optional(client, endpoint, "/plans")
        .await?
        .unwrap_or_default();
    let runs: Vec<Run> = get_optional(client, endpoint, "/runs")
        .await?
        .unwrap_or_default();
    Ok(Protection {
        inventory,
        mappings: mappings.into_iter().map(|m| (m.id.clone(), m)).collect(),
        groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
        plans: plans.into_iter().map(|p| (p.id.clone(), p)).collect(),
        runs: runs.into_iter().map(|r| (r.id.clone(), r)).collect(),
    })
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "no answer (timed out)".into()
    } else {
        e.to_string()
    }
}

/// One connected stretch: snapshot, then events until the stream ends.
async fn session(
    client: &reqwest::Client,
    index: usize,
    endpoint: &Endpoint,
    tx: &UnboundedSender<FeedUpdate>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let info: SiteInfo = get(client, endpoint, "/site").await?;
    let replications: Vec<ReplicationInfo> = get(client, endpoint, "/replications").await?;
    let alarms: Vec<EventRow> = get(client, endpoint, "/alarms?limit=200").await?;
    let vms: Vec<VmInfo> = get(client, endpoint, "/vms").await?;
    let protection = protection(client, endpoint).await?;
    let response = client
        .get(format!("{}/api/v1/events", endpoint.url))
        .bearer_auth(&endpoint.token)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if !response.status().is_success() {
        return Err(format!("/events: {}", response.status()));
    }
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
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    loop {
        let chunk = match tokio::time::timeout(SILENCE, stream.next()).await {
            Err(_) => return Err(format!("silent for {} s", SILENCE.as_secs())),
            Ok(None) => return Err("event stream ended".into()),
            Ok(Some(Err(e))) => return Err(describe(&e)),
            Ok(Some(Ok(chunk))) => chunk,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(event) = parse_event(&block) else {
                continue;
            };
            if event == SiteEvent::Resync {
                return Ok(()); // refetch everything
            }
            tx.send(FeedUpdate::Event { site: index, event })
                .map_err(|_| "UI gone".to_string())?;
        }
    }
}

/// Parses one SSE block (`event:` and `data:` lines); keep-alives and
/// unknown events give `None`.
pub fn parse_event(block: &str) -> Option<SiteEvent> {
    let data: String = block
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_and_skips_keepalives() {
        assert_eq!(parse_event(":\n\n"), None);
        let block = "event: resync\ndata: {\"type\":\"resync\"}\n\n";
        assert_eq!(parse_event(block), Some(SiteEvent::Resync));
        assert_eq!(parse_event("event: x\ndata: {\"type\":\"nope\"}\n\n"), None);
    }
}
