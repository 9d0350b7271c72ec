//! Reading messages back: history pages, replay after `since`, gap healing.
//! Writing is `writer`'s job alone.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::models::{EventKind, StoredMessage};
use super::schema::{messages, users};
use super::{Store, StoreError};
use crate::domain::{ClientMsgId, MessageId, RoomId, RoomName, UserId, Username};
use crate::metrics::QueryName;

/// One history page (limit + 1 rows, to tell whether more exist). Pages
/// towards the past read newest-first; the caller reverses them. A macro, not
/// a function: the boxed query is built for whichever backend runs it. Also
/// used by `plans`.
macro_rules! history_query {
    ($room_id:expr, $page:expr, $limit:expr) => {{
        use diesel::prelude::*;
        use $crate::store::messages::{HistoryPage, MESSAGE_COLUMNS};
        use $crate::store::schema::{messages, users};
        let query = messages::table
            .inner_join(users::table)
            .filter(messages::room_id.eq($room_id.0))
            // Messages only: the seqs of edits and deletes are not listed.
            .filter(messages::kind.eq(0i16))
            .select(MESSAGE_COLUMNS)
            .limit($limit + 1)
            .into_boxed();
        match $page {
            HistoryPage::Newest => query.order(messages::seq.desc()),
            HistoryPage::Before(before) => query.filter(messages::seq.lt(before)).order(messages::seq.desc()),
            HistoryPage::After(after) => query.filter(messages::seq.gt(after)).order(messages::seq.asc()),
            HistoryPage::Between { after, before } => {
                query.filter(messages::seq.gt(after)).filter(messages::seq.lt(before)).order(messages::seq.asc())
            }
        }
    }};
}

type MessageRow =
    (i64, Uuid, Uuid, String, String, Option<String>, DateTime<Utc>, i16, Option<Uuid>, Option<DateTime<Utc>>, bool);

pub(crate) const MESSAGE_COLUMNS: (
    messages::seq,
    messages::id,
    messages::user_id,
    users::username,
    messages::body,
    messages::client_msg_id,
    messages::sent_at,
    messages::kind,
    messages::target_id,
    messages::edited_at,
    messages::deleted,
) = (
    messages::seq,
    messages::id,
    messages::user_id,
    users::username,
    messages::body,
    messages::client_msg_id,
    messages::sent_at,
    messages::kind,
    messages::target_id,
    messages::edited_at,
    messages::deleted,
);

/// Which page of a room's history to read. Pages are always returned in
/// ascending `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// The newest `limit` messages.
    Newest,
    /// The newest `limit` messages with `seq < before`.
    Before(i64),
    /// The oldest `limit` messages with `seq > after`.
    After(i64),
    /// The oldest `limit` messages with `after < seq < before`.
    Between { after: i64, before: i64 },
}

/// A row as the room event it is; an edit or delete is told by the id of
/// the message it changes (its own row id is only a key).
fn to_message(room_id: RoomId, room: &RoomName, row: MessageRow) -> StoredMessage {
    let (seq, id, user_id, username, body, client_msg_id, sent_at, kind, target_id, edited_at, deleted) = row;
    let kind = EventKind::from_code(kind).unwrap_or(EventKind::Message);
    StoredMessage {
        room_id,
        room: room.clone(),
        seq,
        id: MessageId(target_id.unwrap_or(id)),
        user_id: UserId(user_id),
        user: Username::from_trusted(username),
        body,
        sent_at,
        client_msg_id: client_msg_id.map(ClientMsgId::from_trusted),
        kind,
        edited_at: if kind == EventKind::Edit { Some(sent_at) } else { edited_at },
        deleted,
    }
}

impl Store {
    /// One page of history plus whether more exist beyond it in the paging
    /// direction (older for `Newest`/`Before`, newer for `After`/`Between`).
    ///
    /// `last_seq` is the room's newest seq as the primary knows it; a replica
    /// page that ends short of it is stale and is read from the primary.
    pub async fn history(
        &self,
        room_id: RoomId,
        room: &RoomName,
        page: HistoryPage,
        limit: i64,
        last_seq: i64,
    ) -> Result<(Vec<StoredMessage>, bool), StoreError> {
        let (name, descending) = match page {
            HistoryPage::Newest => (QueryName::HistoryNewest, true),
            HistoryPage::Before(_) => (QueryName::HistoryBefore, true),
            HistoryPage::After(_) => (QueryName::HistoryAfter, false),
            HistoryPage::Between { .. } => (QueryName::HistoryRange, false),
        };
        // Where the page must end if the reader is up to date (seqs have no gaps).
        let newest_expected = match page {
            HistoryPage::Newest | HistoryPage::After(_) => last_seq,
            HistoryPage::Before(before) | HistoryPage::Between { before, .. } => last_seq.min(before - 1),
        };
        let fresh = |rows: &Vec<MessageRow>| -> bool {
            let newest = rows.iter().map(|r| r.0).max();
            match page {
                // Newest first: the first row must be the newest expected.
                HistoryPage::Newest | HistoryPage::Before(_) => newest.unwrap_or(0) >= newest_expected || newest_expected <= 0,
                // Oldest first: a full page proves nothing about the end, but
                // a short one must reach the end.
                HistoryPage::After(after) | HistoryPage::Between { after, .. } => {
                    rows.len() as i64 > limit || newest.unwrap_or(after) >= newest_expected || newest_expected <= after
                }
            }
        };
        let mut rows =
            db_read!(self, name, true, fresh, async |conn| history_query!(room_id, page, limit).load::<MessageRow>(conn).await)
                .await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        if descending {
            rows.reverse();
        }
        Ok((rows.into_iter().map(|r| to_message(room_id, room, r)).collect(), has_more))
    }

    /// Room events (messages, edits, deletes) with `after < seq <= upto`,
    /// ascending, at most `limit`: the replay after `since` and the filling
    /// of gaps.
    pub async fn messages_between(
        &self,
        room_id: RoomId,
        room: &RoomName,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = db_run!(self, QueryName::HistoryRange, async |conn| {
            messages::table
                .inner_join(users::table)
                .filter(messages::room_id.eq(room_id.0))
                .filter(messages::seq.gt(after))
                .filter(messages::seq.le(upto))
                .order(messages::seq.asc())
                .limit(limit)
                .select(MESSAGE_COLUMNS)
                .load::<MessageRow>(conn)
                .await
        })
        .await?;
        Ok(rows.into_iter().map(|r| to_message(room_id, room, r)).collect())
    }

    /// One message as it is now (edits and deletes applied), by id.
    pub async fn message(&self, room_id: RoomId, room: &RoomName, id: MessageId) -> Result<Option<StoredMessage>, StoreError> {
        let row = db_run!(self, QueryName::MessageById, async |conn| {
            messages::table
                .inner_join(users::table)
                .filter(messages::room_id.eq(room_id.0))
                .filter(messages::id.eq(id))
                .filter(messages::kind.eq(EventKind::Message.code()))
                .select(MESSAGE_COLUMNS)
                .first::<MessageRow>(conn)
                .await
                .optional()
        })
        .await?;
        Ok(row.map(|r| to_message(room_id, room, r)))
    }
}
