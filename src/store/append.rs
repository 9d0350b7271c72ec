//! The writer's one transaction per batch, per backend: find the sends
//! already stored (idempotency), allocate consecutive seqs per room, insert
//! the rest. Both return one `AppendRow` per input, by 1-based ordinal.
//!
//! - PostgreSQL: a batch for one room (the usual case below saturation)
//!   goes straight into the room's leaf partition with one statement
//!   prepared per connection (scalar parameters for a lone message); a batch over several rooms is one call of the
//!   `append_messages` function (`migrations/postgres`). Either is one round
//!   trip. A lone message skips the look-up for an earlier copy: a unique
//!   key fails a repeat, and only then does the look-up run.
//! - SQLite: the same steps in Rust inside one `IMMEDIATE` transaction (the
//!   write lock is taken up front, so a batch never fails half-way on a lock
//!   upgrade); in-process statements cost microseconds, so a statement per
//!   message is cheap. Every send is inserted first, and looked up only when
//!   a unique key fails it.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as PgUuid};
use diesel::QueryableByName;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::connection::SqliteWriterConn;

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

/// The batch in one round trip: a batch for one room goes straight into the
/// room's leaf partition with one prepared statement (`leaf`; a lone message,
/// W1's usual batch, with scalar parameters); a batch over
/// several rooms calls `append_messages`, whose generic plan locks and opens
/// every partition (worth it only when the batch touches many of them).
pub async fn append_postgres(
    conn: &mut AsyncPgConnection,
    leaves: &mut Leaves,
    jobs: &[AppendInput<'_>],
) -> diesel::QueryResult<Vec<AppendRow>> {
    use diesel_async::RunQueryDsl;
    let Some(first) = jobs.first() else { return Ok(Vec::new()) };
    if jobs.iter().all(|j| j.room_id == first.room_id) {
        if let Some(leaf) = leaves.of(conn, first.room_id).await? {
            if let [one] = jobs {
                // A send is almost always new: insert it without looking for
                // an earlier copy first, and look only when a unique key says
                // there is one (the failed statement changed nothing).
                let fresh = LeafOne { sql: leaf.clone(), input: *one, probe: false }.load::<AppendRow>(conn).await;
                return match fresh {
                    Err(e) if super::is_unique_violation(&e) => {
                        LeafOne { sql: leaf, input: *one, probe: true }.load::<AppendRow>(conn).await
                    }
                    other => other,
                };
            }
            return LeafAppend { sql: leaf, room_id: first.room_id, columns: Columns::of(jobs) }.load::<AppendRow>(conn).await;
        }
    }
    FunctionAppend { columns: Columns::of(jobs) }.load::<AppendRow>(conn).await
}

/// Which leaf partition of `messages` holds each room, found once per room
/// (PostgreSQL routes a row by `satisfies_hash_partition`; asking it keeps
/// the hash function its own), with the leaf's append statement.
#[derive(Default)]
pub struct Leaves {
    by_room: std::collections::HashMap<i64, Option<std::sync::Arc<LeafSql>>>,
    by_leaf: std::collections::HashMap<String, std::sync::Arc<LeafSql>>,
}

impl Leaves {
    /// Forgets every room's leaf (after a failed statement: the table may
    /// have been repartitioned).
    pub fn forget(&mut self) {
        self.by_room.clear();
        self.by_leaf.clear();
    }

    async fn of(&mut self, conn: &mut AsyncPgConnection, room_id: i64) -> diesel::QueryResult<Option<std::sync::Arc<LeafSql>>> {
        use diesel_async::RunQueryDsl;
        if let Some(found) = self.by_room.get(&room_id) {
            return Ok(found.clone());
        }
        #[derive(QueryableByName)]
        struct Leaf {
            #[diesel(sql_type = Text)]
            leaf: String,
        }
        // Every leaf's bound is `FOR VALUES WITH (modulus m, remainder r)`;
        // a table that is not hash-partitioned yields no row.
        let found = diesel::sql_query(
            "SELECT c.oid::regclass::text AS leaf FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'messages'::regclass AND c.relkind = 'r' \
               AND pg_get_expr(c.relpartbound, c.oid) LIKE 'FOR VALUES WITH (modulus %' \
               AND satisfies_hash_partition('messages'::regclass, \
                     (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'modulus (\\d+)'))[1]::int, \
                     (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'remainder (\\d+)'))[1]::int, $1)",
        )
        .bind::<BigInt, _>(room_id)
        .get_results::<Leaf>(conn)
        .await?;
        let sql = match found.as_slice() {
            [one] => {
                Some(self.by_leaf.entry(one.leaf.clone()).or_insert_with(|| std::sync::Arc::new(LeafSql::new(&one.leaf))).clone())
            }
            _ => None,
        };
        self.by_room.insert(room_id, sql.clone());
        Ok(sql)
    }
}

/// One leaf's append statement, split where its parameters go (diesel
/// numbers them). Its text is fixed per leaf, so each connection prepares it
/// once and reuses it.
pub struct LeafSql {
    segments: [String; 7],
    /// The same for one message, with scalar parameters: no arrays to
    /// unnest, no window function, no join of input to output (pgbench,
    /// one message per transaction: backend CPU 328-341 -> 274-284 µs).
    one: [String; 7],
    /// The tail of `one` without the look-ups for an earlier copy: the seq
    /// and the insert only (pgbench: backend CPU 284-350 -> 258-272 µs).
    fresh_tail: String,
}

impl LeafSql {
    fn new(leaf: &str) -> LeafSql {
        // The same steps as `append_messages`, for one room and straight into
        // its leaf: repeats by (room, user, client_msg_id) or by id (a retry
        // after an unknown outcome), then consecutive seqs from one UPDATE of
        // room_seqs.last_seq (which also serialises writers of the room), then the
        // insert. The unique keys stand behind the look-up: anything that
        // slipped past it fails the statement and the writer retries.
        let parts = [
            "WITH room AS (SELECT ",
            "::bigint AS id), input AS (\
               SELECT t.ord::int AS ord, t.user_id, t.id, t.body, t.client_msg_id, t.sent_at \
               FROM unnest(",
            "::uuid[], ",
            "::uuid[], ",
            "::text[], ",
            "::text[], ",
        ];
        let tail = format!(
            "::timestamptz[]) WITH ORDINALITY AS t (user_id, id, body, client_msg_id, sent_at, ord)), \
             existing AS (\
               SELECT i.ord, e.seq, e.id, e.body, e.sent_at FROM input i CROSS JOIN LATERAL (\
                 SELECT m.seq, m.id, m.body, m.sent_at FROM (\
                   (SELECT m1.seq, m1.id, m1.body, m1.sent_at FROM {leaf} m1 \
                     WHERE i.client_msg_id IS NOT NULL AND m1.room_id = (SELECT id FROM room) \
                       AND m1.user_id = i.user_id AND m1.client_msg_id = i.client_msg_id LIMIT 1) \
                   UNION ALL \
                   (SELECT m2.seq, m2.id, m2.body, m2.sent_at FROM {leaf} m2 \
                     WHERE m2.room_id = (SELECT id FROM room) AND m2.id = i.id LIMIT 1)) m \
                 LIMIT 1) e), \
             fresh AS (\
               SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n FROM input i \
               WHERE NOT EXISTS (SELECT 1 FROM existing x WHERE x.ord = i.ord)), \
             bumped AS (\
               UPDATE room_seqs r SET last_seq = r.last_seq + c.k \
                 FROM (SELECT count(*) AS k FROM fresh) c \
                WHERE r.room_id = (SELECT id FROM room) AND c.k > 0 \
               RETURNING r.last_seq - c.k AS base), \
             inserted AS (\
               INSERT INTO {leaf} (room_id, seq, id, user_id, body, client_msg_id, sent_at) \
               SELECT (SELECT id FROM room), b.base + f.n, f.id, f.user_id, f.body, f.client_msg_id, f.sent_at \
                 FROM fresh f, bumped b RETURNING 1) \
             SELECT f.ord AS out_ord, b.base + f.n AS out_seq, f.id AS out_id, f.body AS out_body, \
                    f.sent_at AS out_sent_at, false AS out_existed FROM fresh f, bumped b \
             UNION ALL \
             SELECT x.ord, x.seq, x.id, x.body, x.sent_at, true FROM existing x"
        );
        // Both lone-message forms bump the room's seq and insert the row the
        // same way; the looking form only skips both when it found a copy.
        let bump = "UPDATE room_seqs r SET last_seq = r.last_seq + 1 FROM input i WHERE r.room_id = i.room_id";
        let insert = format!(
            "INSERT INTO {leaf} (room_id, seq, id, user_id, body, client_msg_id, sent_at) \
             SELECT i.room_id, b.last_seq, i.id, i.user_id, i.body, i.client_msg_id, i.sent_at \
               FROM input i, bumped b"
        );
        let one_tail = format!(
            "::timestamptz AS sent_at), \
             existing AS (\
               (SELECT m1.seq, m1.id, m1.body, m1.sent_at FROM {leaf} m1, input i \
                 WHERE i.client_msg_id IS NOT NULL AND m1.room_id = i.room_id \
                   AND m1.user_id = i.user_id AND m1.client_msg_id = i.client_msg_id LIMIT 1) \
               UNION ALL \
               (SELECT m2.seq, m2.id, m2.body, m2.sent_at FROM {leaf} m2, input i \
                 WHERE m2.room_id = i.room_id AND m2.id = i.id LIMIT 1) \
               LIMIT 1), \
             bumped AS ({bump} AND NOT EXISTS (SELECT 1 FROM existing) RETURNING r.last_seq), \
             inserted AS ({insert} RETURNING 1) \
             SELECT 1 AS out_ord, b.last_seq AS out_seq, i.id AS out_id, i.body AS out_body, \
                    i.sent_at AS out_sent_at, false AS out_existed FROM input i, bumped b \
             UNION ALL \
             SELECT 1, x.seq, x.id, x.body, x.sent_at, true FROM existing x"
        );
        let fresh_tail = format!(
            "::timestamptz AS sent_at), bumped AS ({bump} RETURNING r.last_seq) {insert} \
             RETURNING 1 AS out_ord, seq AS out_seq, id AS out_id, body AS out_body, \
                       sent_at AS out_sent_at, false AS out_existed"
        );
        let one = [
            "WITH input AS (SELECT ",
            "::bigint AS room_id, ",
            "::uuid AS user_id, ",
            "::uuid AS id, ",
            "::text AS body, ",
            "::text AS client_msg_id, ",
        ];
        LeafSql {
            segments: [parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], &tail].map(String::from),
            one: [one[0], one[1], one[2], one[3], one[4], one[5], &one_tail].map(String::from),
            fresh_tail,
        }
    }
}

