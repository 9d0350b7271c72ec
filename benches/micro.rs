//! Micro-benchmarks (criterion): frame parse and serialise, room fan-out to
//! 1,000 local sessions, and the writer's group commit.
//!
//!   cargo bench --bench micro
//!
//! The fan-out and writer benches need PostgreSQL (DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/switchboard_bench, created if missing).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use switchboard::bus::{Bus, Medium};
use switchboard::cache::recent::RecentLists;
use switchboard::chat::presence_store::PresenceStore;
use switchboard::chat::room::RoomSettings;
use switchboard::chat::room::{Deliver, Join};
use switchboard::chat::{Registry, RoomEvent};
use switchboard::config::Config;
use switchboard::domain::{Body, ClientMsgId, MessageId, RoomId, RoomName, SessionId, UserId, Username};
use switchboard::frames;
use switchboard::store::bootstrap::prepare_database;
use switchboard::store::models::StoredMessage;
use switchboard::store::writer::{CommitListener, Committed, SendRequest, Writer, WriterConfig};
use switchboard::store::Store;
use switchboard::ws::protocol::ClientFrame;

fn sample_message(seq: i64) -> StoredMessage {
    StoredMessage {
        room_id: RoomId(1),
        room: RoomName::parse("general").expect("name"),
        seq,
        id: MessageId::new(),
        user_id: UserId::new(),
        user: Username::parse("alice").expect("name"),
        body: "a message of about the size people type in a chat, give or take".into(),
        sent_at: chrono::Utc::now(),
        client_msg_id: Some(ClientMsgId::parse("c-123").expect("id")),
        kind: Default::default(),
        edited_at: None,
        deleted: false,
    }
}

fn frames_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("frames");
    let send =
        r#"{"type":"send","room":"general","body":"a message of about the size people type in a chat","client_msg_id":"c-123"}"#;
    g.bench_function("parse_send", |b| b.iter(|| ClientFrame::parse(std::hint::black_box(send))));
    let msg = sample_message(42);
    g.bench_function("serialise_message", |b| b.iter(|| frames::message(std::hint::black_box(&msg))));
    g.finish();
}

fn bench_config() -> Config {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/switchboard_bench".into());
    Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.clone()),
        "WRITER_SHARDS" => Some("1".into()),
        _ => None,
    })
    .expect("config")
}

/// Counts the message frames it is given; stands in for a WebSocket session.
struct Sink {
    received: Arc<AtomicUsize>,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<RoomEvent> for Sink {
    type Result = ();

    fn handle(&mut self, event: RoomEvent, _: &mut Context<Self>) {
        if let RoomEvent::Messages { frames, .. } = event {
            self.received.fetch_add(frames.len(), Ordering::Relaxed);
        }
    }
}

fn fanout_bench(c: &mut Criterion) {
    let config = bench_config();
    if let Err(e) = prepare_database(&config.database.kind, Duration::from_secs(5)) {
        eprintln!("skipping fan-out bench: {e}");
        return;
    }
    let system = System::new();
    let members = 1000usize;
    let (room, received) = system.block_on(async {
        let store = Store::new(&config);
        let presence = PresenceStore::new(None, "bench:", "bench", Duration::from_secs(10));
        let settings = RoomSettings {
            replay_limit: 1000,
            idle: Duration::from_secs(3600),
            gap_heal: Duration::from_millis(40),
            resync: Duration::from_secs(3600),
        };
        // One instance: nobody to hear the bus, so its intake never starts.
        let (bus, _intake) = Bus::build("bench", Medium::Local);
        let registry = Registry::new(store.clone(), settings, presence, RecentLists::new(0, None), bus);
        let name = RoomName::parse(&format!("fanout-{}", rand::random::<u32>())).expect("name");
        let model = store.ensure_public_room(&name, None).await.expect("room");
        let room = registry.get_or_start(model.id, &model.name);
        let received = Arc::new(AtomicUsize::new(0));
        for i in 0..members {
            let sink = Sink { received: received.clone() }.start();
            room.send(Join {
                session: SessionId::next(),
                user_id: UserId::new(),
                user: Username::parse(&format!("member{i}")).expect("name"),
                recipient: sink.recipient(),
                since: None,
            })
            .await
            .expect("join");
        }
        (room, received)
    });

    let mut seq = 0i64;
    let mut g = c.benchmark_group("room_fanout");
    g.throughput(Throughput::Elements(members as u64));
    g.bench_function(BenchmarkId::new("one_message_to_sessions", members), |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    seq += 1;
                    let target = received.load(Ordering::Relaxed) + members;
                    let message = Arc::new(sample_message(seq));
                    room.do_send(Deliver {
                        messages: vec![Committed {
                            message,
                            received_at: Instant::now(),
                            available_at: Instant::now(),
                            trace: None,
                        }],
                        queued_at: Instant::now(),
                    });
                    while received.load(Ordering::Relaxed) < target {
                        actix::clock::sleep(Duration::from_micros(20)).await;
                    }
                }
                started.elapsed()
            })
        })
    });
    g.finish();
}

struct Discard;

impl CommitListener for Discard {
    fn committed(&self, _: Vec<Committed>) {}
}

fn writer_bench(c: &mut Criterion) {
    let config = bench_config();
    if let Err(e) = prepare_database(&config.database.kind, Duration::from_secs(5)) {
        eprintln!("skipping writer bench: {e}");
        return;
    }
    let system = System::new();
    let (writer, room, user) = system.block_on(async {
        let store = Store::new(&config);
        let name = RoomName::parse(&format!("writer-{}", rand::random::<u32>())).expect("name");
        let room = store.ensure_public_room(&name, None).await.expect("room");
        let username = Username::parse(&format!("w{}", rand::random::<u32>())).expect("name");
        let user = store.create_user(&username, None, true).await.expect("user");
        let writer = Writer::start(
            WriterConfig {
                shards: 1,
                batch_max: 512,
                queue: 100_000,
                write_timeout: Duration::from_secs(10),
                stall: Duration::from_secs(2),
            },
            store.settings().clone(),
            Arc::new(Discard),
        );
        (writer, room, user)
    });
    let mut g = c.benchmark_group("writer_group_commit");
    g.sample_size(20);
    for batch in [1usize, 64, 512] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::new("messages_per_commit", batch), |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let sends = (0..batch).map(|_| {
                            writer.send(SendRequest {
                                room_id: room.id,
                                room: room.name.clone(),
                                user_id: user.id,
                                user: user.username.clone(),
                                body: Body::parse("benchmark message body").expect("body"),
                                client_msg_id: None,
                                received_at: Instant::now(),
                                trace: None,
                            })
                        });
                        for r in futures_util::future::join_all(sends).await {
                            r.expect("stored");
                        }
                    }
                    started.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, frames_bench, fanout_bench, writer_bench);
criterion_main!(benches);
