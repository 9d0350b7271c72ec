//! `GET /api/v1/admin/stats`: cluster-wide and per-instance figures from the
//! snapshots every instance publishes each second.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stats::report;

#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    /// Only history points newer than this (Unix ms): the page polls with
    /// the last point it has, so each poll carries about one point.
    #[serde(default)]
    since: i64,
}

pub async fn get_stats(
    state: web::Data<AppState>,
    auth: AuthUser,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let snapshots = state.stats.current();
    let history: Vec<_> = state.stats.history().into_iter().filter(|p| p.t > query.since).collect();
    let body = report::render(&state.config.cluster.instance_id, &snapshots, &history);
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(body))
}
