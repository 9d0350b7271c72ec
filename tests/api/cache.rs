//! The caches: hit and miss paths, negative caching, invalidation across
//! instances (topic change, member removal, logout), Redis failing under
//! them, and replays served from the recent-message window.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{spawn_app, spawn_cluster, spawn_cluster_on, Mode, TestApp, TestRedis};

async fn hits(app: &TestApp, cache: &str) -> f64 {
    app.metric(&format!(r#"switchboard_cache_requests_total{{cache="{cache}",result="hit"}}"#)).await
}

async fn queries(app: &TestApp, name: &str) -> f64 {
    app.metric(&format!(r#"switchboard_db_query_duration_seconds_count{{query="{name}"}}"#)).await
}

#[actix_web::test]
async fn lookups_hit_the_cache_after_the_first_and_unknown_tokens_are_cached_too() {
    let app = spawn_app().await;
    let token = app.register("cached").await;
    app.post("/api/v1/rooms", Some(&token), json!({"name": "warm", "private": true})).await;

    let (s, _) = app.get("/api/v1/me", &token).await;
    assert_eq!(s, 200);
    let token_queries = queries(&app, "user_by_token").await;
    let token_hits = hits(&app, "token").await;
    for _ in 0..5 {
        let (s, _) = app.get("/api/v1/rooms/warm", &token).await;
        assert_eq!(s, 200);
    }
    assert_eq!(queries(&app, "user_by_token").await, token_queries, "the token is looked up once");
    assert!(hits(&app, "token").await >= token_hits + 5.0);
    assert!(hits(&app, "room").await >= 4.0);
    assert!(hits(&app, "membership").await >= 4.0, "private-room access is checked from the cache");

    // Unknown tokens: refused every time, looked up once.
    let before = queries(&app, "user_by_token").await;
    for _ in 0..5 {
        let (s, _) = app.get("/api/v1/me", "no-such-token").await;
        assert_eq!(s, 401);
    }
    assert_eq!(queries(&app, "user_by_token").await, before + 1.0, "negative answers are cached");
    // A missing room that gets created is found at once (its negative entry is dropped).
    let (s, _) = app.get("/api/v1/rooms/later", &token).await;
    assert_eq!(s, 404);
    app.post("/api/v1/rooms", Some(&token), json!({"name": "later"})).await;
    let (s, _) = app.get("/api/v1/rooms/later", &token).await;
    assert_eq!(s, 200);
}

/// Polls `check` on instance `b` until it holds; returns how long it took.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{what} never reached the other instance");
        actix_web::rt::time::sleep(Duration::from_millis(2)).await;
    }
}

#[actix_web::test]
async fn writes_on_one_instance_invalidate_the_caches_of_the_other() {
    let cluster = spawn_cluster(Mode::Redis(2), &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let owner = a.register("owner").await;
    let member = a.register("member").await;
    a.post("/api/v1/rooms", Some(&owner), json!({"name": "club", "private": true, "topic": "old"})).await;
    a.post("/api/v1/rooms/club/members", Some(&owner), json!({"username": "member"})).await;

    // B caches the room, the membership and the token.
    for _ in 0..3 {
        let (s, room) = b.get("/api/v1/rooms/club", &member).await;
        assert_eq!((s, room["topic"].as_str()), (200, Some("old")));
    }
    let (s, _) = a.request("PATCH", "/api/v1/rooms/club", Some(&owner), Some(json!({"topic": "new"}))).await;
    assert_eq!(s, 200);
    let topic = until("the topic change", async || b.get("/api/v1/rooms/club", &member).await.1["topic"] == "new").await;

    let (s, _) = a.request("DELETE", "/api/v1/rooms/club/members/member", Some(&owner), None).await;
    assert_eq!(s, 204);
    let removal = until("the member removal", async || b.get("/api/v1/rooms/club", &member).await.0 == 404).await;
    let (s, _) = b.post("/api/v1/rooms/club/messages", Some(&member), json!({"body": "am I still in?"})).await;
    assert_eq!(s, 404);

    let (s, _) = a.request("DELETE", "/api/v1/sessions", Some(&member), None).await;
    assert_eq!(s, 204);
    let logout = until("the logout", async || b.get("/api/v1/me", &member).await.0 == 401).await;
    eprintln!("invalidation seen on the other instance after: topic {topic:?}, removal {removal:?}, logout {logout:?}");
}

#[actix_web::test]
async fn requests_succeed_when_redis_stops_under_the_cache() {
    let mut redis = TestRedis::start().await;
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    let cluster = spawn_cluster_on(Mode::Redis(2), &redis.url(), &prefix, &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let token = a.register("steady").await;
    a.post("/api/v1/rooms", Some(&token), json!({"name": "calm"})).await;
    a.post("/api/v1/rooms/calm/messages", Some(&token), json!({"body": "before"})).await;
    b.get("/api/v1/rooms/calm", &token).await;

    redis.stop();
    for app in [a, b] {
        let (s, _) = app.get("/api/v1/me", &token).await;
        assert_eq!(s, 200);
        let (s, _) = app.get("/api/v1/rooms", &token).await;
        assert_eq!(s, 200);
        let (s, _) = app.get("/api/v1/rooms/calm/messages", &token).await;
        assert_eq!(s, 200);
        let (s, _) = app.post("/api/v1/rooms/calm/messages", Some(&token), json!({"body": "during"})).await;
        assert_eq!(s, 201);
        // A token never seen by this instance's L1 still works (L2 down -> database).
        let fresh = app.register(&format!("new{}", app.port)).await;
        let (s, _) = app.get("/api/v1/me", &fresh).await;
        assert_eq!(s, 200);
    }
    assert_eq!(a.history("calm", &token, "").await.len(), 3);
}

#[actix_web::test]
async fn replays_come_from_the_recent_window_not_the_database() {
    let app = spawn_app().await;
    let writer = app.guest("writer").await;
    let mut w = app.ws(&writer).await;
    w.join("storm").await;
    w.send_n("storm", "m", 30).await;

    let range_queries = queries(&app, "history_range").await;
    let history_hits = hits(&app, "history").await;
    // Many clients reconnecting with `since` at once.
    let mut readers = Vec::new();
    for i in 0..20 {
        let token = app.guest(&format!("back{i}")).await;
        let mut ws = app.ws(&token).await;
        ws.send_json(json!({"type": "join", "room": "storm", "since": 10})).await;
        readers.push(ws);
    }
    for ws in readers.iter_mut() {
        assert_eq!(ws.expect("joined").await["recovered"], true);
        ws.collect_until("storm", 10, 30).await;
    }
    assert_eq!(queries(&app, "history_range").await, range_queries, "no replay read PostgreSQL");
    assert!(hits(&app, "history").await >= history_hits + 20.0);

    // The newest page comes from the window too, and includes what was just acked.
    w.send_n("storm", "n", 1).await;
    let before = hits(&app, "history").await;
    let page = app.history("storm", &writer, "limit=5").await;
    assert_eq!(page.last().expect("a non-empty list")["seq"], 31);
    assert_eq!(page.len(), 5);
    assert!(hits(&app, "history").await > before);
}
