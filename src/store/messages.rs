//! Reading messages back: history pages, replay after `since`, gap healing.
//! Writing is `writer`'s job alone.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::models::StoredMessage;
use super::schema::{messages, users};
use super::{Store, StoreError};
use crate::domain::{ClientMsgId, MessageId, RoomId, RoomName, UserId, Username};

type MessageRow = (i64, Uuid, Uuid, String, String, Option<String>, DateTime<Utc>);

const MESSAGE_COLUMNS: (
    messages::seq,
    messages::id,
    messages::user_id,
    users::username,
    messages::body,
    messages::client_msg_id,
    messages::sent_at,
) = (
    messages::seq,
    messages::id,
    messages::user_id,
    users::username,
    messages::body,
    messages::client_msg_id,
    messages::sent_at,
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

fn to_message(room_id: RoomId, room: &RoomName, row: MessageRow) -> StoredMessage {
    let (seq, id, user_id, username, body, client_msg_id, sent_at) = row;
    StoredMessage {
        room_id,
        room: room.clone(),
        seq,
        id: MessageId(id),
        user_id: UserId(user_id),
        user: Username::from_trusted(username),
        body,
        sent_at,
        client_msg_id: client_msg_id.map(ClientMsgId::from_trusted),
    }
}

impl Store {
    /// One page of history plus whether more exist beyond it in the paging
    /// direction (older for `Newest`/`Before`, newer for `After`/`Between`).
    pub async fn history(
        &self,
        room_id: RoomId,
        room: &RoomName,
        page: HistoryPage,
        limit: i64,
    ) -> Result<(Vec<StoredMessage>, bool), StoreError> {
        let mut query = messages::table
            .inner_join(users::table)
            .filter(messages::room_id.eq(room_id.0))
            .select(MESSAGE_COLUMNS)
            .limit(limit + 1)
            .into_boxed();
        // Pages towards the past read newest-first and are reversed below.
        let (name, descending) = match page {
            HistoryPage::Newest => ("history_newest", true),
            HistoryPage::Before(before) => {
                query = query.filter(messages::seq.lt(before));
                ("history_before", true)
            }
            HistoryPage::After(after) => {
                query = query.filter(messages::seq.gt(after));
                ("history_after", false)
            }
            HistoryPage::Between { after, before } => {
                query = query.filter(messages::seq.gt(after)).filter(messages::seq.lt(before));
                ("history_range", false)
            }
        };
        query = if descending { query.order(messages::seq.desc()) } else { query.order(messages::seq.asc()) };
        let mut rows = self.run(name, async |conn| query.load::<MessageRow>(conn).await).await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        if descending {
            rows.reverse();
        }
        Ok((rows.into_iter().map(|r| to_message(room_id, room, r)).collect(), has_more))
    }

    /// Messages with `after < seq <= upto`, ascending, at most `limit`: the
    /// replay after `since` and the filling of gaps.
    pub async fn messages_between(
        &self,
        room_id: RoomId,
        room: &RoomName,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = self
            .run("history_range", async |conn| {
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
}
