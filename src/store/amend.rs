//! Edits and deletes: room events that take the next seq.
//!
//! One transaction per event, outside the batching writer (they are rare,
//! and each needs the message it changes checked under the room's lock):
//!
//! 1. lock the room's counter row in `room_seqs` (the row the writer's seq
//!    allocation updates, so the two never hand out one seq twice), reading
//!    `last_seq`;
//! 2. a `client_msg_id` used before by this user in this room answers with
//!    that event (idempotency, as for sends);
//! 3. check the message: it exists, the author edits it, the author, the
//!    room's owner or an admin deletes it; a deleted one cannot be edited
//!    and deleting it again is no event;
//! 4. take `last_seq + 1`, insert the event row and change the message's
//!    row in place (its body, `edited_at`, `deleted`), so history reads the
//!    current state and replay reads the events in order.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{messages, room_seqs};
use super::sql_types::At;
use super::{Store, StoreError};
use crate::domain::{Body, ClientMsgId, MessageId, RoomId, UserId};
use crate::metrics::QueryName;
use crate::store::models::EventKind;
use crate::time::now_millis;

/// What is done to the message.
#[derive(Debug, Clone)]
pub enum Change {
    Edit(Body),
    Delete,
}

impl Change {
    pub fn kind(&self) -> EventKind {
        match self {
            Change::Edit(_) => EventKind::Edit,
            Change::Delete => EventKind::Delete,
        }
    }
}

/// One edit or delete, its caller already allowed into the room.
#[derive(Debug, Clone)]
pub struct AmendRequest {
    pub room_id: RoomId,
    pub actor: UserId,
    /// The room's owner or an admin: may delete others' messages.
    pub moderator: bool,
    pub message: MessageId,
    pub change: Change,
    pub client_msg_id: Option<ClientMsgId>,
}

/// The committed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmendEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amended {
    /// Stored as a new event.
    Applied(AmendEvent),
    /// No new event: the `client_msg_id` was used before, or the message
    /// was deleted already. The earlier event's seq and the id of the
    /// message it changed.
    Earlier { seq: i64, id: MessageId },
}

/// Why the change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such message in this room (or no such room).
    NotFound,
    /// Only the author edits; the author, the owner or an admin deletes.
    NotAllowed,
    /// A deleted message cannot be edited.
    Deleted,
}

type Outcome = Result<Amended, Refusal>;

impl Store {
    /// Stores an edit or delete as the room's next event (see the module).
    pub async fn amend(&self, req: &AmendRequest) -> Result<Outcome, StoreError> {
        let at = now_millis();
        let event_id = Uuid::new_v4();
        db_run!(self, QueryName::MessageAmend, async |conn| {
            conn.transaction::<Outcome, diesel::result::Error, _>(async |conn| {
                let room = req.room_id.0;
                // A write first: the room counter's row lock on PostgreSQL
                // (the writer's too), the write lock on SQLite (no lock
                // upgrade half-way).
                let Some(last_seq) = diesel::update(room_seqs::table.filter(room_seqs::room_id.eq(room)))
                    .set(room_seqs::last_seq.eq(room_seqs::last_seq))
                    .returning(room_seqs::last_seq)
                    .get_result::<i64>(conn)
                    .await
                    .optional()?
                else {
                    return Ok(Err(Refusal::NotFound));
                };
                if let Some(cmid) = &req.client_msg_id {
                    let earlier = messages::table
                        .filter(messages::room_id.eq(room))
                        .filter(messages::user_id.eq(req.actor))
                        .filter(messages::client_msg_id.eq(cmid.as_str()))
                        .select((messages::seq, messages::id, messages::target_id))
                        .first::<(i64, Uuid, Option<Uuid>)>(conn)
                        .await
                        .optional()?;
                    if let Some((seq, id, target)) = earlier {
                        return Ok(Ok(Amended::Earlier { seq, id: MessageId(target.unwrap_or(id)) }));
                    }
                }
                let target = messages::table
                    .filter(messages::room_id.eq(room))
                    .filter(messages::id.eq(req.message))
                    .filter(messages::kind.eq(EventKind::Message.code()))
                    .select((messages::seq, messages::user_id, messages::deleted))
                    .first::<(i64, Uuid, bool)>(conn)
                    .await
                    .optional()?;
                let Some((message_seq, author, deleted)) = target else { return Ok(Err(Refusal::NotFound)) };
                let author = UserId(author) == req.actor;
                match (&req.change, deleted) {
                    (Change::Edit(_), _) if !author => return Ok(Err(Refusal::NotAllowed)),
                    (Change::Edit(_), true) => return Ok(Err(Refusal::Deleted)),
                    (Change::Delete, _) if !author && !req.moderator => return Ok(Err(Refusal::NotAllowed)),
                    (Change::Delete, true) => {
                        // Its delete event comes after it: a range scan from there.
                        let seq = messages::table
                            .filter(messages::room_id.eq(room))
                            .filter(messages::seq.gt(message_seq))
                            .filter(messages::target_id.eq(Some(req.message)))
                            .filter(messages::kind.eq(EventKind::Delete.code()))
                            .order(messages::seq.asc())
                            .select(messages::seq)
                            .first::<i64>(conn)
                            .await
                            .optional()?;
                        return Ok(Ok(Amended::Earlier { seq: seq.unwrap_or(message_seq), id: req.message }));
                    }
                    _ => {}
                }
                let seq = last_seq + 1;
                diesel::update(room_seqs::table.filter(room_seqs::room_id.eq(room)))
                    .set(room_seqs::last_seq.eq(seq))
                    .execute(conn)
                    .await?;
                let body = match &req.change {
                    Change::Edit(body) => body.as_str(),
                    Change::Delete => "",
                };
                diesel::insert_into(messages::table)
                    .values((
                        messages::room_id.eq(room),
                        messages::seq.eq(seq),
                        messages::id.eq(MessageId(event_id)),
                        messages::user_id.eq(req.actor),
                        messages::body.eq(body),
                        messages::client_msg_id.eq(req.client_msg_id.as_ref().map(ClientMsgId::as_str)),
                        messages::sent_at.eq(At(at)),
                        messages::kind.eq(req.change.kind().code()),
                        messages::target_id.eq(Some(req.message)),
                    ))
                    .execute(conn)
                    .await?;
                let row = messages::table.filter(messages::room_id.eq(room)).filter(messages::id.eq(req.message));
                match &req.change {
                    Change::Edit(body) => {
                        diesel::update(row)
                            .set((messages::body.eq(body.as_str()), messages::edited_at.eq(Some(At(at)))))
                            .execute(conn)
                            .await?
                    }
                    Change::Delete => {
                        diesel::update(row).set((messages::body.eq(""), messages::deleted.eq(true))).execute(conn).await?
                    }
                };
                Ok(Ok(Amended::Applied(AmendEvent { seq, at })))
            })
            .await
        })
        .await
    }
}
