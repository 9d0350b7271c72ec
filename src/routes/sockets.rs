//! `GET /ws?ticket=…` (or, discouraged, `?token=…`): checks who is calling
//! and from where, then hands the socket to a `Session` (ws::upgrade).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::domain::TokenHash;
use crate::error::ApiError;
use crate::metrics::{Limit, METRICS};
use crate::state::AppState;
use crate::ws::upgrade;

#[derive(Deserialize)]
struct Credentials {
    ticket: Option<String>,
    token: Option<String>,
}

pub async fn connect(req: HttpRequest, stream: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Unavailable("this instance is shutting down; reconnect".into()));
    }
    if !upgrade::origin_allowed(&req, &state.config.limits.allowed_origins) {
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
    let auth = state.authenticator.authenticate_hash(token).await?;
    if registration.guard.is_revoked() {
        return Err(ApiError::unauthorized());
    }
    upgrade::start(&req, stream, auth, state.sessions.clone(), slot, registration)
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
