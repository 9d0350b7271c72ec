//! Guarantees 1-2: every receiver sees every message once, in seq order with
//! no gaps, and a rejoin with `since` resumes exactly where it left off.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::support::{spawn_app_with, TestApp};

fn fast_limits() -> [(&'static str, &'static str); 2] {
    [("RATE_LIMIT_PER_SEC", "10000"), ("RATE_LIMIT_BURST", "10000")]
}

on_both_backends! {
async fn concurrent_senders_every_receiver_sees_everything_once_in_order() {
    let app = spawn_app_with(&fast_limits()).await;
    const SENDERS: usize = 6;
    const PER_SENDER: usize = 60;
    const HTTP_SENDS: usize = 20;
    let total = (SENDERS * PER_SENDER + HTTP_SENDS) as i64;

    let mut receivers = Vec::new();
    for i in 0..3 {
        let token = app.guest(&format!("reader{i}")).await;
        let mut ws = app.ws(&token).await;
        ws.join("busy").await;
        receivers.push(ws);
    }
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let token = app.guest(&format!("writer{i}")).await;
        let mut ws = app.ws(&token).await;
        ws.join("busy").await;
        senders.push(ws);
    }
    let http_token = app.guest("httpwriter").await;

    let send_all = senders.iter_mut().enumerate().map(|(i, ws)| async move {
        for n in 0..PER_SENDER {
            ws.send_json(json!({"type": "send", "room": "busy", "body": format!("w{i} n{n}"), "client_msg_id": format!("w{i}-{n}")}))
                .await;
        }
        let mut acks = HashMap::new();
        while acks.len() < PER_SENDER {
            let ack = ws.expect("ack").await;
            acks.insert(ack["client_msg_id"].as_str().unwrap().to_string(), ack["seq"].as_i64().unwrap());
        }
        // A sender's own messages get increasing seqs in the order it sent them.
        let mine: Vec<i64> = (0..PER_SENDER).map(|n| acks[&format!("w{i}-{n}")]).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "sender {i} order: {mine:?}");
        acks
    });
    let http = async {
        let mut seqs = Vec::new();
        for n in 0..HTTP_SENDS {
            let (s, m) = app.post("/api/v1/rooms/busy/messages", Some(&http_token), json!({"body": format!("http {n}")})).await;
            assert_eq!(s, 201);
            seqs.push(m["seq"].as_i64().unwrap());
        }
        seqs
    };
    let (acks, http_seqs) = futures_util::join!(join_all(send_all), http);

    let mut acked: HashSet<i64> = acks.iter().flat_map(|a| a.values().copied()).collect();
    acked.extend(http_seqs);
    assert_eq!(acked.len() as i64, total, "every send acked with a distinct seq");
    assert_eq!(acked, (1..=total).collect::<HashSet<_>>(), "seqs are exactly 1..=total");

    let reads = receivers.iter_mut().map(|ws| ws.collect_until("busy", 0, total));
    for got in join_all(reads).await {
        assert_eq!(got.len() as i64, total);
        let ids: HashSet<_> = got.iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len() as i64, total, "no duplicate ids");
    }
    // And nothing more arrives afterwards.
    for ws in receivers.iter_mut() {
        ws.send_json(json!({"type": "ping", "ts": 1})).await;
        let next = ws.expect("pong").await;
        assert_eq!(next["ts"], 1);
    }
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), total);
}
}

on_both_backends! {
async fn rejoin_with_since_replays_exactly_what_was_missed_then_live() {
    let app = spawn_app_with(&fast_limits()).await;
    let writer = app.guest("writer").await;
    let reader = app.guest("reader").await;
    let mut w = app.ws(&writer).await;
    w.join("replay").await;
    let mut r = app.ws(&reader).await;
    r.join("replay").await;

    w.send_n("replay", "a", 5).await;
    let seen = r.collect_until("replay", 0, 5).await;
    let last_seen = seen.last().unwrap()["seq"].as_i64().unwrap();
    r.close().await;

    w.send_n("replay", "b", 7).await;

    // Reconnect and rejoin while the writer keeps sending.
    let mut r = app.ws(&reader).await;
    let (_, joined) = futures_util::join!(w.send_n("replay", "c", 40), async {
        r.send_json(json!({"type": "join", "room": "replay", "since": last_seen})).await;
        r.expect("joined").await
    });
    assert_eq!(joined["recovered"], true);
    assert!(joined["last_seq"].as_i64().unwrap() >= 12);
    let got = r.collect_until("replay", last_seen, 52).await;
    assert_eq!(got[0]["body"], "b 0");

    // And the live stream continues.
    w.send_n("replay", "d", 1).await;
    let live = r.expect("message").await;
    assert_eq!(live["seq"], 53);
}
}

on_both_backends! {
async fn beyond_the_replay_limit_the_client_is_told_to_page() {
    let mut env = fast_limits().to_vec();
    env.push(("REPLAY_LIMIT", "5"));
    let app = spawn_app_with(&env).await;
    let writer = app.guest("writer").await;
    let mut w = app.ws(&writer).await;
    w.join("far").await;
    w.send_n("far", "x", 12).await;

    let reader = app.guest("reader").await;
    let mut r = app.ws(&reader).await;
    r.send_json(json!({"type": "join", "room": "far", "since": 2})).await;
    let joined = r.expect("joined").await;
    assert_eq!(joined["recovered"], false);
    assert_eq!(joined["last_seq"], 12);
    // Within the limit it replays.
    let mut r2 = app.ws(&reader).await;
    r2.send_json(json!({"type": "join", "room": "far", "since": 8})).await;
    assert_eq!(r2.expect("joined").await["recovered"], true);
    r2.collect_until("far", 8, 12).await;

    // The gap comes from history; the live stream still follows.
    let page = app.history("far", &reader, "after=2&limit=200").await;
    assert_eq!(page.len(), 10);
    w.send_n("far", "y", 1).await;
    assert_eq!(r.expect("message").await["seq"], 13);
}
}

on_both_backends! {
async fn many_rooms_stay_separate() {
    let app = spawn_app_with(&fast_limits()).await;
    let token = app.guest("hopper").await;
    let mut ws = app.ws(&token).await;
    for room in ["r1", "r2", "r3"] {
        ws.join(room).await;
    }
    for i in 0..10 {
        for room in ["r1", "r2", "r3"] {
            ws.send_json(json!({"type": "send", "room": room, "body": format!("{room} {i}")})).await;
        }
    }
    let mut next: HashMap<String, i64> = HashMap::new();
    let mut count = 0;
    while count < 30 {
        let m = ws.expect("message").await;
        let room = m["room"].as_str().unwrap().to_string();
        let expected = next.entry(room.clone()).or_insert(1);
        assert_eq!(m["seq"].as_i64().unwrap(), *expected, "{room}");
        assert_eq!(m["body"], format!("{room} {}", *expected - 1));
        *expected += 1;
        count += 1;
    }
    let _ = (Duration::ZERO, TestApp::url);
}
}
