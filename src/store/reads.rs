//! Read markers and unread counts.
//!
//! A member's marker is a seq that only moves forward. The unread count of
//! a room is the messages by others after it (not edits or deletes, not
//! deleted messages), read per request by a range
//! scan of the messages' primary key `(room_id, seq)` from the marker,
//! bounded at `UNREAD_CAP` rows: a room someone never opens costs no more
//! than that, and the page shows "99+". (At 1,000, ten such rooms among a
//! user's 200 were 40 % of the rows read for the list; see
//! docs/performance.md, "Unread counts".)

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::schema::room_members;
use super::sql_types::Id as SqlUuid;
use super::{DbPool, Store, StoreError};
use crate::domain::{RoomId, UserId};
use crate::metrics::QueryName;

/// Unread counts stop here: `UNREAD_CAP` means that many or more.
pub const UNREAD_CAP: i64 = 100;

/// A member's read state in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct ReadState {
    #[diesel(sql_type = BigInt)]
    pub room_id: i64,
    #[diesel(sql_type = BigInt)]
    pub last_read: i64,
    #[diesel(sql_type = BigInt)]
    pub unread: i64,
}

/// A marker that moved, and the unread count after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct ReadMoved {
    #[diesel(sql_type = SqlUuid)]
    pub user_id: uuid::Uuid,
    #[diesel(sql_type = BigInt)]
    pub room_id: i64,
    #[diesel(sql_type = BigInt)]
    pub last_read: i64,
    #[diesel(sql_type = BigInt)]
    pub unread: i64,
}

/// The bounded count, for one member row `rm` (both dialects). No ORDER BY:
/// a count needs no order, and without it the partitions' scans stream into
/// the limit instead of being sorted first (17.8 -> 10.0 ms for 200 rooms
/// over 10M messages).
const UNREAD: &str = "(SELECT count(*) FROM (SELECT 1 FROM messages m \
     WHERE m.room_id = rm.room_id AND m.seq > rm.last_read AND m.user_id <> rm.user_id \
       AND m.kind = 0 AND NOT m.deleted LIMIT 100) u)";

impl Store {
    /// Moves `user`'s marker in `room` forward to `seq` (never back, never
    /// past the room's newest seq); the new marker when it moved. Only
    /// members have markers.
    pub async fn mark_read(&self, room: RoomId, user: UserId, seq: i64) -> Result<Option<i64>, StoreError> {
        use super::schema::room_seqs;
        let moved = db_run!(self, QueryName::ReadMark, async |conn| {
            let exists_up_to =
                diesel::dsl::exists(room_seqs::table.filter(room_seqs::room_id.eq(room.0)).filter(room_seqs::last_seq.ge(seq)));
            diesel::update(
                room_members::table
                    .filter(room_members::room_id.eq(room.0))
                    .filter(room_members::user_id.eq(user))
                    .filter(room_members::last_read.lt(seq))
                    .filter(exists_up_to),
            )
            .set(room_members::last_read.eq(seq))
            .execute(conn)
            .await
        })
        .await?;
        Ok((moved > 0).then_some(seq))
    }

