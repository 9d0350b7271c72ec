//! The WebSocket handshake: which origins may open a socket, and handing
//! an authenticated upgrade to a new `Session` (the route that checks the
//! caller is `routes::sockets`).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::session::{self, Session, SessionParts};
use crate::auth::AuthUser;
use crate::connections::Registration;
use crate::error::ApiError;
use crate::limits::ConnectionSlot;

/// Starts the session for an upgrade that passed every check.
pub fn start(
    req: &HttpRequest,
    stream: web::Payload,
    auth: AuthUser,
    parts: Arc<SessionParts>,
    slot: ConnectionSlot,
    registration: Registration,
) -> Result<HttpResponse, ApiError> {
    let max_frame = parts.settings.sockets.max_frame_bytes;
    session::start(Session::new(auth, parts, slot, registration), req, stream, max_frame)
        .map_err(|e| ApiError::BadRequest(format!("expected a WebSocket upgrade: {e}")))
}

/// Browsers send `Origin`; a page on another site must not open sockets with
/// a user's token (cross-site WebSocket hijacking). Allowed: no `Origin`
/// (non-browser clients), the page's own host, or `ALLOWED_ORIGINS`.
pub fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
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
