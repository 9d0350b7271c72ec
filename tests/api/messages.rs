use serde_json::json;

use crate::support::spawn_app;

on_both_backends! {
async fn http_send_is_durable_and_idempotent() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    app.post("/api/v1/rooms", Some(&alice), json!({"name": "general"})).await;

    let (s, m) = app.post("/api/v1/rooms/general/messages", Some(&alice), json!({"body": "first", "client_msg_id": "k1"})).await;
    assert_eq!(s, 201);
    assert_eq!(m["seq"], 1);
    assert_eq!(m["room"], "general");
    assert_eq!(m["user"], "alice");
    assert_eq!(m["body"], "first");
    assert_eq!(m["client_msg_id"], "k1");
    let sent_at = m["sent_at"].as_str().unwrap();
    assert_eq!(sent_at.len(), 24, "millisecond RFC 3339 in UTC: {sent_at}");
    assert!(sent_at.ends_with('Z'));

    // The repeat answers 200 with the original and writes nothing.
    let (s, again) = app.post("/api/v1/rooms/general/messages", Some(&alice), json!({"body": "changed", "client_msg_id": "k1"})).await;
    assert_eq!(s, 200);
    assert_eq!(again["id"], m["id"]);
    assert_eq!(again["seq"], 1);
    assert_eq!(again["body"], "first");

    let (s, m2) = app.post("/api/v1/rooms/general/messages", Some(&alice), json!({"body": "second"})).await;
    assert_eq!(s, 201);
    assert_eq!(m2["seq"], 2);
    assert_eq!(m2["client_msg_id"], serde_json::Value::Null);

    let history = app.history("general", &alice, "").await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0], m);
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), 2);

    // Bad bodies are refused and write nothing.
    for body in [json!({"body": ""}), json!({"body": "   "}), json!({"body": "x".repeat(4001)}), json!({"body": 5}), json!({})] {
        let (s, v) = app.post("/api/v1/rooms/general/messages", Some(&alice), body.clone()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    }
    let (s, _) = app.post("/api/v1/rooms/general/messages", Some(&alice), json!({"body": "é".repeat(4000)})).await;
    assert_eq!(s, 201, "4000 scalar values are allowed");
    let (s, _) = app.post("/api/v1/rooms/nowhere/messages", Some(&alice), json!({"body": "hi"})).await;
    assert_eq!(s, 404);
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), 3);
}
}

on_both_backends! {
async fn history_pages_by_seq() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    app.post("/api/v1/rooms", Some(&alice), json!({"name": "paged"})).await;
    for i in 1..=25 {
        let (s, _) = app.post("/api/v1/rooms/paged/messages", Some(&alice), json!({"body": format!("m{i}")})).await;
        assert_eq!(s, 201);
    }
    let seqs = |msgs: &[serde_json::Value]| msgs.iter().map(|m| m["seq"].as_i64().unwrap()).collect::<Vec<_>>();

    let (_, v) = app.get("/api/v1/rooms/paged/messages?limit=10", &alice).await;
    assert_eq!(seqs(v["messages"].as_array().unwrap()), (16..=25).collect::<Vec<_>>());
    assert_eq!(v["has_more"], true);

    let (_, v) = app.get("/api/v1/rooms/paged/messages?limit=10&before=16", &alice).await;
    assert_eq!(seqs(v["messages"].as_array().unwrap()), (6..=15).collect::<Vec<_>>());
    assert_eq!(v["has_more"], true);
    let (_, v) = app.get("/api/v1/rooms/paged/messages?limit=10&before=6", &alice).await;
    assert_eq!(seqs(v["messages"].as_array().unwrap()), (1..=5).collect::<Vec<_>>());
    assert_eq!(v["has_more"], false);

    let (_, v) = app.get("/api/v1/rooms/paged/messages?after=20", &alice).await;
    assert_eq!(seqs(v["messages"].as_array().unwrap()), (21..=25).collect::<Vec<_>>());
    assert_eq!(v["has_more"], false);
    let (_, v) = app.get("/api/v1/rooms/paged/messages?after=0&limit=3", &alice).await;
    assert_eq!(seqs(v["messages"].as_array().unwrap()), vec![1, 2, 3]);
    assert_eq!(v["has_more"], true);
    let (_, v) = app.get("/api/v1/rooms/paged/messages?after=3&before=7", &alice).await;
    assert_eq!(seqs(v["messages"].as_array().unwrap()), vec![4, 5, 6]);

    let (_, v) = app.get("/api/v1/rooms/paged/messages", &alice).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 25);
    assert_eq!(v["has_more"], false);

    for bad in ["limit=0", "limit=201", "limit=abc", "before=-1", "after=x", "limit=1.5"] {
        let (s, v) = app.get(&format!("/api/v1/rooms/paged/messages?{bad}"), &alice).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_request")), "{bad}");
    }
    let (s, _) = app.get("/api/v1/rooms/paged/messages?limit=200", &alice).await;
    assert_eq!(s, 200);
}
}