/// A batch's columns, as the statements bind them.
pub struct Columns<'a> {
    room_ids: Vec<i64>,
    user_ids: Vec<Uuid>,
    ids: Vec<Uuid>,
    bodies: Vec<&'a str>,
    client_msg_ids: Vec<Option<&'a str>>,
    sent_ats: Vec<DateTime<Utc>>,
}

impl<'a> Columns<'a> {
    fn of(jobs: &[AppendInput<'a>]) -> Columns<'a> {
        Columns {
            room_ids: jobs.iter().map(|j| j.room_id).collect(),
            user_ids: jobs.iter().map(|j| j.user_id).collect(),
            ids: jobs.iter().map(|j| j.id).collect(),
            bodies: jobs.iter().map(|j| j.body).collect(),
            client_msg_ids: jobs.iter().map(|j| j.client_msg_id).collect(),
            sent_ats: jobs.iter().map(|j| j.sent_at).collect(),
        }
    }
}

/// A batch for one room, into its leaf.
pub struct LeafAppend<'a> {
    sql: std::sync::Arc<LeafSql>,
    room_id: i64,
    columns: Columns<'a>,
}

impl QueryFragment<Pg> for LeafAppend<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        let (s, c) = (&self.sql.segments, &self.columns);
        out.push_sql(&s[0]);
        out.push_bind_param::<BigInt, _>(&self.room_id)?;
        out.push_sql(&s[1]);
        out.push_bind_param::<Array<PgUuid>, _>(&c.user_ids)?;
        out.push_sql(&s[2]);
        out.push_bind_param::<Array<PgUuid>, _>(&c.ids)?;
        out.push_sql(&s[3]);
        out.push_bind_param::<Array<Text>, _>(&c.bodies)?;
        out.push_sql(&s[4]);
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.client_msg_ids)?;
        out.push_sql(&s[5]);
        out.push_bind_param::<Array<Timestamptz>, _>(&c.sent_ats)?;
        out.push_sql(&s[6]);
        Ok(())
    }
}

