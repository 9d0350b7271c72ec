//! Cached answers to "who is this" and "may they": token -> user, room by
//! name, membership. Every HTTP request and WebSocket upgrade, join and send
//! asks these; the caches keep PostgreSQL off that path. Every write that
//! changes an answer goes through here too, so it invalidates the cache on
//! every instance.

use crate::cache::{Membership, RoomMeta};
use crate::domain::{RoomId, RoomName, TokenHash, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::models::User;

pub async fn user_for_token(state: &AppState, token: &TokenHash) -> Result<Option<User>, ApiError> {
    Ok(state.caches.tokens.get_or_load(token, state.store.user_by_token(token)).await?)
}

/// A token just issued: the connect that usually follows (on this instance)
/// finds its user without asking PostgreSQL. Nothing can be cached for a
/// fresh random token yet, so there is nothing to invalidate.
pub async fn remember_new_token(state: &AppState, token: &TokenHash, user: &User) {
    state.caches.tokens.put(token, Some(user.clone())).await;
}

/// Revokes a token: the session row goes, then the caches everywhere, then
/// the sockets it opened everywhere.
pub async fn revoke_token(state: &AppState, token: &TokenHash) -> Result<(), ApiError> {
    state.store.delete_session(token).await?;
    state.caches.tokens.invalidate(token).await;
    state.revoke_everywhere(token);
    Ok(())
}

pub async fn room(state: &AppState, name: &RoomName) -> Result<Option<RoomMeta>, ApiError> {
    let store = &state.store;
    Ok(state
        .caches
        .rooms
        .get_or_load(name, async { Ok(store.room_by_name(name).await?.as_ref().map(RoomMeta::from)) })
        .await?)
}

/// The named room, created as a public room by `creator` if missing.
pub async fn room_or_create_public(state: &AppState, name: &RoomName, creator: Option<UserId>) -> Result<RoomMeta, ApiError> {
    if let Some(room) = room(state, name).await? {
        return Ok(room);
    }
    let created = state.store.ensure_public_room(name, creator).await?;
    // Drops the negative entry here and on every other instance.
    state.caches.rooms.invalidate_grant(name).await;
    Ok(RoomMeta::from(&created))
}

pub async fn is_member(state: &AppState, room: RoomId, user: UserId) -> Result<bool, ApiError> {
    let key = Membership(room, user);
    Ok(state.caches.members.get_or_load(&key, state.store.is_member(room, user)).await?)
}

/// Records membership (a no-op when the cache already knows it).
pub async fn add_member(state: &AppState, room: RoomId, user: UserId) -> Result<(), ApiError> {
    let key = Membership(room, user);
    state.store.add_member(room, user).await?;
    state.caches.members.grant(&key, true).await;
    Ok(())
}

/// Public-room joins record membership once, not on every join.
pub async fn ensure_member(state: &AppState, room: RoomId, user: UserId) -> Result<(), ApiError> {
    if is_member(state, room, user).await? {
        return Ok(());
    }
    add_member(state, room, user).await
}

pub async fn remove_member(state: &AppState, room: RoomId, user: UserId) -> Result<bool, ApiError> {
    let removed = state.store.remove_member(room, user).await?;
    state.caches.members.invalidate(&Membership(room, user)).await;
    Ok(removed)
}

/// A room the caller may see: a private room they are not in (or any private
/// room for a guest) is reported exactly like a missing one.
pub async fn visible_room(state: &AppState, user: &User, name: &str) -> Result<RoomMeta, ApiError> {
    let name = RoomName::parse(name)?;
    let room = room(state, &name).await?.ok_or_else(ApiError::not_found_room)?;
    if room.private && (user.guest || !is_member(state, room.id, user.id).await?) {
        return Err(ApiError::not_found_room());
    }
    Ok(room)
}

pub async fn set_topic(state: &AppState, room: &RoomMeta, topic: &crate::domain::Topic) -> Result<(), ApiError> {
    state.store.set_topic(room.id, topic).await?;
    state.caches.rooms.invalidate(&room.name).await;
    Ok(())
}
