//! Cached answers to "who is this" and "may they": token -> user, room by
//! name, membership. Every HTTP request and WebSocket upgrade, join and send
//! asks these; the caches keep PostgreSQL off that path. Every write that
//! changes an answer goes through here too, so it invalidates the cache on
//! every instance.

use std::sync::Arc;

use crate::cache::{BanUntil, Caches, Membership, RoomMeta};
use crate::cluster::revocation::{AccessChange, Revoker};
use crate::domain::{RoomId, RoomName, TokenHash, UserId};
use crate::error::ApiError;
use crate::store::models::{SessionInfo, User};
use crate::store::moderation::BanEnd;
use crate::store::Store;

/// The caches and the writes that change their answers (see the module):
/// what every caller that asks "who is this" or "may they" is handed.
#[derive(Clone)]
pub struct Access {
    store: Store,
    caches: Arc<Caches>,
    revoker: Arc<Revoker>,
}

impl Access {
    pub fn new(store: Store, caches: Arc<Caches>, revoker: Arc<Revoker>) -> Self {
        Access { store, caches, revoker }
    }

    pub async fn session_for_token(&self, token: &TokenHash) -> Result<Option<SessionInfo>, ApiError> {
        Ok(self.caches.tokens.get_or_load(token, self.store.session_by_token(token)).await?)
    }

    /// A token just issued: the connect that usually follows (on this instance)
    /// finds its user without asking PostgreSQL. Nothing can be cached for a
    /// fresh random token yet, so there is nothing to invalidate.
    pub async fn remember_new_token(&self, token: &TokenHash, session: &SessionInfo) {
        self.caches.tokens.put(token, Some(session.clone())).await;
    }

    /// Revokes a token everywhere, at once: once this returns, no instance
    /// accepts it for anything (see cluster::revocation).
    pub async fn revoke_token(&self, token: &TokenHash) -> Result<(), ApiError> {
        // The Redis copy goes first: no instance may reload the old answer from
        // there once the row is gone.
        self.caches.tokens.tombstone(token).await.map_err(revocation_unavailable)?;
        self.store.delete_session(token).await?;
        self.revoker.apply_everywhere(AccessChange::TokenRevoked(*token)).await.map_err(revocation_unavailable)?;
        Ok(())
    }

    pub async fn room(&self, name: &RoomName) -> Result<Option<RoomMeta>, ApiError> {
        let store = &self.store;
        Ok(self
            .caches
            .rooms
            .get_or_load(name, async { Ok(store.room_by_name(name).await?.as_ref().map(RoomMeta::from)) })
            .await?)
    }

    /// The named room, created as a public room by `creator` if missing.
    pub async fn room_or_create_public(&self, name: &RoomName, creator: Option<UserId>) -> Result<RoomMeta, ApiError> {
        if let Some(room) = self.room(name).await? {
            return Ok(room);
        }
        // Direct-message rooms are opened with POST /api/v1/dms, never by a join.
        if name.as_str().starts_with(crate::store::rooms::DM_PREFIX) {
            return Err(ApiError::not_found_room());
        }
        let created = self.store.ensure_public_room(name, creator).await?;
        // Drops the negative entry here and on every other instance.
        self.caches.rooms.invalidate_grant(name).await;
        Ok(RoomMeta::from(&created))
    }

    pub async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, ApiError> {
        let key = Membership(room, user);
        Ok(self.caches.members.get_or_load(&key, self.store.is_member(room, user)).await?)
    }

    /// Records membership (a no-op when the cache already knows it).
    pub async fn add_member(&self, room: RoomId, user: UserId) -> Result<(), ApiError> {
        let key = Membership(room, user);
        self.store.add_member(room, user).await?;
        self.caches.members.grant(&key, true).await;
        Ok(())
    }

    /// Adds a member to a private room, let in by every instance at once.
    pub async fn add_private_member(&self, room: RoomId, user: UserId) -> Result<(), ApiError> {
        self.add_member(room, user).await?;
        self.revoker.apply_everywhere(AccessChange::MemberAdded { room, user }).await.map_err(revocation_unavailable)?;
        Ok(())
    }

    /// Public-room joins record membership once, not on every join.
    pub async fn ensure_member(&self, room: RoomId, user: UserId) -> Result<(), ApiError> {
        if self.is_member(room, user).await? {
            return Ok(());
        }
        self.add_member(room, user).await
    }

