//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::readiness;
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers within a second and the instance is not
/// draining; a draining instance reports `draining` so the balancer stops
/// sending new connections.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let readiness = readiness::check(state.probe()).await;
    crate::metrics::METRICS.ready.set(i64::from(readiness.is_ready()));
    let body = json!({"status": readiness.status, "checks": readiness.checks});
    if readiness.is_ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
