//! The Socket.IO side of `--protocol socketio`: Engine.IO v4 over a plain
//! WebSocket, as socket.io-client speaks it. Packets: `0{…}` open, `40`
//! connect, `42[event, data]` event, `42<id>[…]` event wanting an ack,
//! `43<id>[…]` ack, `2`/`3` ping/pong.

use std::time::Duration;

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::common::{backoff, ATTEMPTS};

pub type WsSink = futures_util::stream::SplitSink<actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>, Message>;
pub type WsStream = futures_util::stream::SplitStream<actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>>;

/// A delivered message as the peer broadcasts it.
#[derive(Deserialize)]
pub struct Broadcast {
    pub seq: Option<i64>,
    pub body: Option<String>,
}

#[derive(Deserialize)]
struct AckBody {
    client_msg_id: Option<String>,
    last_seq: Option<i64>,
    error: Option<String>,
}

pub enum Incoming {
    Message(Broadcast),
    /// The ack of a send (its client_msg_id), or of the join (`last_seq`).
    Ack {
        client_msg_id: Option<String>,
        last_seq: Option<i64>,
        error: Option<String>,
    },
    /// Engine.IO ping: answer `3`.
    Ping,
    Other,
}

pub fn parse(text: &[u8]) -> Incoming {
    let Ok(text) = std::str::from_utf8(text) else { return Incoming::Other };
    if text == "2" {
        return Incoming::Ping;
    }
    if let Some(rest) = text.strip_prefix("42") {
        if let Ok((event, data)) = serde_json::from_str::<(String, Broadcast)>(rest) {
            if event == "message" {
                return Incoming::Message(data);
            }
        }
        return Incoming::Other;
    }
    if let Some(rest) = text.strip_prefix("43") {
        let payload = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        if let Ok((ack,)) = serde_json::from_str::<(AckBody,)>(payload) {
            return Incoming::Ack { client_msg_id: ack.client_msg_id, last_seq: ack.last_seq, error: ack.error };
        }
    }
    Incoming::Other
}

/// `send` with an ack.
pub fn send_frame(ack_id: u64, room: &str, body: &str, client_msg_id: &str) -> String {
    format!("42{ack_id}{}", json!(["send", {"room": room, "body": body, "client_msg_id": client_msg_id}]))
}

/// Opens the socket, connects to the default namespace and joins `room`;
/// the room's sequence at the join.
pub async fn connect_and_join(http: &awc::Client, url: &str, room: &str) -> Option<(WsSink, WsStream, i64)> {
    let ws_url = format!("{}/socket.io/?EIO=4&transport=websocket", url.replacen("http", "ws", 1));
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            actix_rt::time::sleep(backoff(attempt)).await;
        }
        let Ok((_, framed)) = http.ws(ws_url.as_str()).max_frame_size(1 << 20).connect().await else { continue };
        let (mut sink, mut stream) = framed.split();
        if !expect_prefix(&mut stream, "0").await {
            continue;
        }
        if sink.send(Message::Text("40".into())).await.is_err() || !expect_prefix(&mut stream, "40").await {
            continue;
        }
        let join = format!("420{}", json!(["join", room]));
        if sink.send(Message::Text(join.into())).await.is_err() {
            continue;
        }
        while let Ok(Some(Ok(frame))) = actix_rt::time::timeout(Duration::from_secs(30), stream.next()).await {
            let Frame::Text(b) = frame else { continue };
            if let Incoming::Ack { last_seq, .. } = parse(&b) {
                return Some((sink, stream, last_seq.unwrap_or(0)));
            }
        }
    }
    None
}

async fn expect_prefix(stream: &mut WsStream, prefix: &str) -> bool {
    while let Ok(Some(Ok(frame))) = actix_rt::time::timeout(Duration::from_secs(30), stream.next()).await {
        if let Frame::Text(b) = frame {
            return b.starts_with(prefix.as_bytes());
        }
    }
    false
}
