//! Liveness and readiness probes.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the database answers within a second and the instance is not
/// draining; a draining instance reports `draining` so the balancer stops
/// sending new connections.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = match tokio::time::timeout(Duration::from_secs(1), state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(_)) => "unreachable",
        Err(_) => "timeout",
    };
    let draining = state.is_draining();
    let status = if draining {
        "draining"
    } else if database == "ok" {
        "ready"
    } else {
        "not_ready"
    };
    let body = json!({
        "status": status,
        "checks": {"database": database, "draining": draining},
    });
    if status == "ready" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
