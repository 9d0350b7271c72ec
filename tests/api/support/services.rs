//! The services the suite needs, found or started once per run.
//!
//! PostgreSQL and Redis are used where they already answer (127.0.0.1:5432
//! and :6379, or `TEST_PG_PORT` / `TEST_REDIS_PORT`). Where nothing answers,
//! the suite starts its own from the installed binaries, under
//! `target/tmp/services/`, on free ports: `initdb` with trust for the
//! `postgres` user on 127.0.0.1 only (run as the `postgres` system user when
//! the suite runs as root), and a `redis-server` that keeps nothing on disk.
//! Missing packages are installed by `scripts/test-deps.sh` (or it says, in
//! one line, which to install). No system file is touched.
//!
//! Each private service runs under a small watchdog shell that stops it and
//! deletes its directory once the test process is gone, however the run
//! ends: nothing of the suite outlives it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;

pub struct Services {
    /// `postgres://postgres@127.0.0.1:PORT`
    pub pg_base: String,
    pub redis_url: String,
    /// Kept (a static is never dropped) so the server runs for the whole run.
    _private_pg: Option<PrivatePostgres>,
}

/// The services of this run (found or started on first use).
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        // Start-up blocks; keep it off the test's async runtime.
        std::thread::spawn(|| {
            let pg_port = port_from_env("TEST_PG_PORT", 5432);
            let (pg_base, private_pg) = if pg_answers(pg_port) {
                (format!("postgres://postgres@127.0.0.1:{pg_port}"), None)
            } else {
                let pg = PrivatePostgres::start("shared", &[]);
                eprintln!("[services] nothing usable on 127.0.0.1:{pg_port}: started a private PostgreSQL on {}", pg.port);
                (pg.base(), Some(pg))
            };
            let redis_port = port_from_env("TEST_REDIS_PORT", 6379);
            let redis_url = if redis_answers(redis_port) {
                format!("redis://127.0.0.1:{redis_port}")
            } else {
                let port = start_private_redis("shared", &[]);
                eprintln!("[services] nothing on 127.0.0.1:{redis_port}: started a private Redis on {port}");
                format!("redis://127.0.0.1:{port}")
            };
            Services { pg_base, redis_url, _private_pg: private_pg }
        })
        .join()
        .expect("service start-up panicked")
    })
}

fn port_from_env(var: &str, default: u16) -> u16 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pg_answers(port: u16) -> bool {
    if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_err() {
        return false;
    }
    AsyncConnectionWrapper::<AsyncPgConnection>::establish(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).is_ok()
}

