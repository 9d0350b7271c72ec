//! Edits and deletes (HTTP `PATCH`/`DELETE …/messages/{id}` and the
//! WebSocket `edit`/`delete` frames share this): stored as the room's next
//! event, then handed to the rooms like a commit of the writer (this
//! instance's room actor, the bus, the recent lists), so every member
//! gets `message_edited` / `message_deleted` in seq order with the messages.

use std::time::Instant;

use crate::access::Access;
use crate::cache::RoomMeta;
use crate::chat::fanout::Fanout;
use crate::chat::Registry;
use crate::domain::{ClientMsgId, MessageId};
use crate::error::ApiError;
use crate::store::amend::{AmendRequest, Amended, Change, Refusal};
use crate::store::models::{StoredMessage, User};
use crate::store::writer::{CommitListener, Committed, Writer};
use crate::store::Store;

/// The event an edit or delete is acked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventAck {
    pub seq: i64,
    /// The message changed.
    pub id: MessageId,
    /// False when nothing new was stored (a repeat, or a second delete).
    pub new: bool,
}

/// What an edit or delete needs: the access checks, the database (the
/// writer's health says whether it is committing) and the rooms to tell.
#[derive(Clone)]
pub struct Editor {
    access: Access,
    store: Store,
    writer: Writer,
    registry: Registry,
}

impl Editor {
    pub fn new(access: Access, store: Store, writer: Writer, registry: Registry) -> Self {
        Editor { access, store, writer, registry }
    }

    /// `user` (an admin when `admin`) edits or deletes message `id` of `room`.
    pub async fn amend(
        &self,
        user: &User,
        admin: bool,
        room: &str,
        id: MessageId,
        change: Change,
        client_msg_id: Option<ClientMsgId>,
    ) -> Result<(RoomMeta, EventAck), ApiError> {
        let received_at = Instant::now();
        let room = self.access.visible_room(user, room).await?;
        if self.writer.health().verdict(received_at).refuses() {
            return Err(ApiError::Unavailable("the database is not committing; try again shortly".into()));
        }
        let request = AmendRequest {
            room_id: room.id,
            actor: user.id,
            moderator: admin || room.owner_id == Some(user.id),
            message: id,
            change: change.clone(),
            client_msg_id: client_msg_id.clone(),
        };
        let outcome = self.store.amend(&request).await?.map_err(|refusal| match (refusal, &change) {
            (Refusal::NotFound, _) => ApiError::NotFound("message not found".into()),
            (Refusal::NotAllowed, Change::Edit(_)) => ApiError::Forbidden("only its author can edit a message".into()),
            (Refusal::NotAllowed, Change::Delete) => {
                ApiError::Forbidden("only its author, the room's owner or an admin can delete a message".into())
            }
            (Refusal::Deleted, _) => ApiError::Conflict("a deleted message cannot be edited".into()),
        })?;
        let event = match outcome {
            Amended::Earlier { seq, id } => return Ok((room, EventAck { seq, id, new: false })),
            Amended::Applied(event) => event,
        };
        let body = match &change {
            Change::Edit(body) => body.as_str().to_string(),
            Change::Delete => String::new(),
        };
        let committed = StoredMessage {
            room_id: room.id,
            room: room.name.clone(),
            seq: event.seq,
            id,
            user_id: user.id,
            user: user.username.clone(),
            body,
            sent_at: event.at,
            client_msg_id,
            kind: change.kind(),
            edited_at: matches!(change, Change::Edit(_)).then_some(event.at),
            deleted: false,
        };
        // Rooms hear of it before the caller does, as with sends: a history
        // read after the answer never sees the old body.
        let now = Instant::now();
        Fanout::new(self.registry.clone()).committed(vec![Committed {
            message: committed.into(),
            received_at,
            available_at: now,
            trace: None,
        }]);
        Ok((room, EventAck { seq: event.seq, id, new: true }))
    }
}
