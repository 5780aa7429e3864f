//! `GET /site`, `PUT /site/peer`, `GET`/`PUT /site/bandwidth`.

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Extension, Json, Router};

use super::AppState;
use crate::access::Role;
use crate::api::auth::{ApiJson, Caller};
use crate::api::error::ApiError;
use crate::api::types::{PeerInfo, PeerRequest, SiteInfo};
use ferry_api::bandwidth::{BandwidthInfo, BandwidthPolicy};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/site", get(show))
        .route("/site/peer", put(pair))
        .route("/site/bandwidth", get(bandwidth).put(set_bandwidth))
}

async fn bandwidth(State(site): State<AppState>) -> Json<BandwidthInfo> {
    Json(site.bandwidth_info())
}

/// Admin only; audited as every mutating call is.
async fn set_bandwidth(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(policy): ApiJson<BandwidthPolicy>,
) -> Result<Json<BandwidthInfo>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.set_bandwidth(policy).await?))
}

async fn show(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<SiteInfo> {
    let (vm_count, replicated_count) = site.counts();
    Json(SiteInfo {
        name: site.name.clone(),
        role: caller.role,
        peer: site.peer_info(),
        vm_count,
        replicated_count,
        fingerprint: Some(site.fingerprint().to_string()),
        replication: Some(site.replication_addr.to_string()),
    })
}

async fn pair(
    State(site): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<PeerRequest>,
) -> Result<Json<PeerInfo>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(site.pair(request).await?))
}
