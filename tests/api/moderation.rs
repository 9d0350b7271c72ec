//! Bans and suspensions (contract v1.2): a banned user is out of the room at
//! once on every instance (guarantee 5), and back when the ban ends or is
//! lifted; a suspended account loses every session at once and cannot sign in.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const ROUNDS: usize = 200;

/// Whether the socket's next answer to a send tagged `late` is an ack.
async fn acked(ws: &mut WsClient) -> bool {
    loop {
        match ws.next_json_within(Duration::from_secs(5)).await {
            None => return false,
            Some(f) if f["type"] == "ack" => return true,
            Some(f) if f["type"] == "error" && f["ref"] == "late" => return false,
            Some(_) => {}
        }
    }
}

/// Whether a join is let in (`joined`) or refused with `code`.
async fn join_answer(ws: &mut WsClient, room: &str) -> Result<(), String> {
    ws.send_json(json!({"type": "join", "room": room})).await;
    loop {
        let Some(f) = ws.next_json_within(Duration::from_secs(5)).await else { return Err("no answer".into()) };
        if f["type"] == "joined" && f["room"] == room {
            return Ok(());
        }
        if f["type"] == "error" && f["ref"] == room {
            return Err(f["code"].as_str().unwrap_or_default().to_string());
        }
    }
}

/// The owner (on B) bans a user from a public room, then the user probes A
/// at once, ROUNDS times; A let them in just before each ban.
async fn ban_loop(mode: Mode) {
    let cluster = spawn_cluster(mode, &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let owner = b.register("owner").await;
    let troll = b.register("troll").await;
    let (s, _) = b.post("/api/v1/rooms", Some(&owner), json!({"name": "square"})).await;
    assert_eq!(s, 201);
    let mut accepted = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let (s, _) = a.get("/api/v1/rooms/square/messages", &troll).await;
        assert_eq!(s, 200, "round {round}: the user reads before the ban");
        let mut socket = if round % 10 == 0 {
            let mut ws = a.ws(&troll).await;
            ws.join("square").await;
            Some(ws)
        } else {
            None
        };
        let (s, v) = b.post("/api/v1/rooms/square/bans", Some(&owner), json!({"username": "troll", "minutes": 60})).await;
        assert_eq!(s, 204, "{v}");
        let (s, _) = a.get("/api/v1/rooms/square/messages", &troll).await;
        if s != 403 {
            accepted.push((round, "read history", s));
        }
        let (s, _) = a.post("/api/v1/rooms/square/messages", Some(&troll), json!({"body": "still here?"})).await;
        if s < 400 {
            accepted.push((round, "post", s));
        }
        if let Some(ws) = socket.as_mut() {
            ws.send_json(json!({"type": "send", "room": "square", "body": "after the ban", "client_msg_id": "late"})).await;
            if acked(ws).await {
                accepted.push((round, "send on a joined socket", 200));
            }
            match join_answer(ws, "square").await {
                Ok(()) => accepted.push((round, "rejoin", 200)),
                Err(code) => assert_eq!(code, "forbidden", "round {round}: a banned user's join"),
            }
        }
        let (s, _) = b.request("DELETE", "/api/v1/rooms/square/bans/troll", Some(&owner), None).await;
        assert_eq!(s, 204);
    }
    eprintln!("{mode:?}: {ROUNDS} bans in {:?}; accepted afterwards: {accepted:?}", started.elapsed());
    assert!(accepted.is_empty(), "a banned user was let in: {accepted:?}");
}

#[actix_web::test]
async fn a_banned_user_is_refused_by_every_instance_at_once_over_redis() {
    ban_loop(Mode::Redis(2)).await;
}

#[actix_web::test]
async fn a_banned_user_is_refused_by_every_instance_at_once_over_redis_cluster() {
    ban_loop(Mode::RedisCluster(2)).await;
}

