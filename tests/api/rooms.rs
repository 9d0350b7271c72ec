use std::time::Duration;

use serde_json::json;

use crate::support::{spawn_app, Backend, TestApp, TestDb};

on_both_backends! {
async fn create_list_and_detail() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let (s, room) = app.post("/api/v1/rooms", Some(&alice), json!({"name": "rust", "topic": "crabs"})).await;
    assert_eq!(s, 201);
    assert_eq!(
        room,
        json!({"name": "rust", "topic": "crabs", "private": false, "member_count": 1, "online_count": 0, "last_seq": 0, "kind": "room"})
    );
    let (s, v) = app.post("/api/v1/rooms", Some(&alice), json!({"name": "rust"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")));
    for bad in ["Rust", "a b", "../x", "", &"x".repeat(65)] {
        let (s, v) = app.post("/api/v1/rooms", Some(&alice), json!({"name": bad})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_request")), "{bad:?}");
    }
    let (s, v) = app.get("/api/v1/rooms/rust", &alice).await;
    assert_eq!(s, 200);
    assert_eq!(v["topic"], "crabs");
    let (s, _) = app.get("/api/v1/rooms/nothing-here", &alice).await;
    assert_eq!(s, 404);
    let (s, v) = app.get("/api/v1/rooms", &alice).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["rooms"].as_array().expect("an array").iter().map(|r| r["name"].as_str().expect("a name")).collect();
    assert_eq!(names, vec!["general", "rust"], "the default room exists from start-up; by name");
}
}

on_both_backends! {
async fn a_newcomer_finds_the_default_room_and_can_use_it_over_http() {
    let app = spawn_app().await;
    let guest = app.guest("newbie").await;
    let (s, v) = app.get("/api/v1/rooms", &guest).await;
    assert_eq!(s, 200);
    assert_eq!(v["rooms"][0]["name"], "general");
    let (s, m) = app.post("/api/v1/rooms/general/messages", Some(&guest), json!({"body": "hello, anyone?"})).await;
    assert_eq!((s, m["seq"].as_i64()), (201, Some(1)));
    // DEFAULT_ROOMS lists them; empty means none.
    let custom = crate::support::spawn_app_with(&[("DEFAULT_ROOMS", "lobby,help")]).await;
    let token = custom.guest("visitor").await;
    let (_, v) = custom.get("/api/v1/rooms", &token).await;
    let names: Vec<&str> = v["rooms"].as_array().expect("an array").iter().map(|r| r["name"].as_str().expect("a name")).collect();
    assert_eq!(names, vec!["help", "lobby"]);
    let none = crate::support::spawn_app_with(&[("DEFAULT_ROOMS", "")]).await;
    let token = none.guest("visitor").await;
    let (_, v) = none.get("/api/v1/rooms", &token).await;
    assert_eq!(v["rooms"], json!([]));
}
}

on_both_backends! {
async fn members_are_listed_with_owner_and_online_state_and_private_lists_stay_private() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let member = app.register("member").await;
    let outsider = app.register("outsider").await;
    app.post("/api/v1/rooms", Some(&owner), json!({"name": "club", "private": true})).await;
    let (s, _) = app.post("/api/v1/rooms/club/members", Some(&owner), json!({"username": "member"})).await;
    assert_eq!(s, 204);
    let mut ws = app.ws(&member).await;
    ws.join("club").await;
    let (s, v) = app.get("/api/v1/rooms/club/members", &owner).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"members": [
            {"username": "member", "owner": false, "online": true},
            {"username": "owner", "owner": true, "online": false},
        ]})
    );
    let (s, v) = app.get("/api/v1/rooms/club/members", &outsider).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")), "a private room's members are not revealed");
    let (s, v) = app.get("/api/v1/rooms/general/members", &outsider).await;
    assert_eq!((s, v["members"].as_array().map(Vec::len)), (200, Some(0)), "a public room's list is open");
}
}

