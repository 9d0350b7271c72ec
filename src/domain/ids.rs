//! Newtype ids, so a room id is never passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// Bound in queries as the store's `Id` column type (PostgreSQL uuid, SQLite blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, diesel::expression::AsExpression)]
#[serde(transparent)]
#[diesel(sql_type = crate::domain::sql_types::Id)]
pub struct UserId(pub Uuid);

/// Internal room key; never shown to clients, who address rooms by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, diesel::expression::AsExpression)]
#[serde(transparent)]
#[diesel(sql_type = crate::domain::sql_types::Id)]
pub struct MessageId(pub Uuid);

impl MessageId {
    /// Time-ordered (v7), so the `(room_id, id)` index grows at its right edge.
    pub fn new() -> Self {
        MessageId(Uuid::now_v7())
    }

    /// A message id as clients write it (a UUID).
    pub fn parse(s: &str) -> Result<Self, super::ParseError> {
        Uuid::parse_str(s.trim()).map(MessageId).map_err(|_| super::ParseError("a message id is a UUID".into()))
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl UserId {
    pub fn new() -> Self {
        UserId(Uuid::new_v4())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

/// One WebSocket connection on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
