//! The HTTP API under `/api/v1`, JSON in and out, for the TUI and scripts.
//!
//! - [`types`]: request and response bodies, shared with the `ferry` client.
//! - [`auth`]: bearer tokens, roles, the audit of every mutating call.
//! - [`routes`]: one module per resource.
//! - [`error`]: the one error shape.

pub mod auth;
pub mod error;
pub mod routes;
/// The bodies live in `ferry-api`, so clients need not build the server.
pub use ferry_api::types;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;

use crate::site::Site;
use error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The whole API for `site`.
pub fn router(site: Arc<Site>) -> Router {
    let api = Router::new()
        .merge(routes::site::router())
        .merge(routes::vms::router())
        .merge(routes::replications::router())
        .merge(routes::events::router())
        .merge(routes::protection::router())
        .merge(routes::runs::router())
        .merge(routes::audit::router())
        .layer(axum::middleware::from_fn_with_state(
            site.clone(),
            auth::authenticate,
        ));
    Router::new()
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found("no such API path; the API lives under /api/v1") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "that method is not allowed on this path",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(site)
}
