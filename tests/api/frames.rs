//! Every bad-frame case of the contract gets an `error` frame and leaves the
//! connection usable.

use serde_json::json;

use crate::support::{eventually, spawn_app, spawn_app_with};

on_both_backends! {
async fn bad_frames_get_errors_and_the_socket_stays_usable() {
    let app = spawn_app().await;
    let token = app.guest("tester").await;
    let mut ws = app.ws(&token).await;
    ws.join("frames").await;

    ws.send_text("{not json").await;
    let e = ws.expect("error").await;
    assert_eq!(e["code"], "bad_request");
    ws.assert_usable().await;

    ws.send_binary(b"\x00\x01binary").await;
    assert_eq!(ws.expect("error").await["code"], "bad_request");
    ws.assert_usable().await;

    let big = json!({"type": "send", "room": "frames", "body": "x".repeat(17 * 1024), "client_msg_id": "big"}).to_string();
    ws.send_text(&big).await;
    assert_eq!(ws.expect("error").await["code"], "too_large");
    ws.assert_usable().await;

    ws.send_json(json!({"type": "teleport", "room": "frames"})).await;
    let e = ws.expect("error").await;
    assert_eq!(e["code"], "bad_request");
    assert!(e["message"].as_str().unwrap().contains("teleport"));
    ws.assert_usable().await;

    for frame in [
        json!({"room": "frames"}),
        json!([1, 2, 3]),
        json!({"type": "send", "room": "frames", "client_msg_id": "nobody"}),
        json!({"type": "send", "room": "frames", "body": "", "client_msg_id": "empty"}),
        json!({"type": "send", "room": "frames", "body": "x".repeat(4001), "client_msg_id": "long"}),
        json!({"type": "send", "room": "frames", "body": "bell\u{7}", "client_msg_id": "ctl"}),
        json!({"type": "join", "room": "../../etc"}),
        json!({"type": "join", "room": "ok", "since": -4}),
        json!({"type": "join", "room": "ok", "since": "yesterday"}),
    ] {
        ws.send_json(frame.clone()).await;
        let e = ws.expect("error").await;
        assert_eq!(e["code"], "bad_request", "{frame}");
        if let Some(r) = frame.get("client_msg_id") {
            assert_eq!(&e["ref"], r, "{frame}");
        }
        ws.assert_usable().await;
    }
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    ws.send_text(&nested).await;
    assert_eq!(ws.expect("error").await["code"], "bad_request");

    // After all that, a normal send still works.
    ws.send_json(json!({"type": "send", "room": "frames", "body": "still fine", "client_msg_id": "ok"})).await;
    let ack = ws.expect("ack").await;
    assert_eq!(ack["client_msg_id"], "ok");
    assert_eq!(ack["seq"], 1);
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), 1);
}
}

on_both_backends! {
async fn ping_pong_typing_and_presence() {
    let app = spawn_app().await;
    let a = app.guest("anna").await;
    let b = app.guest("ben").await;
    let mut wa = app.ws(&a).await;
    let mut wb = app.ws(&b).await;

    wa.send_json(json!({"type": "ping", "ts": 12345})).await;
    assert_eq!(wa.expect("pong").await, json!({"type": "pong", "ts": 12345}));

    wa.join("chat").await;
    let joined = wb.join("chat").await;
    let mut online: Vec<_> = joined["online"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    online.sort();
    assert_eq!(online, ["anna", "ben"]);
    let p = wa.expect("presence").await;
    assert_eq!(p, json!({"type": "presence", "room": "chat", "user": "ben", "state": "online"}));

    wa.send_json(json!({"type": "typing", "room": "chat"})).await;
    assert_eq!(wb.expect("typing").await, json!({"type": "typing", "room": "chat", "user": "anna"}));
    // Not echoed to the typist: the next frame anna sees is her own pong.
    wa.send_json(json!({"type": "ping", "ts": 1})).await;
    assert_eq!(wa.next_json().await["type"], "pong");

    wb.send_json(json!({"type": "leave", "room": "chat"})).await;
    let p = wa.expect("presence").await;
    assert_eq!(p, json!({"type": "presence", "room": "chat", "user": "ben", "state": "offline"}));
    // Left means no more messages from the room.
    wa.send_json(json!({"type": "send", "room": "chat", "body": "anyone?", "client_msg_id": "q"})).await;
    wa.expect("ack").await;
    wb.send_json(json!({"type": "ping", "ts": 2})).await;
    assert_eq!(wb.next_json().await["type"], "pong");
}
}

on_both_backends! {
async fn rate_limit_refuses_excess_sends_and_recovers() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_SEC", "2"), ("RATE_LIMIT_BURST", "5")]).await;
    let token = app.guest("speedy").await;
    let mut ws = app.ws(&token).await;
    ws.join("fast").await;
    for i in 0..12 {
        ws.send_json(json!({"type": "send", "room": "fast", "body": format!("m{i}"), "client_msg_id": format!("c{i}")})).await;
    }
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 12 {
        let v = ws.next_json().await;
        match v["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => {
                assert_eq!(v["code"], "rate_limited");
                assert!(v["ref"].as_str().unwrap().starts_with('c'));
                limited += 1;
            }
            _ => {}
        }
    }
    assert!((5..=6).contains(&acks), "burst of 5 (maybe one refilled): {acks}");
    assert_eq!(acks + limited, 12);
    ws.assert_usable().await;
    // Tokens refill: the same send goes through once there is one again
    // (retried, bounded, as a client would; not a fixed sleep).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        ws.send_json(json!({"type": "send", "room": "fast", "body": "later", "client_msg_id": "later"})).await;
        let answer = loop {
            let v = ws.next_json().await;
            if v["type"] == "ack" || (v["type"] == "error" && v["ref"] == "later") {
                break v;
            }
        };
        if answer["type"] == "ack" {
            assert_eq!(answer["client_msg_id"], "later");
            break;
        }
        assert_eq!(answer["code"], "rate_limited");
        assert!(std::time::Instant::now() < deadline, "the bucket never refilled");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), acks as i64 + 1);
}
}

