//! A hostile-input sweep against a live server: 10,000 random frames and
//! requests (seeded, so a failure can be replayed with `SB_FUZZ_SEED`).
//! Every answer must have the contract's shape: frames are JSON objects of a
//! known type, errors carry a known code; HTTP errors are
//! `{"error":{"code","message"}}` with the code that matches the status,
//! and nothing is ever a 500. Afterwards the instance must still carry a
//! small chat workload with nothing lost, doubled or out of order.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::{spawn_app_with, TestApp, WsClient};

const FRAMES: usize = 5_000;
const REQUESTS: usize = 5_000;

const FRAME_TYPES: &[&str] = &["hello", "joined", "message", "ack", "presence", "typing", "error", "reconnect", "pong"];
const ERROR_CODES: &[(&str, u16)] = &[
    ("bad_request", 400),
    ("unauthorized", 401),
    ("forbidden", 403),
    ("not_found", 404),
    ("conflict", 409),
    ("too_large", 413),
    ("rate_limited", 429),
    ("unavailable", 503),
    ("internal", 500),
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// A string a client might send where a name, body or id goes.
fn nasty_string(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => String::new(),
        1 => "lobby".into(),
        2 => "x".repeat(rng.gen_range(60..5000)),
        3 => "../../etc/passwd".into(),
        4 => "名前🙂\u{202e}ab".into(),
        5 => "\u{0}\u{1}\u{7f}".into(),
        6 => format!("room-{}", rng.gen_range(0..5)),
        7 => "%00%2e%2e%2f".into(),
        8 => "<script>alert(1)</script>".into(),
        _ => (0..rng.gen_range(1..40)).map(|_| char::from(rng.gen_range(32u8..127))).collect(),
    }
}

fn nasty_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..9) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(rng.gen_range(i64::MIN..i64::MAX)),
        3 => json!(rng.gen::<f64>() * 1e300),
        4 if depth < 4 => Value::Array((0..rng.gen_range(0..4)).map(|_| nasty_value(rng, depth + 1)).collect()),
        5 if depth < 4 => {
            Value::Object((0..rng.gen_range(0..4)).map(|_| (nasty_string(rng), nasty_value(rng, depth + 1))).collect())
        }
        _ => json!(nasty_string(rng)),
    }
}

/// One client frame: mostly well-formed frames with hostile fields, some
/// garbage, some too large.
fn nasty_frame(rng: &mut StdRng) -> Result<String, Vec<u8>> {
    match rng.gen_range(0..20) {
        0 => Err((0..rng.gen_range(1..200)).map(|_| rng.gen()).collect()),
        1 => Ok("{".repeat(rng.gen_range(1..3000))),
        2 => Ok("x".repeat(20_000)),
        3 => Ok(nasty_string(rng)),
        4 => Ok(nasty_value(rng, 0).to_string()),
        _ => {
            let kind = *pick(rng, &["join", "leave", "send", "typing", "ping", "bogus", "", "JOIN", "__panic"]);
            let mut frame = json!({"type": kind});
            for field in ["room", "body", "since", "client_msg_id", "ts"] {
                if rng.gen_bool(0.7) {
                    frame[field] = if rng.gen_bool(0.6) { json!(nasty_string(rng)) } else { nasty_value(rng, 0) };
                }
            }
            if rng.gen_bool(0.3) {
                frame["room"] = json!(format!("room-{}", rng.gen_range(0..5)));
            }
            Ok(frame.to_string())
        }
    }
}

fn check_frame(f: &Value) {
    let kind = f["type"].as_str().unwrap_or_else(|| panic!("a frame without a type: {f}"));
    assert!(FRAME_TYPES.contains(&kind), "unknown frame type: {f}");
    if kind == "error" {
        let code = f["code"].as_str().unwrap_or_default();
        assert!(ERROR_CODES.iter().any(|(c, _)| *c == code), "unknown error code: {f}");
        assert_ne!(code, "internal", "an internal error: {f}");
        assert!(f["message"].is_string(), "{f}");
    }
}

