//! Test harness: every test gets its own database and its own server process
//! (the real binary, on a random port) and talks to it over real HTTP and
//! WebSocket connections.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::rt::time::timeout;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

fn admin_conn() -> SyncConn {
    SyncConn::establish(&format!("{PG_BASE}/postgres")).expect("PostgreSQL must run on 127.0.0.1:5432 (scripts/services.sh)")
}

/// Runs blocking database admin work on its own thread (tests run inside an
/// actix runtime, where blocking on another runtime is not allowed).
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("admin thread panicked")
}

/// A database of its own for one test, dropped when the last holder goes.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new() -> Arc<TestDb> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| off_runtime(sweep_leftovers));
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let name = format!("sbt_{secs}_{:08x}", rand::random::<u32>());
        Arc::new(TestDb { name })
    }

    pub fn url(&self) -> String {
        format!("{PG_BASE}/{}", self.name)
    }

    /// Runs SQL against this test's database and returns one i64.
    pub fn query_i64(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            v: i64,
        }
        let (url, sql) = (self.url(), sql.to_string());
        off_runtime(move || {
            use diesel::RunQueryDsl;
            let mut conn = SyncConn::establish(&url).expect("connect to test db");
            let row: Row = diesel::sql_query(sql).get_result(&mut conn).expect("query");
            row.v
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        off_runtime(move || {
            let _ = admin_conn().batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        });
    }
}

/// Drops test databases left behind by killed runs (older than an hour).
fn sweep_leftovers() {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    use diesel::RunQueryDsl;
    let mut conn = admin_conn();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'sbt\\_%'").load(&mut conn).unwrap_or_default();
    for n in names {
        let ts = n.datname.split('_').nth(1).and_then(|t| t.parse::<u64>().ok()).unwrap_or(now);
        if now.saturating_sub(ts) > 3600 {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", n.datname));
        }
    }
}

/// One running server process.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub db: Arc<TestDb>,
    pub client: awc::Client,
    child: Option<Child>,
    pub log_path: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    TestApp::spawn(TestDb::new(), env).await
}

impl TestApp {
    pub async fn spawn(db: Arc<TestDb>, env: &[(&str, &str)]) -> TestApp {
        let logs = concat!(env!("CARGO_TARGET_TMPDIR"), "/server-logs");
        let _ = std::fs::create_dir_all(logs);
        let log_path = format!("{logs}/{}-{:04x}.log", db.name, rand::random::<u16>());
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db.url())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env("WORKERS", "2")
            .env("ADMIN_USERNAMES", "admin")
            .env("DRAIN_GRACE_MS", "500");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("switchboard listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(a) = rx.try_recv() {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("server exited during start-up ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "server did not start within 30 s; see {log_path}");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        };
        let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
        TestApp { address: format!("http://{addr}"), port, db, client, child: Some(child), log_path }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        self.wait_exit(Duration::from_secs(30)).await
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit within {within:?}");
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // ---- HTTP ----

    pub async fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut resp = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("HTTP request");
        let status = resp.status().as_u16();
        let bytes = resp.body().limit(16 << 20).await.expect("body");
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.request("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.request("POST", path, token, Some(body)).await
    }

    pub async fn register(&self, username: &str) -> String {
        let (s, _) = self.post("/api/v1/users", None, json!({"username": username, "password": "correct horse"})).await;
        assert_eq!(s, 201, "register {username}");
        let (s, v) = self.post("/api/v1/sessions", None, json!({"username": username, "password": "correct horse"})).await;
        assert_eq!(s, 200, "login {username}");
        v["token"].as_str().expect("token").to_string()
    }

    pub async fn guest(&self, username: &str) -> String {
        let (s, v) = self.post("/api/v1/sessions/guest", None, json!({"username": username})).await;
        assert_eq!(s, 200, "guest {username}: {v}");
        v["token"].as_str().expect("token").to_string()
    }

    pub async fn history(&self, room: &str, token: &str, query: &str) -> Vec<Value> {
        let (s, v) = self.get(&format!("/api/v1/rooms/{room}/messages?{query}"), token).await;
        assert_eq!(s, 200, "history: {v}");
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    // ---- WebSocket ----

    pub async fn ws(&self, token: &str) -> WsClient {
        self.try_ws(token).await.expect("WebSocket upgrade")
    }

    pub async fn try_ws(&self, token: &str) -> Result<WsClient, u16> {
        let url = format!("ws://127.0.0.1:{}/ws?token={token}", self.port);
        match self.client.ws(url).max_frame_size(1 << 20).connect().await {
            Ok((_, framed)) => {
                let mut ws = WsClient { framed, backlog: Vec::new() };
                let hello = ws.next_json().await;
                assert_eq!(hello["type"], "hello", "first frame: {hello}");
                Ok(ws)
            }
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
            Err(e) => panic!("ws connect: {e}"),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server log: {}", self.log_path);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct WsClient {
    framed: actix_codec::Framed<BoxedSocket, Codec>,
    /// Frames read while looking for another kind, kept for later reads.
    backlog: Vec<Value>,
}

/// How long a test waits for a frame it expects.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

impl WsClient {
    pub async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        self.framed.send(Message::Text(s.to_string().into())).await.expect("ws send");
    }

    pub async fn send_binary(&mut self, b: &[u8]) {
        self.framed.send(Message::Binary(b.to_vec().into())).await.expect("ws send");
    }

    pub async fn close(mut self) {
        let _ = self.framed.send(Message::Close(None)).await;
    }

    /// The next JSON frame, or None when the socket closed or nothing came in `wait`.
    pub async fn next_json_within(&mut self, wait: Duration) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = timeout(left, self.framed.next()).await.ok()??;
            match frame {
                Ok(Frame::Text(bytes)) => return Some(serde_json::from_slice(&bytes).expect("server frames are JSON")),
                Ok(Frame::Ping(p)) => {
                    let _ = self.framed.send(Message::Pong(p)).await;
                }
                Ok(Frame::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        self.next_json_within(FRAME_WAIT).await.expect("expected a frame")
    }

    /// The next frame of `kind`; frames of other kinds stay queued.
    pub async fn expect(&mut self, kind: &str) -> Value {
        if let Some(i) = self.backlog.iter().position(|v| v["type"] == kind) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + FRAME_WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let saved = std::mem::take(&mut self.backlog);
            let got = self.next_json_within(left).await;
            self.backlog = saved;
            match got {
                Some(v) if v["type"] == kind => {
                    self.backlog.splice(0..0, skipped);
                    return v;
                }
                Some(v) => skipped.push(v),
                None => panic!("no {kind:?} frame; got {skipped:?}"),
            }
        }
    }

    /// Whether the server closes the socket within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match timeout(left, self.framed.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Frame::Close(_)))) => return true,
                Ok(Some(Ok(Frame::Text(b)))) => self.backlog.push(serde_json::from_slice(&b).unwrap_or(Value::Null)),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        self.send_json(json!({"type": "join", "room": room})).await;
        self.expect("joined").await
    }

    /// Proves the connection still answers.
    pub async fn assert_usable(&mut self) {
        let ts = rand::random::<u32>();
        self.send_json(json!({"type": "ping", "ts": ts})).await;
        let pong = self.expect("pong").await;
        assert_eq!(pong["ts"], ts);
    }
}
