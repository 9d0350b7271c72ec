//! `GET /metrics`: Prometheus text format.

use actix_web::{web, HttpResponse};

use crate::metrics::METRICS;
use crate::state::AppState;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Fresh at scrape time, not only at the last sample.
    crate::stats::sampler::publish_pool_gauges(&state.store, state.config.database.pool_max);
    state.caches.publish_sizes();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(METRICS.render())
}
