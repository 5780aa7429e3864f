//! A typed async client for one site: one method per read, [`Client::send`]
//! for every [`Call`], the event stream as a stream of [`SiteEvent`]s. Its
//! errors carry the site, the call and the server's [`ErrorBody`], so a
//! caller can say what failed in a sentence.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::call::{Call, Method};
use crate::pin::{Fingerprint, PinnedCert};
use crate::types::ErrorBody;
use crate::types::{
    AuditEntry, EventRow, InstanceInfo, Inventory, Mappings, Plan, ProtectionGroup,
    ReplicationInfo, Run, SiteEvent, SiteInfo, VmInfo,
};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No answer: refused, timed out, cut off. `reason` is short
    /// ("connection refused"), `detail` is the transport's own words.
    #[error("{reason}")]
    Unreachable { reason: String, detail: String },
    /// The site answered with an error status. `body` is its
    /// [`ErrorBody`] when it sent one, `text` what it sent.
    #[error("{}: {}", status_line(*.status), .text)]
    Status {
        status: u16,
        /// Boxed: errors travel in every `Result`, so they stay small.
        body: Option<Box<ErrorBody>>,
        text: String,
    },
    /// The site answered, but not with what the call expects.
    #[error("{0}")]
    Decode(String),
    /// The site's TLS certificate is not the pinned one: `pinned` is `None`
    /// on first contact (nothing pinned yet), else the one it had before.
    #[error("{}", certificate_refusal(.pinned.as_deref(), .seen))]
    Certificate {
        pinned: Option<String>,
        seen: String,
    },
}

/// What a refused certificate means, in a sentence naming both fingerprints.
fn certificate_refusal(pinned: Option<&str>, seen: &str) -> String {
    match pinned {
        Some(pinned) => format!(
            "refused: the site's certificate changed: pinned {pinned}, presented {seen}; \
             if the site was given a new key on purpose, remove the old fingerprint from \
             the config and confirm the new one"
        ),
        None => format!("the site's certificate {seen} is not pinned yet: confirm it first"),
    }
}

/// A failed call to `site`: `call` is the path under `/api/v1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{site}: {call}: {failure}")]
pub struct ClientError {
    pub site: String,
    pub call: String,
    pub failure: Failure,
}

impl ClientError {
    /// The HTTP status the site answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self.failure {
            Failure::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The error as the site would have put it: its own body when it sent
    /// one, else one made up in the same shape (`unreachable`, or the status).
    pub fn to_body(&self) -> ErrorBody {
        match &self.failure {
            Failure::Unreachable { detail, .. } => ErrorBody {
                error: "unreachable".into(),
                message: format!("{}: {detail}", self.site),
                field: None,
            },
            Failure::Status {
                body: Some(body), ..
            } => (**body).clone(),
            Failure::Status { status, text, .. } => ErrorBody {
                error: status.to_string(),
                message: format!("{}: {}: {text}", self.site, status_line(*status)),
                field: None,
            },
            Failure::Decode(reason) => ErrorBody {
                error: "bad_answer".into(),
                message: format!("{}: {reason}", self.site),
                field: None,
            },
            Failure::Certificate { .. } => ErrorBody {
                error: "certificate".into(),
                message: format!("{}: {}", self.site, self.failure),
                field: None,
            },
        }
    }
}

/// `404 Not Found`, as HTTP writes a status.
pub fn status_line(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status) {
        Ok(code) => code.to_string(),
        Err(_) => status.to_string(),
    }
}

/// One site's API at `url` (without `/api/v1`), as `token`'s holder.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    site: String,
    base: String,
    token: String,
    /// Bounds each request but not the event stream, which stays open.
    timeout: Duration,
    /// The pinned certificate for an `https://` URL.
    pin: Option<Arc<PinnedCert>>,
}

impl Client {
    /// A client whose requests (and connects) give up after `timeout`. An
    /// `https://` site is refused: nothing is pinned (see [`Self::pinned`]).
    pub fn new(
        site: impl Into<String>,
        url: &str,
        token: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::pinned(site, url, token, timeout, None)
    }

