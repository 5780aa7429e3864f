//! `/replications`: list, show, configure (PUT), stop (DELETE), pause,
//! resume, sync now. Changing replication needs the admin role.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::AppState;
use crate::access::Role;
use crate::api::auth::{ApiJson, Caller};
use crate::api::error::ApiError;
use crate::api::types::{ReplicationInfo, ReplicationRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/replications", get(list))
        .route(
            "/replications/{vm_id}",
            get(show).put(configure).delete(stop),
        )
        .route("/replications/{vm_id}/pause", post(pause))
        .route("/replications/{vm_id}/resume", post(resume))
        .route("/replications/{vm_id}/sync", post(sync))
}

async fn list(State(site): State<AppState>) -> Json<Vec<ReplicationInfo>> {
    Json(site.replications())
}

async fn show(
    State(site): State<AppState>,
    Path(vm_id): Path<String>,
) -> Result<Json<ReplicationInfo>, ApiError> {
    site.vm(&vm_id)?;
    site.replication_info(&vm_id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("VM {vm_id} is not replicated")))
}

async fn configure(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(vm_id): Path<String>,
    ApiJson(request): ApiJson<ReplicationRequest>,
) -> Result<Json<ReplicationInfo>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.configure_replication(&vm_id, request).await?))
}

async fn stop(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(vm_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    site.stop_replication(&vm_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(vm_id): Path<String>,
) -> Result<Json<ReplicationInfo>, ApiError> {
    set_paused(site, caller, vm_id, true).await
}

async fn resume(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(vm_id): Path<String>,
) -> Result<Json<ReplicationInfo>, ApiError> {
    set_paused(site, caller, vm_id, false).await
}

async fn set_paused(
    site: AppState,
    caller: Caller,
    vm_id: String,
    paused: bool,
) -> Result<Json<ReplicationInfo>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.set_paused(&vm_id, paused).await?))
}

async fn sync(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(vm_id): Path<String>,
) -> Result<Json<ReplicationInfo>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.sync_now(&vm_id)?))
}
