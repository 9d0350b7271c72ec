//! Supervision: a panicking actor or a background task that dies is
//! restarted, and the instance keeps serving without losing what it acked.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{eventually, spawn_app_with, Mode, WsClient};

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
