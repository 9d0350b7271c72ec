//! Test harness: every test gets its own database and its own server process
//! (the real binary, on a random port) and talks to it over real HTTP and
//! WebSocket connections.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
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

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// The PostgreSQL of this run (found or started by `services`).
pub fn pg_base() -> String {
    crate::services::services().pg_base.clone()
}

/// host:port of this run's PostgreSQL and Redis (for proxies in front of them).
pub fn pg_addr() -> String {
    pg_base().rsplit('@').next().unwrap_or_default().to_string()
}

pub fn redis_addr() -> String {
    shared_redis().trim_start_matches("redis://").to_string()
}

/// The shared Redis of this run.
pub fn shared_redis() -> String {
    crate::services::services().redis_url.clone()
}

fn admin_conn(base: &str) -> SyncConn {
    SyncConn::establish(&format!("{base}/postgres")).unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"))
}

/// Runs blocking database admin work on its own thread (tests run inside an
/// actix runtime, where blocking on another runtime is not allowed).
pub fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("admin thread panicked")
}

/// Which database the servers of a test use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    /// The embedded SQLite file (one instance).
    Sqlite,
}

thread_local! {
    static BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Postgres) };
}

/// Sets the backend for the test running on this thread (`on_both_backends!`).
pub fn use_backend(backend: Backend) {
    BACKEND.with(|b| b.set(backend));
}

/// A database of its own for one test, dropped when the last holder goes:
/// a PostgreSQL database, or a SQLite file under target/tmp/sqlite.
pub struct TestDb {
    pub name: String,
    pub backend: Backend,
    base: String,
}

impl TestDb {
    /// On the backend of the running test (PostgreSQL unless the test runs
    /// on both).
    pub fn new() -> Arc<TestDb> {
        Self::new_on(BACKEND.with(|b| b.get()))
    }

    pub fn new_on(backend: Backend) -> Arc<TestDb> {
        let base = match backend {
            Backend::Postgres => pg_base(),
            Backend::Sqlite => String::new(),
        };
        Self::with_base(backend, base)
    }

    /// A PostgreSQL database on another server (the replica tests' primary).
    pub fn on_server(base: &str) -> Arc<TestDb> {
        Self::with_base(Backend::Postgres, base.to_string())
    }

    fn with_base(backend: Backend, base: String) -> Arc<TestDb> {
        if backend == Backend::Postgres {
            static SWEEP: Once = Once::new();
            let b = base.clone();
            SWEEP.call_once(move || off_runtime(move || sweep_leftovers(&b)));
        }
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let name = format!("sbt_{secs}_{:08x}", rand::random::<u32>());
        Arc::new(TestDb { name, backend, base })
    }

    fn sqlite_path(&self) -> String {
        let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/sqlite");
        let _ = std::fs::create_dir_all(dir);
        format!("{dir}/{}.db", self.name)
    }

    pub fn url(&self) -> String {
        match self.backend {
            Backend::Postgres => format!("{}/{}", self.base, self.name),
            Backend::Sqlite => format!("sqlite://{}", self.sqlite_path()),
        }
    }

