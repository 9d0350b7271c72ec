//! What travels on the bus, as JSON. Every envelope names its origin so an
//! instance can ignore its own echoes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{ClientMsgId, MessageId, RoomId, RoomName, UserId, Username};
use crate::store::models::{EventKind, StoredMessage};

fn is_message(kind: &EventKind) -> bool {
    *kind == EventKind::Message
}
use crate::telemetry::delivery::DeliveryTrace;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub origin: String,
    pub event: BusEvent,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusEvent {
    /// Messages just committed by the origin's writer, ascending seq.
    Messages {
        room_id: i64,
        messages: Vec<BusMessage>,
    },
    Typing {
        room_id: i64,
        user_id: Uuid,
        user: String,
    },
    /// A user's first local connection to the room opened, or their last closed, on `origin`.
    Presence {
        room_id: i64,
        user_id: Uuid,
        user: String,
        online: bool,
    },
    /// A member was removed from a private room: every instance forgets the
    /// membership and takes their sockets out of the room, then confirms
    /// `confirm` (see cluster::revocation).
    Kick {
        room_id: i64,
        user_id: Uuid,
        #[serde(default)]
        confirm: Option<Uuid>,
    },
    /// A token was revoked: every instance forgets it and closes its sockets,
    /// then confirms `confirm`.
    Revoke {
        token_sha256: String,
        #[serde(default)]
        confirm: Option<Uuid>,
    },
    /// A member was added to a private room: every instance drops a cached
    /// "not a member", then confirms `confirm`.
    Grant {
        room_id: i64,
        user_id: Uuid,
        #[serde(default)]
        confirm: Option<Uuid>,
    },
    /// The origin has applied revocation `id`.
    Confirm {
        id: Uuid,
    },
    /// The origin's cache-lease ping (only the origin reads it: `stamp` is on
    /// its own clock).
    Lease {
        stamp: u64,
    },
    /// A cached entry changed: every instance drops its L1 copy.
    Invalidate {
        cache: String,
        key: String,
    },
    /// A user's read marker moved: their sockets on every other instance
    /// get a `read` frame.
    Read {
        user_id: Uuid,
        room: String,
        last_read: i64,
        unread: i64,
    },
    /// The origin is alive (sent every INSTANCE_HEARTBEAT_MS).
    Heartbeat,
    /// The origin's figures for /admin (about once a second), as the
    /// stats board encodes them: the bus carries them without knowing their
    /// shape, and the receiving board parses them.
    Stats {
        snapshot: Box<serde_json::Value>,
    },
    /// The origin is shutting down.
    Goodbye,
}

/// A committed message on the wire, with the origin's receive time so the
/// delivery-latency histogram covers cross-instance hops too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusMessage {
    pub room: String,
    pub seq: i64,
    pub id: Uuid,
    pub user_id: Uuid,
    pub user: String,
    pub body: String,
    pub sent_at: DateTime<Utc>,
    pub client_msg_id: Option<String>,
    /// A message, or an edit or delete of message `id`.
    #[serde(default, skip_serializing_if = "is_message")]
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub received_at_unix_us: u64,
    /// When the origin's commit finished (wall clock), for the `bus` stage.
    #[serde(default)]
    pub committed_at_unix_us: u64,
    /// W3C trace context of the origin's delivery trace (only while tracing
    /// is on), so the delivery here continues the same trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Wall-clock microseconds of an instant in the recent past.
fn unix_us(at: Instant) -> u64 {
    let wall = SystemTime::now().checked_sub(at.elapsed()).unwrap_or_else(SystemTime::now);
    wall.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn now_unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl BusMessage {
    pub fn from_stored(m: &StoredMessage, received_at: Instant, committed_at: Instant, trace: Option<&DeliveryTrace>) -> Self {
        BusMessage {
            room: m.room.to_string(),
            seq: m.seq,
            id: m.id.0,
            user_id: m.user_id.0,
            user: m.user.to_string(),
            body: m.body.clone(),
            sent_at: m.sent_at,
            client_msg_id: m.client_msg_id.as_ref().map(|c| c.as_str().to_string()),
            kind: m.kind,
            edited_at: m.edited_at,
            deleted: m.deleted,
            received_at_unix_us: unix_us(received_at),
            committed_at_unix_us: unix_us(committed_at),
            traceparent: trace.map(DeliveryTrace::traceparent),
        }
    }

    /// How long ago the origin committed it (the `bus` stage; clocks of
    /// different hosts make it approximate). None when the origin did not say.
    pub fn bus_delay(&self) -> Option<Duration> {
        (self.committed_at_unix_us > 0).then(|| Duration::from_micros(now_unix_us().saturating_sub(self.committed_at_unix_us)))
    }

    /// Back to a stored message; `None` if the origin sent something no
    /// instance of ours would (a name that does not parse).
    pub fn into_stored(self, room_id: RoomId) -> Option<(StoredMessage, Instant)> {
        let room = RoomName::parse(&self.room).ok()?;
        let user = Username::parse(&self.user).ok()?;
        let client_msg_id = match self.client_msg_id {
            Some(c) => Some(ClientMsgId::parse(&c).ok()?),
            None => None,
        };
        let age = Duration::from_micros(now_unix_us().saturating_sub(self.received_at_unix_us));
        let received_at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        Some((
            StoredMessage {
                room_id,
                room,
                seq: self.seq,
                id: MessageId(self.id),
                user_id: UserId(self.user_id),
                user,
                body: self.body,
                sent_at: self.sent_at,
                client_msg_id,
                kind: self.kind,
                edited_at: self.edited_at,
                deleted: self.deleted,
            },
            received_at,
        ))
    }
}
