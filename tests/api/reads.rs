//! Read markers and unread counts (contract v1.2): a marker only moves
//! forward, the room list carries `last_read` and `unread`, and the user's
//! other sockets, on every instance, hear when it moves.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

async fn read_state(app: &TestApp, token: &str, room: &str) -> (i64, i64) {
    let (s, v) = app.get("/api/v1/rooms?joined=true", token).await;
    assert_eq!(s, 200);
    let r = v["rooms"].as_array().and_then(|rs| rs.iter().find(|r| r["name"] == room).cloned()).unwrap_or(Value::Null);
    (r["last_read"].as_i64().expect("last_read for a member"), r["unread"].as_i64().expect("unread for a member"))
}

/// Nothing but a pong comes back before the pong: proves no frame was sent.
async fn quiet(ws: &mut WsClient) -> Option<Value> {
    ws.send_json(json!({"type": "ping", "ts": "sync"})).await;
    loop {
        let f = ws.next_json_within(Duration::from_secs(5)).await?;
        if f["type"] == "pong" && f["ts"] == "sync" {
            return None;
        }
        if f["type"] == "read" {
            return Some(f);
        }
    }
}

on_both_backends! {
async fn a_marker_moves_forward_only_counts_others_messages_and_reaches_the_other_sockets() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut a1 = app.ws(&alice).await;
    a1.join("lobby").await;
    let mut a2 = app.ws(&alice).await;
    a2.join("lobby").await;
    let mut b = app.ws(&bob).await;
    b.join("lobby").await;
    b.send_n("lobby", "from bob", 5).await;
    assert_eq!(read_state(&app, &alice, "lobby").await, (0, 5));

    // A socket's marker: its other socket hears, it does not.
    a1.send_json(json!({"type": "read", "room": "lobby", "seq": 3})).await;
    let f = a2.expect("read").await;
    assert_eq!(f, json!({"type": "read", "room": "lobby", "last_read": 3, "unread": 2}));
    assert_eq!(quiet(&mut a1).await, None, "the socket that moved it is not told");
    assert_eq!(read_state(&app, &alice, "lobby").await, (3, 2));

    // Never back, never past the newest message; bad input is refused.
    let put = |token: &String, seq: i64| {
        let (app, token) = (&app, token.clone());
        async move { app.request("PUT", "/api/v1/rooms/lobby/read", Some(&token), Some(json!({"seq": seq}))).await.0 }
    };
    assert_eq!(put(&alice, 1).await, 204);
    assert_eq!(put(&alice, 99).await, 204);
    assert_eq!(read_state(&app, &alice, "lobby").await, (3, 2));
    assert_eq!(quiet(&mut a2).await, None, "nothing moved, nobody told");
    assert_eq!(put(&alice, -1).await, 400);
    a1.send_json(json!({"type": "read", "room": "lobby", "seq": -1})).await;
    let e = a1.expect("error").await;
    assert_eq!((e["code"].as_str(), e["ref"].as_str()), (Some("bad_request"), Some("lobby")));

    // Over HTTP every socket hears; the user's own messages are never unread.
    assert_eq!(put(&alice, 5).await, 204);
    for ws in [&mut a1, &mut a2] {
        assert_eq!(ws.expect("read").await["last_read"], 5);
    }
    a1.send_n("lobby", "from alice", 2).await;
    assert_eq!(read_state(&app, &alice, "lobby").await, (5, 0));
    assert_eq!(read_state(&app, &bob, "lobby").await, (0, 2), "bob has read nothing; only alice's two are unread to him");

    // A private room one is not in has no marker to move.
    let carol = app.register("carol").await;
    app.post("/api/v1/rooms", Some(&carol), json!({"name": "den", "private": true})).await;
    assert_eq!(app.request("PUT", "/api/v1/rooms/den/read", Some(&alice), Some(json!({"seq": 0}))).await.0, 404);
}
}

/// Two devices on two instances stay in step.
#[actix_web::test]
async fn a_marker_moved_on_one_instance_reaches_the_users_sockets_on_the_other() {
    let cluster = spawn_cluster(Mode::Redis(2), &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let alice = a.register("alice").await;
    let bob = a.register("bob").await;
    let mut sender = a.ws(&bob).await;
    sender.join("lobby").await;
    let mut phone = b.ws(&alice).await;
    phone.join("lobby").await;
    let mut laptop = a.ws(&alice).await;
    laptop.join("lobby").await;
    sender.send_n("lobby", "hello", 4).await;
    laptop.collect_until("lobby", 0, 4).await;
    laptop.send_json(json!({"type": "read", "room": "lobby", "seq": 4})).await;
    let f = phone.expect("read").await;
    assert_eq!((f["last_read"].as_i64(), f["unread"].as_i64()), (Some(4), Some(0)));
}
