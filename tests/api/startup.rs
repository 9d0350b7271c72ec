//! Start-up failures are one clear line and a non-zero exit, never a panic.

use std::process::Command;

use crate::support::{spawn_app, TestApp, TestDb};

fn run(env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env_clear().env("BIND_ADDR", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run server");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn bad_configuration_is_one_line_naming_the_variable() {
    let (code, err) = run(&[("RATE_LIMIT_PER_SEC", "lots")]);
    assert_eq!(code, 2);
    assert!(err.contains("RATE_LIMIT_PER_SEC"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, err) = run(&[("DATABASE_URL", "mysql://nope")]);
    assert_eq!(code, 2);
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[test]
fn unreachable_database_is_a_clear_error() {
    let (code, err) =
        run(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/switchboard"), ("DB_STARTUP_WAIT_MS", "0"), ("RUST_LOG", "off")]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("Connection refused"), "the cause under 'error connecting to server' is kept: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn start_up_retries_for_the_whole_database_wait() {
    let started = std::time::Instant::now();
    let (code, _) = run(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/switchboard"),
        ("DB_STARTUP_WAIT_MS", "2000"),
        ("RUST_LOG", "off"),
    ]);
    assert_eq!(code, 1);
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_millis(2000), "gave up after {waited:?} of 2 s");
}

#[test]
fn the_embedded_database_is_refused_beside_redis_with_a_hint() {
    for (var, value) in [("REDIS_URL", "redis://127.0.0.1:6379"), ("REDIS_CLUSTER_URLS", "redis://127.0.0.1:7000")] {
        let (code, err) = run(&[(var, value), ("DATA_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/never-created"))]);
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("DATABASE_URL") && err.contains(var) && err.contains("postgres://"), "{err}");
    }
    assert!(!std::path::Path::new(concat!(env!("CARGO_TARGET_TMPDIR"), "/never-created")).exists());
}

/// A newcomer's first run: no DATABASE_URL, no services. The database file
/// appears in DATA_DIR, a guest chats in `general`, and after a restart the
/// history is still there.
#[actix_web::test]
async fn with_no_database_url_the_server_runs_on_sqlite_in_data_dir_and_keeps_history() {
    let data_dir = format!("{}/zero-setup-{:08x}", env!("CARGO_TARGET_TMPDIR"), rand::random::<u32>());
    let start = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("DATA_DIR", &data_dir)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("switchboard listening on ") {
                        break a.to_string();
                    }
                }
                _ => panic!("the server did not start"),
            }
        };
        (child, addr)
    };
    let client = awc::Client::default();
    let post = |addr: String, path: &'static str, token: Option<String>, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let mut req = client.post(format!("{addr}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let mut resp = req.send_json(&body).await.expect("request");
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };

    let (mut first, addr) = start();
    assert!(std::path::Path::new(&format!("{data_dir}/switchboard.db")).exists());
    let (s, guest) = post(addr.clone(), "/api/v1/sessions/guest", None, serde_json::json!({"username": "newcomer"})).await;
    assert!(s == 200 || s == 201, "{guest}");
    let token = guest["token"].as_str().expect("token").to_string();
    let (s, m) =
        post(addr.clone(), "/api/v1/rooms/general/messages", Some(token.clone()), serde_json::json!({"body": "hello"})).await;
    assert_eq!((s, &m["seq"]), (201, &serde_json::json!(1)), "{m}");
    let _ = Command::new("kill").args(["-TERM", &first.id().to_string()]).status();
    assert!(first.wait().expect("exit").success());

    let (mut second, addr) = start();
    let mut resp = client.get(format!("{addr}/api/v1/rooms/general/messages")).bearer_auth(&token).send().await.expect("history");
    let history: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(history["messages"][0]["body"], "hello", "{history}");
    let _ = second.kill();
    let _ = second.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[actix_web::test]
async fn instances_starting_together_share_one_migrated_database() {
    let db = TestDb::new();
    let (a, b) = futures_util::join!(TestApp::spawn(db.clone(), &[]), TestApp::spawn(db.clone(), &[]));
    for app in [&a, &b] {
        app.wait_ready().await;
        let (s, v) = app.request("GET", "/readyz", None, None).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("ready")));
    }
    let (s, v) = a.request("GET", "/healthz", None, None).await;
    assert_eq!((s, v), (200, serde_json::json!({"status": "ok"})));
    let _ = spawn_app;
}

#[actix_web::test]
async fn metrics_expose_the_contract_names_from_start_up() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/metrics")).send().await;
    let mut resp = resp.expect("metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let text = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf8");
    for (name, kind) in [
        ("switchboard_ws_connections", "gauge"),
        ("switchboard_rooms_active", "gauge"),
        ("switchboard_messages_total", "counter"),
        ("switchboard_delivery_latency_seconds", "histogram"),
        ("switchboard_http_request_duration_seconds", "histogram"),
        ("switchboard_db_query_duration_seconds", "histogram"),
        ("switchboard_db_pool_connections", "gauge"),
        ("switchboard_cache_requests_total", "counter"),
        ("switchboard_bridge_messages_total", "counter"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}")), "missing {name}");
    }
    assert!(text.contains(r#"switchboard_bridge_messages_total{direction="in"} 0"#));
    assert!(text.contains(r#"switchboard_cache_requests_total{cache="token",result="hit"}"#));
}
