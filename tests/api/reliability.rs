//! Reliability and security: slow consumers, limits, hostile origins,
//! supervision after panics, and faults injected between the server and
//! PostgreSQL / Redis.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::proxy::ChaosProxy;
use crate::support::{eventually, spawn_app_with, spawn_cluster_on, Mode, TestApp, TestDb, WsClient};

#[actix_web::test]
async fn a_client_that_stops_reading_is_disconnected_and_recovers_with_since() {
    let app =
        spawn_app_with(&[("MAX_OUTBOUND_BYTES", "65536"), ("RATE_LIMIT_PER_SEC", "10000"), ("RATE_LIMIT_BURST", "10000")]).await;
    let stalled_token = app.guest("stalled").await;
    let writer_token = app.guest("writer").await;
    let mut stalled = app.ws(&stalled_token).await;
    stalled.join("firehose").await;
    let mut writer = app.ws(&writer_token).await;
    writer.join("firehose").await;

    // ~200 KiB into the room while `stalled` reads nothing (and so answers
    // no ping). The writer reads as it goes, as a live client does.
    let body = "x".repeat(1000);
    let started = Instant::now();
    for chunk in 0..10 {
        for i in 0..20 {
            let n = chunk * 20 + i;
            writer.send_json(json!({"type": "send", "room": "firehose", "body": body, "client_msg_id": format!("f{n}")})).await;
        }
        for _ in 0..20 {
            writer.expect("ack").await;
        }
        writer.collect_until("firehose", chunk * 20, chunk * 20 + 20).await;
    }
    eprintln!("200 sends acked in {:?} with a stalled member in the room", started.elapsed());
    // No reading progress for the grace (10 s): closed with 1008.
    assert!(stalled.closed_within(Duration::from_secs(25)).await, "the stalled client is closed");
    assert!(app.metric("switchboard_slow_consumer_disconnects_total").await >= 1.0);

    // It comes back and misses nothing.
    let mut back = app.ws(&stalled_token).await;
    back.send_json(json!({"type": "join", "room": "firehose", "since": 0})).await;
    assert_eq!(back.expect("joined").await["recovered"], true);
    assert_eq!(back.collect_until("firehose", 0, 200).await.len(), 200);
}

/// Guarantee 6: a client that reads at a tenth of its room's rate for 30 s
/// is never disconnected and never sent an unbounded backlog: its live
/// stream pauses at MAX_OUTBOUND_BYTES and it is caught up from the
/// database, in order, with no gap and no duplicate, on the same socket.
#[actix_web::test]
async fn a_slow_reader_is_caught_up_in_order_on_the_same_socket_with_bounded_memory() {
    let app =
        spawn_app_with(&[("MAX_OUTBOUND_BYTES", "16384"), ("RATE_LIMIT_PER_SEC", "10000"), ("RATE_LIMIT_BURST", "10000")]).await;
    let reader_token = app.guest("tortoise").await;
    let writer_token = app.guest("hare").await;
    let mut reader = app.ws(&reader_token).await;
    reader.join("stream").await;
    let mut writer = app.ws(&writer_token).await;
    writer.join("stream").await;
    let rss = || async { app.metric("process_resident_memory_bytes").await };
    let rss_before = rss().await;

    // The room: 20 messages a second of ~600 bytes for 30 s.
    const RATE: u64 = 20;
    const SECONDS: u64 = 30;
    let total = (RATE * SECONDS) as i64;
    let body = "y".repeat(600);
    let sending = actix_web::rt::spawn(async move {
        let started = Instant::now();
        let mut acks = 0;
        let count = |f: Option<Value>| f.is_some_and(|f| f["type"] == "ack") as i64;
        for n in 0..total {
            let due = started + Duration::from_millis(n as u64 * 1000 / RATE);
            // The writer reads as it goes (its own messages, acks, pings).
            while Instant::now() < due {
                acks += count(writer.next_json_within(due.saturating_duration_since(Instant::now())).await);
            }
            writer.send_json(json!({"type": "send", "room": "stream", "body": body, "client_msg_id": format!("s{n}")})).await;
        }
        while acks < total {
            acks += count(Some(writer.next_json().await));
        }
        writer
    });

    // The reader: one frame every 500 ms (a tenth of the room's rate) while
    // the room is busy, answering pings as any client library does.
    let mut seqs: Vec<i64> = Vec::new();
    let mut rss_max = rss_before;
    let started = Instant::now();
    let mut last_sample = Instant::now();
    let mut pace = actix_web::rt::time::interval(Duration::from_millis(500));
    while started.elapsed() < Duration::from_secs(SECONDS) {
        pace.tick().await;
        if let Some(frame) = reader.next_json_within(Duration::from_secs(5)).await {
            if frame["type"] == "message" {
                seqs.push(frame["seq"].as_i64().expect("a seq"));
            }
        } else {
            panic!("the slow reader was disconnected (or starved) after {:?}", started.elapsed());
        }
        if last_sample.elapsed() > Duration::from_secs(2) {
            rss_max = rss_max.max(rss().await);
            last_sample = Instant::now();
        }
    }
    let read_slowly = seqs.len();
    assert!(app.metric("switchboard_catchups_total").await >= 1.0, "the live stream was paused");
    // Then it reads at full speed and gets the rest.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seqs.last().copied().unwrap_or(0) < total {
        assert!(Instant::now() < deadline, "caught up only to {:?}", seqs.last());
        let frame = reader.next_json_within(Duration::from_secs(10)).await.expect("still connected");
        if frame["type"] == "message" {
            seqs.push(frame["seq"].as_i64().expect("a seq"));
        }
    }
    let _writer = sending.await.expect("writer task");
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "every message, in order, once");
    reader.assert_usable().await;
    assert_eq!(app.metric("switchboard_slow_consumer_disconnects_total").await, 0.0);
    let catchups = app.metric("switchboard_catchups_total").await;
    eprintln!(
        "slow reader: {total} messages ({} read at a tenth of the rate), {catchups} pauses, server RSS {:.1} MiB before, {:.1} MiB at most",
        read_slowly,
        rss_before / 1048576.0,
        rss_max / 1048576.0
    );
    // Bounded: the unread backlog never exceeds the bound by more than a
    // frame, so the server does not grow with what the reader has not read
    // (360 KB were sent while it read 36 KB).
    assert!(rss_max - rss_before < 32.0 * 1048576.0, "RSS grew by {:.1} MiB", (rss_max - rss_before) / 1048576.0);
}