    /// Removes a membership; true when there was one. For a private room the
    /// removal holds on every instance at once: once this returns, no instance
    /// lets the user read, join or send there.
    pub async fn remove_member(&self, room: &RoomMeta, user: UserId) -> Result<bool, ApiError> {
        let key = Membership(room.id, user);
        if !room.private {
            let removed = self.store.remove_member(room.id, user).await?;
            self.caches.members.invalidate(&key).await;
            return Ok(removed);
        }
        self.caches.members.tombstone(&key).await.map_err(revocation_unavailable)?;
        let removed = self.store.remove_member(room.id, user).await?;
        let revocation = AccessChange::MemberRemoved { room: room.id, user };
        self.revoker.apply_everywhere(revocation).await.map_err(|e| revocation_unavailable(e.to_string()))?;
        Ok(removed)
    }

    /// A room the caller may see: a private room they are not in (or any private
    /// room for a guest) is reported exactly like a missing one.
    pub async fn visible_room(&self, user: &User, name: &str) -> Result<RoomMeta, ApiError> {
        let name = RoomName::parse(name)?;
        let room = self.room(&name).await?.ok_or_else(ApiError::not_found_room)?;
        self.check_visible(&room, user).await?;
        Ok(room)
    }

    /// A private room is seen by its members only: guests never, non-members
    /// never; both are told it does not exist. A user banned from a public room
    /// is told so (from a private one the ban also took their membership).
    pub async fn check_visible(&self, room: &RoomMeta, user: &User) -> Result<(), ApiError> {
        if room.private && (user.guest || !self.is_member(room.id, user.id).await?) {
            return Err(ApiError::not_found_room());
        }
        if self.is_banned(room.id, user.id).await? {
            return Err(if room.private {
                ApiError::not_found_room()
            } else {
                ApiError::Forbidden("you are banned from this room".into())
            });
        }
        Ok(())
    }

    /// Whether a ban keeps `user` out of `room` now (it ends by itself: the
    /// cached answer carries its end).
    pub async fn is_banned(&self, room: RoomId, user: UserId) -> Result<bool, ApiError> {
        let key = Membership(room, user);
        let load = async {
            let end = self.store.ban_of(room, user).await?;
            Ok(end.map(|e| {
                BanUntil(match e {
                    BanEnd::Lifted => i64::MAX,
                    BanEnd::At(t) => t.timestamp_millis(),
                })
            }))
        };
        Ok(self.caches.bans.get_or_load(&key, load).await?.is_some_and(BanUntil::holds))
    }

    /// Bans `user` from `room`, on every instance at once: once this returns,
    /// no instance lets them read, join or send there, and their sockets have
    /// left the room.
    pub async fn ban(&self, room: &RoomMeta, user: UserId, end: BanEnd, by: UserId) -> Result<(), ApiError> {
        let key = Membership(room.id, user);
        // The Redis copies go first: no instance may reload "not banned" or
        // "a member" from there once the rows have changed.
        self.caches.bans.tombstone(&key).await.map_err(revocation_unavailable)?;
        self.caches.members.tombstone(&key).await.map_err(revocation_unavailable)?;
        self.store.ban(room.id, user, end, by).await?;
        self.revoker
            .apply_everywhere(AccessChange::MemberRemoved { room: room.id, user })
            .await
            .map_err(revocation_unavailable)?;
        Ok(())
    }

    /// Lifts a ban; true when there was one. (Letting someone in is not urgent
    /// the way keeping them out is: every instance drops its answer, none is
    /// waited for.)
    pub async fn lift_ban(&self, room: &RoomMeta, user: UserId) -> Result<bool, ApiError> {
        let lifted = self.store.lift_ban(room.id, user).await?;
        self.caches.bans.invalidate(&Membership(room.id, user)).await;
        self.revoker.apply_everywhere(AccessChange::MemberAdded { room: room.id, user }).await.map_err(revocation_unavailable)?;
        Ok(lifted)
    }

    /// Suspends an account: every session of it is revoked everywhere at once,
    /// and signing in answers 403 until `reinstate`.
    pub async fn suspend(&self, user: UserId) -> Result<bool, ApiError> {
        if !self.store.set_suspended(user, true).await? {
            return Ok(false);
        }
        for token in self.store.sessions_of(user).await? {
            self.revoke_token(&token).await?;
        }
        Ok(true)
    }

    pub async fn set_topic(&self, room: &RoomMeta, topic: &crate::domain::Topic) -> Result<(), ApiError> {
        self.store.set_topic(room.id, topic).await?;
        self.caches.rooms.invalidate(&room.name).await;
        Ok(())
    }
}

fn revocation_unavailable(why: impl std::fmt::Display) -> ApiError {
    log::warn!("revocation could not reach every instance: {why}");
    ApiError::Unavailable("the change could not be made on every instance; try again".into())
}
