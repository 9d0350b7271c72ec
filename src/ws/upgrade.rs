//! `GET /ws?token=…`: authenticate, then hand the socket to a `Session`.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;

use super::session::Session;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::metrics::METRICS;
use crate::state::AppState;

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Unavailable("this instance is shutting down; reconnect".into()));
    }
    if !origin_allowed(&req, &state.config.allowed_origins) {
        METRICS.limit_hits.with_label_values(&["origin"]).inc();
        return Err(ApiError::Forbidden("WebSocket connections from this origin are not allowed".into()));
    }
    let slot = state.limits.open_connection(state.limits.client_ip(&req))?;
    let token = web::Query::<TokenQuery>::from_query(req.query_string()).ok().and_then(|q| q.into_inner().token);
    let auth = authenticate(&state, token.as_deref()).await?;
    let max_frame = state.config.max_frame_bytes;
    ws::WsResponseBuilder::new(Session::new(auth, state, slot), &req, stream)
        .frame_size(max_frame)
        .start()
        .map_err(|e| ApiError::BadRequest(format!("expected a WebSocket upgrade: {e}")))
}

/// Browsers send `Origin`; a page on another site must not open sockets with
/// a user's token (cross-site WebSocket hijacking). Allowed: no `Origin`
/// (non-browser clients), the page's own host, or `ALLOWED_ORIGINS`.
fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if allowed.iter().any(|a| a == "*" || *a == origin) {
        return true;
    }
    let origin_host = origin.split("://").nth(1).unwrap_or("").split(':').next().unwrap_or("");
    let info = req.connection_info();
    let host = info.host().split(':').next().unwrap_or("").to_ascii_lowercase();
    !origin_host.is_empty() && origin_host == host
}