#[actix_web::test]
async fn connection_login_room_and_request_limits() {
    let app = spawn_app_with(&[
        ("MAX_CONNECTIONS", "4"),
        ("MAX_CONNECTIONS_PER_IP", "2"),
        ("TRUSTED_PROXIES", "none"),
        ("LOGIN_FAILURES_PER_MIN", "5"),
        ("MAX_ROOMS_PER_CONNECTION", "2"),
        ("HANDSHAKE_TIMEOUT_MS", "500"),
    ])
    .await;
    let token = app.register("limited").await;

    // Per address: 2; the third gets 429.
    let a = app.ws(&token).await;
    let b = app.ws(&token).await;
    assert_eq!(app.try_ws(&token).await.err(), Some(429));
    drop((a, b));

    // Brute force on sign-in: after 5 failures a minute, 429 even with the right password.
    for _ in 0..5 {
        let (s, _) = app.post("/api/v1/sessions", None, json!({"username": "limited", "password": "wrong guess"})).await;
        assert_eq!(s, 401);
    }
    let (s, v) = app.post("/api/v1/sessions", None, json!({"username": "limited", "password": "correct horse"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (429, Some("rate_limited")));

    // Rooms per connection.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let mut ws = app.ws(&token).await;
    ws.join("one").await;
    ws.join("two").await;
    ws.send_json(json!({"type": "join", "room": "three"})).await;
    let e = ws.expect("error").await;
    assert_eq!((e["code"].as_str(), e["ref"].as_str()), (Some("bad_request"), Some("three")));

    // Slowloris: a request head that never completes is cut off.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "unexpected answer {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "the half-sent request was held for {:?}", started.elapsed());
}

#[actix_web::test]
async fn instance_connection_cap_answers_503() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "2")]).await;
    let token = app.guest("crowd").await;
    let _a = app.ws(&token).await;
    let _b = app.ws(&token).await;
    assert_eq!(app.try_ws(&token).await.err(), Some(503));
}

