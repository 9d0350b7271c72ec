//! The writer's one transaction per batch, per backend: find the sends
//! already stored (idempotency), allocate consecutive seqs per room, insert
//! the rest. Both return one `AppendRow` per input, by 1-based ordinal.
//!
//! - PostgreSQL: one call of the `append_messages` function (one round
//!   trip; see `migrations/postgres`).
//! - SQLite: the same steps in Rust inside one `IMMEDIATE` transaction (the
//!   write lock is taken up front, so a batch never fails half-way on a lock
//!   upgrade); in-process statements cost microseconds, so a statement per
//!   message is cheap.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as PgUuid};
use diesel::QueryableByName;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::connection::SqliteConn;

/// One send as the database needs it, borrowed from the writer's batch.
#[derive(Debug, Clone, Copy)]
pub struct AppendInput<'a> {
    pub room_id: i64,
    pub user_id: Uuid,
    pub id: Uuid,
    pub body: &'a str,
    pub client_msg_id: Option<&'a str>,
    pub sent_at: DateTime<Utc>,
}

/// The same, owned: what moves to SQLite's blocking thread.
#[derive(Debug, Clone)]
struct OwnedInput {
    room_id: i64,
    user_id: Uuid,
    id: Uuid,
    body: String,
    client_msg_id: Option<String>,
    sent_at: DateTime<Utc>,
}

impl From<&AppendInput<'_>> for OwnedInput {
    fn from(j: &AppendInput<'_>) -> Self {
        OwnedInput {
            room_id: j.room_id,
            user_id: j.user_id,
            id: j.id,
            body: j.body.to_string(),
            client_msg_id: j.client_msg_id.map(str::to_string),
            sent_at: j.sent_at,
        }
    }
}

#[derive(QueryableByName, Debug)]
pub struct AppendRow {
    #[diesel(sql_type = Integer)]
    pub out_ord: i32,
    #[diesel(sql_type = BigInt)]
    pub out_seq: i64,
    #[diesel(sql_type = PgUuid)]
    pub out_id: Uuid,
    #[diesel(sql_type = Text)]
    pub out_body: String,
    #[diesel(sql_type = Timestamptz)]
    pub out_sent_at: DateTime<Utc>,
    /// Stored before: by (room, user, client_msg_id), or by id (a retry of a
    /// commit whose outcome was unknown).
    #[diesel(sql_type = Bool)]
    pub out_existed: bool,
}

pub async fn append_postgres(conn: &mut AsyncPgConnection, jobs: &[AppendInput<'_>]) -> diesel::QueryResult<Vec<AppendRow>> {
    use diesel_async::RunQueryDsl;
    let room_ids: Vec<i64> = jobs.iter().map(|j| j.room_id).collect();
    let user_ids: Vec<Uuid> = jobs.iter().map(|j| j.user_id).collect();
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let bodies: Vec<&str> = jobs.iter().map(|j| j.body).collect();
    let client_ids: Vec<Option<&str>> = jobs.iter().map(|j| j.client_msg_id).collect();
    let sent_ats: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.sent_at).collect();
    diesel::sql_query("SELECT * FROM append_messages($1, $2, $3, $4, $5, $6)")
        .bind::<Array<BigInt>, _>(room_ids)
        .bind::<Array<PgUuid>, _>(user_ids)
        .bind::<Array<PgUuid>, _>(ids)
        .bind::<Array<Text>, _>(bodies)
        .bind::<Array<Nullable<Text>>, _>(client_ids)
        .bind::<Array<Timestamptz>, _>(sent_ats)
        .load::<AppendRow>(conn)
        .await
}

pub async fn append_sqlite(conn: &mut SqliteConn, jobs: &[AppendInput<'_>]) -> diesel::QueryResult<Vec<AppendRow>> {
    let jobs: Vec<OwnedInput> = jobs.iter().map(OwnedInput::from).collect();
    conn.spawn_blocking(move |c| c.immediate_transaction(|c| sqlite::append(c, &jobs))).await
}

mod sqlite {
    use chrono::{DateTime, Utc};
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;
    use uuid::Uuid;

    use super::{AppendRow, OwnedInput};
    use crate::domain::{MessageId, UserId};
    use crate::store::schema::{messages, rooms};
    use crate::store::sql_types::At;

    type Found = (i64, Uuid, String, DateTime<Utc>);

    /// Inside the caller's transaction, which holds the write lock: no other
    /// writer can slip between the look-up and the insert.
    pub fn append(c: &mut SqliteConnection, jobs: &[OwnedInput]) -> QueryResult<Vec<AppendRow>> {
        let mut rows = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            let out_ord = i32::try_from(i + 1).unwrap_or(i32::MAX);
            if let Some((seq, id, body, sent_at)) = existing(c, job)? {
                rows.push(AppendRow {
                    out_ord,
                    out_seq: seq,
                    out_id: id,
                    out_body: body,
                    out_sent_at: sent_at,
                    out_existed: true,
                });
                continue;
            }
            let seq: i64 = diesel::update(rooms::table.filter(rooms::id.eq(job.room_id)))
                .set(rooms::last_seq.eq(rooms::last_seq + 1))
                .returning(rooms::last_seq)
                .get_result(c)?;
            diesel::insert_into(messages::table)
                .values((
                    messages::room_id.eq(job.room_id),
                    messages::seq.eq(seq),
                    messages::id.eq(MessageId(job.id)),
                    messages::user_id.eq(UserId(job.user_id)),
                    messages::body.eq(&job.body),
                    messages::client_msg_id.eq(job.client_msg_id.as_deref()),
                    messages::sent_at.eq(At(job.sent_at)),
                ))
                .execute(c)?;
            rows.push(AppendRow {
                out_ord,
                out_seq: seq,
                out_id: job.id,
                out_body: job.body.clone(),
                out_sent_at: job.sent_at,
                out_existed: false,
            });
        }
        Ok(rows)
    }

    fn existing(c: &mut SqliteConnection, job: &OwnedInput) -> QueryResult<Option<Found>> {
        let columns = (messages::seq, messages::id, messages::body, messages::sent_at);
        if let Some(client_msg_id) = &job.client_msg_id {
            let found = messages::table
                .filter(messages::room_id.eq(job.room_id))
                .filter(messages::user_id.eq(UserId(job.user_id)))
                .filter(messages::client_msg_id.eq(client_msg_id))
                .select(columns)
                .first::<Found>(c)
                .optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        messages::table
            .filter(messages::room_id.eq(job.room_id))
            .filter(messages::id.eq(MessageId(job.id)))
            .select(columns)
            .first::<Found>(c)
            .optional()
    }
}
