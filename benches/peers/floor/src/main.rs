//! The floor: what a WebSocket fan-out costs on this machine when it stores
//! nothing, authenticates nobody and shares every frame's bytes. It speaks
//! just enough of Switchboard's contract for the load generator: guest
//! sign-in and tickets (any answer will do), `/ws`, `join` → `joined`,
//! `send` → a `message` to every member and an `ack`, `ping` → `pong`, and
//! `/metrics` with the process's CPU and RSS. One writer task per socket,
//! frames serialised once per message.
//!
//!   PORT=3100 ./target/release/switchboard-floor

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

type Outbox = mpsc::UnboundedSender<Message>;

#[derive(Default)]
struct Room {
    seq: i64,
    members: HashMap<u64, Outbox>,
}

#[derive(Default)]
struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3100);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    println!("floor listening on http://127.0.0.1:{port}");
    let hub = Arc::new(Hub::default());
    let mut next_id = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        tokio::spawn(serve(stream, hub.clone(), next_id));
    }
}

/// One HTTP request per connection (or the upgrade): the head, then an answer.
async fn serve(mut stream: TcpStream, hub: Arc<Hub>, id: u64) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let key = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("sec-websocket-key").then(|| value.trim().to_string())
    });
    if path.starts_with("/ws") {
        let Some(key) = key else { return };
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
        return chat(ws, hub, id).await;
    }
    let body = match path.as_str() {
        p if p.starts_with("/api/v1/sessions/guest") => {
            json!({"token": format!("t{id}"), "user": {"id": id.to_string(), "username": format!("u{id}"), "guest": true}})
                .to_string()
        }
        p if p.starts_with("/api/v1/sessions/ticket") => json!({"ticket": format!("k{id}"), "expires_in": 30}).to_string(),
        "/metrics" => metrics(),
        "/readyz" | "/healthz" => json!({"status": "ready"}).to_string(),
        _ => String::from("{}"),
    };
    let answer = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = stream.write_all(answer.as_bytes()).await;
}

/// The figures the load generator reads, under Switchboard's names.
fn metrics() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let rss_pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(0.0);
    format!("switchboard_process_cpu_seconds {cpu}\nprocess_resident_memory_bytes {}\n", rss_pages * 4096.0)
}

async fn chat(ws: WebSocketStream<TcpStream>, hub: Arc<Hub>, id: u64) {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    // The writer: everything queued for this socket, flushed together.
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let hello = json!({"type": "hello", "user": {"id": id.to_string(), "username": format!("u{id}"), "guest": true},
                       "instance": "floor", "heartbeat_ms": 10000});
    let _ = tx.send(Message::text(hello.to_string()));
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
        let room = frame["room"].as_str().unwrap_or_default().to_string();
        match frame["type"].as_str() {
            Some("join") => {
                let mut rooms = hub.rooms.lock().expect("rooms");
                let r = rooms.entry(room.clone()).or_default();
                r.members.insert(id, tx.clone());
                let _ = tx.send(Message::text(json!({"type": "joined", "room": room, "last_seq": r.seq, "online": []}).to_string()));
                joined.push(room);
            }
            Some("send") => {
                let mut rooms = hub.rooms.lock().expect("rooms");
                let Some(r) = rooms.get_mut(&room) else { continue };
                r.seq += 1;
                let cmid = frame["client_msg_id"].clone();
                let message = json!({"type": "message", "room": room, "seq": r.seq, "id": r.seq.to_string(),
                                     "user": format!("u{id}"), "body": frame["body"], "sent_at": "", "client_msg_id": cmid});
                // Serialised once; every member gets the same bytes.
                let bytes = Utf8Bytes::from(message.to_string());
                for member in r.members.values() {
                    let _ = member.send(Message::Text(bytes.clone()));
                }
                let ack = json!({"type": "ack", "room": room, "client_msg_id": cmid, "seq": r.seq, "id": r.seq.to_string()});
                let _ = tx.send(Message::text(ack.to_string()));
            }
            Some("ping") => {
                let _ = tx.send(Message::text(json!({"type": "pong", "ts": frame["ts"]}).to_string()));
            }
            _ => {}
        }
    }
    let mut rooms = hub.rooms.lock().expect("rooms");
    for room in joined {
        if let Some(r) = rooms.get_mut(&room) {
            r.members.remove(&id);
        }
    }
    drop(rooms);
    writer.abort();
}