    /// Moves many markers at once (each `(user, room, seq)` once): forward
    /// only, never past the room's newest seq. The markers that moved, with
    /// their new unread counts. One statement on PostgreSQL; one
    /// transaction on SQLite.
    pub async fn mark_read_many(&self, marks: &[(UserId, RoomId, i64)]) -> Result<Vec<ReadMoved>, StoreError> {
        if marks.is_empty() {
            return Ok(Vec::new());
        }
        match self.pool() {
            DbPool::Postgres(_) => {
                let users: Vec<uuid::Uuid> = marks.iter().map(|m| m.0 .0).collect();
                let rooms: Vec<i64> = marks.iter().map(|m| m.1 .0).collect();
                let seqs: Vec<i64> = marks.iter().map(|m| m.2).collect();
                self.run_pg(QueryName::ReadMark, async |conn| {
                    MarkMany { users: &users, rooms: &rooms, seqs: &seqs }.load::<ReadMoved>(conn).await
                })
                .await
            }
            DbPool::Sqlite(_) => {
                let marks = marks.to_vec();
                db_run!(self, QueryName::ReadMark, async |conn| {
                    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                        let mut moved = Vec::new();
                        for (user, room, seq) in &marks {
                            use super::schema::room_seqs;
                            let exists_up_to = diesel::dsl::exists(
                                room_seqs::table.filter(room_seqs::room_id.eq(room.0)).filter(room_seqs::last_seq.ge(*seq)),
                            );
                            let n = diesel::update(
                                room_members::table
                                    .filter(room_members::room_id.eq(room.0))
                                    .filter(room_members::user_id.eq(*user))
                                    .filter(room_members::last_read.lt(*seq))
                                    .filter(exists_up_to),
                            )
                            .set(room_members::last_read.eq(*seq))
                            .execute(conn)
                            .await?;
                            if n > 0 {
                                let sql = format!(
                                    "SELECT rm.user_id, rm.room_id, rm.last_read, {UNREAD} AS unread FROM room_members rm \
                                     WHERE rm.user_id = ? AND rm.room_id = ?"
                                );
                                let row = diesel::sql_query(sql)
                                    .bind::<SqlUuid, _>(*user)
                                    .bind::<BigInt, _>(room.0)
                                    .get_result::<ReadMoved>(conn)
                                    .await?;
                                moved.push(row);
                            }
                        }
                        Ok(moved)
                    })
                    .await
                })
                .await
            }
        }
    }

    /// `user`'s read state in each of these rooms they are a member of.
    pub async fn read_states(&self, user: UserId, rooms: &[RoomId]) -> Result<Vec<ReadState>, StoreError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rooms.iter().map(|r| r.0).collect();
        match self.pool() {
            DbPool::Postgres(_) => {
                self.run_pg(QueryName::ReadStates, async |conn| {
                    ReadStatesPg { user: user.0, rooms: &ids }.load::<ReadState>(conn).await
                })
                .await
            }
            DbPool::Sqlite(_) => {
                let sql = format!(
                    "SELECT rm.room_id, rm.last_read, {UNREAD} AS unread FROM room_members rm \
                     WHERE rm.user_id = ? AND rm.room_id IN (SELECT value FROM json_each(?))"
                );
                let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
                db_run!(self, QueryName::ReadStates, async |conn| {
                    diesel::sql_query(&sql).bind::<SqlUuid, _>(user).bind::<Text, _>(&list).load::<ReadState>(conn).await
                })
                .await
            }
        }
    }
}

/// The read states of a user in some rooms on PostgreSQL, kept prepared
/// (planning it as a `sql_query` cost 1 to 3.5 ms a call); `plans`
/// explains this same statement.
pub(crate) struct ReadStatesPg<'a> {
    pub user: uuid::Uuid,
    pub rooms: &'a [i64],
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for ReadStatesPg<'_> {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("SELECT rm.room_id, rm.last_read, ");
        out.push_sql(UNREAD);
        out.push_sql(" AS unread FROM room_members rm WHERE rm.user_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.user)?;
        out.push_sql(" AND rm.room_id = ANY(");
        out.push_bind_param::<Array<BigInt>, _>(self.rooms)?;
        out.push_sql(")");
        Ok(())
    }
}

/// `mark_read_many` on PostgreSQL: the markers as three arrays; the
/// update and the counts after it in one statement, kept prepared.
struct MarkMany<'a> {
    users: &'a [uuid::Uuid],
    rooms: &'a [i64],
    seqs: &'a [i64],
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for MarkMany<'_> {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("WITH v AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<diesel::sql_types::Uuid>, _>(self.users)?;
        out.push_sql("::uuid[], ");
        out.push_bind_param::<Array<BigInt>, _>(self.rooms)?;
        out.push_sql("::bigint[], ");
        out.push_bind_param::<Array<BigInt>, _>(self.seqs)?;
        out.push_sql(
            "::bigint[]) AS v (u, r, s)), \
             moved AS (UPDATE room_members rm SET last_read = v.s FROM v, room_seqs rs \
               WHERE rm.user_id = v.u AND rm.room_id = v.r AND rs.room_id = v.r AND rm.last_read < v.s AND v.s <= rs.last_seq \
               RETURNING rm.user_id, rm.room_id, rm.last_read) \
             SELECT rm.user_id, rm.room_id, rm.last_read, ",
        );
        out.push_sql(UNREAD);
        out.push_sql(" AS unread FROM moved rm");
        Ok(())
    }
}

cached_statement!(ReadStatesPg<'_>, MarkMany<'_>);

#[cfg(test)]
mod tests {
    #[test]
    fn the_count_stops_at_the_cap() {
        assert!(super::UNREAD.contains(&format!("LIMIT {})", super::UNREAD_CAP)));
    }
}
