//! A WebSocket client that reads frames the way the tests expect them:
//! by type, with a deadline, keeping the others for later.

use std::time::{Duration, Instant};

use actix_web::rt::time::timeout;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

impl WsClient {
    /// A connection just upgraded, once its `hello` is in (None: it closed
    /// or said something else first).
    pub async fn from_framed(framed: actix_codec::Framed<BoxedSocket, Codec>) -> Option<WsClient> {
        let mut ws = WsClient { framed, backlog: Vec::new(), instance: String::new() };
        let hello = ws.next_json_within(FRAME_WAIT).await?;
        if hello["type"] != "hello" {
            return None;
        }
        ws.instance = hello["instance"].as_str().unwrap_or_default().to_string();
        Some(ws)
    }
}

pub struct WsClient {
    framed: actix_codec::Framed<BoxedSocket, Codec>,
    /// Frames read while looking for another kind, kept for later reads.
    backlog: Vec<Value>,
    /// The instance named in `hello`.
    pub instance: String,
}

/// How long a test waits for a frame it expects.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// The frames that carry a room's seq.
const EVENTS: [&str; 3] = ["message", "message_edited", "message_deleted"];

impl WsClient {
    pub async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        self.framed.send(Message::Text(s.to_string().into())).await.expect("ws send");
    }

    pub async fn send_binary(&mut self, b: &[u8]) {
        self.framed.send(Message::Binary(b.to_vec().into())).await.expect("ws send");
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(Message::Close(None)).await;
    }

    /// The next JSON frame, or None when the socket closed or nothing came in `wait`.
    pub async fn next_json_within(&mut self, wait: Duration) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = timeout(left, self.framed.next()).await.ok()??;
            match frame {
                Ok(Frame::Text(bytes)) => return Some(serde_json::from_slice(&bytes).expect("server frames are JSON")),
                Ok(Frame::Ping(p)) => {
                    let _ = self.framed.send(Message::Pong(p)).await;
                }
                Ok(Frame::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        self.next_json_within(FRAME_WAIT).await.expect("expected a frame")
    }

    /// The next frame of `kind`; frames of other kinds stay queued.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_any(&[kind]).await
    }

    /// The next frame of any of `kinds`; frames of other kinds stay queued,
    /// in the order they came.
    pub async fn expect_any(&mut self, kinds: &[&str]) -> Value {
        let wanted = |v: &Value| v["type"].as_str().is_some_and(|t| kinds.contains(&t));
        if let Some(i) = self.backlog.iter().position(wanted) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + FRAME_WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let saved = std::mem::take(&mut self.backlog);
            let got = self.next_json_within(left).await;
            self.backlog = saved;
            match got {
                Some(v) if wanted(&v) => {
                    // Older unread frames first, then those skipped now.
                    self.backlog.extend(skipped);
                    return v;
                }
                Some(v) => skipped.push(v),
                None => panic!("no {kinds:?} frame; got {skipped:?}"),
            }
        }
    }

    /// Whether the server closes the socket within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match timeout(left, self.framed.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Frame::Close(_)))) => return true,
                Ok(Some(Ok(Frame::Text(b)))) => self.backlog.push(serde_json::from_slice(&b).unwrap_or(Value::Null)),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.send_json(json!({"type": "join", "room": room})).await;
        self.expect("joined").await
    }

    /// Reads `message` frames of `room` until seq `last`, asserting each seq
    /// is the previous one plus one, starting after `after`.
    pub async fn collect_until(&mut self, room: &str, after: i64, last: i64) -> Vec<Value> {
        self.seq_frames_until(&["message"], room, after, last).await
    }

    /// Reads the room events of `room` (`message`, `message_edited`,
    /// `message_deleted`) until seq `last`, asserting each seq is the
    /// previous one plus one, starting after `after`; other frames stay queued.
    pub async fn events_until(&mut self, room: &str, after: i64, last: i64) -> Vec<Value> {
        self.seq_frames_until(&EVENTS, room, after, last).await
    }

    async fn seq_frames_until(&mut self, kinds: &[&str], room: &str, after: i64, last: i64) -> Vec<Value> {
        let mut got = Vec::new();
        let mut expected = after + 1;
        while expected <= last {
            let m = self.expect_any(kinds).await;
            if m["room"] != room {
                continue;
            }
            let seq = m["seq"].as_i64().unwrap();
            assert_eq!(seq, expected, "gap or duplicate in {room}: expected seq {expected}, got {seq}: {m}");
            expected += 1;
            got.push(m);
        }
        got
    }

    /// A room event already here or arriving within `wait`; other frames
    /// stay queued.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<Value> {
        let is_event = |v: &Value| v["type"].as_str().is_some_and(|t| EVENTS.contains(&t));
        if let Some(i) = self.backlog.iter().position(is_event) {
            return Some(self.backlog.remove(i));
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let saved = std::mem::take(&mut self.backlog);
            let got = self.next_json_within(left).await;
            self.backlog = saved;
            match got {
                Some(v) if is_event(&v) => return Some(v),
                Some(v) => self.backlog.push(v),
                None => return None,
            }
        }
    }

    /// Sends n messages (client_msg_id `tag-i`) and waits for their acks.
    pub async fn send_n(&mut self, room: &str, tag: &str, n: usize) -> Vec<Value> {
        for i in 0..n {
            self.send_json(
                json!({"type": "send", "room": room, "body": format!("{tag} {i}"), "client_msg_id": format!("{tag}-{i}")}),
            )
            .await;
        }
        let mut acks = Vec::with_capacity(n);
        for _ in 0..n {
            acks.push(self.expect("ack").await);
        }
        acks
    }

    /// Proves the connection still answers.
    pub async fn assert_usable(&mut self) {
        let ts = rand::random::<u32>();
        self.send_json(json!({"type": "ping", "ts": ts})).await;
        let pong = self.expect("pong").await;
        assert_eq!(pong["ts"], ts);
    }
}