/// One message, into its room's leaf; `probe`: look for an earlier copy
/// first (otherwise a unique key fails the statement on a repeat).
pub struct LeafOne<'a> {
    sql: std::sync::Arc<LeafSql>,
    input: AppendInput<'a>,
    probe: bool,
}

impl QueryFragment<Pg> for LeafOne<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        let (s, i) = (&self.sql.one, &self.input);
        out.push_sql(&s[0]);
        out.push_bind_param::<BigInt, _>(&i.room_id)?;
        out.push_sql(&s[1]);
        out.push_bind_param::<PgUuid, _>(&i.user_id)?;
        out.push_sql(&s[2]);
        out.push_bind_param::<PgUuid, _>(&i.id)?;
        out.push_sql(&s[3]);
        out.push_bind_param::<Text, _>(&i.body)?;
        out.push_sql(&s[4]);
        out.push_bind_param::<Nullable<Text>, _>(&i.client_msg_id)?;
        out.push_sql(&s[5]);
        out.push_bind_param::<Timestamptz, _>(&i.sent_at)?;
        out.push_sql(if self.probe { &s[6] } else { &self.sql.fresh_tail });
        Ok(())
    }
}

/// A batch over several rooms: one call of `append_messages`.
pub struct FunctionAppend<'a> {
    columns: Columns<'a>,
}

