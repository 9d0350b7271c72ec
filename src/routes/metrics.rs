//! `GET /metrics`: Prometheus text format.

use actix_web::{web, HttpResponse};

use crate::metrics::METRICS;
use crate::state::AppState;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (idle, active) = state.store.pool_state();
    METRICS.set_pool("primary", idle, active);
    state.caches.publish_sizes();
    if let Some(replica) = state.store.replica() {
        let (idle, active) = replica.pool_state();
        METRICS.set_pool("replica", idle, active);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(METRICS.render())
}
