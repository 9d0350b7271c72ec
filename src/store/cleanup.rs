//! The housekeeping queries: expired sessions go, idle guests are retired.
//!
//! Each call handles one small batch in one short transaction. On
//! PostgreSQL rows are claimed with `FOR UPDATE SKIP LOCKED`, so several
//! instances can run the job at once without waiting on each other or
//! touching the same rows, and nothing here locks what the message writer
//! needs for longer than one batch (retiring a guest deletes its
//! memberships, whose trigger updates the room's member count). SQLite has
//! one instance and one writer at a time: the same steps run in one
//! `IMMEDIATE` transaction, written with diesel's query builder.

use std::time::Duration;

use diesel::sql_types::{BigInt, Bytea, Double, Nullable, Text};

use super::sql_types::Id as SqlUuid;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::connection::{run_on, DbPool};
use super::{Store, StoreError};
use crate::domain::{RoomId, TokenHash, UserId};
use crate::metrics::{PoolRole, QueryName};

/// What one retirement batch took away.
#[derive(Debug, Default)]
pub struct Retired {
    pub users: Vec<UserId>,
    pub tokens: Vec<TokenHash>,
    pub memberships: Vec<(RoomId, UserId)>,
}

#[derive(QueryableByName)]
struct TokenRow {
    #[diesel(sql_type = Bytea)]
    token_hash: Vec<u8>,
}

#[derive(QueryableByName)]
struct RetiredRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<Bytea>)]
    token_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    room_id: Option<i64>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    user_id: Option<Uuid>,
}

const EXPIRED_SESSIONS: &str = "\
DELETE FROM sessions WHERE token_hash IN (
    SELECT token_hash FROM sessions
     WHERE last_used_at < now() - make_interval(secs => $1)
        OR created_at < now() - make_interval(secs => $2)
     LIMIT $3
       FOR UPDATE SKIP LOCKED)
RETURNING token_hash";

const IDLE_GUESTS: &str = "\
WITH idle AS (
    SELECT u.id FROM users u
     WHERE u.guest AND u.retired_at IS NULL
       AND u.created_at < now() - make_interval(secs => $1)
       AND NOT EXISTS (SELECT 1 FROM sessions s
                        WHERE s.user_id = u.id AND s.last_used_at >= now() - make_interval(secs => $1))
     ORDER BY u.created_at
     LIMIT $2
       FOR UPDATE OF u SKIP LOCKED
), gone_sessions AS (
    DELETE FROM sessions s USING idle WHERE s.user_id = idle.id RETURNING s.token_hash
), gone_members AS (
    DELETE FROM room_members m USING idle WHERE m.user_id = idle.id RETURNING m.room_id, m.user_id
), retired AS (
    UPDATE users u SET retired_at = now() FROM idle WHERE u.id = idle.id RETURNING u.id
)
SELECT 'session' AS kind, token_hash, NULL::bigint AS room_id, NULL::uuid AS user_id FROM gone_sessions
UNION ALL SELECT 'member', NULL, room_id, user_id FROM gone_members
UNION ALL SELECT 'user', NULL, NULL, id FROM retired";

fn token(bytes: &[u8]) -> Option<TokenHash> {
    <[u8; 32]>::try_from(bytes).ok().map(TokenHash)
}

impl Store {
    /// Deletes up to `batch` sessions idle for `idle` or older than
    /// `max_age`; returns their token digests (for the caches and sockets).
    pub async fn delete_expired_sessions(
        &self,
        idle: Duration,
        max_age: Duration,
        batch: i64,
    ) -> Result<Vec<TokenHash>, StoreError> {
        let rows: Vec<Vec<u8>> = match self.pool() {
            DbPool::Postgres(pool) => {
                run_on(pool, PoolRole::Primary, self.settings(), QueryName::CleanupSessions, async |conn| {
                    diesel::sql_query(EXPIRED_SESSIONS)
                        .bind::<Double, _>(idle.as_secs_f64())
                        .bind::<Double, _>(max_age.as_secs_f64())
                        .bind::<BigInt, _>(batch)
                        .load::<TokenRow>(conn)
                        .await
                        .map(|rows| rows.into_iter().map(|r| r.token_hash).collect())
                })
                .await?
            }
            DbPool::Sqlite(pool) => {
                let now = chrono::Utc::now();
                let (idle_cut, age_cut) = (now - idle, now - max_age);
                run_on(pool, PoolRole::Primary, self.settings(), QueryName::CleanupSessions, async |conn| {
                    conn.spawn_blocking(move |c| sqlite::expired_sessions(c, idle_cut, age_cut, batch)).await
                })
                .await?
            }
        };
        Ok(rows.iter().filter_map(|r| token(r)).collect())
    }

