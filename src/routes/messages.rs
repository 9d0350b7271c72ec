//! History pages and HTTP sends (through the same writer as WebSocket sends).

use std::collections::HashMap;
use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::chat::room::NewestPage;
use crate::domain::{Body, ClientMsgId, MessageId};
use crate::error::ApiError;
use crate::metrics::{CacheName, CacheResult, METRICS};
use crate::state::AppState;
use crate::store::amend::Change;
use crate::store::messages::HistoryPage;
use crate::store::models::StoredMessage;
use crate::store::writer::{SendRequest, WriteError};
use crate::store::StoreError;
use crate::telemetry::delivery::DeliveryTrace;

#[derive(Serialize)]
struct Page<'a, M: Serialize> {
    messages: &'a [M],
    has_more: bool,
}

fn cursor(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    match query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::BadRequest(format!("{key} must be a non-negative integer seq"))),
        },
    }
}

/// Reads `before`, `after` and `limit` from the query string.
pub fn parse_page(query: &HashMap<String, String>) -> Result<(HistoryPage, i64), ApiError> {
    let limit = match query.get("limit").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => 50,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => return Err(ApiError::BadRequest("limit must be an integer from 1 to 200".into())),
        },
    };
    let page = match (cursor(query, "after")?, cursor(query, "before")?) {
        (None, None) => HistoryPage::Newest,
        (None, Some(before)) => HistoryPage::Before(before),
        (Some(after), None) => HistoryPage::After(after),
        (Some(after), Some(before)) => HistoryPage::Between { after, before },
    };
    Ok((page, limit))
}

pub async fn list_messages(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (page, limit) = parse_page(&query)?;
    let room = state.access.visible_room(&auth.user, &path).await?;
    // The newest page from the running room's window: one primary-key read
    // (last_seq, so a message acked anywhere is never missed) instead of the
    // history query.
    let local = state.registry.get(room.id).filter(|_| page == HistoryPage::Newest);
    let last_seq = if local.is_some() || state.store.replica().is_some() { state.store.room_counts(room.id).await?.0 } else { 0 };
    if let Some(addr) = local {
        if let Ok(Some((messages, has_more))) = addr.send(NewestPage { limit: limit as usize, at_least: last_seq }).await {
            METRICS.cache_request(CacheName::History, CacheResult::Hit).inc();
            let messages: Vec<&StoredMessage> = messages.iter().map(|m| m.as_ref()).collect();
            return Ok(HttpResponse::Ok().json(Page { messages: &messages, has_more }));
        }
    }
    if page == HistoryPage::Newest {
        METRICS.cache_request(CacheName::History, CacheResult::Miss).inc();
    }
    let (messages, has_more) = state.store.history(room.id, &room.name, page, limit, last_seq).await?;
    Ok(HttpResponse::Ok().json(Page { messages: &messages, has_more }))
}

#[derive(Deserialize)]
pub struct NewMessage {
    body: String,
    #[serde(default)]
    client_msg_id: Option<String>,
}

pub async fn post_message(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Json<NewMessage>,
) -> Result<HttpResponse, ApiError> {
    let received_at = Instant::now();
    let NewMessage { body, client_msg_id } = body.into_inner();
    let body = Body::parse(&body)?;
    let client_msg_id = client_msg_id.as_deref().map(ClientMsgId::parse).transpose()?;
    let room = state.access.visible_room(&auth.user, &path).await?;
    // Under the request's span: the HTTP send's delivery is part of its trace.
    let trace = DeliveryTrace::local(room.id, &room.name, received_at, crate::telemetry::request::current_parent());
    let result = state
        .writer
        .send(SendRequest {
            room_id: room.id,
            room: room.name,
            user_id: auth.user.id,
            user: auth.user.username.clone(),
            body,
            client_msg_id,
            received_at,
            trace: trace.clone(),
        })
        .await;
    if let Some(t) = &trace {
        match &result {
            Ok(_) => t.acked(Instant::now()),
            Err(e) => t.failed(e.reason()),
        }
    }
    let outcome = result.map_err(|e| match e {
        WriteError::Unavailable(why) => ApiError::Unavailable(why.into()),
        WriteError::Internal => ApiError::Internal("writer failed to store a message".into()),
    })?;
    let mut response = if outcome.duplicate { HttpResponse::Ok() } else { HttpResponse::Created() };
    Ok(response.json(outcome.message.as_ref()))
}

#[derive(Deserialize)]
pub struct EditedMessage {
    body: String,
    #[serde(default)]
    client_msg_id: Option<String>,
}

/// `PATCH /api/v1/rooms/{name}/messages/{id}` `{"body"}`: the author edits
/// a message; the answer is the message as it is now.
pub async fn edit_message(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<(String, String)>,
    body: web::Json<EditedMessage>,
) -> Result<HttpResponse, ApiError> {
    let (room, id) = path.into_inner();
    let id = MessageId::parse(&id)?;
    let EditedMessage { body, client_msg_id } = body.into_inner();
    let change = Change::Edit(Body::parse(&body)?);
    let client_msg_id = client_msg_id.as_deref().map(ClientMsgId::parse).transpose()?;
    let (room, _) = state.editor.amend(&auth.user, auth.admin, &room, id, change, client_msg_id).await?;
    let message = state.store.message(room.id, &room.name, id).await?.ok_or(StoreError::Vanished("edited message"))?;
    Ok(HttpResponse::Ok().json(&message))
}

/// `DELETE /api/v1/rooms/{name}/messages/{id}`: the author, the room's
/// owner or an admin deletes a message; a second delete is 204 again.
pub async fn delete_message(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, id) = path.into_inner();
    let id = MessageId::parse(&id)?;
    state.editor.amend(&auth.user, auth.admin, &room, id, Change::Delete, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn history_queries_never_panic(
            before in proptest::option::of(".{0,25}"),
            after in proptest::option::of(".{0,25}"),
            limit in proptest::option::of(".{0,25}"),
        ) {
            let mut q = HashMap::new();
            for (k, v) in [("before", before), ("after", after), ("limit", limit)] {
                if let Some(v) = v {
                    q.insert(k.to_string(), v);
                }
            }
            if let Ok((_, limit)) = parse_page(&q) {
                prop_assert!((1..=200).contains(&limit));
            }
        }
    }
}
