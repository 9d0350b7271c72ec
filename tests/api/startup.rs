//! Start-up failures are one clear line and a non-zero exit, never a panic.

use std::process::Command;

use crate::helpers::{spawn_app, TestApp, TestDb};

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
    let (code, err) = run(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/switchboard"),
        ("DB_STARTUP_WAIT_MS", "0"),
        ("RUST_LOG", "off"),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
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
