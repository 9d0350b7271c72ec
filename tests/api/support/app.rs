//! One real server process per `TestApp`, on a random port, with its log
//! under target/; HTTP requests to it, and its readiness.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

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
            .env("DRAIN_GRACE_MS", "500")
            // Every test client comes from 127.0.0.1, which is limited per
            // address like any client; the tests of the limits set their own.
            .env("SIGNUPS_PER_MIN", "100000")
            .env("GUESTS_PER_MIN", "100000")
            .env("LOGIN_FAILURES_PER_MIN", "100000");
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
            Ok((_, framed)) => Ok(WsClient::from_framed(framed).await.expect("a hello as the first frame")),
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

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}