impl QueryFragment<Pg> for FunctionAppend<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        let c = &self.columns;
        out.push_sql("SELECT * FROM append_messages(");
        out.push_bind_param::<Array<BigInt>, _>(&c.room_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<PgUuid>, _>(&c.user_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<PgUuid>, _>(&c.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&c.bodies)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.client_msg_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&c.sent_ats)?;
        out.push_sql(")");
        Ok(())
    }
}

// Both statements' texts are fixed (per leaf), so diesel keeps them
// prepared per connection, keyed by their text: no Parse round trip.
cached_statement!(LeafAppend<'_>, LeafOne<'_>, FunctionAppend<'_>);

pub async fn append_sqlite(conn: &mut SqliteWriterConn, jobs: &[AppendInput<'_>]) -> diesel::QueryResult<Vec<AppendRow>> {
    let jobs: Vec<OwnedInput> = jobs.iter().map(OwnedInput::from).collect();
    conn.spawn_blocking(move |c| c.immediate_transaction(|c| sqlite::append(c, &jobs))).await
}

mod sqlite {
    use chrono::{DateTime, Utc};
    use diesel::prelude::*;
    use diesel::query_builder::{AstPass, QueryFragment};
    use diesel::sql_types::BigInt;
    use diesel::sqlite::{Sqlite, SqliteConnection};
    use uuid::Uuid;

    use super::{AppendRow, OwnedInput};
    use crate::domain::{MessageId, UserId};
    use crate::store::schema::{messages, room_seqs};
    use crate::store::sql_types::At;

    type Found = (i64, Uuid, String, DateTime<Utc>);

    /// Inside the caller's transaction, which holds the write lock: no other
    /// writer sees the room's seq between its bump and the insert.
    ///
    /// A send is almost always new, so it is inserted without looking for an
    /// earlier copy first (two statements, not four). A repeat fails on a
    /// unique key; that statement changed nothing, the bump is given back,
    /// and only then is the earlier copy looked up.
    pub fn append(c: &mut SqliteConnection, jobs: &[OwnedInput]) -> QueryResult<Vec<AppendRow>> {
        let mut rows = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            let out_ord = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let seq = bump(c, job.room_id, 1)?;
            match insert(c, job, seq) {
                Ok(()) => rows.push(AppendRow {
                    out_ord,
                    out_seq: seq,
                    out_id: job.id,
                    out_body: job.body.clone(),
                    out_sent_at: job.sent_at,
                    out_existed: false,
                }),
                Err(e) if crate::store::is_unique_violation(&e) => {
                    bump(c, job.room_id, -1)?;
                    // Not a repeat (a seq already taken): the error stands.
                    let Some((seq, id, body, sent_at)) = existing(c, job)? else { return Err(e) };
                    rows.push(AppendRow {
                        out_ord,
                        out_seq: seq,
                        out_id: id,
                        out_body: body,
                        out_sent_at: sent_at,
                        out_existed: true,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(rows)
    }

    /// Moves the room's last seq by `by` and returns the new value.
    fn bump(c: &mut SqliteConnection, room_id: i64, by: i64) -> QueryResult<i64> {
        if (Bump { room_id, by }).execute(c)? == 0 {
            return Err(diesel::result::Error::NotFound);
        }
        room_seqs::table.filter(room_seqs::room_id.eq(room_id)).select(room_seqs::last_seq).get_result(c)
    }

    /// `UPDATE room_seqs SET last_seq = …` with a fixed text, so the connection
    /// keeps it prepared: diesel never caches its own UPDATE (a changeset
    /// may skip columns), and preparing it anew was a fifth of a lone
    /// message's instructions. No `RETURNING`: SQLite builds a temporary
    /// table for it on every run; the read after it is cheaper.
    struct Bump {
        room_id: i64,
        by: i64,
    }

    impl QueryFragment<Sqlite> for Bump {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
            out.push_sql("UPDATE room_seqs SET last_seq = last_seq + ");
            out.push_bind_param::<BigInt, _>(&self.by)?;
            out.push_sql(" WHERE room_id = ");
            out.push_bind_param::<BigInt, _>(&self.room_id)?;
            Ok(())
        }
    }

    cached_statement!(Bump);

    impl RunQueryDsl<SqliteConnection> for Bump {}

    fn insert(c: &mut SqliteConnection, job: &OwnedInput, seq: i64) -> QueryResult<()> {
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
            .execute(c)
            .map(drop)
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

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl};
    use diesel_migrations::MigrationHarness;

    use super::{sqlite, OwnedInput};

    fn database() -> diesel::sqlite::SqliteConnection {
        let mut c = diesel::sqlite::SqliteConnection::establish(":memory:").expect("an in-memory SQLite");
        c.run_pending_migrations(crate::store::bootstrap::SQLITE_MIGRATIONS).expect("the migrations");
        c.batch_execute(
            "INSERT INTO users (id, username, guest) VALUES (x'00000000000000000000000000000007', 'alice', 1); \
             INSERT INTO rooms (name) VALUES ('general')",
        )
        .expect("a user and a room");
        c
    }

    fn send(id: u128, client_msg_id: Option<&str>) -> OwnedInput {
        OwnedInput {
            room_id: 1,
            user_id: uuid::Uuid::from_u128(7),
            id: uuid::Uuid::from_u128(id),
            body: format!("message {id}"),
            client_msg_id: client_msg_id.map(str::to_string),
            sent_at: chrono::DateTime::from_timestamp_millis(1_764_000_000_000).expect("time"),
        }
    }

    fn append(c: &mut diesel::sqlite::SqliteConnection, jobs: &[OwnedInput]) -> diesel::QueryResult<Vec<(i64, bool)>> {
        c.immediate_transaction(|c| sqlite::append(c, jobs)).map(|rows| rows.iter().map(|r| (r.out_seq, r.out_existed)).collect())
    }

    fn last_seq(c: &mut diesel::sqlite::SqliteConnection) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Seq {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            last_seq: i64,
        }
        diesel::sql_query("SELECT last_seq FROM room_seqs WHERE room_id = 1").get_result::<Seq>(c).expect("the room").last_seq
    }

    /// A repeat, by client_msg_id or by id, in a later batch or in the same
    /// one, answers with the stored copy and gives its seq back.
    #[test]
    fn a_repeat_is_found_after_its_insert_fails_and_takes_no_seq() {
        let mut c = database();
        assert_eq!(append(&mut c, &[send(1, Some("a")), send(2, None)]).expect("two new"), [(1, false), (2, false)]);
        let again = [send(3, Some("a")), send(2, None), send(4, Some("b")), send(5, Some("b"))];
        assert_eq!(append(&mut c, &again).expect("repeats"), [(1, true), (2, true), (3, false), (3, true)]);
        assert_eq!(last_seq(&mut c), 3);
    }

    /// A unique key that no repeat explains (a seq already taken) fails the
    /// batch, and the batch leaves nothing behind.
    #[test]
    fn a_conflict_that_is_not_a_repeat_fails_the_batch() {
        let mut c = database();
        append(&mut c, &[send(1, Some("a"))]).expect("one new");
        c.batch_execute("UPDATE room_seqs SET last_seq = 0").expect("the seq set back");
        let failed = append(&mut c, &[send(2, Some("b"))]).expect_err("seq 1 is taken");
        assert!(crate::store::is_unique_violation(&failed), "{failed:?}");
        assert_eq!(last_seq(&mut c), 0);
    }
}
