//! Several instances on one database and one Redis (or none), and a
//! redis-server of a test's own.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

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
            vars.push(("REDIS_CLUSTER_URLS", crate::support::services::redis_cluster_urls()));
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
