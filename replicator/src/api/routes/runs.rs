//! `POST /plans/{id}/runs` starts a run at the plan's recovery site;
//! `/runs` lists them (newest first), `/runs/{id}` shows one,
//! `/runs/{id}/cancel` and `/runs/{id}/ack` steer it. Tests and cleanup
//! need the operator role; real failover and reprotect need admin and the
//! plan's name typed in `confirm`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::AppState;
use crate::access::Role;
use crate::api::auth::{ApiJson, Caller};
use crate::api::error::ApiError;
use crate::api::types::{Run, RunRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plans/{id}/runs", post(start))
        .route("/runs", get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/ack", post(ack))
}

fn role_for(destructive: bool) -> Role {
    if destructive {
        Role::Admin
    } else {
        Role::Operator
    }
}

async fn start(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RunRequest>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    caller.require(role_for(request.mode.is_destructive()))?;
    let run = site.start_run(&id, request, &caller.name).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

async fn list(State(site): State<AppState>) -> Result<Json<Vec<Run>>, ApiError> {
    Ok(Json(site.runs().await?))
}

async fn show(State(site): State<AppState>, Path(id): Path<String>) -> Result<Json<Run>, ApiError> {
    Ok(Json(site.run(&id).await?))
}

async fn cancel(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    steer(&site, &caller, &id, |site, id| site.cancel_run(id)).await
}

async fn ack(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    steer(&site, &caller, &id, |site, id| {
        site.ack_run(id, &caller.name)
    })
    .await
}

/// Cancel and ack need the role that could have started the run.
async fn steer(
    site: &AppState,
    caller: &Caller,
    id: &str,
    act: impl FnOnce(&AppState, &str) -> Result<Run, crate::site::SiteError>,
) -> Result<Json<Run>, ApiError> {
    let run = site.run(id).await?;
    caller.require(role_for(run.mode.is_destructive()))?;
    Ok(Json(act(site, id)?))
}
