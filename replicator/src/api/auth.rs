//! Authentication, roles and the audit of every mutating call, in the one
//! place every request passes through.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::{ApiError, Outcome};
use crate::access::Role;
use crate::site::Site;
use crate::store::AuditEntry;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Refuses with 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the {} role; token {:?} has {}",
                    role.as_str(),
                    self.name,
                    self.role.as_str()
                ),
            ))
        }
    }
}

/// How long an authenticated caller may take to send its body, once its
/// headers are in (hyper bounds the headers): a client trickling a body
/// is cut off instead of holding its connection for ever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Authenticates the bearer token, reads the body within [`BODY_TIMEOUT`],
/// then audits the call if it changes anything (whatever its result) or
/// was refused (401, 403, 408: refused reads too).
pub async fn authenticate(State(site): State<Arc<Site>>, request: Request, next: Next) -> Response {
    let action = request.method().to_string();
    let target = request.uri().path().to_string();
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(entry) = token.and_then(|t| site.tokens.authenticate(t)) else {
        let why = if token.is_some() {
            "unauthorized: unknown or revoked token"
        } else {
            "unauthorized: no bearer token"
        };
        let response = ApiError::unauthorized().into_response();
        site.audit(entry_for("-", "none", action, target, &response, why))
            .await;
        return response;
    };
    let caller = Caller {
        name: entry.name.clone(),
        role: entry.role,
    };
    let mutating = !matches!(*request.method(), Method::GET | Method::HEAD);
    let mut request = match read_body(request).await {
        Ok(request) => request,
        Err(error) => {
            let why = format!("{}: {}", error.code, error.message);
            let mut response = error.into_response();
            // The rest of a body that never came must not be read as the
            // next request.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            let role = caller.role.as_str();
            site.audit(entry_for(
                &caller.name,
                role,
                action,
                target,
                &response,
                &why,
            ))
            .await;
            return response;
        }
    };
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    let refused = matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    );
    if mutating || refused {
        let result = response
            .extensions()
            .get::<Outcome>()
            .map_or_else(|| "ok".to_string(), |o| o.0.clone());
        let role = caller.role.as_str();
        site.audit(entry_for(
            &caller.name,
            role,
            action,
            target,
            &response,
            &result,
        ))
        .await;
    }
    response
}

fn entry_for(
    actor: &str,
    role: &str,
    action: String,
    target: String,
    response: &Response,
    result: &str,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms: 0,
        actor: actor.to_string(),
        role: role.to_string(),
        action,
        target,
        status: response.status().as_u16(),
        result: result.to_string(),
    }
}

/// The request with its whole body read (at most [`super::MAX_BODY`]
/// bytes, within [`BODY_TIMEOUT`]), so no handler waits on a slow client.
async fn read_body(request: Request) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, super::MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {} bytes", super::MAX_BODY),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// A JSON body whose rejections are API errors: 400 for malformed JSON or
/// a body of the wrong shape (naming the field), 413 past the size limit.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match &rejection {
                _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request bodies are limited to {} bytes", super::MAX_BODY),
                ),
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with `Content-Type: application/json`",
                ),
                JsonRejection::JsonSyntaxError(_) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    rejection.body_text(),
                ),
                _ => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    rejection.body_text(),
                ),
            }),
        }
    }
}
