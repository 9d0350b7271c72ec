//! Pool behaviour and the read replica, against real PostgreSQL servers.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::services::PrivatePostgres;
use crate::support::{eventually, off_runtime, spawn_app_with, TestApp, TestDb};

/// Holds an ACCESS EXCLUSIVE lock on `rooms` for `hold`, from another
/// connection, so queries touching rooms wait.
fn lock_rooms(db: &TestDb, hold: Duration) -> std::thread::JoinHandle<()> {
    let url = db.url();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn =
            diesel_async::async_connection_wrapper::AsyncConnectionWrapper::<diesel_async::AsyncPgConnection>::establish(&url)
                .expect("connect");
        conn.batch_execute("BEGIN; LOCK TABLE rooms IN ACCESS EXCLUSIVE MODE").expect("lock");
        let _ = tx.send(());
        std::thread::sleep(hold);
        conn.batch_execute("COMMIT").expect("commit");
    });
    rx.recv().expect("locked");
    handle
}

#[actix_web::test]
async fn pool_exhaustion_answers_fast_with_unavailable() {
    let app = spawn_app_with(&[("DB_POOL_MAX", "1"), ("DB_POOL_MIN_IDLE", "1"), ("DB_POOL_TIMEOUT_MS", "200")]).await;
    let token = app.guest("patient").await;
    let mut ws = app.ws(&token).await;
    ws.join("lobby").await;

    let lock = lock_rooms(&app.db, Duration::from_secs(3));
    // The first request takes the only connection and waits on the lock...
    let blocked = app.get("/api/v1/rooms/lobby", &token);
    // ... which PostgreSQL shows as a backend waiting for a lock: the event
    // the other two wait for.
    let db = app.db.clone();
    let taken = async move {
        let sql =
            format!("SELECT count(*) AS v FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'", db.name);
        eventually(Duration::from_secs(5), "the blocked request to reach the lock", || async {
            (db.scalar::<i64>(&sql) >= 1).then_some(())
        })
        .await;
    };
    let after_taken = async {
        taken.await;
        let second = async {
            let started = Instant::now();
            let answer = app.get("/api/v1/rooms", &token).await;
            (answer, started.elapsed())
        };
        let ws_join = async {
            ws.send_json(json!({"type": "join", "room": "busy-room"})).await;
            ws.expect("error").await
        };
        futures_util::join!(second, ws_join)
    };
    let (first, (((status, body), took), ws_error)) = futures_util::join!(blocked, after_taken);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(took < Duration::from_secs(2), "answered in {took:?}, not after the lock");
    assert_eq!(ws_error["code"], "unavailable");
    assert_eq!(ws_error["ref"], "busy-room");
    lock.join().expect("lock thread");
    assert_eq!(first.0, 200, "the blocked request completes once the lock is gone");
    // And everything works again.
    let (s, _) = app.get("/api/v1/rooms", &token).await;
    assert_eq!(s, 200);
}

/// Ends every server connection of this database, as a PostgreSQL restart does.
fn terminate_connections(db: &TestDb) {
    db.exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ));
}

#[actix_web::test]
async fn lost_database_connections_are_replaced_without_a_restart() {
    let app = spawn_app_with(&[("DB_POOL_MAX", "4")]).await;
    let token = app.guest("survivor").await;
    let mut ws = app.ws(&token).await;
    ws.join("phoenix").await;
    ws.send_n("phoenix", "before", 3).await;

    terminate_connections(&app.db);
    // Reads and the writer come back by themselves; a request racing the
    // termination may see one 503, never a hang or a crash.
    let failures = std::cell::Cell::new(0);
    eventually(Duration::from_secs(10), "reads to recover", || async {
        let (s, _) = app.get("/api/v1/rooms/phoenix/messages", &token).await;
        if s != 200 {
            assert_eq!(s, 503);
            failures.set(failures.get() + 1);
        }
        (s == 200).then_some(())
    })
    .await;
    let failures = failures.get();
    assert!(failures <= 4, "{failures} failed reads after the restart");
    let acks = ws.send_n("phoenix", "after", 3).await;
    let mut seqs: Vec<i64> = acks.iter().map(|a| a["seq"].as_i64().expect("an integer")).collect();
    seqs.sort();
    assert_eq!(seqs, vec![4, 5, 6], "the writer reconnected and seqs continue: {acks:?}");
    assert_eq!(app.history("phoenix", &token, "").await.len(), 6);
}

