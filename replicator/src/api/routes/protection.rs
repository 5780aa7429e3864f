//! `/inventory`, `/mappings`, `/protection-groups`, `/plans`: list, show,
//! create, update, delete. Every change needs the admin role and is made at
//! the object's recovery site; the other site answers `409 wrong_site`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};

use super::AppState;
use crate::access::Role;
use crate::api::auth::{ApiJson, Caller};
use crate::api::error::ApiError;
use crate::api::types::{
    GroupSpec, Inventory, MappingSpec, Mappings, Plan, PlanSpec, ProtectionGroup,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inventory", get(inventory))
        .route("/mappings", get(list_mappings).post(create_mappings))
        .route(
            "/mappings/{id}",
            get(show_mappings)
                .put(update_mappings)
                .delete(delete_mappings),
        )
        .route("/protection-groups", get(list_groups).post(create_group))
        .route(
            "/protection-groups/{id}",
            get(show_group).put(update_group).delete(delete_group),
        )
        .route("/plans", get(list_plans).post(create_plan))
        .route(
            "/plans/{id}",
            get(show_plan).put(update_plan).delete(delete_plan),
        )
}

type Created<T> = (StatusCode, Json<T>);

async fn inventory(State(site): State<AppState>) -> Json<Inventory> {
    Json(site.inventory())
}

async fn list_mappings(State(site): State<AppState>) -> Json<Vec<Mappings>> {
    Json(site.mappings())
}

async fn show_mappings(
    State(site): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Mappings>, ApiError> {
    Ok(Json(site.mapping(&id)?))
}

async fn create_mappings(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(spec): ApiJson<MappingSpec>,
) -> Result<Created<Mappings>, ApiError> {
    caller.require(Role::Admin)?;
    Ok((
        StatusCode::CREATED,
        Json(site.put_mappings(None, spec).await?),
    ))
}

async fn update_mappings(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<MappingSpec>,
) -> Result<Json<Mappings>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.put_mappings(Some(&id), spec).await?))
}

async fn delete_mappings(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    site.delete_mappings(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_groups(State(site): State<AppState>) -> Json<Vec<ProtectionGroup>> {
    Json(site.groups())
}

async fn show_group(
    State(site): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProtectionGroup>, ApiError> {
    Ok(Json(site.group(&id)?))
}

async fn create_group(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(spec): ApiJson<GroupSpec>,
) -> Result<Created<ProtectionGroup>, ApiError> {
    caller.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(site.create_group(spec).await?)))
}

async fn update_group(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<GroupSpec>,
) -> Result<Json<ProtectionGroup>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.update_group(&id, spec).await?))
}

async fn delete_group(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    site.delete_group(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_plans(State(site): State<AppState>) -> Json<Vec<Plan>> {
    Json(site.plans())
}

async fn show_plan(
    State(site): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Plan>, ApiError> {
    Ok(Json(site.plan(&id)?))
}

async fn create_plan(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(spec): ApiJson<PlanSpec>,
) -> Result<Created<Plan>, ApiError> {
    caller.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(site.create_plan(spec).await?)))
}

async fn update_plan(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<PlanSpec>,
) -> Result<Json<Plan>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.update_plan(&id, spec).await?))
}

async fn delete_plan(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    site.delete_plan(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
