//! What rooms tell sessions. Frames are serialised once by the room and shared
//! by every recipient (`ByteString` and `Bytes` clones are reference counts).

use std::sync::Arc;
use std::time::Instant;

use actix::Message;
use actix_web::web::Bytes;
use bytestring::ByteString;

use crate::domain::{RoomId, RoomName};
use crate::error::ErrorCode;
use crate::telemetry::delivery::DeliveryTrace;

/// One serialised `message` frame with its seq, so the session can check order.
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub seq: i64,
    /// The frame with its WebSocket header (`frames::wire`), encoded once
    /// and written as is by every recipient's socket.
    pub wire: Bytes,
    /// When this instance received the send (local sends only), for the
    /// delivery-latency histogram.
    pub received_at: Option<Instant>,
    /// When the message became available on this instance (committed here,
    /// or arrived over the bus): the start of the `fanout` stage. None for
    /// replays, which are not live deliveries.
    pub available_at: Option<Instant>,
    /// Its delivery trace (live deliveries, while tracing is on): every
    /// recipient's write is noted on it.
    pub trace: Option<Arc<DeliveryTrace>>,
}

impl OutFrame {
    /// A message read back (replay, history), not a live delivery.
    pub fn replayed(seq: i64, text: &str) -> OutFrame {
        OutFrame { seq, wire: crate::frames::wire(text), received_at: None, available_at: None, trace: None }
    }
}

#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum RoomEvent {
    /// The answer to a join: write `frame`; the messages that follow start
    /// right after seq `after` (the client's `since` when replaying, else `last_seq`).
    Joined { room: RoomName, last_seq: i64, after: i64, frame: ByteString },
    /// Messages in ascending seq (the room by id: this is the hot path, one
    /// per delivery, so nothing here allocates).
    Messages { room: RoomId, frames: Arc<[OutFrame]> },
    /// Presence or typing, on the wire (`frames::wire`): written as is.
    Notice { frame: Bytes },
    /// The session no longer receives this room (removed from it, or its
    /// replay could not be read); the client gets an `error` frame.
    Removed { room: RoomName, code: ErrorCode, message: String },
}
