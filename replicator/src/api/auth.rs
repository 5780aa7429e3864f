//! Authentication, roles and the audit of every mutating call, in the one
//! place every request passes through.

use std::sync::Arc;

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

/// Authenticates the bearer token, then audits the call if it changes
/// anything (whatever its result).
pub async fn authenticate(
    State(site): State<Arc<Site>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(entry) = token.and_then(|t| site.tokens.authenticate(t)) else {
        return ApiError::unauthorized().into_response();
    };
    let caller = Caller {
        name: entry.name.clone(),
        role: entry.role,
    };
    let mutating = !matches!(*request.method(), Method::GET | Method::HEAD);
    let action = request.method().to_string();
    let target = request.uri().path().to_string();
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    if mutating {
        let result = response
            .extensions()
            .get::<Outcome>()
            .map_or_else(|| "ok".to_string(), |o| o.0.clone());
        site.audit(AuditEntry {
            id: 0,
            at_ms: 0,
            actor: caller.name,
            role: caller.role.as_str().to_string(),
            action,
            target,
            status: response.status().as_u16(),
            result,
        })
        .await;
    }
    response
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
