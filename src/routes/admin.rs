//! `GET /api/v1/admin/stats`: figures for admins, from this instance's metrics.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::metrics::METRICS;
use crate::state::AppState;

pub async fn get_stats(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let (idle, active) = state.store.pool_state();
    let instance = json!({
        "instance": state.config.instance_id,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "connections": METRICS.ws_connections.get(),
        "rooms_active": state.registry.active_rooms(),
        "messages_total": METRICS.messages_total.get(),
        "messages_delivered_total": METRICS.messages_delivered.get(),
        "db_pool": {"idle": idle, "active": active, "max": state.config.db_pool_max},
        "draining": state.is_draining(),
        "cache_hit_ratio": cache_hit_ratios(),
    });
    Ok(HttpResponse::Ok().json(json!({
        "cluster": {
            "instances": 1,
            "connections": METRICS.ws_connections.get(),
            "rooms_active": state.registry.active_rooms(),
            "messages_total": METRICS.messages_total.get(),
        },
        "instances": [instance],
    })))
}

/// Hits / (hits + misses) per cache since start-up (null before any lookup).
fn cache_hit_ratios() -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for cache in crate::metrics::CACHE_NAMES {
        let hit = METRICS.cache_requests.with_label_values(&[cache, "hit"]).get() as f64;
        let miss = METRICS.cache_requests.with_label_values(&[cache, "miss"]).get() as f64;
        let ratio = if hit + miss > 0.0 { json!(hit / (hit + miss)) } else { json!(null) };
        out.insert(cache.to_string(), ratio);
    }
    serde_json::Value::Object(out)
}