on_both_backends! {
async fn bans_hold_until_they_end_or_are_lifted_and_only_owners_and_admins_ban() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let troll = app.register("troll").await;
    let bystander = app.register("bystander").await;
    let admin = app.register("admin").await;
    let (s, _) = app.post("/api/v1/rooms", Some(&owner), json!({"name": "plaza"})).await;
    assert_eq!(s, 201);
    let mut ws = app.ws(&troll).await;
    ws.join("plaza").await;

    // Who may ban, and what is refused.
    let ban = |token: &String, body: serde_json::Value| {
        let token = token.clone();
        let app = &app;
        async move { app.post("/api/v1/rooms/plaza/bans", Some(&token), body).await }
    };
    assert_eq!(ban(&bystander, json!({"username": "troll"})).await.0, 403, "not the owner");
    assert_eq!(ban(&owner, json!({"username": "owner"})).await.0, 400, "not oneself");
    assert_eq!(ban(&owner, json!({"username": "troll", "minutes": 0})).await.0, 400);
    assert_eq!(ban(&owner, json!({"username": "nobody"})).await.0, 404);

    // Until lifted: the socket leaves the room at once, nothing is let in.
    assert_eq!(ban(&owner, json!({"username": "troll"})).await.0, 204);
    let e = ws.expect("error").await;
    assert_eq!((e["code"].as_str(), e["ref"].as_str()), (Some("forbidden"), Some("plaza")));
    assert_eq!(join_answer(&mut ws, "plaza").await, Err("forbidden".into()));
    assert_eq!(app.get("/api/v1/rooms/plaza/messages", &troll).await.0, 403);
    assert_eq!(app.post("/api/v1/rooms/plaza/messages", Some(&troll), json!({"body": "hi"})).await.0, 403);
    assert_eq!(app.get("/api/v1/rooms/plaza/messages", &bystander).await.0, 200, "only the banned user");
    // An admin lifts it (and could have banned: the owner is not the only one).
    let (s, _) = app.request("DELETE", "/api/v1/rooms/plaza/bans/troll", Some(&admin), None).await;
    assert_eq!(s, 204);
    assert_eq!(app.request("DELETE", "/api/v1/rooms/plaza/bans/troll", Some(&admin), None).await.0, 404, "no ban left");
    assert_eq!(join_answer(&mut ws, "plaza").await, Ok(()));

    // A timed ban ends by itself (its end moved close, before anything read it).
    assert_eq!(ban(&admin, json!({"username": "troll", "minutes": 5})).await.0, 204);
    let _ = ws.expect("error").await;
    app.db.exec(match app.db.backend {
        Backend::Postgres => "UPDATE room_bans SET until = now() + interval '1500 milliseconds'",
        Backend::Sqlite => "UPDATE room_bans SET until = CAST(unixepoch('subsec') * 1000000 AS INTEGER) + 1500000",
    });
    assert_eq!(app.get("/api/v1/rooms/plaza/messages", &troll).await.0, 403, "still banned");
    eventually(Duration::from_secs(10), "the timed ban to end", || async {
        (app.get("/api/v1/rooms/plaza/messages", &troll).await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(join_answer(&mut ws, "plaza").await, Ok(()));
}

async fn a_suspended_account_loses_every_session_and_cannot_sign_in_until_reinstated() {
    let app = spawn_app().await;
    let admin = app.register("admin").await;
    let user = app.register("mallory").await;
    let second = app.login("mallory").await;
    let mut ws = app.ws(&user).await;
    ws.join("general").await;

    let path = "/api/v1/admin/users/mallory/suspension";
    assert_eq!(app.post(path, Some(&user), json!({})).await.0, 403, "admins only");
    assert_eq!(app.post(path, Some(&admin), json!({})).await.0, 204);
    for token in [&user, &second] {
        assert_eq!(app.get("/api/v1/me", token).await.0, 401, "every session is revoked");
    }
    assert!(ws.closed_within(Duration::from_secs(5)).await, "its sockets close");
    let (s, v) = app.post("/api/v1/sessions", None, json!({"username": "mallory", "password": "correct horse"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, _) = app.post("/api/v1/sessions", None, json!({"username": "mallory", "password": "wrong horse"})).await;
    assert_eq!(s, 401, "a wrong password still says only that");

    assert_eq!(app.request("DELETE", path, Some(&admin), None).await.0, 204);
    app.login("mallory").await;
}
}
