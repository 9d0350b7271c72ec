//! Limits at the edge: connections, sign-ins, room creation and requests
//! per address, the instance's connection cap, and upgrades from other
//! origins.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{eventually, spawn_app_with};

#[actix_web::test]
async fn connection_login_room_and_request_limits() {
    let app = spawn_app_with(&[
        ("MAX_CONNECTIONS", "4"),
        ("MAX_CONNECTIONS_PER_IP", "2"),
        ("TRUSTED_PROXIES", "none"),
        ("LOGIN_FAILURES_PER_MIN", "5"),
        ("MAX_ROOMS_PER_CONNECTION", "2"),
        ("HANDSHAKE_TIMEOUT_MS", "500"),
    ])
    .await;
    let token = app.register("limited").await;

    // Per address: 2; the third gets 429.
    let a = app.ws(&token).await;
    let b = app.ws(&token).await;
    assert_eq!(app.try_ws(&token).await.err(), Some(429));
    drop((a, b));

    // Brute force on sign-in: after 5 failures a minute, 429 even with the right password.
    for _ in 0..5 {
        let (s, _) = app.post("/api/v1/sessions", None, json!({"username": "limited", "password": "wrong guess"})).await;
        assert_eq!(s, 401);
    }
    let (s, v) = app.post("/api/v1/sessions", None, json!({"username": "limited", "password": "correct horse"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (429, Some("rate_limited")));

    // Rooms per connection (once the dropped sockets' slots are released).
    let mut ws =
        eventually(Duration::from_secs(5), "a connection slot for this address", || async { app.try_ws(&token).await.ok() })
            .await;
    ws.join("one").await;
    ws.join("two").await;
    ws.send_json(json!({"type": "join", "room": "three"})).await;
    let e = ws.expect("error").await;
    assert_eq!((e["code"].as_str(), e["ref"].as_str()), (Some("bad_request"), Some("three")));

    // Slowloris: a request head that never completes is cut off.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", app.port)).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "unexpected answer {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "the half-sent request was held for {:?}", started.elapsed());
}

#[actix_web::test]
async fn instance_connection_cap_answers_503() {
    let app = spawn_app_with(&[("MAX_CONNECTIONS", "2")]).await;
    let token = app.guest("crowd").await;
    let _a = app.ws(&token).await;
    let _b = app.ws(&token).await;
    assert_eq!(app.try_ws(&token).await.err(), Some(503));
}

#[actix_web::test]
async fn websocket_upgrades_from_other_origins_are_refused_and_pages_carry_security_headers() {
    let app = spawn_app_with(&[("ALLOWED_ORIGINS", "https://chat.example")]).await;
    let token = app.guest("origin").await;
    let url = |t: &str| format!("ws://127.0.0.1:{}/ws?token={t}", app.port);
    let status = |r: Result<_, awc::error::WsClientError>| match r {
        Ok(_) => 101,
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => s.as_u16(),
        Err(e) => panic!("{e}"),
    };
    let evil = app.client.ws(url(&token)).origin("https://evil.example").connect().await.map(|_| ());
    assert_eq!(status(evil), 403);
    let listed = app.client.ws(url(&token)).origin("https://chat.example").connect().await.map(|_| ());
    assert_eq!(status(listed), 101);
    let same = app.client.ws(url(&token)).origin("http://127.0.0.1").connect().await.map(|_| ());
    assert_eq!(status(same), 101);

    for path in ["/", "/admin"] {
        let resp = app.client.get(app.url(path)).send().await.expect("page");
        let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let csp = h("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("x-frame-options"), "DENY");
    }
}
