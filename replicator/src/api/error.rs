//! API errors: one JSON shape, `{"error": "<code>", "message": "<what and
//! why>"}`, with the status that fits. Internal failures are logged in full
//! and answered with a short message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::types::ErrorBody;
use crate::site::SiteError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// What a mutating call came to, for the audit log (set on error responses).
#[derive(Debug, Clone)]
pub struct Outcome(pub String);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message.clone(),
            field: self.field.clone(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .extensions_mut()
            .insert(Outcome(format!("{}: {}", self.code, self.message)));
        response
    }
}

impl From<SiteError> for ApiError {
    fn from(e: SiteError) -> Self {
        match e {
            SiteError::NotFound(m) => Self::not_found(m),
            SiteError::Invalid { field, message } => Self {
                field: Some(field.clone()),
                ..Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!("{field}: {message}"),
                )
            },
            SiteError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            SiteError::WrongSite { message, .. } => {
                Self::new(StatusCode::CONFLICT, "wrong_site", message)
            }
            // The hypervisor would not run the VM: the site works, the VM
            // does not, and the message names both the VM and the cause.
            SiteError::Compute(e) => {
                Self::new(StatusCode::BAD_GATEWAY, "compute_failed", e.to_string())
            }
            other => {
                tracing::error!("request failed: {other}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the site could not complete the request: {other}"),
                )
            }
        }
    }
}