    /// A client that trusts an `https://` site only if its certificate has
    /// the `fingerprint` (`sha256:…`); `None` refuses every certificate with
    /// [`Failure::Certificate`], which names the one to confirm.
    pub fn pinned(
        site: impl Into<String>,
        url: &str,
        token: impl Into<String>,
        timeout: Duration,
        fingerprint: Option<&str>,
    ) -> Result<Self, ClientError> {
        let site = site.into();
        let failed = |e: String| ClientError {
            site: site.clone(),
            call: String::new(),
            failure: Failure::Unreachable {
                reason: format!("no HTTP client: {e}"),
                detail: e,
            },
        };
        let mut builder = reqwest::Client::builder().connect_timeout(timeout);
        let pin = if url.starts_with("https://") {
            let pinned = fingerprint
                .map(str::parse::<Fingerprint>)
                .transpose()
                .map_err(|e| failed(format!("the pinned fingerprint: {e}")))?;
            let pin = PinnedCert::new(pinned);
            let tls = pin.client_config().map_err(|e| failed(e.to_string()))?;
            builder = builder.use_preconfigured_tls(tls);
            Some(pin)
        } else {
            None
        };
        let http = builder.build().map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            http,
            site,
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            token: token.into(),
            timeout,
            pin,
        })
    }

    /// The fingerprint an `https://` site presented last, pinned or not.
    pub fn seen_fingerprint(&self) -> Option<String> {
        self.pin
            .as_ref()
            .and_then(|p| p.seen())
            .map(|f| f.to_string())
    }

    /// The site's URL, without `/api/v1`.
    pub fn url(&self) -> &str {
        self.base.trim_end_matches("/api/v1")
    }

    /// The site's name as the caller knows it.
    pub fn site(&self) -> &str {
        &self.site
    }

    fn error(&self, call: &str, failure: Failure) -> ClientError {
        ClientError {
            site: self.site.clone(),
            call: call.to_string(),
            failure,
        }
    }

    fn unreachable(&self, call: &str, e: &reqwest::Error) -> ClientError {
        // A refused certificate looks like a failed connect to reqwest;
        // the verifier knows better.
        if let Some(pin) = &self.pin
            && let Some(seen) = pin.seen()
            && pin.pinned() != Some(seen)
        {
            return self.error(
                call,
                Failure::Certificate {
                    pinned: pin.pinned().map(|f| f.to_string()),
                    seen: seen.to_string(),
                },
            );
        }
        let reason = if e.is_connect() {
            "connection refused".into()
        } else if e.is_timeout() {
            "no answer (timed out)".into()
        } else {
            e.to_string()
        };
        self.error(
            call,
            Failure::Unreachable {
                reason,
                detail: e.to_string(),
            },
        )
    }

    async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unreachable(path, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(self.error(
            path,
            Failure::Status {
                status: status.as_u16(),
                body: serde_json::from_str(&text).ok().map(Box::new),
                text,
            },
        ))
    }

    /// GETs `path` under `/api/v1` as `T`.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self
            .exchange(reqwest::Method::GET, path, None, Some(self.timeout))
            .await?;
        response
            .json()
            .await
            .map_err(|e| self.error(path, Failure::Decode(e.to_string())))
    }

    /// Like [`Self::get`], but a site that does not serve `path` to this
    /// token (404, 403) gives `None`.
    async fn get_optional<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, ClientError> {
        match self.get(path).await {
            Ok(value) => Ok(Some(value)),
            Err(e) if matches!(e.status(), Some(404 | 403)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn site_info(&self) -> Result<SiteInfo, ClientError> {
        self.get("/site").await
    }

    pub async fn vms(&self) -> Result<Vec<VmInfo>, ClientError> {
        self.get("/vms").await
    }

    pub async fn vm(&self, id: &str) -> Result<VmInfo, ClientError> {
        self.get(&format!("/vms/{id}")).await
    }

    /// The kept instances of the replica of `vm_id` at this site, newest
    /// first.
    pub async fn instances(&self, vm_id: &str) -> Result<Vec<InstanceInfo>, ClientError> {
        self.get(&format!("/vms/{vm_id}/instances")).await
    }

    /// The last scrub of the replica of `vm_id` held at this site.
    pub async fn scrub_report(
        &self,
        vm_id: &str,
    ) -> Result<crate::scrub::ScrubReport, ClientError> {
        self.get(&format!("/vms/{vm_id}/scrub")).await
    }

    pub async fn replications(&self) -> Result<Vec<ReplicationInfo>, ClientError> {
        self.get("/replications").await
    }

    pub async fn replication(&self, vm_id: &str) -> Result<ReplicationInfo, ClientError> {
        self.get(&format!("/replications/{vm_id}")).await
    }

    /// The newest `limit` alarms.
    pub async fn alarms(&self, limit: usize) -> Result<Vec<EventRow>, ClientError> {
        self.get(&format!("/alarms?limit={limit}")).await
    }

    /// The site's bandwidth cap, the cap in force now and the rate sent.
    pub async fn bandwidth(&self) -> Result<crate::bandwidth::BandwidthInfo, ClientError> {
        self.get("/site/bandwidth").await
    }

    pub async fn audit(&self) -> Result<Vec<AuditEntry>, ClientError> {
        self.get("/audit").await
    }

    /// `None` where the site has no inventory for this token.
    pub async fn inventory(&self) -> Result<Option<Inventory>, ClientError> {
        self.get_optional("/inventory").await
    }

    /// Lists below give nothing where the site does not serve them.
    pub async fn mappings(&self) -> Result<Vec<Mappings>, ClientError> {
        Ok(self.get_optional("/mappings").await?.unwrap_or_default())
    }

    pub async fn groups(&self) -> Result<Vec<ProtectionGroup>, ClientError> {
        Ok(self
            .get_optional("/protection-groups")
            .await?
            .unwrap_or_default())
    }

    pub async fn plans(&self) -> Result<Vec<Plan>, ClientError> {
        Ok(self.get_optional("/plans").await?.unwrap_or_default())
    }

    pub async fn runs(&self) -> Result<Vec<Run>, ClientError> {
        Ok(self.get_optional("/runs").await?.unwrap_or_default())
    }

    pub async fn run(&self, id: &str) -> Result<Run, ClientError> {
        self.get(&format!("/runs/{id}")).await
    }

    /// Sends `call`; gives the object the site stored (`null` when it
    /// answered with none).
    pub async fn send(&self, call: &Call) -> Result<serde_json::Value, ClientError> {
        let method = match call.method() {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let path = call.path();
        let response = self
            .exchange(method, &path, call.body(), Some(self.timeout))
            .await?;
        let text = response
            .text()
            .await
            .map_err(|e| self.unreachable(&path, &e))?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// Like [`Self::send`], with the answer as `T`.
    pub async fn send_as<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ClientError> {
        let value = self.send(call).await?;
        serde_json::from_value(value)
            .map_err(|e| self.error(&call.path(), Failure::Decode(e.to_string())))
    }

    /// The site's event stream, from now on: `Some` event, or `None` for a
    /// keep-alive or an event this client does not know (either way the
    /// site is alive). The stream ends when the site closes it. It has no
    /// timeout: the caller decides how much silence means the site is gone.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<Option<SiteEvent>, ClientError>> + use<>, ClientError>
    {
        let response = self
            .exchange(reqwest::Method::GET, "/events", None, None)
            .await?;
        let this = self.clone();
        let bytes = response.bytes_stream().boxed();
        let stream = futures_util::stream::unfold(
            (bytes, String::new(), this),
            |(mut bytes, mut buffer, this)| async move {
                loop {
                    if let Some(end) = buffer.find("\n\n") {
                        let block: String = buffer.drain(..end + 2).collect();
                        return Some((Ok(parse_event(&block)), (bytes, buffer, this)));
                    }
                    match bytes.next().await {
                        None => return None,
                        Some(Err(e)) => {
                            let error = this.unreachable("/events", &e);
                            return Some((Err(error), (bytes, buffer, this)));
                        }
                        Some(Ok(chunk)) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    }
                }
            },
        );
        Ok(stream)
    }
}

/// Parses one server-sent-event block (`event:` and `data:` lines);
/// keep-alives and unknown events give `None`.
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
