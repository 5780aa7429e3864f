//! `GET /vms`, `GET /vms/{id}`, `POST /vms/{id}/power`,
//! `GET /vms/{id}/instances`, `GET`/`POST /vms/{id}/scrub`, `POST
//! /vms/{id}/attack` (demo sites only).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::AppState;
use crate::access::Role;
use crate::api::auth::{ApiJson, Caller};
use crate::api::error::ApiError;
use crate::api::types::{InstanceInfo, PowerRequest, VmInfo};
use ferry_api::scrub::ScrubReport;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vms", get(list))
        .route("/vms/{id}", get(show))
        .route("/vms/{id}/power", post(power))
        .route("/vms/{id}/instances", get(instances))
        .route("/vms/{id}/scrub", get(last_scrub).post(scrub))
        .route("/vms/{id}/attack", post(attack))
}

async fn list(State(site): State<AppState>) -> Json<Vec<VmInfo>> {
    Json(site.vms())
}

async fn show(
    State(site): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<VmInfo>, ApiError> {
    Ok(Json(site.vm(&id)?))
}

async fn power(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PowerRequest>,
) -> Result<Json<VmInfo>, ApiError> {
    caller.require(Role::Operator)?;
    Ok(Json(site.set_power(&id, request.state).await?))
}

async fn instances(
    State(site): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<InstanceInfo>>, ApiError> {
    Ok(Json(site.instances(&id).await?))
}

/// Scrubs the replica held here now; the answer is the report.
async fn scrub(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ScrubReport>, ApiError> {
    caller.require(Role::Operator)?;
    Ok(Json(site.scrub_replica(&id).await?))
}

async fn last_scrub(
    State(site): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScrubReport>, ApiError> {
    Ok(Json(site.last_scrub(&id)?))
}

/// A simulated encryption attack on a demo VM: admin only, as it
/// destroys the VM's data.
async fn attack(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<VmInfo>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.simulate_attack(&id).await?))
}