on_both_backends! {
async fn http_sends_are_delivered_live() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.guest("bob").await;
    app.post("/api/v1/rooms", Some(&alice), json!({"name": "live"})).await;
    let mut ws = app.ws(&bob).await;
    ws.join("live").await;
    let (s, m) = app.post("/api/v1/rooms/live/messages", Some(&alice), json!({"body": "over http"})).await;
    assert_eq!(s, 201);
    let got = ws.expect("message").await;
    assert_eq!(got["id"], m["id"]);
    assert_eq!(got["body"], "over http");
}
}

/// The same send (same user, room and client_msg_id) arriving on two
/// instances at the same moment, many times over: each is stored once, with
/// no gap in the room's seqs, and every answer names the stored message.
#[actix_web::test]
async fn concurrent_repeats_on_two_instances_are_stored_once_without_gaps() {
    let cluster = crate::support::spawn_cluster(crate::support::Mode::Redis(2), &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let token = a.register("racer").await;
    a.post("/api/v1/rooms", Some(&token), json!({"name": "race"})).await;
    for i in 0..50 {
        let body = json!({"body": format!("take {i}"), "client_msg_id": format!("dup-{i}")});
        let (ra, rb) = futures_util::join!(
            a.post("/api/v1/rooms/race/messages", Some(&token), body.clone()),
            b.post("/api/v1/rooms/race/messages", Some(&token), body.clone())
        );
        let mut statuses = [ra.0, rb.0];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "one stores it, the other answers with the original: {ra:?} {rb:?}");
        assert_eq!((ra.1["seq"].clone(), ra.1["id"].clone()), (rb.1["seq"].clone(), rb.1["id"].clone()));
        assert_eq!(ra.1["seq"], i + 1);
    }
    assert_eq!(cluster.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), 50);
    assert_eq!(cluster.db.scalar::<i64>("SELECT max(seq) AS v FROM messages"), 50);
}

on_both_backends! {
async fn acked_messages_survive_a_sigkill_and_the_restart_continues_the_sequence() {
    let limits = [("RATE_LIMIT_PER_SEC", "1000"), ("RATE_LIMIT_BURST", "1000")];
    let mut app = crate::support::spawn_app_with(&limits).await;
    let token = app.register("durable").await;
    let mut ws = app.ws(&token).await;
    ws.join("vault").await;
    let acks = ws.send_n("vault", "before", 60).await;
    assert_eq!(acks.len(), 60);
    // No goodbye: the process is killed right after the last ack.
    app.kill_hard().await;

    let db = app.db.clone();
    drop(app);
    let app = crate::support::TestApp::spawn(db, &limits).await;
    let token = app.login("durable").await;
    let history = app.history("vault", &token, "limit=100").await;
    let ids: Vec<&serde_json::Value> = history.iter().map(|m| &m["id"]).collect();
    for ack in &acks {
        assert!(ids.contains(&&ack["id"]), "acked message {} lost by the kill", ack["id"]);
    }
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().expect("seq")).collect();
    assert_eq!(seqs, (1..=60).collect::<Vec<i64>>(), "in order, no gap, no duplicate");

    // The sequence continues after the restart; a resend of an acked
    // client_msg_id is recognised as the original.
    let mut ws = app.ws(&token).await;
    ws.join("vault").await;
    let more = ws.send_n("vault", "after", 2).await;
    assert_eq!(more.iter().map(|a| a["seq"].as_i64()).collect::<Vec<_>>(), vec![Some(61), Some(62)]);
    let first = &acks[0];
    let (s, again) = app
        .post("/api/v1/rooms/vault/messages", Some(&token), json!({"body": "again", "client_msg_id": first["client_msg_id"]}))
        .await;
    assert_eq!((s, &again["id"]), (200, &first["id"]), "{again}");
}
}
