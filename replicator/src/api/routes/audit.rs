//! `GET /audit` (admin), `GET /alarms` and `POST /alarms/{id}/ack`
//! (operator; audited with the caller like every change).

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::AppState;
use crate::access::Role;
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::store::{self, AuditEntry, EventRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(audit))
        .route("/alarms", get(alarms))
        .route("/alarms/{id}/ack", post(ack))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<u32>,
}

fn limit(l: &Limit) -> u32 {
    l.limit.unwrap_or(200).clamp(1, 1000)
}

async fn audit(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(l): Query<Limit>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require(Role::Admin)?;
    let n = limit(&l);
    let entries = site
        .store
        .call(move |c| store::list_audit(c, n))
        .await
        .map_err(crate::site::SiteError::from)?;
    Ok(Json(entries))
}

async fn alarms(
    State(site): State<AppState>,
    Query(l): Query<Limit>,
) -> Result<Json<Vec<EventRow>>, ApiError> {
    Ok(Json(site.alarms(limit(&l)).await?))
}

async fn ack(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<EventRow>, ApiError> {
    caller.require(Role::Operator)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no alarm {id:?}: alarm ids are numbers")))?;
    Ok(Json(site.ack_alarm(id, &caller.name).await?))
}
