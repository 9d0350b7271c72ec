use serde_json::json;

use crate::support::{spawn_app, spawn_app_with};

on_both_backends! {
async fn register_login_me_logout() {
    let app = spawn_app().await;
    let (s, v) = app.post("/api/v1/users", None, json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!(s, 201);
    assert_eq!(v["username"], "alice");
    assert!(v["id"].as_str().is_some_and(|id| id.len() == 36));

    // Taken, also case-insensitively.
    let (s, v) = app.post("/api/v1/users", None, json!({"username": "Alice", "password": "correct horse"})).await;
    assert_eq!(s, 409);
    assert_eq!(v["error"]["code"], "conflict");

    let (s, v) = app.post("/api/v1/sessions", None, json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!(s, 200);
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["user"]["guest"], false);
    let token = v["token"].as_str().unwrap().to_string();

    let (s, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(s, 200);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["guest"], false);

    // Same answer for a wrong password and an unknown user.
    let (s1, wrong) = app.post("/api/v1/sessions", None, json!({"username": "alice", "password": "wrong password"})).await;
    let (s2, unknown) = app.post("/api/v1/sessions", None, json!({"username": "nobody", "password": "wrong password"})).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "unauthorized");

    let (s, _) = app.request("DELETE", "/api/v1/sessions", Some(&token), None).await;
    assert_eq!(s, 204);
    let (s, v) = app.get("/api/v1/me", &token).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "unauthorized");
    assert_eq!(app.try_ws(&token).await.err(), Some(401));
}
}

on_both_backends! {
async fn logout_closes_open_sockets() {
    let app = spawn_app().await;
    let token = app.register("bob").await;
    let mut ws = app.ws(&token).await;
    ws.join("lobby").await;
    let (s, _) = app.request("DELETE", "/api/v1/sessions", Some(&token), None).await;
    assert_eq!(s, 204);
    let err = ws.expect("error").await;
    assert_eq!(err["code"], "unauthorized");
    assert!(ws.closed_within(std::time::Duration::from_secs(5)).await);
}
}

on_both_backends! {
async fn validation_errors_have_the_contract_shape() {
    let app = spawn_app().await;
    for body in [
        json!({"username": "ab", "password": "correct horse"}),
        json!({"username": "bad name", "password": "correct horse"}),
        json!({"username": "../etc", "password": "correct horse"}),
        json!({"username": "carol", "password": "short"}),
        json!({"username": "carol"}),
        json!("not an object"),
    ] {
        let (s, v) = app.post("/api/v1/users", None, body.clone()).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(v["error"]["code"], "bad_request", "{body}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Missing or malformed tokens.
    let (s, v) = app.request("GET", "/api/v1/me", None, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (s, _) = app.get("/api/v1/me", "not-a-token").await;
    assert_eq!(s, 401);
    assert_eq!(app.try_ws("").await.err(), Some(401));
    assert_eq!(app.try_ws("nope").await.err(), Some(401));
    // Oversized bodies are 413.
    let big = "x".repeat(200_000);
    let (s, v) = app.post("/api/v1/users", None, json!({"username": "carol", "password": big})).await;
    assert_eq!(s, 413);
    assert_eq!(v["error"]["code"], "too_large");
    // Unknown routes keep the shape too.
    let (s, v) = app.request("GET", "/api/v1/unknown", None, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
}
}

on_both_backends! {
async fn guests_get_unique_names_and_only_public_rooms() {
    let app = spawn_app().await;
    let (s, a) = app.post("/api/v1/sessions/guest", None, json!({"username": "visitor"})).await;
    assert_eq!(s, 200);
    assert_eq!(a["user"]["guest"], true);
    assert_eq!(a["user"]["username"], "visitor");
    let (s, b) = app.post("/api/v1/sessions/guest", None, json!({"username": "visitor"})).await;
    assert_eq!(s, 200);
    let second = b["user"]["username"].as_str().unwrap();
    assert_ne!(second, "visitor");
    assert!(second.starts_with("visitor-"), "{second}");

    let guest = a["token"].as_str().unwrap();
    let (s, v) = app.post("/api/v1/rooms", Some(guest), json!({"name": "guestroom"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));

    // A guest cannot log in with a password.
    let (s, _) = app.post("/api/v1/sessions", None, json!({"username": "visitor", "password": "anything at all"})).await;
    assert_eq!(s, 401);
}
}

on_both_backends! {
async fn guests_can_be_disabled() {
    let app = spawn_app_with(&[("ALLOW_GUESTS", "false")]).await;
    let (s, v) = app.post("/api/v1/sessions/guest", None, json!({"username": "visitor"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
}
}

on_both_backends! {
async fn admin_stats_are_admin_only() {
    let app = spawn_app().await;
    let admin = app.register("admin").await;
    let user = app.register("someone").await;
    let (s, _) = app.request("GET", "/api/v1/admin/stats", None, None).await;
    assert_eq!(s, 401);
    let (s, v) = app.get("/api/v1/admin/stats", &user).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let hint = v["error"]["message"].as_str().unwrap_or_default();
    assert!(hint.contains("ADMIN_USERNAMES"), "the refusal says how one becomes an admin: {hint}");
    let (s, v) = app.get("/api/v1/admin/stats", &admin).await;
    assert_eq!(s, 200);
    assert!(v["instances"].as_array().is_some_and(|i| !i.is_empty()));
}
}