#[actix_web::test]
async fn websocket_upgrades_from_other_origins_are_refused_and_pages_carry_security_headers() {
    let app = spawn_app_with(&[("ALLOWED_ORIGINS", "https://chat.example")]).await;
    let token = app.guest("origin").await;
    let url = |t: &str| format!("ws://127.0.0.1:{}/ws?token={t}", app.port);
    let status = |r: Result<_, awc::error::WsClientError>| match r {
        Ok(_) => 101,
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
        Err(e) => panic!("{e}"),
    };
    let evil = app.client.ws(url(&token)).origin("https://evil.example").connect().await.map(|_| ());
    assert_eq!(status(evil), 403);
    let listed = app.client.ws(url(&token)).origin("https://chat.example").connect().await.map(|_| ());
    assert_eq!(status(listed), 101);
    let same = app.client.ws(url(&token)).origin("http://127.0.0.1").connect().await.map(|_| ());
    assert_eq!(status(same), 101);

    for path in ["/", "/admin"] {
        let resp = app.client.get(app.url(path)).send().await.expect("page");
        let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let csp = h("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("x-frame-options"), "DENY");
    }
}

#[actix_web::test]
async fn a_panic_in_an_actor_does_not_take_the_instance_down() {
    let app = spawn_app_with(&[("SWITCHBOARD_TEST_HOOKS", "true")]).await;
    let victim = app.guest("victim").await;
    let other = app.guest("bystander").await;
    let mut v = app.ws(&victim).await;
    v.join("shaky").await;
    let mut o = app.ws(&other).await;
    o.join("shaky").await;
    o.send_n("shaky", "before", 3).await;
    o.collect_until("shaky", 0, 3).await;

    // A room actor panics: its members rejoin a fresh one from their last seq.
    v.send_text(r#"{"type":"__panic_room","room":"shaky"}"#).await;
    // The event: the member is rejoined to a fresh room actor.
    let rejoined = o.expect("joined").await;
    assert_eq!(rejoined["recovered"], true);
    o.send_n("shaky", "after", 3).await;
    assert_eq!(o.collect_until("shaky", 3, 6).await.len(), 3, "no gap and no duplicate across the restart");

    // A session panics: only its socket goes.
    v.send_text(r#"{"type":"__panic"}"#).await;
    assert!(v.closed_within(Duration::from_secs(5)).await);
    o.assert_usable().await;
    let (s, _) = app.request("GET", "/healthz", None, None).await;
    assert_eq!(s, 200);
    eventually(Duration::from_secs(5), "the panicked session to be cleaned up", || async {
        (app.metric("switchboard_ws_connections").await == 1.0).then_some(())
    })
    .await;
}

/// Sends `n` messages at `every`, keeping acks and refusals by client_msg_id.
async fn send_through(
    ws: &mut WsClient,
    room: &str,
    tag: &str,
    n: usize,
    every: Duration,
) -> (HashMap<String, Value>, Vec<String>) {
    let mut acks = HashMap::new();
    let mut refused = Vec::new();
    for i in 0..n {
        ws.send_json(json!({"type": "send", "room": room, "body": format!("{tag} {i}"), "client_msg_id": format!("{tag}-{i}")}))
            .await;
        actix_web::rt::time::sleep(every).await;
    }
    while acks.len() + refused.len() < n {
        let v = ws.next_json_within(Duration::from_secs(20)).await.expect("an ack or an error for every send");
        match v["type"].as_str() {
            Some("ack") => {
                acks.insert(v["client_msg_id"].as_str().expect("a string").to_string(), v);
            }
            Some("error") => {
                assert_eq!(v["code"], "unavailable", "{v}");
                refused.push(v["ref"].as_str().expect("a string").to_string());
            }
            _ => {}
        }
    }
    (acks, refused)
}

fn stored(db: &TestDb, acks: &HashMap<String, Value>) -> usize {
    let ids = acks.values().map(|a| format!("'{}'", a["id"].as_str().expect("a string"))).collect::<Vec<_>>().join(",");
    db.scalar::<i64>(&format!("SELECT count(*) AS v FROM messages WHERE id IN ({ids})")) as usize
}

#[actix_web::test]
async fn postgres_cut_during_traffic_loses_nothing_acked_and_recovers() {
    let proxy = ChaosProxy::start(&crate::support::pg_addr());
    let db = TestDb::new();
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{}", proxy.port, db.name);
    let app =
        TestApp::spawn(db.clone(), &[("DATABASE_URL", &via_proxy), ("DB_POOL_TIMEOUT_MS", "300"), ("WRITE_TIMEOUT_MS", "8000")])
            .await;
    let token = app.guest("sender").await;
    let reader = app.guest("reader").await;
    let mut w = app.ws(&token).await;
    w.join("outage").await;
    let mut r = app.ws(&reader).await;
    r.join("outage").await;

    let traffic = send_through(&mut w, "outage", "a", 60, Duration::from_millis(40));
    let fault = async {
        actix_web::rt::time::sleep(Duration::from_millis(600)).await;
        proxy.cut();
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let (s, v) = app.request("GET", "/readyz", None, None).await;
        actix_web::rt::time::sleep(Duration::from_millis(1200)).await;
        proxy.restore();
        (s, v)
    };
    let ((acks, refused), (ready_status, ready)) = futures_util::join!(traffic, fault);
    assert_eq!(ready_status, 503, "readiness reports the outage: {ready}");
    assert_eq!(ready["status"], "not_ready");
    eprintln!("{} acked, {} refused with unavailable during a 1.5 s PostgreSQL cut", acks.len(), refused.len());
    assert_eq!(stored(&db, &acks), acks.len(), "every acked message is stored");

    // Refused sends are retried with the same client_msg_id: stored once.
    for id in &refused {
        let i: usize = id.trim_start_matches("a-").parse().expect("a valid id");
        w.send_json(json!({"type": "send", "room": "outage", "body": format!("a {i}"), "client_msg_id": id})).await;
        w.expect("ack").await;
    }
    let total = db.scalar::<i64>("SELECT count(*) AS v FROM messages");
    assert_eq!(total, 60, "each of the 60 sends stored exactly once");
    assert_eq!(db.scalar::<i64>("SELECT max(seq) AS v FROM messages"), 60, "no gap in seqs");
    // The reader saw them in order, once.
    assert_eq!(r.collect_until("outage", 0, 60).await.len(), 60);
    app.wait_ready().await;
}

#[actix_web::test]
async fn redis_cut_and_slow_databases_keep_order_and_recover() {
    let redis_proxy = ChaosProxy::start(&crate::support::redis_addr());
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    let redis_url = format!("redis://127.0.0.1:{}", redis_proxy.port);
    let cluster = spawn_cluster_on(Mode::Redis(2), &redis_url, &prefix, &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let sender = a.guest("sender").await;
    let reader = b.guest("reader").await;
    let mut w = a.ws(&sender).await;
    w.join("bridge").await;
    let mut r = b.ws(&reader).await;
    r.join("bridge").await;

    // Redis cut while messages flow from A to B.
    let traffic = send_through(&mut w, "bridge", "r", 40, Duration::from_millis(30));
    let fault = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        redis_proxy.cut();
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        let (s, _) = b.request("GET", "/readyz", None, None).await;
        actix_web::rt::time::sleep(Duration::from_millis(600)).await;
        redis_proxy.restore();
        s
    };
    let ((acks, refused), ready_during) = futures_util::join!(traffic, fault);
    assert!(refused.is_empty(), "Redis being away refuses no send");
    assert_eq!(ready_during, 503);
    assert_eq!(r.collect_until("bridge", 0, acks.len() as i64).await.len(), acks.len());
    b.wait_ready().await;
}

#[actix_web::test]
async fn slow_postgres_and_redis_still_deliver_in_order() {
    let redis_proxy = ChaosProxy::start(&crate::support::redis_addr());
    let pg_proxy = ChaosProxy::start(&crate::support::pg_addr());
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    let db = TestDb::new();
    let pg_url = format!("postgres://postgres@127.0.0.1:{}/{}", pg_proxy.port, db.name);
    let redis_url = format!("redis://127.0.0.1:{}", redis_proxy.port);
    let env = [("DATABASE_URL", pg_url.as_str()), ("REDIS_URL", redis_url.as_str()), ("REDIS_KEY_PREFIX", prefix.as_str())];
    let a = TestApp::spawn(db.clone(), &env).await;
    let b = TestApp::spawn(db.clone(), &env).await;
    a.wait_ready().await;
    b.wait_ready().await;
    let sender = a.guest("sender").await;
    let reader = b.guest("reader").await;
    let mut w = a.ws(&sender).await;
    w.join("molasses").await;
    let mut r = b.ws(&reader).await;
    r.join("molasses").await;

    pg_proxy.set_latency(Duration::from_millis(20));
    redis_proxy.set_latency(Duration::from_millis(20));
    let (acks, refused) = send_through(&mut w, "molasses", "s", 30, Duration::from_millis(10)).await;
    assert!(refused.is_empty());
    assert_eq!(acks.len(), 30);
    assert_eq!(r.collect_until("molasses", 0, 30).await.len(), 30);
    let (s, _) = b.request("GET", "/readyz", None, None).await;
    assert_eq!(s, 200, "slow is not down");
    assert_eq!(stored(&db, &acks), 30);
}

/// Every background task is supervised: killed once (test hook), it is
/// counted, restarted, and the instance keeps serving — sends acked (a send
/// caught in a crashed writer batch is answered `unavailable` and goes again
/// with its client_msg_id), delivered across instances in order, readiness
/// back to ready.
#[actix_web::test]
async fn every_background_task_is_restarted_after_it_dies_and_the_instance_keeps_serving() {
    let cluster =
        crate::support::spawn_cluster(Mode::Redis(2), &[("SWITCHBOARD_TEST_HOOKS", "true"), ("CLEANUP_INTERVAL_MS", "200")])
            .await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let mut reader = b.ws(&b.guest("watcher").await).await;
    reader.join("alive").await;
    let mut sender = a.ws(&a.guest("talker").await).await;
    sender.join("alive").await;
    let mut killer = a.ws(&a.guest("saboteur").await).await;
    let mut sent = 0i64;
    let mut read = 0i64;
    let tasks = [
        "writer",
        "bus_publisher",
        "bus_subscriber",
        "control_loop",
        "heartbeats",
        "lease_pings",
        "stats_sampler",
        "readiness",
        "housekeeping",
    ];
    for task in tasks {
        let metric = format!(r#"switchboard_task_restarts_total{{task="{task}"}}"#);
        let before = a.metric(&metric).await;
        killer.send_text(&format!(r#"{{"type":"__kill_task","task":"{task}"}}"#)).await;
        // Traffic, so tasks that wait for work reach their checkpoint; every
        // send is acked in the end.
        let deadline = Instant::now() + Duration::from_secs(20);
        while a.metric(&metric).await <= before {
            assert!(Instant::now() < deadline, "task {task} was not restarted");
            sent += 1;
            send_until_acked(&mut sender, sent).await;
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..3 {
            sent += 1;
            send_until_acked(&mut sender, sent).await;
        }
        // Delivered across instances, in order, nothing missing.
        let got = reader.collect_until("alive", read, sent).await;
        assert_eq!(got.len() as i64, sent - read, "after {task} restarted");
        read = sent;
        eprintln!("{task}: restarted, {sent} messages so far");
    }
    // Stored once each, no gap.
    assert_eq!(cluster.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), sent, "nothing stored twice");
    assert_eq!(cluster.db.scalar::<i64>("SELECT max(seq) AS v FROM messages"), sent);
    a.wait_ready().await;
    let (_, ready) = a.request("GET", "/readyz", None, None).await;
    assert_eq!(ready["checks"]["tasks"], "ok", "{ready}");

    // A critical task that keeps failing (three restarts within a minute)
    // makes the instance not ready, and says which.
    for _ in 0..2 {
        let before = a.metric(r#"switchboard_task_restarts_total{task="writer"}"#).await;
        killer.send_text(r#"{"type":"__kill_task","task":"writer"}"#).await;
        while a.metric(r#"switchboard_task_restarts_total{task="writer"}"#).await <= before {
            sent += 1;
            send_until_acked(&mut sender, sent).await;
        }
    }
    let (s, ready) = a.request("GET", "/readyz", None, None).await;
    assert_eq!((s, ready["checks"]["tasks"]["writer"].as_str()), (503, Some("failing")), "{ready}");
}

/// Sends message `n` and waits for its ack; an `unavailable` answer (the
/// writer crashed under it) is retried with the same client_msg_id.
async fn send_until_acked(ws: &mut WsClient, n: i64) {
    let id = format!("k{n}");
    for _ in 0..20 {
        ws.send_json(json!({"type": "send", "room": "alive", "body": format!("beat {n}"), "client_msg_id": id})).await;
        loop {
            let f = ws.next_json().await;
            if f["type"] == "ack" && f["client_msg_id"] == id.as_str() {
                assert_eq!(f["seq"], n, "stored once, in order");
                return;
            }
            if f["type"] == "error" && f["ref"] == id.as_str() {
                // The shard died with this send in hand; the queue outlives
                // it, so the resend waits for the restarted shard's ack.
                assert_eq!(f["code"], "unavailable", "{f}");
                break;
            }
        }
    }
    panic!("send {n} never acked");
}