async fn frame_sweep(app: &TestApp, rng: &mut StdRng, token: &str) -> (usize, usize) {
    let mut ws = app.ws(token).await;
    let (mut closes, mut answers) = (0, 0);
    for i in 0..FRAMES {
        match nasty_frame(rng) {
            Ok(text) => ws.send_text(&text).await,
            Err(bytes) => ws.send_binary(&bytes).await,
        }
        // Every 50 frames, a ping as a barrier: everything before it has
        // been answered when its pong arrives.
        if i % 50 == 49 {
            let ts = rng.gen::<u32>();
            ws.send_json(json!({"type": "ping", "ts": ts})).await;
            loop {
                match ws.next_json_within(Duration::from_secs(10)).await {
                    Some(f) => {
                        check_frame(&f);
                        answers += 1;
                        if f["type"] == "pong" && f["ts"] == ts {
                            break;
                        }
                    }
                    None => {
                        // Closed with 1008 for too many bad frames (allowed):
                        // a new connection carries on.
                        closes += 1;
                        ws = app.ws(token).await;
                        break;
                    }
                }
            }
        }
    }
    (answers, closes)
}

async fn request_sweep(app: &TestApp, rng: &mut StdRng, token: &str) -> std::collections::BTreeMap<u16, usize> {
    // (path, the methods it answers): most requests use one of them, so the
    // handlers behind them see the hostile input, not just the router.
    let templates: [(&str, &[&str]); 19] = [
        ("/api/v1/users", &["POST"]),
        ("/api/v1/me", &["GET"]),
        ("/api/v1/sessions", &["POST"]),
        ("/api/v1/sessions/guest", &["POST"]),
        ("/api/v1/sessions/ticket", &["POST"]),
        ("/api/v1/rooms", &["GET", "POST"]),
        ("/api/v1/rooms/{r}", &["GET", "PATCH"]),
        ("/api/v1/rooms/{r}/members", &["GET", "POST"]),
        ("/api/v1/rooms/{r}/members/{u}", &["DELETE"]),
        ("/api/v1/rooms/{r}/messages", &["GET", "POST"]),
        ("/api/v1/admin/stats", &["GET"]),
        ("/ws", &["GET"]),
        ("/healthz", &["GET"]),
        ("/readyz", &["GET"]),
        ("/metrics", &["GET"]),
        ("/", &["GET", "HEAD"]),
        ("/admin", &["GET", "HEAD"]),
        ("/static/{r}", &["GET", "HEAD"]),
        ("/{r}", &["GET"]),
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..REQUESTS {
        let (template, methods) = *pick(rng, &templates);
        let method = if rng.gen_bool(0.8) {
            *pick(rng, methods)
        } else {
            *pick(rng, &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
        };
        let seg =
            |rng: &mut StdRng| -> String {
                let s = nasty_string(rng);
                let s: String = s.chars().take(300).collect();
                s.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect()
            };
        let mut path = template.to_string();
        if path.contains("{r}") {
            let r = if rng.gen_bool(0.4) { format!("room-{}", rng.gen_range(0..5)) } else { seg(rng) };
            path = path.replace("{r}", &r);
        }
        if path.contains("{u}") {
            path = path.replace("{u}", &seg(rng));
        }
        if rng.gen_bool(0.5) {
            let keys = ["limit", "before", "after", "q", "joined", "since", "ticket", "token"];
            let query: Vec<String> = (0..rng.gen_range(1..4)).map(|_| format!("{}={}", pick(rng, &keys), seg(rng))).collect();
            path = format!("{path}?{}", query.join("&"));
        }
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = app.client.request(method.clone(), app.url(&path));
        match rng.gen_range(0..4) {
            0 => {}
            1 => req = req.insert_header(("Authorization", format!("Bearer {token}"))),
            2 => req = req.insert_header(("Authorization", format!("Bearer {}", seg(rng)))),
            _ => req = req.insert_header(("Authorization", seg(rng))),
        }
        if rng.gen_bool(0.2) {
            req = req.insert_header(("X-Forwarded-For", seg(rng)));
        }
        if rng.gen_bool(0.2) {
            req = req.insert_header(("X-Request-Id", seg(rng)));
        }
        let body = match rng.gen_range(0..5) {
            0 => None,
            1 => Some(nasty_value(rng, 0).to_string()),
            2 => Some(json!({"username": nasty_string(rng), "password": nasty_string(rng), "name": nasty_string(rng), "body": nasty_string(rng), "topic": nasty_value(rng, 0)}).to_string()),
            3 => Some("x".repeat(rng.gen_range(60_000..80_000))),
            _ => Some(nasty_string(rng)),
        };
        let sent = match body {
            Some(b) => req.insert_header(("Content-Type", "application/json")).send_body(b).await,
            None => req.send().await,
        };
        let mut resp = sent.expect("the server answers every request");
        let status = resp.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        let bytes = resp.body().limit(16 << 20).await.expect("a body");
        assert_ne!(status, 500, "{method} {path}: internal error {}", String::from_utf8_lossy(&bytes));
        if status >= 400 && method != awc::http::Method::HEAD {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("{method} {path}: {status} not in the error shape: {}", String::from_utf8_lossy(&bytes))
            });
            let code = v["error"]["code"].as_str().unwrap_or_else(|| panic!("{method} {path}: {status} {v}"));
            assert!(ERROR_CODES.iter().any(|(c, s)| *c == code && *s == status), "{method} {path}: {status} with code {code}");
            assert!(v["error"]["message"].is_string(), "{v}");
        }
    }
    statuses
}