on_both_backends! {
async fn private_rooms_are_invisible_to_non_members_over_http() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("other").await;
    let guest = app.guest("guest").await;
    let (s, _) = app.post("/api/v1/rooms", Some(&owner), json!({"name": "secret", "private": true})).await;
    assert_eq!(s, 201);
    let (s, _) = app.post("/api/v1/rooms/secret/messages", Some(&owner), json!({"body": "for members"})).await;
    assert_eq!(s, 201);

    for token in [&other, &guest] {
        let (s, v) = app.get("/api/v1/rooms/secret", token).await;
        assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
        let (s, _) = app.get("/api/v1/rooms/secret/messages", token).await;
        assert_eq!(s, 404);
        let (s, _) = app.post("/api/v1/rooms/secret/messages", Some(token), json!({"body": "let me in"})).await;
        assert_eq!(s, 404);
        let (_, list) = app.get("/api/v1/rooms", token).await;
        assert!(!list["rooms"].as_array().unwrap().iter().any(|r| r["name"] == "secret"));
        let (s, _) = app.post("/api/v1/rooms/secret/members", Some(token), json!({"username": "other"})).await;
        assert_eq!(s, 404);
    }
    // Nothing was written by the intruders.
    assert_eq!(app.history("secret", &owner, "").await.len(), 1);

    // The owner adds a member; now they can read and write.
    let (s, _) = app.post("/api/v1/rooms/secret/members", Some(&owner), json!({"username": "other"})).await;
    assert_eq!(s, 204);
    let (s, v) = app.get("/api/v1/rooms/secret", &other).await;
    assert_eq!((s, v["member_count"].as_i64()), (200, Some(2)));
    let (s, _) = app.post("/api/v1/rooms/secret/messages", Some(&other), json!({"body": "hello"})).await;
    assert_eq!(s, 201);
    let (_, list) = app.get("/api/v1/rooms", &other).await;
    assert!(list["rooms"].as_array().unwrap().iter().any(|r| r["name"] == "secret" && r["private"] == true));

    // Members who are not the owner cannot add people; guests cannot be added.
    let third = app.register("third").await;
    let (s, v) = app.post("/api/v1/rooms/secret/members", Some(&other), json!({"username": "third"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, _) = app.post("/api/v1/rooms/secret/members", Some(&owner), json!({"username": "nobody-here"})).await;
    assert_eq!(s, 404);
    let _ = third;
}
}

on_both_backends! {
async fn private_rooms_are_closed_to_non_members_over_websocket() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("other").await;
    let guest = app.guest("guest").await;
    app.post("/api/v1/rooms", Some(&owner), json!({"name": "secret", "private": true})).await;

    let mut owner_ws = app.ws(&owner).await;
    owner_ws.join("secret").await;

    for token in [&other, &guest] {
        let mut ws = app.ws(token).await;
        ws.send_json(json!({"type": "join", "room": "secret"})).await;
        let err = ws.expect("error").await;
        assert!(err["code"] == "not_found" || err["code"] == "forbidden", "{err}");
        assert_eq!(err["ref"], "secret");
        ws.send_json(json!({"type": "send", "room": "secret", "body": "sneaky", "client_msg_id": "s1"})).await;
        let err = ws.expect("error").await;
        assert!(err["code"] == "forbidden" || err["code"] == "not_found", "{err}");
        assert_eq!(err["ref"], "s1");
        ws.assert_usable().await;
    }
    owner_ws.send_json(json!({"type": "send", "room": "secret", "body": "members only", "client_msg_id": "o1"})).await;
    owner_ws.expect("ack").await;
    assert_eq!(app.history("secret", &owner, "").await.len(), 1);

    // Removing a member takes effect on their open socket at once.
    app.post("/api/v1/rooms/secret/members", Some(&owner), json!({"username": "other"})).await;
    let mut other_ws = app.ws(&other).await;
    other_ws.join("secret").await;
    let (s, _) = app.request("DELETE", "/api/v1/rooms/secret/members/other", Some(&owner), None).await;
    assert_eq!(s, 204);
    let err = other_ws.expect("error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("forbidden"), Some("secret")));
    other_ws.send_json(json!({"type": "send", "room": "secret", "body": "still here?", "client_msg_id": "x"})).await;
    assert_eq!(other_ws.expect("error").await["code"], "forbidden");
    let (s, _) = app.get("/api/v1/rooms/secret", &other).await;
    assert_eq!(s, 404);
    let _ = Duration::ZERO;
}
}

on_both_backends! {
async fn joining_a_missing_public_room_creates_it() {
    let app = spawn_app().await;
    let guest = app.guest("walker").await;
    let mut ws = app.ws(&guest).await;
    let joined = ws.join("fresh-room").await;
    assert_eq!(joined["room"], "fresh-room");
    assert_eq!(joined["last_seq"], 0);
    assert_eq!(joined["online"], json!(["walker"]));
    assert!(joined.get("recovered").is_none());
    let (s, v) = app.get("/api/v1/rooms/fresh-room", &guest).await;
    assert_eq!(s, 200);
    assert_eq!(v["private"], false);
    assert_eq!(v["online_count"], 1);
}
}

on_both_backends! {
async fn the_room_list_pages_by_name_filters_by_prefix_and_by_membership() {
    let app = crate::support::spawn_app_with(&[("DEFAULT_ROOMS", "")]).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for name in ["alpha", "alps", "al_x", "alxy", "beta", "gamma"] {
        let (s, _) = app.post("/api/v1/rooms", Some(&alice), json!({"name": name})).await;
        assert_eq!(s, 201);
    }
    app.post("/api/v1/rooms", Some(&alice), json!({"name": "alcove", "private": true})).await;
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["rooms"].as_array().expect("an array").iter().map(|r| r["name"].as_str().expect("a name").to_string()).collect()
    };
    // Pages of two, following `next`.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (s, v) = app.get(&format!("/api/v1/rooms?limit=2&after={after}"), &bob).await;
        assert_eq!(s, 200);
        seen.extend(names(&v));
        match v["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec!["al_x", "alpha", "alps", "alxy", "beta", "gamma"], "bob does not see alice's private room");
    // A prefix, where `_` is a plain character.
    let (_, v) = app.get("/api/v1/rooms?q=al_", &bob).await;
    assert_eq!(names(&v), vec!["al_x"]);
    let (_, v) = app.get("/api/v1/rooms?q=al", &alice).await;
    assert_eq!(names(&v), vec!["al_x", "alcove", "alpha", "alps", "alxy"]);
    // Only rooms one is in.
    bob_joins(&app, &bob, "beta").await;
    let (_, v) = app.get("/api/v1/rooms?joined=true", &bob).await;
    assert_eq!(names(&v), vec!["beta"]);
    assert_eq!(v["next"], serde_json::Value::Null);
    for bad in ["limit=0", "limit=201", "limit=x", "joined=maybe"] {
        let (s, v) = app.get(&format!("/api/v1/rooms?{bad}"), &bob).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("bad_request")), "{bad}");
    }
}
}

