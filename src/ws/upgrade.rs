//! `GET /ws?ticket=…` (or, discouraged, `?token=…`): authenticate, then hand
//! the socket to a `Session`.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;

use super::session::Session;
use crate::auth::authenticate_hash;
use crate::domain::TokenHash;
use crate::error::ApiError;
use crate::metrics::{Limit, METRICS};
use crate::state::AppState;

#[derive(Deserialize)]
struct Credentials {
    ticket: Option<String>,
    token: Option<String>,
}

pub async fn connect(req: HttpRequest, stream: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Unavailable("this instance is shutting down; reconnect".into()));
    }
    if !origin_allowed(&req, &state.config.limits.allowed_origins) {
        METRICS.limit_hit(Limit::Origin).inc();
        return Err(ApiError::Forbidden("WebSocket connections from this origin are not allowed".into()));
    }
    let slot = state.limits.open_connection(state.limits.client_ip(&req))?;
    let credentials = web::Query::<Credentials>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or(Credentials { ticket: None, token: None });
    let token = token_of(&state, credentials).await?;
    // Registered before the token is checked, so a revocation that lands
    // between the check and the session's start still reaches this socket.
    let registration = state.connections.open(token);
    let auth = authenticate_hash(&state, token).await?;
    if registration.guard.is_revoked() {
        return Err(ApiError::unauthorized());
    }
    let max_frame = state.config.sockets.max_frame_bytes;
    ws::WsResponseBuilder::new(Session::new(auth, state, slot, registration), &req, stream)
        .frame_size(max_frame)
        .start()
        .map_err(|e| ApiError::BadRequest(format!("expected a WebSocket upgrade: {e}")))
}

/// The token a ticket stands for (the ticket is used up), or the token given.
async fn token_of(state: &AppState, credentials: Credentials) -> Result<TokenHash, ApiError> {
    let present = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty() && v.len() <= 256);
    if let Some(ticket) = present(credentials.ticket) {
        return state
            .tickets
            .redeem(&ticket)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("invalid, expired or already used ticket".into()));
    }
    present(credentials.token).map(|t| TokenHash::of(&t)).ok_or_else(ApiError::unauthorized)
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