/// A small chat workload: every member of each room gets every message, in
/// order, once.
async fn chat_still_works(app: &TestApp) {
    const ROOMS: usize = 4;
    const PER_ROOM: usize = 5;
    const EACH: usize = 10;
    let mut clients: Vec<(WsClient, String)> = Vec::new();
    for i in 0..ROOMS * PER_ROOM {
        let room = format!("after-{}", i % ROOMS);
        let mut ws = app.ws(&app.guest(&format!("after{i}")).await).await;
        ws.join(&room).await;
        clients.push((ws, room));
    }
    for (i, (ws, room)) in clients.iter_mut().enumerate() {
        for n in 0..EACH {
            ws.send_json(json!({"type": "send", "room": room, "body": format!("{i}.{n}"), "client_msg_id": format!("a{i}-{n}")}))
                .await;
        }
    }
    let last = (PER_ROOM * EACH) as i64;
    for (ws, room) in clients.iter_mut() {
        assert_eq!(ws.collect_until(room, 0, last).await.len() as i64, last);
    }
}

#[actix_web::test]
async fn ten_thousand_hostile_frames_and_requests_get_contract_answers_and_the_instance_keeps_serving() {
    let seed = std::env::var("SB_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("hostile-input sweep, SB_FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let app =
        spawn_app_with(&[("RATE_LIMIT_PER_SEC", "10000"), ("RATE_LIMIT_BURST", "10000"), ("ADMIN_USERNAMES", "fuzzer")]).await;
    let token = app.register("fuzzer").await;
    let (answers, closes) = frame_sweep(&app, &mut rng, &token).await;
    let statuses = request_sweep(&app, &mut rng, &token).await;
    eprintln!("{FRAMES} frames: {answers} answers, {closes} policy closes; {REQUESTS} requests by status: {statuses:?}");
    // The sweep may have signed the token out (DELETE /api/v1/sessions is
    // in the mix); the account itself is intact.
    let (s, v) = app.post("/api/v1/sessions", None, json!({"username": "fuzzer", "password": "correct horse"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = app.get("/api/v1/me", v["token"].as_str().expect("a token")).await;
    assert_eq!(s, 200);
    chat_still_works(&app).await;
}
