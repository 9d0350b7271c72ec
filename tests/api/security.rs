//! Security guarantees: revocation holds on every instance from the moment
//! it answers (over Redis and Redis Cluster), WebSocket tickets, per-address
//! creation limits, session expiry and guest retirement.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{eventually, spawn_app_with, spawn_cluster, Mode, TestApp};

const ROUNDS: usize = 200;

/// Sign out on B, then probe A at once, ROUNDS times. A has the token in its
/// cache each time (it answered with it just before).
async fn sign_out_loop(mode: Mode) {
    let cluster = spawn_cluster(mode, &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let mut accepted = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let token = b.guest(&format!("out{round}")).await;
        let (s, _) = a.get("/api/v1/me", &token).await;
        assert_eq!(s, 200, "round {round}: A knows the token before");
        // Every tenth round, a socket on A that must stop at once too.
        let mut socket = if round % 10 == 0 {
            let mut ws = a.ws(&token).await;
            ws.join("lobby").await;
            Some(ws)
        } else {
            None
        };
        let (s, _) = b.request("DELETE", "/api/v1/sessions", Some(&token), None).await;
        assert_eq!(s, 204);
        let (s, _) = a.get("/api/v1/me", &token).await;
        if s != 401 {
            accepted.push((round, "GET /me", s));
        }
        if round % 10 == 5 {
            if let Ok(_ws) = a.try_ws_with_token(&token).await {
                accepted.push((round, "upgrade", 101));
            }
        }
        if let Some(ws) = socket.as_mut() {
            ws.send_json(json!({"type": "send", "room": "lobby", "body": "after sign-out", "client_msg_id": "late"})).await;
            if socket_accepted_send(ws).await {
                accepted.push((round, "send on an open socket", 200));
            }
        }
    }
    eprintln!("{mode:?}: {ROUNDS} sign-outs in {:?}; accepted afterwards: {accepted:?}", started.elapsed());
    assert!(accepted.is_empty(), "a revoked token was accepted: {accepted:?}");
    let confirmed = a.metric(r#"switchboard_revocations_total{outcome="lease_wait"}"#).await
        + b.metric(r#"switchboard_revocations_total{outcome="lease_wait"}"#).await;
    eprintln!("{mode:?}: revocations that had to wait out the lease: {confirmed}");
}

/// Reads what the server says to a send on a socket whose token or
/// membership was just revoked: true if it was acked.
async fn socket_accepted_send(ws: &mut crate::support::WsClient) -> bool {
    loop {
        match ws.next_json_within(Duration::from_secs(5)).await {
            None => return false,
            Some(f) if f["type"] == "ack" => return true,
            Some(f) if f["type"] == "error" && f["ref"] == "late" => return false,
            Some(_) => {}
        }
    }
}

#[actix_web::test]
async fn a_signed_out_token_is_refused_by_every_instance_at_once_over_redis() {
    sign_out_loop(Mode::Redis(2)).await;
}

#[actix_web::test]
async fn a_signed_out_token_is_refused_by_every_instance_at_once_over_redis_cluster() {
    sign_out_loop(Mode::RedisCluster(2)).await;
}

/// The owner (on B) removes a member, then the member probes A at once,
/// ROUNDS times; A cached the membership just before.
async fn removal_loop(mode: Mode) {
    let cluster = spawn_cluster(mode, &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let owner = b.register("owner").await;
    let member = b.register("member").await;
    let (s, _) = b.post("/api/v1/rooms", Some(&owner), json!({"name": "vault", "private": true})).await;
    assert_eq!(s, 201);
    b.post("/api/v1/rooms/vault/messages", Some(&owner), json!({"body": "secret"})).await;
    let mut accepted = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let (s, _) = b.post("/api/v1/rooms/vault/members", Some(&owner), json!({"username": "member"})).await;
        assert_eq!(s, 204);
        let (s, _) = a.get("/api/v1/rooms/vault/messages", &member).await;
        assert_eq!(s, 200, "round {round}: the member reads before the removal");
        let mut socket = if round % 10 == 0 {
            let mut ws = a.ws(&member).await;
            ws.join("vault").await;
            Some(ws)
        } else {
            None
        };
        let (s, _) = b.request("DELETE", "/api/v1/rooms/vault/members/member", Some(&owner), None).await;
        assert_eq!(s, 204);
        let (s, _) = a.get("/api/v1/rooms/vault/messages", &member).await;
        if s != 404 {
            accepted.push((round, "read history", s));
        }
        let (s, _) = a.post("/api/v1/rooms/vault/messages", Some(&member), json!({"body": "still here?"})).await;
        if s < 400 {
            accepted.push((round, "post", s));
        }
        if let Some(ws) = socket.as_mut() {
            ws.send_json(json!({"type": "send", "room": "vault", "body": "after removal", "client_msg_id": "late"})).await;
            if socket_accepted_send(ws).await {
                accepted.push((round, "send on a joined socket", 200));
            }
            ws.send_json(json!({"type": "join", "room": "vault"})).await;
            loop {
                let Some(f) = ws.next_json_within(Duration::from_secs(5)).await else {
                    panic!("round {round}: no answer to the rejoin")
                };
                if f["type"] == "joined" {
                    accepted.push((round, "rejoin", 200));
                    break;
                }
                // A private room one is not in is reported as missing.
                if f["type"] == "error" && f["code"] == "not_found" && f["ref"] == "vault" {
                    break;
                }
            }
        }
    }
    eprintln!("{mode:?}: {ROUNDS} removals in {:?}; accepted afterwards: {accepted:?}", started.elapsed());
    assert!(accepted.is_empty(), "a removed member was let in: {accepted:?}");
}

#[actix_web::test]
async fn a_removed_member_is_refused_by_every_instance_at_once_over_redis() {
    removal_loop(Mode::Redis(2)).await;
}

#[actix_web::test]
async fn a_removed_member_is_refused_by_every_instance_at_once_over_redis_cluster() {
    removal_loop(Mode::RedisCluster(2)).await;
}

#[actix_web::test]
async fn tickets_work_once_on_any_instance_expire_and_die_with_their_token() {
    // A 3 s lifetime (30 s by default) so expiry is seen without a long wait.
    let cluster = spawn_cluster(Mode::Redis(2), &[("WS_TICKET_TTL_MS", "3000")]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let token = a.guest("ticketed").await;
    let ticket = |app: &TestApp| {
        let token = token.clone();
        let app_url = app.url("/api/v1/sessions/ticket");
        let client = app.client.clone();
        async move {
            let mut resp = client.post(app_url).bearer_auth(&token).send().await.expect("ticket request");
            assert_eq!(resp.status().as_u16(), 200);
            assert_eq!(resp.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
            let v: Value = resp.json().await.expect("json");
            assert_eq!(v["expires_in"], 3);
            v["ticket"].as_str().expect("ticket").to_string()
        }
    };
    let url = |app: &TestApp, t: &str| format!("ws://127.0.0.1:{}/ws?ticket={t}", app.port);

    // Issued on A, used on B (behind a load balancer that is the usual case); once.
    let t = ticket(a).await;
    let mut ws = b.try_ws_url(&url(b, &t)).await.expect("the ticket works");
    ws.assert_usable().await;
    assert_eq!(a.try_ws_url(&url(a, &t)).await.err(), Some(401), "a ticket works only once");
    assert_eq!(b.try_ws_url(&url(b, "made-up")).await.err(), Some(401));
    assert_eq!(b.try_ws_url(&format!("ws://127.0.0.1:{}/ws", b.port)).await.err(), Some(401));

    // Dies with its token.
    let unused = ticket(a).await;
    let (s, _) = a.request("DELETE", "/api/v1/sessions", Some(&token), None).await;
    assert_eq!(s, 204);
    assert_eq!(b.try_ws_url(&url(b, &unused)).await.err(), Some(401), "the token was revoked");
    let (s, _) = a.request("POST", "/api/v1/sessions/ticket", Some(&token), None).await;
    assert_eq!(s, 401);

    // Expires after its lifetime: tickets issued together are tried one
    // at a time (each works once) until one is refused, never before 3 s.
    let other = a.guest("patient").await;
    let issued = Instant::now();
    let mut tickets = Vec::new();
    for _ in 0..40 {
        let (s, v) = a.request("POST", "/api/v1/sessions/ticket", Some(&other), None).await;
        assert_eq!(s, 200);
        tickets.push(v["ticket"].as_str().expect("ticket").to_string());
    }
    let tickets = std::cell::RefCell::new(tickets.into_iter());
    eventually(Duration::from_secs(10), "a ticket past its lifetime to be refused", || async {
        let late = tickets.borrow_mut().next().expect("more tickets than tries");
        match b.try_ws_url(&url(b, &late)).await {
            Ok(_) => None,
            Err(status) => {
                assert_eq!(status, 401, "an expired ticket");
                Some(())
            }
        }
    })
    .await;
    assert!(issued.elapsed() >= Duration::from_secs(3), "a ticket was refused before its lifetime ended");
    // The discouraged ?token= still works.
    let mut ws = a.try_ws_with_token(&other).await.expect("token upgrade");
    ws.assert_usable().await;
}

/// Creations from one client address (named by a trusted proxy).
async fn create_from(app: &TestApp, ip: &str, path: &str, body: Value) -> (u16, Option<u64>) {
    let mut resp = app.client.post(app.url(path)).insert_header(("X-Forwarded-For", ip)).send_json(&body).await.expect("request");
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let status = resp.status().as_u16();
    let _ = resp.body().await;
    (status, retry)
}

#[actix_web::test]
async fn account_and_guest_creation_are_limited_per_address_across_the_cluster() {
    let cluster = spawn_cluster(Mode::Redis(2), &[("SIGNUPS_PER_MIN", "3"), ("GUESTS_PER_MIN", "30")]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    let signup = |n: usize| json!({"username": format!("flood{n}"), "password": "correct horse"});
    // Two accounts on A, one on B: the address's three.
    for (i, app) in [a, a, b].into_iter().enumerate() {
        assert_eq!(create_from(app, "203.0.113.7", "/api/v1/users", signup(i)).await.0, 201);
    }
    let (s, retry) = create_from(b, "203.0.113.7", "/api/v1/users", signup(9)).await;
    assert_eq!(s, 429, "the fourth, on either instance");
    let retry = retry.expect("Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(create_from(a, "198.51.100.1", "/api/v1/users", signup(10)).await.0, 201, "another address");

    // A guest flood from one address: what gets through in a minute.
    let started = Instant::now();
    let mut admitted = 0;
    let mut refused = 0;
    for n in 0..2000 {
        let app = if n % 2 == 0 { a } else { b };
        match create_from(app, "203.0.113.9", "/api/v1/sessions/guest", json!({"username": format!("guest{n}")})).await.0 {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    eprintln!("guest flood from one address: {admitted} admitted, {refused} refused in {:?}", started.elapsed());
    assert_eq!(admitted, 30, "GUESTS_PER_MIN for the whole cluster");
    let stored = cluster.db.scalar::<i64>("SELECT count(*) AS v FROM users WHERE guest");
    assert_eq!(stored, 30, "refused guests are not stored");
}

#[actix_web::test]
async fn a_local_proxy_without_x_forwarded_for_is_limited_as_one_address() {
    // The contract's defaults, and loopback trusted (the default): as behind
    // stunnel or HAProxy in `mode tcp` on the same host.
    let app = spawn_app_with(&[("SIGNUPS_PER_MIN", "10"), ("GUESTS_PER_MIN", "30")]).await;
    let mut admitted = 0;
    let mut first_refusal = None;
    for n in 0..40 {
        let (s, v) = app.post("/api/v1/sessions/guest", None, json!({"username": format!("local{n}")})).await;
        match s {
            200 => admitted += 1,
            429 if first_refusal.is_none() => first_refusal = Some((n, v["error"]["code"].as_str().map(String::from))),
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 30, "GUESTS_PER_MIN applies to a trusted peer that names no client");
    assert_eq!(first_refusal, Some((30, Some("rate_limited".to_string()))));
    let signups = futures_util::future::join_all(
        (0..12).map(|n| app.post("/api/v1/users", None, json!({"username": format!("acct{n}"), "password": "correct horse"}))),
    )
    .await;
    assert_eq!(signups.iter().filter(|(s, _)| *s == 201).count(), 10, "SIGNUPS_PER_MIN too");
    // Named clients behind the same proxy are still told apart.
    assert_eq!(create_from(&app, "198.51.100.20", "/api/v1/sessions/guest", json!({"username": "named"})).await.0, 200);
    let log = std::fs::read_to_string(&app.log_path).unwrap_or_default();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("without a usable X-Forwarded-For")).collect();
    assert_eq!(warnings.len(), 1, "warned once:\n{log}");
    assert!(warnings[0].contains("TRUSTED_PROXIES") && warnings[0].contains("WARN"), "{}", warnings[0]);
}

#[actix_web::test]
async fn sessions_expire_when_idle_or_old_and_an_open_socket_keeps_its_token_alive() {
    // Idle after 3 s, at most 9 s old (fractions of a day).
    let idle = format!("{}", 3.0 / 86_400.0);
    let max = format!("{}", 9.0 / 86_400.0);
    let app = spawn_app_with(&[("SESSION_IDLE_DAYS", &idle), ("SESSION_MAX_DAYS", &max)]).await;
    let used = app.guest("busy").await;
    let unused = app.guest("idle").await;
    let socketed = app.guest("socket").await;
    let mut ws = app.ws(&socketed).await;
    let started = Instant::now();
    // Used every 300 ms for 5 s: stays valid although 3 s is the idle limit.
    while started.elapsed() < Duration::from_secs(5) {
        let (s, _) = app.get("/api/v1/me", &used).await;
        assert_eq!(s, 200, "a token in use at {:?}", started.elapsed());
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    }
    let (s, v) = app.get("/api/v1/me", &unused).await;
    assert_eq!(s, 401, "unused for 5 s: {v}");
    assert_eq!(v["error"]["code"], "unauthorized");
    ws.assert_usable().await;
    let (s, _) = app.get("/api/v1/me", &socketed).await;
    assert_eq!(s, 200, "an open socket is use");
    // Past the maximum age, however used; the socket is closed too.
    while started.elapsed() < Duration::from_secs(10) {
        app.get("/api/v1/me", &used).await;
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    }
    let (s, _) = app.get("/api/v1/me", &used).await;
    assert_eq!(s, 401, "older than SESSION_MAX_DAYS");
    let (s, _) = app.get("/api/v1/me", &socketed).await;
    assert_eq!(s, 401);
    let err = ws.expect("error").await;
    assert_eq!(err["code"], "unauthorized");
    assert!(ws.closed_within(Duration::from_secs(5)).await);
}

#[actix_web::test]
async fn idle_guests_are_retired_their_names_freed_and_their_messages_kept() {
    let retention = format!("{}", 2.0 / 86_400.0);
    let app = spawn_app_with(&[("GUEST_RETENTION_DAYS", &retention), ("CLEANUP_INTERVAL_MS", "300")]).await;
    let reader = app.register("reader").await;
    let guest = app.guest("fleeting").await;
    let (s, _) = app.post("/api/v1/rooms", Some(&reader), json!({"name": "hall"})).await;
    assert_eq!(s, 201);
    let (s, _) = app.post("/api/v1/rooms/hall/messages", Some(&guest), json!({"body": "I was here"})).await;
    assert_eq!(s, 201);
    let db = app.db.clone();
    eventually(Duration::from_secs(30), "the idle guest to be retired", || async {
        let retired = "SELECT count(*) AS v FROM users WHERE username = 'fleeting' AND retired_at IS NOT NULL";
        (db.scalar::<i64>(retired) > 0).then_some(())
    })
    .await;
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) AS v FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'fleeting'"),
        0
    );
    assert_eq!(
        db.scalar::<i64>("SELECT count(*) AS v FROM users WHERE username = 'reader' AND retired_at IS NULL"),
        1,
        "accounts stay"
    );
    let (s, _) = app.get("/api/v1/me", &guest).await;
    assert_eq!(s, 401, "the retired guest's token is gone");
    // The name is free: a new guest gets it exactly, without a suffix.
    let (s, v) = app.post("/api/v1/sessions/guest", None, json!({"username": "fleeting"})).await;
    assert_eq!(s, 200);
    assert_eq!(v["user"]["username"], "fleeting");
    // The old message still shows the name it was sent under.
    let history = app.history("hall", &reader, "").await;
    assert_eq!(history.len(), 1);
    assert_eq!((history[0]["user"].as_str(), history[0]["body"].as_str()), (Some("fleeting"), Some("I was here")));
    assert!(app.metric(r#"switchboard_cleanup_rows_total{kind="guests"}"#).await >= 1.0);
}

#[actix_web::test]
async fn an_instance_that_cannot_confirm_stops_trusting_its_cache_before_the_revocation_answers() {
    let cluster = spawn_cluster(Mode::Redis(2), &[]).await;
    let (a, b) = (cluster.app(0), cluster.app(1));
    // B knows A (a revoker only waits for instances it has heard from).
    eventually(Duration::from_secs(10), "the instances to hear each other", || async {
        let heard =
            b.metric("switchboard_cluster_instances").await >= 2.0 && a.metric("switchboard_cache_lease_valid").await >= 1.0;
        heard.then_some(())
    })
    .await;
    for round in 0..3 {
        let token = b.guest(&format!("frozen{round}")).await;
        let (s, _) = a.get("/api/v1/me", &token).await;
        assert_eq!(s, 200, "A has the token cached");
        // A stops dead: it cannot hear the revocation, let alone confirm it.
        a.signal("STOP");
        let started = Instant::now();
        let (s, _) = b.request("DELETE", "/api/v1/sessions", Some(&token), None).await;
        let took = started.elapsed();
        a.signal("CONT");
        assert_eq!(s, 204);
        assert!(took >= Duration::from_secs(1), "B waited out A's cache lease ({took:?})");
        // A's first request after waking may run before its bus catches up;
        // its lease has lapsed, so it asks PostgreSQL.
        let (s, _) = a.get("/api/v1/me", &token).await;
        assert_eq!(s, 401, "round {round}: A trusted a stale cache");
    }
    assert!(b.metric(r#"switchboard_revocations_total{outcome="lease_wait"}"#).await >= 3.0);
    assert!(a.metric(r#"switchboard_cache_lease_bypass_total{cache="token"}"#).await >= 1.0);
}