/// Bounded generously: a replica that has just been started (or is replaying
/// another test's bulk writes) catches up at its own pace.
async fn wait_for_replica_state(app: &TestApp, want: &str) {
    eventually(Duration::from_secs(120), &format!("the replica to become {want}"), || async {
        let (_, v) = app.request("GET", "/readyz", None, None).await;
        (v["checks"]["replica"] == want).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn reads_use_the_replica_fall_back_and_always_see_own_writes() {
    // A primary and its streaming replica of this test's own, under target/
    // (nothing of the system's PostgreSQL changes).
    let primary = off_runtime(|| PrivatePostgres::start("primary", &[]));
    let primary = std::sync::Arc::new(primary);
    let p = primary.clone();
    let replica = off_runtime(move || PrivatePostgres::replica_of(&p, None));
    let replica_port = replica.port;
    let db = TestDb::on_server(&primary.base());
    let replica_url = format!("postgres://postgres@127.0.0.1:{replica_port}/{}", db.name);
    let app = TestApp::spawn(db, &[("DATABASE_REPLICA_URL", &replica_url), ("REPLICA_MAX_LAG_MS", "1000")]).await;
    wait_for_replica_state(&app, "ok").await;
    let token = app.register("reader").await;
    app.post("/api/v1/rooms", Some(&token), json!({"name": "mirror"})).await;

    // Read-your-writes: every page read right after a send has the send.
    for i in 0..40 {
        let (s, sent) = app.post("/api/v1/rooms/mirror/messages", Some(&token), json!({"body": format!("m{i}")})).await;
        assert_eq!(s, 201);
        let page = app.history("mirror", &token, "limit=5").await;
        assert_eq!(page.last().expect("a non-empty list")["id"], sent["id"], "history missed the reader's own message {i}");
        // The room list right after creating a room shows it too.
        if i == 0 {
            let (_, list) = app.get("/api/v1/rooms", &token).await;
            assert!(list["rooms"].as_array().expect("an array").iter().any(|r| r["name"] == "mirror"));
        }
    }
    // Older pages are served by the replica once it has caught up.
    eventually(Duration::from_secs(60), "the replica to serve a read", || async {
        let page = app.history("mirror", &token, "before=20&limit=10").await;
        assert_eq!(page.len(), 10);
        (app.metric(r#"switchboard_db_reads_total{pool="replica"}"#).await > 0.0).then_some(())
    })
    .await;

    // Replica down: reads fall back to the primary and stay correct.
    off_runtime(move || drop(replica));
    let primary_before = app.metric(r#"switchboard_db_reads_total{pool="primary"}"#).await;
    for _ in 0..5 {
        let page = app.history("mirror", &token, "limit=50").await;
        assert_eq!(page.len(), 40);
    }
    wait_for_replica_state(&app, "bypassed").await;
    let primary_after = app.metric(r#"switchboard_db_reads_total{pool="primary"}"#).await;
    assert!(primary_after >= primary_before + 5.0);
    let (s, v) = app.request("GET", "/readyz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")), "a missing replica does not make the instance unready");

    // Back up (a fresh copy on the same port): used again.
    let p = primary.clone();
    let replica = off_runtime(move || PrivatePostgres::replica_of(&p, Some(replica_port)));
    wait_for_replica_state(&app, "ok").await;
    drop(app);
    off_runtime(move || drop(replica));
}