    /// Runs SQL against this test's database and returns one i64 (column `v`).
    pub fn query_i64(&self, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            v: i64,
        }
        self.query(sql, |r: Row| r.v)
    }

    /// Runs SQL against this test's database and returns one text value (column `v`).
    pub fn query_text(&self, sql: &str) -> String {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        self.query(sql, |r: Row| r.v)
    }

    fn query<R, T>(&self, sql: &str, take: fn(R) -> T) -> T
    where
        R: diesel::QueryableByName<diesel::pg::Pg> + diesel::QueryableByName<diesel::sqlite::Sqlite> + 'static,
        T: Send + 'static,
    {
        let (backend, url, path, sql) = (self.backend, self.url(), self.sqlite_path(), sql.to_string());
        off_runtime(move || {
            use diesel::RunQueryDsl;
            let row: R = match backend {
                Backend::Postgres => {
                    let mut conn = SyncConn::establish(&url).expect("connect to test db");
                    diesel::sql_query(sql).get_result(&mut conn).expect("query")
                }
                Backend::Sqlite => {
                    let mut conn = diesel::SqliteConnection::establish(&path).expect("open test db");
                    diesel::sql_query(sql).get_result(&mut conn).expect("query")
                }
            };
            take(row)
        })
    }

    /// Runs SQL (several statements allowed) against this test's database.
    pub fn exec(&self, sql: &str) {
        let (backend, url, path, sql) = (self.backend, self.url(), self.sqlite_path(), sql.to_string());
        off_runtime(move || match backend {
            Backend::Postgres => SyncConn::establish(&url).expect("connect to test db").batch_execute(&sql).expect("exec"),
            Backend::Sqlite => {
                diesel::SqliteConnection::establish(&path).expect("open test db").batch_execute(&sql).expect("exec")
            }
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.backend {
            Backend::Postgres => {
                let (base, name) = (self.base.clone(), self.name.clone());
                // The server may be gone (a failover test's lost primary).
                off_runtime(move || {
                    if let Ok(mut conn) = SyncConn::establish(&format!("{base}/postgres")) {
                        let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
                    }
                });
            }
            Backend::Sqlite => {
                let path = self.sqlite_path();
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}

/// Drops test databases left behind by killed runs (older than an hour).
fn sweep_leftovers(base: &str) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    use diesel::RunQueryDsl;
    let mut conn = admin_conn(base);
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
    /// INSTANCE_ID, as `hello` reports it.
    pub instance: String,
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
        let mut instance = format!("test-{:06x}", rand::random::<u32>() & 0xffffff);
        for (k, v) in env {
            if *k == "INSTANCE_ID" {
                instance = v.to_string();
            }
            cmd.env(k, v);
        }
        cmd.env("INSTANCE_ID", &instance);
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
        TestApp { address: format!("http://{addr}"), port, instance, db, client, child: Some(child), log_path }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30)).await
    }

    pub fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        Command::new("kill").args([&format!("-{name}"), &pid]).status().expect("kill");
    }

    /// kill -9: no drain, no goodbye.
    pub async fn kill_hard(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(10)).await;
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

    /// One sample's value from `/metrics` (`name` may include labels).
    pub async fn metric(&self, name: &str) -> f64 {
        let mut resp = self.client.get(self.url("/metrics")).send().await.expect("metrics");
        let text = String::from_utf8(resp.body().limit(16 << 20).await.expect("body").to_vec()).expect("utf8");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("metric {name} missing"))
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
        self.login(username).await
    }

    /// Signs in a user made by `register`.
    pub async fn login(&self, username: &str) -> String {
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
        self.try_ws_via(self.port, token).await
    }

    /// Connects through another port (a load balancer in front of instances),
    /// as our clients do: a ticket first, then `/ws?ticket=`.
    pub async fn try_ws_via(&self, port: u16, token: &str) -> Result<WsClient, u16> {
        let (s, v) = self.request("POST", "/api/v1/sessions/ticket", Some(token), None).await;
        if s != 200 {
            return Err(s);
        }
        let ticket = v["ticket"].as_str().expect("a ticket");
        self.try_ws_url(&format!("ws://127.0.0.1:{port}/ws?ticket={ticket}")).await
    }

    /// Connects with the discouraged `?token=` (still accepted).
    pub async fn try_ws_with_token(&self, token: &str) -> Result<WsClient, u16> {
        self.try_ws_url(&format!("ws://127.0.0.1:{}/ws?token={token}", self.port)).await
    }

    pub async fn try_ws_url(&self, url: &str) -> Result<WsClient, u16> {
        match self.client.ws(url).max_frame_size(1 << 20).connect().await {
            Ok((_, framed)) => {
                let mut ws = WsClient { framed, backlog: Vec::new(), instance: String::new() };
                let hello = ws.next_json().await;
                assert_eq!(hello["type"], "hello", "first frame: {hello}");
                ws.instance = hello["instance"].as_str().unwrap_or_default().to_string();
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

impl WsClient {
    /// A connection just upgraded, once its `hello` is in (None: it closed
    /// or said something else first).
    pub async fn from_framed(framed: actix_codec::Framed<BoxedSocket, Codec>) -> Option<WsClient> {
        let mut ws = WsClient { framed, backlog: Vec::new(), instance: String::new() };
        let hello = ws.next_json_within(FRAME_WAIT).await?;
        if hello["type"] != "hello" {
            return None;
        }
        ws.instance = hello["instance"].as_str().unwrap_or_default().to_string();
        Some(ws)
    }
}

pub struct WsClient {
    framed: actix_codec::Framed<BoxedSocket, Codec>,
    /// Frames read while looking for another kind, kept for later reads.
    backlog: Vec<Value>,
    /// The instance named in `hello`.
    pub instance: String,
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
                    // Older unread frames first, then those skipped now.
                    self.backlog.extend(skipped);
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

    /// Reads `message` frames of `room` until seq `last`, asserting each seq
    /// is the previous one plus one, starting after `after`.
    pub async fn collect_until(&mut self, room: &str, after: i64, last: i64) -> Vec<Value> {
        let mut got = Vec::new();
        let mut expected = after + 1;
        while expected <= last {
            let m = self.expect("message").await;
            if m["room"] != room {
                continue;
            }
            let seq = m["seq"].as_i64().unwrap();
            assert_eq!(seq, expected, "gap or duplicate in {room}: expected seq {expected}, got {seq}");
            expected += 1;
            got.push(m);
        }
        got
    }

    /// Sends n messages (client_msg_id `tag-i`) and waits for their acks.
    pub async fn send_n(&mut self, room: &str, tag: &str, n: usize) -> Vec<Value> {
        for i in 0..n {
            self.send_json(
                json!({"type": "send", "room": room, "body": format!("{tag} {i}"), "client_msg_id": format!("{tag}-{i}")}),
            )
            .await;
        }
        let mut acks = Vec::with_capacity(n);
        for _ in 0..n {
            acks.push(self.expect("ack").await);
        }
        acks
    }

    /// Proves the connection still answers.
    pub async fn assert_usable(&mut self) {
        let ts = rand::random::<u32>();
        self.send_json(json!({"type": "ping", "ts": ts})).await;
        let pong = self.expect("pong").await;
        assert_eq!(pong["ts"], ts);
    }
}

/// Several instances sharing one database and (unless single-instance) one
/// Redis under a key prefix of their own.
pub struct TestCluster {
    pub db: Arc<TestDb>,
    pub apps: Vec<TestApp>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// n instances on the shared Redis (`services`).
    Redis(usize),
    /// One instance without REDIS_URL.
    Single,
    /// n instances on the suite's own Redis Cluster (`services`).
    RedisCluster(usize),
}

pub async fn spawn_cluster(mode: Mode, env: &[(&str, &str)]) -> TestCluster {
    let prefix = format!("sbt{:08x}:", rand::random::<u32>());
    spawn_cluster_on(mode, &shared_redis(), &prefix, env).await
}

pub async fn spawn_cluster_on(mode: Mode, redis_url: &str, prefix: &str, env: &[(&str, &str)]) -> TestCluster {
    let db = TestDb::new();
    let mut vars: Vec<(&str, &str)> = vec![
        ("RATE_LIMIT_PER_SEC", "10000"),
        ("RATE_LIMIT_BURST", "10000"),
        ("INSTANCE_HEARTBEAT_MS", "200"),
        ("INSTANCE_TTL_MS", "1500"),
        ("ROOM_RESYNC_MS", "500"),
    ];
    let n = match mode {
        Mode::Redis(n) => {
            vars.push(("REDIS_URL", redis_url));
            vars.push(("REDIS_KEY_PREFIX", prefix));
            n
        }
        Mode::RedisCluster(n) => {
            vars.push(("REDIS_CLUSTER_URLS", crate::services::redis_cluster_urls()));
            vars.push(("REDIS_KEY_PREFIX", prefix));
            n
        }
        Mode::Single => 1,
    };
    vars.extend_from_slice(env);
    // The first instance migrates; the others start together after it.
    let first = TestApp::spawn(db.clone(), &vars).await;
    let rest = futures_util::future::join_all((1..n).map(|_| TestApp::spawn(db.clone(), &vars))).await;
    let mut apps = vec![first];
    apps.extend(rest);
    for app in &apps {
        app.wait_ready().await;
    }
    TestCluster { db, apps }
}

impl TestCluster {
    /// The instance for the i-th participant (all the same in single mode).
    pub fn app(&self, i: usize) -> &TestApp {
        &self.apps[i % self.apps.len()]
    }
}

impl TestApp {
    /// Waits until /readyz says ready (the bus subscriber is connected).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (s, v) = self.request("GET", "/readyz", None, None).await;
            if s == 200 && v["checks"]["bus"] != "disconnected" {
                return;
            }
            assert!(Instant::now() < deadline, "instance never became ready: {v}");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Makes sure a tool the tests need is installed (scripts/test-deps.sh
/// installs it from Debian/npm/PyPI when missing).
pub fn ensure_tool(tool: &str) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let present =
        |t: &str| Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success());
    if present(tool) {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
    let status = Command::new(script).arg(tool).status().expect("run scripts/test-deps.sh");
    assert!(status.success() && present(tool), "{tool} is needed; scripts/test-deps.sh could not install it");
}

/// A redis-server of the test's own, on a free port, so it can be restarted.
pub struct TestRedis {
    pub port: u16,
    dir: String,
    child: Option<Child>,
}

impl TestRedis {
    pub async fn start() -> TestRedis {
        let port = free_port();
        let dir = format!("{}/redis-{port}", env!("CARGO_TARGET_TMPDIR"));
        let _ = std::fs::create_dir_all(&dir);
        let mut r = TestRedis { port, dir, child: None };
        r.launch().await;
        r
    }

    async fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// deploy/nginx.conf adapted to run here, changing only what an operator
/// would: each upstream's servers become `upstreams` (with the parameters the
/// shipped file gives its servers, unchanged), the listen port, and the pid,
/// log and temp paths under `dir`.
pub fn local_nginx_conf(upstreams: &[u16], port: u16, dir: &str) -> String {
    let conf = shipped_nginx_conf();
    let mut out = String::new();
    let mut in_group = false;
    let mut groups = 0;
    for line in conf.lines() {
        let t = line.trim();
        if let Some(params) = shipped_server_params(t) {
            if !in_group {
                in_group = true;
                groups += 1;
                for p in upstreams {
                    let params = if params.is_empty() { String::new() } else { format!(" {params}") };
                    out.push_str(&format!("        server 127.0.0.1:{p}{params};\n"));
                }
            }
            continue;
        }
        in_group = false;
        let replaced = if t == "listen 80;" {
            format!("        listen 127.0.0.1:{port};")
        } else if t.starts_with("pid ") {
            format!("pid {dir}/nginx.pid;")
        } else if t.starts_with("error_log ") {
            format!("error_log {dir}/error.log warn;")
        } else if t == "http {" {
            format!(
                "http {{\n    client_body_temp_path {dir}/body;\n    proxy_temp_path {dir}/proxy;\n    \
                 fastcgi_temp_path {dir}/fastcgi;\n    uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;"
            )
        } else {
            line.to_string()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    assert!(groups > 0, "deploy/nginx.conf lost its upstream servers");
    out
}

/// deploy/nginx.conf, or for a before/after measurement the file named by
/// `SB_NGINX_CONF` (the config checks always read the shipped file).
pub fn shipped_nginx_conf() -> String {
    let path =
        std::env::var("SB_NGINX_CONF").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf").into());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The parameters of a shipped `server switchboard-N:8080 <params>;` line.
pub fn shipped_server_params(line: &str) -> Option<String> {
    let rest = line.strip_prefix("server switchboard-")?;
    let rest = rest.strip_suffix(';')?;
    Some(rest.split_once(' ').map(|(_, p)| p.trim().to_string()).unwrap_or_default())
}

/// An nginx (Debian package) in front of the given instances, running
/// deploy/nginx.conf with only the addresses and paths changed.
pub struct TestNginx {
    pub port: u16,
    pub dir: String,
    child: Option<Child>,
}

impl TestNginx {
    pub async fn start(upstreams: &[u16]) -> TestNginx {
        ensure_tool("nginx");
        let port = free_port();
        let dir = format!("{}/nginx-{port}", env!("CARGO_TARGET_TMPDIR"));
        let _ = std::fs::create_dir_all(&dir);
        std::fs::write(format!("{dir}/nginx.conf"), local_nginx_conf(upstreams, port, &dir)).expect("write nginx.conf");
        // A process group of its own: the master and its workers stop together.
        let child = Command::new("nginx")
            .args(["-p", &dir, "-c", &format!("{dir}/nginx.conf"), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start; see {dir}/error.log");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        TestNginx { port, dir, child: Some(child) }
    }
}

impl Drop for TestNginx {
    /// SIGKILL on the master would orphan its workers: SIGTERM (nginx's fast
    /// shutdown) stops them first; whatever is left after 5 s goes with the
    /// whole process group.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_group(&mut c, "TERM", Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signals a child that leads its own process group, waits for it, and
/// SIGKILLs the group if it is still there after `grace` (or has left
/// children behind).
pub fn stop_group(child: &mut Child, signal: &str, grace: Duration) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
    let _ = child.wait();
}

/// Chromium, node and playwright-core for the real-browser tests.
pub fn ensure_browser() {
    ensure_tool("chromium");
    ensure_tool("node");
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/node_modules/");
        if ["playwright-core", "lighthouse", "axe-core"].iter().any(|m| !std::path::Path::new(&format!("{modules}{m}")).exists())
        {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
            let status = Command::new(script).arg("browser").status().expect("run scripts/test-deps.sh");
            assert!(status.success(), "could not install the browser test packages (tests/browser/package.json)");
        }
    });
}

/// Node and Chromium keep their temporary files, profile and crash settings
/// under target/ (the suite changes nothing outside the repository).
pub fn browser_env(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    let home = concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-home");
    let tmp = concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-home/tmp");
    let _ = std::fs::create_dir_all(tmp);
    cmd.env("TMPDIR", tmp)
        .env("XDG_CONFIG_HOME", format!("{home}/config"))
        .env("XDG_CACHE_HOME", format!("{home}/cache"))
        .env("HOME", home)
}

/// Runs one script of tests/browser against `base_url`; returns its stdout.
pub async fn run_browser_script(script: &str, base_url: &str, env: &[(&str, &str)]) -> String {
    ensure_browser();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    let mut cmd = tokio::process::Command::new("node");
    browser_env(&mut cmd).arg(script).current_dir(dir).env("BASE_URL", base_url).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = actix_web::rt::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 180 s"))
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Where screenshots for people to look at land: target/screenshots/.
pub fn screenshot_path(name: &str) -> String {
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/../screenshots");
    std::fs::create_dir_all(dir).expect("screenshot dir");
    let dir = std::fs::canonicalize(dir).expect("screenshot dir");
    format!("{}/{name}", dir.display())
}
