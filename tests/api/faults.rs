//! Faults between the server and its services, injected by a proxy of the
//! test's own: PostgreSQL or Redis cut during traffic, both slow. Each fault
//! window opens and closes on events (sends made, readiness seen), not on
//! timers.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::proxy::ChaosProxy;
use crate::support::{eventually, spawn_cluster_on, Mode, TestApp, TestDb, WsClient};

/// Sends `n` messages at `every`, counting them in `sent` (a fault window
/// waits on it), and keeps acks and refusals by client_msg_id.
async fn send_through(
    ws: &mut WsClient,
    room: &str,
    tag: &str,
    n: usize,
    every: Duration,
    sent: &Cell<usize>,
) -> (HashMap<String, Value>, Vec<String>) {
    let mut acks = HashMap::new();
    let mut refused = Vec::new();
    for i in 0..n {
        ws.send_json(json!({"type": "send", "room": room, "body": format!("{tag} {i}"), "client_msg_id": format!("{tag}-{i}")}))
            .await;
        sent.set(i + 1);
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

/// Until `n` sends have gone out.
async fn sends_made(sent: &Cell<usize>, n: usize) {
    eventually(Duration::from_secs(30), &format!("{n} sends to go out"), || async { (sent.get() >= n).then_some(()) }).await;
}

/// Until `/readyz` answers 503; its answer.
async fn not_ready(app: &TestApp) -> Value {
    eventually(Duration::from_secs(10), "readiness to report the outage", || async {
        let (s, v) = app.request("GET", "/readyz", None, None).await;
        (s == 503).then_some(v)
    })
    .await
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

    // The cut opens after 15 sends, once traffic flows, and closes once
    // readiness has seen it, a commit has failed on it, and 20 more sends
    // went out into it.
    let sent = Cell::new(0);
    let traffic = send_through(&mut w, "outage", "a", 60, Duration::from_millis(40), &sent);
    let fault = async {
        sends_made(&sent, 15).await;
        proxy.cut();
        let cut_at = sent.get();
        let ready = not_ready(&app).await;
        eventually(Duration::from_secs(20), "a commit to fail on the cut", || async {
            (app.metric("switchboard_writer_retries_total").await >= 1.0).then_some(())
        })
        .await;
        sends_made(&sent, cut_at + 20).await;
        proxy.restore();
        ready
    };
    let ((acks, refused), ready) = futures_util::join!(traffic, fault);
    assert_eq!(ready["status"], "not_ready", "{ready}");
    eprintln!("{} acked, {} refused with unavailable during a PostgreSQL cut", acks.len(), refused.len());
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

    // Redis cut while messages flow from A to B: it opens after 10 sends and
    // closes once B's readiness has seen it and 10 more sends went out into it.
    let sent = Cell::new(0);
    let traffic = send_through(&mut w, "bridge", "r", 40, Duration::from_millis(30), &sent);
    let fault = async {
        sends_made(&sent, 10).await;
        redis_proxy.cut();
        let cut_at = sent.get();
        let ready = not_ready(b).await;
        sends_made(&sent, cut_at + 10).await;
        redis_proxy.restore();
        ready
    };
    let ((acks, refused), ready_during) = futures_util::join!(traffic, fault);
    assert!(refused.is_empty(), "Redis being away refuses no send");
    assert_eq!(ready_during["status"], "not_ready", "{ready_during}");
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
    let (acks, refused) = send_through(&mut w, "molasses", "s", 30, Duration::from_millis(10), &Cell::new(0)).await;
    assert!(refused.is_empty());
    assert_eq!(acks.len(), 30);
    assert_eq!(r.collect_until("molasses", 0, 30).await.len(), 30);
    let (s, _) = b.request("GET", "/readyz", None, None).await;
    assert_eq!(s, 200, "slow is not down");
    assert_eq!(stored(&db, &acks), 30);
}