on_both_backends! {
async fn websocket_resend_is_idempotent() {
    let app = spawn_app().await;
    let token = app.guest("repeat").await;
    let mut ws = app.ws(&token).await;
    ws.join("idem").await;
    ws.send_json(json!({"type": "send", "room": "idem", "body": "once", "client_msg_id": "same"})).await;
    let first = ws.expect("ack").await;
    let msg = ws.expect("message").await;
    assert_eq!(msg["id"], first["id"]);

    // Resent on a new connection (as after a reconnect), and twice in a row.
    let mut ws2 = app.ws(&token).await;
    ws2.join("idem").await;
    ws2.send_json(json!({"type": "send", "room": "idem", "body": "once", "client_msg_id": "same"})).await;
    ws2.send_json(json!({"type": "send", "room": "idem", "body": "once", "client_msg_id": "same"})).await;
    for _ in 0..2 {
        let ack = ws2.expect("ack").await;
        assert_eq!((ack["seq"].clone(), ack["id"].clone()), (first["seq"].clone(), first["id"].clone()));
    }
    // Over HTTP too.
    let (s, m) = app.post("/api/v1/rooms/idem/messages", Some(&token), json!({"body": "once", "client_msg_id": "same"})).await;
    assert_eq!(s, 200);
    assert_eq!(m["id"], first["id"]);
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), 1);
    assert_eq!(app.db.scalar::<i64>("SELECT s.last_seq AS v FROM rooms r JOIN room_seqs s ON s.room_id = r.id WHERE r.name = 'idem'"), 1);
    // No second message frame went out.
    ws.send_json(json!({"type": "ping", "ts": 9})).await;
    assert_eq!(ws.next_json().await["type"], "pong");

    // The same client_msg_id from another user is a different message.
    let other = app.guest("other").await;
    let (s, m) = app.post("/api/v1/rooms/idem/messages", Some(&other), json!({"body": "mine", "client_msg_id": "same"})).await;
    assert_eq!((s, m["seq"].as_i64()), (201, Some(2)));
}
}

on_both_backends! {
async fn dead_peers_are_dropped_and_idle_rooms_stop() {
    let app = spawn_app_with(&[("HEARTBEAT_MS", "150"), ("CLIENT_TIMEOUT_MS", "600"), ("ROOM_IDLE_MS", "200")]).await;
    let live = app.guest("alive").await;
    let dead = app.guest("silent").await;
    let mut watcher = app.ws(&live).await;
    watcher.join("beat").await;
    let mut silent = app.ws(&dead).await;
    silent.join("beat").await;
    assert_eq!(watcher.expect("presence").await["state"], "online");

    // The silent client stops reading, so it never answers pings; the watcher
    // keeps answering (expect() replies to pings while it waits).
    let offline = watcher.expect("presence").await;
    assert_eq!((offline["user"].as_str(), offline["state"].as_str()), (Some("silent"), Some("offline")));
    assert_eq!(app.metric("switchboard_ws_connections").await, 1.0);
    drop(silent);

    // Once the last member leaves, the room actor stops after ROOM_IDLE_MS.
    watcher.send_json(json!({"type": "leave", "room": "beat"})).await;
    eventually(std::time::Duration::from_secs(5), "the idle room actor to stop", || async {
        (app.metric("switchboard_rooms_active").await == 0.0).then_some(())
    })
    .await;
    // And a later join starts it again with the right state.
    let joined = watcher.join("beat").await;
    assert_eq!(joined["last_seq"], 0);
}
}

on_both_backends! {
async fn sends_pipelined_behind_a_join_wait_for_it_or_fail_loudly() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    app.post("/api/v1/rooms", Some(&owner), json!({"name": "closed", "private": true})).await;
    let token = app.guest("eager").await;
    let mut ws = app.ws(&token).await;
    // No waiting for `joined` between the frames.
    ws.send_json(json!({"type": "join", "room": "open"})).await;
    ws.send_json(json!({"type": "send", "room": "open", "body": "right away", "client_msg_id": "p1"})).await;
    ws.send_json(json!({"type": "join", "room": "closed"})).await;
    ws.send_json(json!({"type": "send", "room": "closed", "body": "let me in", "client_msg_id": "p2"})).await;

    assert_eq!(ws.expect("joined").await["room"], "open");
    assert_eq!(ws.expect("ack").await["client_msg_id"], "p1");
    let first = ws.expect("error").await;
    let second = ws.expect("error").await;
    let refs: Vec<_> = [&first, &second].iter().map(|e| e["ref"].as_str().unwrap().to_string()).collect();
    assert!(refs.contains(&"closed".to_string()) && refs.contains(&"p2".to_string()), "{refs:?}");
    assert_eq!(app.db.scalar::<i64>("SELECT count(*) AS v FROM messages"), 1);
}
}
