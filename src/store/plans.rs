//! `EXPLAIN (ANALYZE, FORMAT JSON)` of every hot query, built by the same
//! functions the store runs, so the plan test checks what production runs.
//! The writer's statements live inside `append_messages`, where EXPLAIN cannot
//! see them; their lookups are explained here as the function writes them.
//! PostgreSQL only: on SQLite `explain_hot_queries` answers `Unsupported`.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text};
use diesel::QueryResult;
use diesel_async::RunQueryDsl;

use super::rooms::{member_check_query, room_by_name_query};
use super::sql_types::Id as SqlUuid;
use super::users::user_by_token_query;
use super::{Store, StoreError};
use crate::domain::{ClientMsgId, MessageId, RoomId, RoomName, TokenHash, UserId};
use crate::metrics::QueryName;

/// EXPLAIN in front of any query, keeping its bind parameters.
pub struct Explain<T> {
    inner: T,
    analyze: bool,
}

impl<T: QueryFragment<Pg>> QueryFragment<Pg> for Explain<T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql(if self.analyze { "EXPLAIN (ANALYZE, FORMAT JSON) " } else { "EXPLAIN (FORMAT JSON) " });
        self.inner.walk_ast(out.reborrow())
    }
}

impl<T> QueryId for Explain<T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T> Query for Explain<T> {
    type SqlType = Text;
}

/// Real values to plan with (the plan depends on them).
pub struct PlanSample {
    pub token: TokenHash,
    pub room: RoomName,
    pub room_id: RoomId,
    pub user: UserId,
    pub client_msg_id: ClientMsgId,
    pub message_id: MessageId,
    pub last_seq: i64,
    /// Rooms `user` is a member of, for the read states (unread counts).
    pub rooms: Vec<RoomId>,
}

pub struct Plan {
    pub name: &'static str,
    pub plan: serde_json::Value,
    /// Whether the plan was executed (ANALYZE): writes are only planned.
    pub analyzed: bool,
}

impl Store {
    pub async fn explain_hot_queries(&self, s: &PlanSample) -> Result<Vec<Plan>, StoreError> {
        let mut out = Vec::new();
        let mut add = |query: QueryName, analyzed: bool, json: String| -> Result<(), StoreError> {
            let plan = serde_json::from_str(&json)?;
            out.push(Plan { name: query.as_str(), plan, analyzed });
            Ok(())
        };
        let mid = (s.last_seq / 2).max(1);
        macro_rules! explain {
            ($name:expr, $query:expr) => {{
                let json = self
                    .run_pg($name, async |conn| Explain { inner: $query, analyze: true }.get_result::<String>(conn).await)
                    .await?;
                add($name, true, json)?;
            }};
        }
        explain!(QueryName::UserByToken, user_by_token_query(&s.token));
        explain!(QueryName::RoomByName, room_by_name_query(&s.room));
        explain!(QueryName::MemberCheck, member_check_query(s.room_id, s.user));
        explain!(QueryName::HistoryNewest, history_query!(s.room_id, HistoryPage::Newest, 50));
        explain!(QueryName::HistoryBefore, history_query!(s.room_id, HistoryPage::Before(mid), 50));
        explain!(QueryName::HistoryAfter, history_query!(s.room_id, HistoryPage::After(mid), 50));
        let everything = super::rooms::RoomFilter { limit: 101, ..Default::default() };
        explain!(QueryName::RoomListForUser, room_list_query!(s.user, &everything));
        let rooms: Vec<i64> = s.rooms.iter().map(|r| r.0).collect();
        explain!(QueryName::ReadStates, super::reads::ReadStatesPg { user: s.user.0, rooms: &rooms });
        // append_messages: the repeat lookups, as the function writes them.
        explain!(
            QueryName::IdempotencyLookup,
            diesel::sql_query(
                "SELECT m1.seq, m1.id, m1.body, m1.sent_at FROM messages m1 \
                 WHERE m1.room_id = $1 AND m1.user_id = $2 AND m1.client_msg_id = $3 LIMIT 1"
            )
            .bind::<BigInt, _>(s.room_id.0)
            .bind::<SqlUuid, _>(s.user.0)
            .bind::<Text, _>(s.client_msg_id.as_str().to_string())
        );
        explain!(
            QueryName::RetryLookupById,
            diesel::sql_query("SELECT m2.seq FROM messages m2 WHERE m2.room_id = $1 AND m2.id = $2 LIMIT 1")
                .bind::<BigInt, _>(s.room_id.0)
                .bind::<SqlUuid, _>(s.message_id.0)
        );
        // Seq allocation is a write: planned, not run.
        let json = self
            .run_pg(QueryName::SeqAllocation, async |conn| {
                Explain {
                    inner: diesel::sql_query(
                        "UPDATE room_seqs SET last_seq = last_seq + 1 WHERE room_id = $1 RETURNING last_seq",
                    )
                    .bind::<BigInt, _>(s.room_id.0),
                    analyze: false,
                }
                .get_result::<String>(conn)
                .await
            })
            .await?;
        add(QueryName::SeqAllocation, false, json)?;
        Ok(out)
    }
}
