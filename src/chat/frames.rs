//! Server frames a room builds once and shares with all its sessions.

use bytestring::ByteString;
use serde::Serialize;

use chrono::{DateTime, Utc};

use crate::domain::{MessageId, RoomName, Username};
use crate::store::models::{EventKind, StoredMessage};
use crate::time::rfc3339_millis;

#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    message: &'a StoredMessage,
}

#[derive(Serialize)]
struct JoinedFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a RoomName,
    last_seq: i64,
    online: Vec<&'a Username>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
}

#[derive(Serialize)]
struct PresenceFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a RoomName,
    user: &'a Username,
    state: &'static str,
}

#[derive(Serialize)]
struct TypingFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a RoomName,
    user: &'a Username,
}

fn to_text<T: Serialize>(value: &T) -> ByteString {
    // Serialising these plain structs cannot fail.
    ByteString::from(serde_json::to_string(value).unwrap_or_default())
}

pub fn message(message: &StoredMessage) -> ByteString {
    to_text(&MessageFrame { kind: "message", message })
}

#[derive(Serialize)]
struct EditedFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a RoomName,
    seq: i64,
    id: MessageId,
    body: &'a str,
    #[serde(serialize_with = "rfc3339_millis::serialize")]
    edited_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct DeletedFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a RoomName,
    seq: i64,
    id: MessageId,
}

/// The frame of any room event: `message`, `message_edited` or
/// `message_deleted`.
pub fn event(event: &StoredMessage) -> ByteString {
    match event.kind {
        EventKind::Message => message(event),
        EventKind::Edit => to_text(&EditedFrame {
            kind: "message_edited",
            room: &event.room,
            seq: event.seq,
            id: event.id,
            body: &event.body,
            edited_at: event.edited_at.unwrap_or(event.sent_at),
        }),
        EventKind::Delete => to_text(&DeletedFrame { kind: "message_deleted", room: &event.room, seq: event.seq, id: event.id }),
    }
}

pub fn joined<'a>(
    room: &'a RoomName,
    last_seq: i64,
    online: impl Iterator<Item = &'a Username>,
    recovered: Option<bool>,
) -> ByteString {
    to_text(&JoinedFrame { kind: "joined", room, last_seq, online: online.collect(), recovered })
}

pub fn presence(room: &RoomName, user: &Username, online: bool) -> ByteString {
    to_text(&PresenceFrame { kind: "presence", room, user, state: if online { "online" } else { "offline" } })
}

pub fn typing(room: &RoomName, user: &Username) -> ByteString {
    to_text(&TypingFrame { kind: "typing", room, user })
}

#[derive(Serialize)]
struct ReadFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    last_read: i64,
    unread: i64,
}

/// A user's read marker moved (to their other connections).
pub fn read(room: &str, last_read: i64, unread: i64) -> ByteString {
    to_text(&ReadFrame { kind: "read", room, last_read, unread })
}
