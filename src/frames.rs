//! Every frame the server sends over a WebSocket, as one enum (docs/api.md
//! lists them); client frames parse in `ws::protocol`. Room traffic is
//! encoded once by the room and shared by all its sessions.

use actix_http::ws::{OpCode, Parser};
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{MessageId, RoomName, Username};
use crate::error::ErrorCode;
use crate::store::models::{EventKind, StoredMessage, User};
use crate::time::rfc3339_millis;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    Hello {
        user: HelloUser<'a>,
        instance: &'a str,
        heartbeat_ms: u64,
    },
    Joined {
        room: &'a RoomName,
        last_seq: i64,
        online: Vec<&'a Username>,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    Message(&'a StoredMessage),
    MessageEdited {
        room: &'a RoomName,
        seq: i64,
        id: MessageId,
        body: &'a str,
        #[serde(serialize_with = "rfc3339_millis::serialize")]
        edited_at: DateTime<Utc>,
    },
    MessageDeleted {
        room: &'a RoomName,
        seq: i64,
        id: MessageId,
    },
    Ack {
        room: &'a RoomName,
        client_msg_id: Option<&'a str>,
        seq: i64,
        id: MessageId,
    },
    Presence {
        room: &'a RoomName,
        user: &'a Username,
        state: &'static str,
    },
    Typing {
        room: &'a RoomName,
        user: &'a Username,
    },
    Read {
        room: &'a str,
        last_read: i64,
        unread: i64,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    Pong {
        ts: &'a Value,
    },
    Reconnect {
        reason: &'a str,
        after_ms: u64,
    },
}

#[derive(Serialize)]
struct HelloUser<'a> {
    id: String,
    username: &'a str,
    guest: bool,
}

fn to_text(frame: &ServerFrame<'_>) -> ByteString {
    // Serialising these plain values cannot fail.
    ByteString::from(serde_json::to_string(frame).unwrap_or_default())
}

pub fn hello(user: &User, instance: &str, heartbeat_ms: u64) -> ByteString {
    to_text(&ServerFrame::Hello {
        user: HelloUser { id: user.id.to_string(), username: user.username.as_str(), guest: user.guest },
        instance,
        heartbeat_ms,
    })
}

pub fn joined<'a>(
    room: &'a RoomName,
    last_seq: i64,
    online: impl Iterator<Item = &'a Username>,
    recovered: Option<bool>,
) -> ByteString {
    to_text(&ServerFrame::Joined { room, last_seq, online: online.collect(), recovered })
}

pub fn message(message: &StoredMessage) -> ByteString {
    to_text(&ServerFrame::Message(message))
}

/// The frame of any room event: `message`, `message_edited` or
/// `message_deleted`.
pub fn event(event: &StoredMessage) -> ByteString {
    match event.kind {
        EventKind::Message => message(event),
        EventKind::Edit => to_text(&ServerFrame::MessageEdited {
            room: &event.room,
            seq: event.seq,
            id: event.id,
            body: &event.body,
            edited_at: event.edited_at.unwrap_or(event.sent_at),
        }),
        EventKind::Delete => to_text(&ServerFrame::MessageDeleted { room: &event.room, seq: event.seq, id: event.id }),
    }
}

pub fn ack(room: &RoomName, client_msg_id: Option<&str>, seq: i64, id: MessageId) -> ByteString {
    to_text(&ServerFrame::Ack { room, client_msg_id, seq, id })
}

pub fn presence(room: &RoomName, user: &Username, online: bool) -> ByteString {
    to_text(&ServerFrame::Presence { room, user, state: if online { "online" } else { "offline" } })
}

pub fn typing(room: &RoomName, user: &Username) -> ByteString {
    to_text(&ServerFrame::Typing { room, user })
}

/// A user's read marker moved (to their other connections).
pub fn read(room: &str, last_read: i64, unread: i64) -> ByteString {
    to_text(&ServerFrame::Read { room, last_read, unread })
}

pub fn error(code: ErrorCode, message: &str, reference: Option<&str>) -> ByteString {
    to_text(&ServerFrame::Error { code, message, reference })
}

pub fn pong(ts: &Value) -> ByteString {
    to_text(&ServerFrame::Pong { ts })
}

