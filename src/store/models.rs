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

/// A committed message. Serialises as the contract's message object.
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
}