async fn bob_joins(app: &crate::support::TestApp, token: &str, room: &str) {
    let mut ws = app.ws(token).await;
    ws.join(room).await;
}

on_both_backends! {
async fn a_database_from_before_the_counter_moved_keeps_its_numbering() {
    // As the release before `room_seqs` left it: a room at seq 3, its three
    // messages, and the counter in `rooms`.
    let db = TestDb::new();
    db.migrate_before("room_seqs");
    db.exec(match db.backend {
        Backend::Postgres => {
            "INSERT INTO users (id, username, guest) VALUES ('00000000-0000-0000-0000-000000000001', 'elder', true); \
             INSERT INTO rooms (name, last_seq) VALUES ('older', 3); \
             INSERT INTO messages (room_id, seq, id, user_id, body, sent_at) \
               SELECT 1, g, gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'old ' || g, now() \
               FROM generate_series(1, 3) g"
        }
        Backend::Sqlite => {
            "INSERT INTO users (id, username, guest) VALUES (x'00000000000000000000000000000001', 'elder', 1); \
             INSERT INTO rooms (name, last_seq) VALUES ('older', 3); \
             INSERT INTO messages (room_id, seq, id, user_id, body, sent_at) VALUES \
               (1, 1, randomblob(16), x'00000000000000000000000000000001', 'old 1', 1764000000000000), \
               (1, 2, randomblob(16), x'00000000000000000000000000000001', 'old 2', 1764000000000001), \
               (1, 3, randomblob(16), x'00000000000000000000000000000001', 'old 3', 1764000000000002)"
        }
    });
    // The server upgrades it at start-up.
    let app = TestApp::spawn(db, &[]).await;
    let token = app.register("newcomer").await;
    let (s, room) = app.get("/api/v1/rooms/older", &token).await;
    assert_eq!((s, room["last_seq"].clone()), (200, json!(3)), "{room}");
    let (s, m) = app.post("/api/v1/rooms/older/messages", Some(&token), json!({"body": "after the upgrade"})).await;
    assert_eq!((s, m["seq"].clone()), (201, json!(4)), "{m}");
    let seqs: Vec<i64> = app.history("older", &token, "").await.iter().map(|m| m["seq"].as_i64().unwrap_or(0)).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    // A room made after the upgrade starts its own count.
    let (s, _) = app.post("/api/v1/rooms", Some(&token), json!({"name": "younger"})).await;
    assert_eq!(s, 201);
    let (_, m) = app.post("/api/v1/rooms/younger/messages", Some(&token), json!({"body": "first"})).await;
    assert_eq!(m["seq"], 1, "{m}");
}
}