    /// Retires up to `batch` guests idle for `retention`: their sessions and
    /// memberships are deleted and their name is free again; the row stays so
    /// their messages keep showing the name they had.
    pub async fn retire_idle_guests(&self, retention: Duration, batch: i64) -> Result<Retired, StoreError> {
        let rows = match self.pool() {
            DbPool::Postgres(pool) => {
                run_on(pool, PoolRole::Primary, self.settings(), QueryName::CleanupGuests, async |conn| {
                    diesel::sql_query(IDLE_GUESTS)
                        .bind::<Double, _>(retention.as_secs_f64())
                        .bind::<BigInt, _>(batch)
                        .load::<RetiredRow>(conn)
                        .await
                })
                .await?
            }
            DbPool::Sqlite(pool) => {
                let cut = chrono::Utc::now() - retention;
                run_on(pool, PoolRole::Primary, self.settings(), QueryName::CleanupGuests, async |conn| {
                    conn.spawn_blocking(move |c| sqlite::retire_guests(c, cut, batch)).await
                })
                .await?
            }
        };
        let mut retired = Retired::default();
        for row in rows {
            match (row.kind.as_str(), row.token_hash, row.room_id, row.user_id) {
                ("session", Some(hash), _, _) => retired.tokens.extend(token(&hash)),
                ("member", _, Some(room), Some(user)) => retired.memberships.push((RoomId(room), UserId(user))),
                ("user", _, _, Some(user)) => retired.users.push(UserId(user)),
                _ => {}
            }
        }
        Ok(retired)
    }
}

/// The same batches on SQLite, on diesel's synchronous connection.
mod sqlite {
    use chrono::{DateTime, Utc};
    use diesel::dsl::{exists, not};
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;
    use uuid::Uuid;

    use super::RetiredRow;
    use crate::domain::UserId;
    use crate::store::schema::{room_members, sessions, users};
    use crate::store::sql_types::At;

    pub fn expired_sessions(
        c: &mut SqliteConnection,
        idle_cut: DateTime<Utc>,
        age_cut: DateTime<Utc>,
        batch: i64,
    ) -> QueryResult<Vec<Vec<u8>>> {
        c.immediate_transaction(|c| {
            let tokens: Vec<Vec<u8>> = sessions::table
                .filter(sessions::last_used_at.lt(At(idle_cut)).or(sessions::created_at.lt(At(age_cut))))
                .select(sessions::token_hash)
                .limit(batch)
                .load(c)?;
            diesel::delete(sessions::table.filter(sessions::token_hash.eq_any(&tokens))).execute(c)?;
            Ok(tokens)
        })
    }

    pub fn retire_guests(c: &mut SqliteConnection, cut: DateTime<Utc>, batch: i64) -> QueryResult<Vec<RetiredRow>> {
        c.immediate_transaction(|c| {
            let used_since_cut =
                sessions::table.filter(sessions::user_id.eq(users::id)).filter(sessions::last_used_at.ge(At(cut)));
            let ids: Vec<UserId> = users::table
                .filter(users::guest.eq(true))
                .filter(users::retired_at.is_null())
                .filter(users::created_at.lt(At(cut)))
                .filter(not(exists(used_since_cut)))
                .order(users::created_at)
                .select(users::id)
                .limit(batch)
                .load::<Uuid>(c)?
                .into_iter()
                .map(UserId)
                .collect();
            let tokens: Vec<Vec<u8>> = diesel::delete(sessions::table.filter(sessions::user_id.eq_any(&ids)))
                .returning(sessions::token_hash)
                .get_results(c)?;
            let members: Vec<(i64, Uuid)> = diesel::delete(room_members::table.filter(room_members::user_id.eq_any(&ids)))
                .returning((room_members::room_id, room_members::user_id))
                .get_results(c)?;
            diesel::update(users::table.filter(users::id.eq_any(&ids))).set(users::retired_at.eq(At(Utc::now()))).execute(c)?;
            let rows = tokens
                .into_iter()
                .map(|t| RetiredRow { kind: "session".into(), token_hash: Some(t), room_id: None, user_id: None })
                .chain(members.into_iter().map(|(room, user)| RetiredRow {
                    kind: "member".into(),
                    token_hash: None,
                    room_id: Some(room),
                    user_id: Some(user),
                }))
                .chain(ids.into_iter().map(|id| RetiredRow {
                    kind: "user".into(),
                    token_hash: None,
                    room_id: None,
                    user_id: Some(id.0),
                }))
                .collect();
            Ok(rows)
        })
    }
}