pub fn reconnect(reason: &str, after_ms: u64) -> ByteString {
    to_text(&ServerFrame::Reconnect { reason, after_ms })
}

/// A text frame as the server sends it, WebSocket header and payload: a
/// room's events are put on the wire once per instance, and every
/// recipient's socket writes these same bytes (`ws::session::socket`).
pub fn wire(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 10);
    // Server frames are never masked.
    Parser::write_message(&mut buf, text, OpCode::Text, true, false);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RoomId, UserId};
    use serde_json::json;

    fn parse(text: ByteString) -> Value {
        serde_json::from_str(&text).expect("a JSON frame")
    }

    fn stored(kind: EventKind) -> StoredMessage {
        StoredMessage {
            room_id: RoomId(1),
            room: RoomName::parse("general").expect("a name"),
            seq: 7,
            id: MessageId::new(),
            user_id: UserId::new(),
            user: Username::parse("alice").expect("a name"),
            body: "hi".into(),
            sent_at: DateTime::parse_from_rfc3339("2026-12-07T08:00:00.123Z").expect("a time").into(),
            client_msg_id: None,
            kind,
            edited_at: None,
            deleted: false,
        }
    }

    #[test]
    fn room_traffic_has_the_contract_shape() {
        let m = stored(EventKind::Message);
        let id = m.id.to_string();
        assert_eq!(
            parse(event(&m)),
            json!({"type":"message","room":"general","seq":7,"id":id,"user":"alice","body":"hi",
                   "sent_at":"2026-12-07T08:00:00.123Z","client_msg_id":null})
        );
        let e = StoredMessage { edited_at: m.edited_at.or(Some(m.sent_at)), ..stored(EventKind::Edit) };
        let eid = e.id.to_string();
        assert_eq!(
            parse(event(&e)),
            json!({"type":"message_edited","room":"general","seq":7,"id":eid,"body":"hi","edited_at":"2026-12-07T08:00:00.123Z"})
        );
        let d = stored(EventKind::Delete);
        let did = d.id.to_string();
        assert_eq!(parse(event(&d)), json!({"type":"message_deleted","room":"general","seq":7,"id":did}));
        let room = RoomName::parse("general").expect("a name");
        let alice = Username::parse("alice").expect("a name");
        assert_eq!(
            parse(joined(&room, 3, [&alice].into_iter(), Some(true))),
            json!({"type":"joined","room":"general","last_seq":3,"online":["alice"],"recovered":true})
        );
        assert!(parse(joined(&room, 3, std::iter::empty(), None)).get("recovered").is_none());
        assert_eq!(
            parse(presence(&room, &alice, false)),
            json!({"type":"presence","room":"general","user":"alice","state":"offline"})
        );
        assert_eq!(parse(typing(&room, &alice)), json!({"type":"typing","room":"general","user":"alice"}));
        assert_eq!(parse(read("general", 5, 2)), json!({"type":"read","room":"general","last_read":5,"unread":2}));
    }

    #[test]
    fn answers_and_control_frames_have_the_contract_shape() {
        let room = RoomName::parse("general").expect("a name");
        let id = MessageId::new();
        assert_eq!(
            parse(ack(&room, Some("c1"), 4, id)),
            json!({"type":"ack","room":"general","client_msg_id":"c1","seq":4,"id":id.to_string()})
        );
        assert_eq!(
            parse(error(ErrorCode::TooLarge, "big", Some("c1"))),
            json!({"type":"error","code":"too_large","message":"big","ref":"c1"})
        );
        assert!(parse(error(ErrorCode::BadRequest, "x", None)).get("ref").is_none());
        assert_eq!(parse(pong(&Value::from(7))), json!({"type":"pong","ts":7}));
        assert_eq!(parse(reconnect("draining", 250)), json!({"type":"reconnect","reason":"draining","after_ms":250}));
    }

    #[test]
    fn the_wire_form_is_what_the_codec_writes() {
        use actix_codec::Encoder;
        for len in [0usize, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let mut by_codec = BytesMut::new();
            actix_http::ws::Codec::new()
                .encode(actix_http::ws::Message::Text(text.clone().into()), &mut by_codec)
                .expect("encoded");
            assert_eq!(wire(&text), by_codec.freeze(), "length {len}");
        }
    }
}