pub fn redis_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn services_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("services");
    std::fs::create_dir_all(&dir).expect("target/tmp/services");
    dir
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn install(what: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
    let out = Command::new(script).arg(what).stdout(Stdio::null()).output().expect("scripts/test-deps.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr).trim());
}

/// A watchdog shell: `start` runs in the background; when the test process
/// (or the service) is gone, `stop` runs (with `$pid`) and the directory is
/// removed.
fn watchdog(dir: &Path, start: &str, stop: &str) -> u32 {
    let parent = std::process::id();
    let dir_s = dir.display().to_string();
    let script = format!(
        "{start} & pid=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pid 2>/dev/null; do sleep 0.3; done; \
         {stop}; wait $pid 2>/dev/null; rm -rf '{dir_s}'"
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    use std::os::unix::process::CommandExt;
    // Its own process group: a test's Ctrl-C does not skip the clean-up.
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
    cmd.spawn().expect("start a service watchdog").id()
}

/// A PostgreSQL server of the suite's own, under target/tmp/services.
pub struct PrivatePostgres {
    pub port: u16,
    pub dir: PathBuf,
    pub bin: PathBuf,
    user: Option<&'static str>,
}

impl PrivatePostgres {
    pub fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The newest installed PostgreSQL's binaries (installed when missing).
    pub fn bin_dir() -> PathBuf {
        let find = || {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
                .unwrap_or_default();
            dirs.sort_by_key(|p| {
                p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
            });
            dirs.pop()
        };
        if let Some(d) = find() {
            return d;
        }
        install("postgres");
        find().expect("PostgreSQL binaries after installing them")
    }

    fn prepare(label: &str, port: Option<u16>) -> PrivatePostgres {
        let bin = Self::bin_dir();
        let port = port.unwrap_or_else(free_port);
        let dir = services_dir().join(format!("pg-{label}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("postgres dir");
        let user = is_root().then_some("postgres");
        let pg = PrivatePostgres { port, dir, bin, user };
        pg.chown(&pg.dir);
        pg
    }

    /// A streaming replica of `primary` (pg_basebackup -R), on `port` or a
    /// free one.
    pub fn replica_of(primary: &PrivatePostgres, port: Option<u16>) -> PrivatePostgres {
        let pg = Self::prepare("replica", port);
        let data = pg.data().display().to_string();
        let primary_port = primary.port.to_string();
        pg.tool(
            "pg_basebackup",
            &["-h", "127.0.0.1", "-p", &primary_port, "-U", "postgres", "-D", &data, "-R", "-X", "stream", "-c", "fast"],
        );
        pg.configure(&["hot_standby = on"]);
        pg.launch();
        pg
    }

    /// Stops the server (fast shutdown); its watchdog removes its directory.
    pub fn stop(&self) {
        let pid =
            std::fs::read_to_string(self.data().join("postmaster.pid")).ok().and_then(|t| t.lines().next().map(str::to_string));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        wait_until(Duration::from_secs(30), || !self.dir.exists());
    }

    /// initdb + start. `extra` lines go into postgresql.conf.
    pub fn start(label: &str, extra: &[&str]) -> PrivatePostgres {
        let pg = Self::prepare(label, None);
        pg.run(&[
            pg.bin.join("initdb").to_str().unwrap_or("initdb"),
            "-D",
            pg.data().to_str().unwrap_or_default(),
            "-U",
            "postgres",
            "-A",
            "reject",
            "-E",
            "UTF8",
            "--no-instructions",
        ]);
        pg.configure(extra);
        pg.launch();
        pg
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn chown(&self, path: &Path) {
        if let Some(u) = self.user {
            let _ = Command::new("chown").args(["-R", &format!("{u}:"), &path.display().to_string()]).status();
        }
    }

    fn run(&self, args: &[&str]) {
        let mut cmd = match self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        let out = cmd.output().unwrap_or_else(|e| panic!("{}: {e}", args[0]));
        assert!(out.status.success(), "{} failed: {}", args[0], String::from_utf8_lossy(&out.stderr));
    }

    /// Trust for the `postgres` user on 127.0.0.1 only (and replication, for
    /// the replica tests); nothing else may connect.
    fn configure(&self, extra: &[&str]) {
        let data = self.data();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres trust\nhost all postgres 127.0.0.1/32 trust\nhost replication postgres 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        let mut conf = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nmax_connections = 500\n\
             shared_buffers = 128MB\nlogging_collector = off\n",
            self.port,
            self.dir.display()
        );
        for line in extra {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&conf);
        std::fs::write(&path, text).expect("postgresql.conf");
        self.chown(&self.dir);
    }

    /// Starts the server under its watchdog and waits until it answers.
    pub fn launch(&self) {
        let postgres = self.bin.join("postgres");
        let log = self.dir.join("server.log");
        // setpriv execs (no process in between), so $pid is the postmaster.
        let as_user = self.user.map(|u| format!("setpriv --reuid={u} --regid={u} --init-groups ")).unwrap_or_default();
        watchdog(
            &self.dir,
            &format!("exec {as_user}'{}' -D '{}' >'{}' 2>&1", postgres.display(), self.data().display(), log.display()),
            "kill -INT $pid 2>/dev/null",
        );
        assert!(
            wait_until(Duration::from_secs(60), || pg_answers(self.port)),
            "private PostgreSQL did not start; see {}",
            log.display()
        );
    }

    /// Runs a PostgreSQL client tool from this installation (pg_basebackup…).
    pub fn tool(&self, name: &str, args: &[&str]) {
        let exe = self.bin.join(name);
        let mut all = vec![exe.to_str().unwrap_or(name)];
        all.extend_from_slice(args);
        self.run(&all);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A redis-server of the suite's own under a watchdog; returns its port.
pub fn start_private_redis(label: &str, extra: &[&str]) -> u16 {
    if Command::new("sh").args(["-c", "command -v redis-server"]).output().map_or(true, |o| !o.status.success()) {
        install("redis");
    }
    let port = free_port();
    let dir = services_dir().join(format!("redis-{label}-{port}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("redis dir");
    let args = format!("--port {port} --bind 127.0.0.1 --save '' --appendonly no --dir '{}' {}", dir.display(), extra.join(" "));
    watchdog(&dir, &format!("exec redis-server {args} >'{}/redis.log' 2>&1", dir.display()), "kill $pid 2>/dev/null");
    assert!(
        wait_until(Duration::from_secs(20), || redis_answers(port)),
        "private Redis did not start; see {}/redis.log",
        dir.display()
    );
    port
}

/// A three-master Redis Cluster of the suite's own (sharded pub/sub tests),
/// started once per run on free ports; its node URLs, comma-separated.
pub fn redis_cluster_urls() -> &'static str {
    static URLS: OnceLock<String> = OnceLock::new();
    URLS.get_or_init(|| {
        std::thread::spawn(|| {
            let ports: Vec<u16> = (0..3)
                .map(|_| start_private_redis("cluster", &["--cluster-enabled yes", "--cluster-node-timeout 2000"]))
                .collect();
            let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            let out = Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&nodes)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .output()
                .expect("redis-cli --cluster create");
            assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
            let cluster_ok = || {
                Command::new("redis-cli")
                    .args(["-p", &ports[0].to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|info| String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok"))
            };
            assert!(wait_until(Duration::from_secs(20), cluster_ok), "the Redis Cluster never became ok");
            nodes.iter().map(|n| format!("redis://{n}")).collect::<Vec<_>>().join(",")
        })
        .join()
        .expect("cluster start-up panicked")
    })
}

/// A pg_auto_failover formation of the suite's own under
/// target/tmp/services/: a monitor and two data nodes (synchronous
/// replication, pg_auto_failover's default with one standby), each under
/// `pg_autoctl run` and a watchdog. Health checks are tightened so a lost
/// node is noticed in seconds rather than the default ~30 s.
pub struct PgAutoFailover {
    pub dir: PathBuf,
    pub monitor_port: u16,
    /// (name, port) of the data nodes.
    pub nodes: Vec<(String, u16)>,
    bin: PathBuf,
    /// Process group of each node's watchdog (and so of its keeper).
    groups: Vec<(String, u32)>,
}

impl PgAutoFailover {
    pub fn start() -> PgAutoFailover {
        if Command::new("sh").args(["-c", "command -v pg_autoctl"]).output().map_or(true, |o| !o.status.success()) {
            install("pg_auto_failover");
        }
        let bin = PrivatePostgres::bin_dir();
        let monitor_port = free_port();
        let dir = services_dir().join(format!("pgaf-{monitor_port}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["run", "xdg-config", "xdg-data"] {
            std::fs::create_dir_all(dir.join(sub)).expect("pgaf dir");
        }
        let user = is_root().then_some("postgres");
        if let Some(u) = user {
            let _ = Command::new("chown").args(["-R", &format!("{u}:"), &dir.display().to_string()]).status();
        }
        let mut f = PgAutoFailover { dir, monitor_port, nodes: Vec::new(), bin, groups: Vec::new() };
        let monitor = f.dir.join("monitor");
        f.autoctl(&format!(
            "pg_autoctl create monitor --pgdata '{}' --pgport {monitor_port} --hostname 127.0.0.1 --auth trust --no-ssl --pgctl '{}'",
            monitor.display(),
            f.bin.join("pg_ctl").display()
        ));
        f.run_service(&monitor.clone(), "monitor");
        wait_for(|| pg_answers(monitor_port), "the pg_auto_failover monitor");
        // Seconds, not tens of seconds: checks every second, unhealthy after
        // 3 s, and a lost primary counted as demoted after 3 s.
        for (name, value) in [
            ("health_check_period", 1000),
            ("health_check_timeout", 1000),
            ("health_check_max_retries", 1),
            ("health_check_retry_delay", 500),
            ("node_considered_unhealthy_timeout", 3000),
            ("primary_demote_timeout", 3000),
        ] {
            f.monitor_sql(&format!("ALTER SYSTEM SET pgautofailover.{name} = {value}"));
        }
        f.monitor_sql("SELECT pg_reload_conf()");
        for n in 1..=2 {
            let port = free_port();
            let name = format!("node{n}");
            let pgdata = f.dir.join(&name);
            let monitor_url = format!("postgres://autoctl_node@127.0.0.1:{monitor_port}/pg_auto_failover?sslmode=disable");
            let create = format!(
                "pg_autoctl create postgres --pgdata '{}' --pgport {port} --hostname 127.0.0.1 --name {name} --auth trust --no-ssl \
                 --monitor '{monitor_url}' --pgctl '{}' --username postgres --dbname postgres --run",
                pgdata.display(),
                f.bin.join("pg_ctl").display()
            );
            let group = f.watch(&name, &create, &pgdata);
            f.groups.push((name.clone(), group));
            f.nodes.push((name.clone(), port));
            // Alone, a node is "single"; with a second one, primary and secondary.
            let want = if n == 1 { "single" } else { "secondary" };
            wait_for(|| f.state_of(&name).as_deref() == Some(want), &format!("{name} as {want}"));
        }
        wait_for(|| f.state_of("node1").as_deref() == Some("primary"), "node1 as primary");
        f
    }

    fn env(&self) -> String {
        let d = self.dir.display();
        format!("XDG_CONFIG_HOME='{d}/xdg-config' XDG_DATA_HOME='{d}/xdg-data' XDG_RUNTIME_DIR='{d}/run' HOME='{d}' PATH='{}':\"$PATH\"", self.bin.display())
    }

    fn as_user(&self) -> String {
        if is_root() {
            "setpriv --reuid=postgres --regid=postgres --init-groups ".into()
        } else {
            String::new()
        }
    }

    /// A one-off pg_autoctl command (creation), as the postgres user.
    fn autoctl(&self, cmd: &str) {
        let script = format!("exec env {} {}{cmd}", self.env(), self.as_user());
        let out = Command::new("sh").args(["-c", &script]).output().expect("pg_autoctl");
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn run_service(&mut self, pgdata: &Path, name: &str) {
        let group = self.watch(name, &format!("pg_autoctl run --pgdata '{}'", pgdata.display()), pgdata);
        self.groups.push((name.to_string(), group));
    }

    /// `pg_autoctl … --run` under a watchdog that stops it (and then its
    /// PostgreSQL, if still there) when the test process is gone. The
    /// formation's directory goes with the monitor's watchdog, after the
    /// nodes have had time to stop.
    fn watch(&self, name: &str, cmd: &str, pgdata: &Path) -> u32 {
        let log = self.dir.join(format!("{name}.log"));
        let start = format!("exec env {} {}{cmd} >'{}' 2>&1", self.env(), self.as_user(), log.display());
        let pidfile = pgdata.join("postmaster.pid");
        let stop = format!(
            "kill -INT $pid 2>/dev/null; for i in $(seq 1 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; \
             kill -KILL $pid 2>/dev/null; pm=$(head -n 1 '{}' 2>/dev/null); \
             if [ -n \"$pm\" ]; then pkill -KILL -P $pm; kill -KILL $pm; fi 2>/dev/null{}",
            pidfile.display(),
            if name == "monitor" {
                // Nodes first: wait (bounded) until their watchdogs are done.
                format!(
                    "; for i in $(seq 1 300); do ls -d '{}'/*-watch >/dev/null 2>&1 || break; sleep 0.05; done",
                    self.dir.display()
                )
            } else {
                String::new()
            }
        );
        let dir = if name == "monitor" { self.dir.clone() } else { self.dir.join(format!("{name}-watch")) };
        let _ = std::fs::create_dir_all(&dir);
        watchdog(&dir, &start, &stop)
    }

    fn monitor_sql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.monitor_port.to_string(),
                "-U",
                "postgres",
                "-d",
                "pg_auto_failover",
                "-tAc",
                sql,
            ])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Whether a node's watchdog is still running (its directory is there).
    fn any_node_watching(&self) -> bool {
        self.nodes.iter().any(|(name, _)| self.dir.join(format!("{name}-watch")).exists())
    }

    /// The state the monitor last heard from a node.
    pub fn state_of(&self, name: &str) -> Option<String> {
        let s = self.monitor_sql(&format!("SELECT reportedstate FROM pgautofailover.node WHERE nodename = '{name}'"));
        (!s.is_empty()).then_some(s)
    }

    /// The node's machine is lost: its keeper (the whole process group),
    /// postmaster and backends die at once.
    pub fn lose(&self, name: &str) {
        let pgdata = self.dir.join(name);
        if let Some((_, group)) = self.groups.iter().find(|(n, _)| n == name) {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
        }
        // Its watchdog went with the group and will not clean up.
        let _ = std::fs::remove_dir_all(self.dir.join(format!("{name}-watch")));
        if let Some(pid) =
            std::fs::read_to_string(pgdata.join("postmaster.pid")).ok().and_then(|t| t.lines().next().map(str::to_string))
        {
            let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// Waits (blocking) until `ok`, checking every 20 ms; false after `bound`.
pub fn wait_until(bound: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(ok: impl FnMut() -> bool, what: &str) {
    assert!(wait_until(Duration::from_secs(90), ok), "timed out waiting for {what}");
}

impl Drop for PgAutoFailover {
    /// Stops the keepers (each stops its PostgreSQL), then the monitor,
    /// whose watchdog removes the formation's directory. A keeper is its
    /// watchdog's only child.
    fn drop(&mut self) {
        let stop = |name: &str| {
            if let Some((_, watchdog)) = self.groups.iter().find(|(n, _)| n == name) {
                let _ = Command::new("pkill").args(["-INT", "-P", &watchdog.to_string()]).status();
            }
        };
        for (name, _) in &self.nodes {
            stop(name);
        }
        // The monitor goes last, once every node's watchdog has finished
        // (each removes its `-watch` directory). Never a panic here: a test
        // that failed is already unwinding.
        wait_until(Duration::from_secs(30), || !self.any_node_watching());
        stop("monitor");
        wait_until(Duration::from_secs(30), || !self.dir.exists());
    }
}
