//! Pieces every workload shares: clients, logins, server samples, CPU.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// An HTTP/WebSocket client whose sockets set TCP_NODELAY: without it, Nagle's
/// algorithm plus delayed ACKs hold small frames back for up to 40 ms and the
/// generator would measure itself.
pub fn nodelay_client() -> awc::Client {
    use actix_service::ServiceExt;
    let tcp = actix_tls::connect::Connector::default().service().map(
        |conn: actix_tls::connect::Connection<_, actix_rt::net::TcpStream>| {
            let _ = conn.io_ref().set_nodelay(true);
            conn
        },
    );
    awc::Client::builder().connector(awc::Connector::new().connector(tcp).limit(0)).timeout(Duration::from_secs(30)).finish()
}

/// Attempts a client makes at each step of connecting before giving up.
pub const ATTEMPTS: u32 = 5;

/// The pause before retry `attempt` (100 ms, doubling).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt)
}

/// The address a simulated client says it comes from (`X-Forwarded-For`;
/// loopback is a trusted proxy by default): thousands of clients from one
/// host would otherwise be one address to the per-address limits.
pub fn client_address(name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let [a, b, c, ..] = h.finish().to_le_bytes();
    format!("10.{a}.{b}.{}", c.max(1))
}

pub async fn guest_login(http: &awc::Client, url: &str, name: &str) -> Option<String> {
    for attempt in 0..ATTEMPTS {
        let resp = http
            .post(format!("{url}/api/v1/sessions/guest"))
            .insert_header(("X-Forwarded-For", client_address(name)))
            .send_json(&json!({"username": name}))
            .await;
        if let Ok(mut r) = resp {
            if r.status().is_success() {
                let v: Value = r.json().await.ok()?;
                return v["token"].as_str().map(str::to_string);
            }
        }
        actix_rt::time::sleep(backoff(attempt)).await;
    }
    None
}

/// A single-use WebSocket ticket for `token` (our clients keep tokens out
/// of URLs), retried like the sign-in.
pub async fn ws_ticket(http: &awc::Client, url: &str, token: &str) -> Option<String> {
    for attempt in 0..ATTEMPTS {
        let resp = http.post(format!("{url}/api/v1/sessions/ticket")).bearer_auth(token).send().await;
        if let Ok(mut r) = resp {
            if r.status().is_success() {
                let v: Value = r.json().await.ok()?;
                return v["ticket"].as_str().map(str::to_string);
            }
            if r.status().as_u16() == 401 {
                return None;
            }
        }
        actix_rt::time::sleep(backoff(attempt)).await;
    }
    None
}

/// The WebSocket URL of `url` for `token`, with a fresh ticket.
pub async fn ws_url(http: &awc::Client, url: &str, token: &str) -> Option<String> {
    let ticket = ws_ticket(http, url, token).await?;
    Some(format!("{}/ws?ticket={ticket}", url.replacen("http", "ws", 1)))
}

/// CPU seconds this process has used (all threads).
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used so far by PostgreSQL on this machine: every process of
/// the server (postmaster, backends, WAL writer, checkpointer...) plus the
/// CPU of backends that already exited (the postmaster's reaped children),
/// so connections opened and closed within a window count too. A streaming
/// replica on the same machine (a postmaster whose command line names a
/// replica, and the primary's walsenders feeding it) is left out: it is not
/// part of serving the benchmark.
pub fn postgres_cpu_seconds() -> f64 {
    struct Proc {
        ppid: u32,
        own: f64,
        children: f64,
        cmdline: String,
    }
    let mut procs: HashMap<u32, Proc> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.split_once(") ") else { continue };
        if !head.ends_with("(postgres") {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let cmdline = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default().replace('\0', " ");
        procs.insert(
            pid,
            Proc { ppid: num(1) as u32, own: (num(11) + num(12)) / 100.0, children: (num(13) + num(14)) / 100.0, cmdline },
        );
    }
    let replica_roots: Vec<u32> =
        procs.iter().filter(|(_, p)| p.ppid == 1 && p.cmdline.contains("replica")).map(|(pid, _)| *pid).collect();
    procs
        .iter()
        .filter(|(pid, p)| !replica_roots.contains(pid) && !replica_roots.contains(&p.ppid) && !p.cmdline.contains("walsender"))
        .map(|(_, p)| p.own + if p.ppid == 1 { p.children } else { 0.0 })
        .sum()
}

/// A server's own CPU time and memory, from its /metrics (process collector).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSample {
    pub cpu_seconds: f64,
    pub rss_bytes: f64,
    pub connections: f64,
    /// Database queries run so far (all names).
    pub db_queries: f64,
}

/// Reads every server's sample with plain blocking HTTP (no runtime needed).
pub fn scrape_servers(urls: &[String]) -> Vec<ServerSample> {
    urls.iter().map(|u| scrape(u).unwrap_or_default()).collect()
}

/// Polls every 100 ms until `ok` holds or `within` has passed; says which.
pub fn poll_until(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if ok() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the server at `url` answers `/metrics`.
pub fn answers(url: &str) -> bool {
    scrape(url).is_some()
}

fn scrape(url: &str) -> Option<ServerSample> {
    let host = url.strip_prefix("http://")?.trim_end_matches('/');
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse::<f64>().ok()))
            .unwrap_or(0.0)
    };
    Some(ServerSample {
        cpu_seconds: value("switchboard_process_cpu_seconds"),
        rss_bytes: value("process_resident_memory_bytes"),
        connections: value("switchboard_ws_connections"),
        db_queries: text
            .lines()
            .filter(|l| l.starts_with("switchboard_db_query_duration_seconds_count"))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.trim().parse::<f64>().ok()))
            .sum(),
    })
}

/// Server CPU over a window: total seconds used by all servers between samples.
pub fn server_cpu(before: &[ServerSample], after: &[ServerSample]) -> f64 {
    before.iter().zip(after).map(|(b, a)| (a.cpu_seconds - b.cpu_seconds).max(0.0)).sum()
}

pub fn total_rss(samples: &[ServerSample]) -> f64 {
    samples.iter().map(|s| s.rss_bytes).sum()
}

/// Database queries all servers ran between the samples.
pub fn db_queries(before: &[ServerSample], after: &[ServerSample]) -> f64 {
    before.iter().zip(after).map(|(b, a)| (a.db_queries - b.db_queries).max(0.0)).sum()
}
