//! The hot path's operations, each run a given number of times, for
//! instruction counting under callgrind (`scripts/perf-gate.sh`): counts,
//! unlike wall-clock times, repeat exactly on a noisy machine.
//!
//!   target/release/deps/instructions-* <op> <iterations>
//!
//! Ops: parse_send (a `send` frame parsed), serialise_message (a `message`
//! frame written), sequencer (one in-order message through a room's
//! sequencer), fanout_1000 (one message's frame filtered for 1,000
//! sessions' streams), cache_hit (a membership answered by the L1 cache),
//! sqlite_append (one lone message committed by the embedded writer's
//! append, synced as in production; the sync's kernel time is not counted,
//! so this is SQLite's and diesel's own work per message).
//! The gate runs each op at two iteration counts and takes the difference,
//! so start-up and set-up cancel out.

use std::hint::black_box;

use switchboard::cache::layered::{Layered, Settings};
use switchboard::cache::Membership;
use switchboard::chat::sequencer::Sequencer;
use switchboard::chat::OutFrame;
use switchboard::domain::{ClientMsgId, MessageId, RoomId, RoomName, UserId, Username};
use switchboard::frames;
use switchboard::store::models::StoredMessage;
use switchboard::ws::protocol::ClientFrame;
use switchboard::ws::streams::Streams;

fn sample_message(seq: i64) -> StoredMessage {
    StoredMessage {
        room_id: RoomId(1),
        room: RoomName::parse("general").expect("name"),
        seq,
        id: MessageId(uuid::Uuid::from_u128(42)),
        user_id: UserId(uuid::Uuid::from_u128(7)),
        user: Username::parse("alice").expect("name"),
        body: "a message of about the size people type in a chat, give or take".into(),
        sent_at: chrono::DateTime::from_timestamp_millis(1_764_000_000_000).expect("time"),
        client_msg_id: Some(ClientMsgId::parse("c-123").expect("id")),
        kind: Default::default(),
        edited_at: None,
        deleted: false,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_default();
    let n: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    match op.as_str() {
        "parse_send" => {
            let send = r#"{"type":"send","room":"general","body":"a message of about the size people type in a chat","client_msg_id":"c-123"}"#;
            for _ in 0..n {
                let _ = black_box(ClientFrame::parse(black_box(send)));
            }
        }
        "serialise_message" => {
            let msg = sample_message(42);
            for _ in 0..n {
                black_box(frames::message(black_box(&msg)));
            }
        }
        "sequencer" => {
            let mut seq: Sequencer<i64> = Sequencer::new(0);
            for s in 1..=n {
                black_box(seq.accept([s]));
            }
        }
        "fanout_1000" => {
            let room = RoomName::parse("general").expect("name");
            let mut sessions: Vec<Streams<u32, ()>> = (0..1000).map(|_| Streams::default()).collect();
            for s in sessions.iter_mut() {
                let _ = s.request_join(&room, None, 100, |_| false);
                let _ = s.authorized(&room, RoomId(1), 0);
                let _ = s.arrived(&room, 0);
            }
            for seq in 1..=n {
                let msg = sample_message(seq);
                let frame = [OutFrame {
                    seq,
                    wire: frames::wire(&frames::message(&msg)),
                    received_at: None,
                    available_at: None,
                    trace: None,
                }];
                for s in sessions.iter_mut() {
                    black_box(s.deliver(RoomId(1), &frame, true));
                }
            }
        }
        "cache_hit" => {
            let settings = Settings {
                name: switchboard::metrics::CacheName::Membership,
                max_bytes: 1 << 20,
                ttl: std::time::Duration::from_secs(600),
                negative_ttl: std::time::Duration::from_secs(60),
                l2_ttl: std::time::Duration::from_secs(600),
                enabled: true,
            };
            let cache: std::sync::Arc<Layered<Membership, bool>> = Layered::new(settings, None, None, None);
            let key = Membership(RoomId(1), UserId(uuid::Uuid::from_u128(7)));
            actix_rt::System::new().block_on(async move {
                cache.put(&key, true).await;
                for _ in 0..n {
                    let hit = cache.get_or_load(black_box(&key), async { Ok(false) }).await;
                    black_box(hit.ok());
                }
            });
        }
        "sqlite_append" => sqlite_append(n),
        other => {
            eprintln!("unknown op {other:?}: parse_send, serialise_message, sequencer, fanout_1000, cache_hit, sqlite_append");
            std::process::exit(2);
        }
    }
}

fn sqlite_append(n: i64) {
    use diesel_async::SimpleAsyncConnection;
    use switchboard::config::Database;
    use switchboard::store::append::{append_sqlite, AppendInput};
    use switchboard::store::connection::{ConnectionSettings, SqliteWriterConn};

    // Under target/, which the gate runs beside; gone again at the end.
    let dir = std::path::PathBuf::from(format!("target/instructions-sqlite-{}", std::process::id()));
    let path = dir.join("bench.db");
    let _ = std::fs::remove_dir_all(&dir);
    switchboard::store::bootstrap::prepare_database(&Database::Sqlite { path: path.clone() }, std::time::Duration::from_secs(5))
        .expect("a fresh embedded database");
    actix_rt::System::new().block_on(async {
        // Opened as the writer opens it (its pragmas included).
        let mut conn: SqliteWriterConn =
            ConnectionSettings::embedded(path.clone()).connect_sqlite().await.expect("the writer's connection");
        conn.batch_execute(
            "INSERT INTO users (id, username, guest) VALUES (x'00000000000000000000000000000007', 'alice', 1); \
             INSERT INTO rooms (name) VALUES ('general')",
        )
        .await
        .expect("a user and a room");
        let sent_at = chrono::DateTime::from_timestamp_millis(1_764_000_000_000).expect("time");
        for i in 0..n {
            let client_msg_id = format!("c-{i}");
            let input = AppendInput {
                room_id: 1,
                user_id: uuid::Uuid::from_u128(7),
                id: uuid::Uuid::from_u128(1_000_000 + i as u128),
                body: "a message of about the size people type in a chat, give or take",
                client_msg_id: Some(&client_msg_id),
                sent_at,
            };
            let rows = append_sqlite(&mut conn, black_box(&[input])).await.expect("the append");
            assert!(rows.len() == 1 && !rows[0].out_existed, "one new message per append");
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
