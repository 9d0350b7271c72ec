//! `GET /ws?token=…`: authenticate, then hand the socket to a `Session`.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;

use super::session::Session;
use crate::auth::authenticate;
use crate::error::ApiError;
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
    let token = web::Query::<TokenQuery>::from_query(req.query_string()).ok().and_then(|q| q.into_inner().token);
    let auth = authenticate(&state, token.as_deref()).await?;
    let max_frame = state.config.max_frame_bytes;
    ws::WsResponseBuilder::new(Session::new(auth, state), &req, stream)
        .frame_size(max_frame)
        .start()
        .map_err(|e| ApiError::BadRequest(format!("expected a WebSocket upgrade: {e}")))
}
