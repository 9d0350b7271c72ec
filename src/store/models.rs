//! Rows as the rest of the server sees them: typed, parsed, ready to serialise.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{ClientMsgId, MessageId, RoomId, RoomName, UserId, Username};
use crate::time::rfc3339_millis;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub guest: bool,
}

/// A signed-in session: whose it is and the times its expiry is judged by.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SessionInfo {
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Room {
    pub id: RoomId,
    pub name: RoomName,
    pub topic: String,
    pub private: bool,
    pub owner_id: Option<UserId>,
    pub last_seq: i64,
    pub kind: RoomKind,
}

/// A room anyone may be added to, or the direct-message room of two users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    #[default]
    Room,
    Dm,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Room => "room",
            RoomKind::Dm => "dm",
        }
    }

    /// As stored (`rooms.kind`); anything unknown is an ordinary room.
    pub fn from_stored(s: &str) -> RoomKind {
        if s == "dm" {
            RoomKind::Dm
        } else {
            RoomKind::Room
        }
    }
}

/// What a seq of a room is: a message, or an edit or a delete of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    #[default]
    Message,
    Edit,
    Delete,
}

impl EventKind {
    /// As stored (`messages.kind`).
    pub fn code(self) -> i16 {
        match self {
            EventKind::Message => 0,
            EventKind::Edit => 1,
            EventKind::Delete => 2,
        }
    }

    /// From `messages.kind`; `None` for a code no release of ours writes.
    pub fn from_code(code: i16) -> Option<EventKind> {
        match code {
            0 => Some(EventKind::Message),
            1 => Some(EventKind::Edit),
            2 => Some(EventKind::Delete),
            _ => None,
        }
    }
}

/// A committed room event: a message (serialises as the contract's message
/// object), or an edit or delete of message `id` (`frames::event` writes
/// those as `message_edited` / `message_deleted`; `user` is who did it).
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    #[serde(skip)]
    pub room_id: RoomId,
    pub room: RoomName,
    pub seq: i64,
    pub id: MessageId,
    #[serde(skip)]
    pub user_id: UserId,
    pub user: Username,
    pub body: String,
    #[serde(serialize_with = "rfc3339_millis::serialize")]
    pub sent_at: DateTime<Utc>,
    pub client_msg_id: Option<ClientMsgId>,
    #[serde(skip)]
    pub kind: EventKind,
    /// A message: when it was last edited (its body is the edited one). An
    /// edit: when it was made.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "rfc3339_millis::serialize_some")]
    pub edited_at: Option<DateTime<Utc>>,
    /// A message that was deleted (its body is empty).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl StoredMessage {
    /// Whether this is a message (not an edit or delete of one).
    pub fn is_message(&self) -> bool {
        self.kind == EventKind::Message
    }

    /// The message as it is after `event` (an edit or delete of it).
    pub fn amended_by(&self, event: &StoredMessage) -> StoredMessage {
        let mut now = self.clone();
        match event.kind {
            EventKind::Message => {}
            EventKind::Edit => {
                now.body.clone_from(&event.body);
                now.edited_at = event.edited_at.or(Some(event.sent_at));
            }
            EventKind::Delete => {
                now.body.clear();
                now.deleted = true;
            }
        }
        now
    }
}
