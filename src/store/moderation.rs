//! Bans (a user kept out of one room) and suspensions (an account that may
//! not sign in).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::OptionalExtension;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::{room_bans, room_members, sessions, users};
use super::sql_types::At;
use super::{Store, StoreError};
use crate::domain::{RoomId, TokenHash, UserId};
use crate::metrics::QueryName;

/// How long a ban lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanEnd {
    Lifted,
    At(DateTime<Utc>),
}

impl BanEnd {
    /// Whether a ban ending so still holds at `now`.
    pub fn holds_at(self, now: DateTime<Utc>) -> bool {
        match self {
            BanEnd::Lifted => true,
            BanEnd::At(t) => t > now,
        }
    }
}

impl Store {
    /// Bans `user` from `room` (replacing an earlier ban) and ends their
    /// membership, in one transaction.
    pub async fn ban(&self, room: RoomId, user: UserId, until: BanEnd, by: UserId) -> Result<(), StoreError> {
        let until = match until {
            BanEnd::Lifted => None,
            BanEnd::At(t) => Some(At(t)),
        };
        db_run!(self, QueryName::BanSet, async |conn| {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                diesel::insert_into(room_bans::table)
                    .values((
                        room_bans::room_id.eq(room.0),
                        room_bans::user_id.eq(user),
                        room_bans::until.eq(until),
                        room_bans::banned_by.eq(by),
                    ))
                    .on_conflict((room_bans::room_id, room_bans::user_id))
                    .do_update()
                    .set((room_bans::until.eq(until), room_bans::banned_by.eq(by)))
                    .execute(conn)
                    .await?;
                diesel::delete(
                    room_members::table.filter(room_members::room_id.eq(room.0)).filter(room_members::user_id.eq(user)),
                )
                .execute(conn)
                .await?;
                Ok(())
            })
            .await
        })
        .await
    }

    /// Lifts a ban; true when there was one.
    pub async fn lift_ban(&self, room: RoomId, user: UserId) -> Result<bool, StoreError> {
        let n = db_run!(self, QueryName::BanLift, async |conn| {
            diesel::delete(room_bans::table.filter(room_bans::room_id.eq(room.0)).filter(room_bans::user_id.eq(user)))
                .execute(conn)
                .await
        })
        .await?;
        Ok(n > 0)
    }

    /// The ban of `user` in `room` that still holds, if any.
    pub async fn ban_of(&self, room: RoomId, user: UserId) -> Result<Option<BanEnd>, StoreError> {
        let row = db_run!(self, QueryName::BanCheck, async |conn| {
            room_bans::table
                .filter(room_bans::room_id.eq(room.0))
                .filter(room_bans::user_id.eq(user))
                .select(room_bans::until)
                .get_result::<Option<DateTime<Utc>>>(conn)
                .await
                .optional()
        })
        .await?;
        let end = row.map(|until| until.map_or(BanEnd::Lifted, BanEnd::At));
        Ok(end.filter(|e| e.holds_at(Utc::now())))
    }

    /// Deletes bans that have ended (housekeeping); how many.
    pub async fn delete_ended_bans(&self) -> Result<usize, StoreError> {
        let now = At(Utc::now());
        db_run!(self, QueryName::BanLift, async |conn| {
            diesel::delete(room_bans::table.filter(room_bans::until.le(now))).execute(conn).await
        })
        .await
    }

    /// Suspends (or reinstates) an account; true when it exists.
    pub async fn set_suspended(&self, user: UserId, suspended: bool) -> Result<bool, StoreError> {
        let at = suspended.then(|| At(Utc::now()));
        let n = db_run!(self, QueryName::SuspensionSet, async |conn| {
            diesel::update(users::table.filter(users::id.eq(user))).set(users::suspended_at.eq(at)).execute(conn).await
        })
        .await?;
        Ok(n > 0)
    }

    pub async fn is_suspended(&self, user: UserId) -> Result<bool, StoreError> {
        let at = db_run!(self, QueryName::SuspensionCheck, async |conn| {
            users::table
                .filter(users::id.eq(user))
                .select(users::suspended_at)
                .get_result::<Option<DateTime<Utc>>>(conn)
                .await
                .optional()
        })
        .await?;
        Ok(at.flatten().is_some())
    }

    /// Every session of a user (to revoke them all).
    pub async fn sessions_of(&self, user: UserId) -> Result<Vec<TokenHash>, StoreError> {
        let rows = db_run!(self, QueryName::SessionsOfUser, async |conn| {
            sessions::table.filter(sessions::user_id.eq(user)).select(sessions::token_hash).load::<Vec<u8>>(conn).await
        })
        .await?;
        Ok(rows.into_iter().filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok().map(TokenHash)).collect())
    }
}
