//! The configuration's sections, each parsed by its own function from the
//! variables it owns, so each module is handed only the part it uses.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::env::{ConfigError, Env};
use super::{redact_url, Database};
use crate::domain::RoomName;

/// The HTTP server.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub bind_addr: SocketAddr,
    pub workers: usize,
    pub max_body_bytes: usize,
    /// The request head must arrive within this (slowloris).
    pub handshake_timeout: Duration,
    pub keep_alive: Duration,
    /// Where browsers fetch `/static/…` from (a CDN); unset: this server.
    pub asset_base_url: Option<String>,
}

impl HttpConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let workers = env.parse("WORKERS", cpus, |v| (1..=256).contains(v), "an integer 1..=256")?;
        env.note_derived("WORKERS", "CPU count");
        Ok(HttpConfig {
            bind_addr: bind_addr(env)?,
            workers,
            max_body_bytes: env.parse(
                "MAX_BODY_BYTES",
                64 * 1024usize,
                |v| (1024..=16 << 20).contains(v),
                "bytes 1024..=16777216",
            )?,
            handshake_timeout: env.millis("HANDSHAKE_TIMEOUT_MS", 5_000, 100, 600_000)?,
            keep_alive: env.millis("KEEP_ALIVE_MS", 15_000, 0, 3_600_000)?,
            asset_base_url: asset_base_url(env, "ASSET_BASE_URL")?,
        })
    }
}

/// `BIND_ADDR`: an IP address and port, or a host name and port (resolved
/// once, at start-up: `localhost:8080`).
fn bind_addr<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let raw = env.string("BIND_ADDR", "0.0.0.0:8080");
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let expected = "expected an address and port, e.g. 0.0.0.0:8080, [::]:8080 or localhost:8080";
    if raw.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
        return Err(ConfigError::new("BIND_ADDR", raw.to_string(), expected));
    }
    match raw.to_socket_addrs() {
        // IPv4 first where a name has both (the usual meaning of `localhost:8080`).
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| ConfigError::new("BIND_ADDR", raw.to_string(), "the host name resolves to no address"))
        }
        Err(e) => Err(ConfigError::new("BIND_ADDR", raw.to_string(), format!("cannot resolve the host name: {e}"))),
    }
}

/// An http(s) URL that can prefix `/static/…` inside an HTML attribute.
fn asset_base_url<F: Fn(&str) -> Option<String>>(env: &Env<F>, var: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(url) = env.url(var, &["https", "http"])? else {
        return Ok(None);
    };
    let host = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    let safe = |c: char| c.is_ascii_alphanumeric() || "-._~:/%@".contains(c);
    if host.is_empty() || host.starts_with('/') || !url.chars().all(safe) {
        return Err(ConfigError::new(var, url, "expected http(s)://host[:port][/path] without query or quotes"));
    }
    Ok(Some(url.trim_end_matches('/').to_string()))
}

/// Where messages are stored, and the pools that reach it.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub kind: Database,
    /// Where the embedded database lives (`DATA_DIR`).
    pub data_dir: PathBuf,
    pub replica_url: Option<String>,
    pub replica_max_lag: Duration,
    pub pool_max: u32,
    pub pool_min_idle: u32,
    pub pool_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub statement_timeout: Duration,
    pub startup_wait: Duration,
}

impl DatabaseConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(env.string("DATA_DIR", "./data"));
        let kind = match env.url("DATABASE_URL", &["postgres", "postgresql", "sqlite"])? {
            Some(url) if url.starts_with("sqlite://") => match &url["sqlite://".len()..] {
                "" => Database::Sqlite { path: data_dir.join("switchboard.db") },
                path => Database::Sqlite { path: PathBuf::from(path) },
            },
            Some(url) => Database::Postgres { url },
            None => Database::Sqlite { path: data_dir.join("switchboard.db") },
        };
        let pool_max = env.parse("DB_POOL_MAX", 16u32, |v| (1..=1000).contains(v), "an integer 1..=1000")?;
        Ok(DatabaseConfig {
            kind,
            data_dir,
            replica_url: env.url("DATABASE_REPLICA_URL", &["postgres", "postgresql"])?,
            replica_max_lag: env.millis("REPLICA_MAX_LAG_MS", 1_000, 0, 3_600_000)?,
            pool_max,
            pool_min_idle: env.parse("DB_POOL_MIN_IDLE", 2u32.min(pool_max), |v| *v <= pool_max, "an integer <= DB_POOL_MAX")?,
            pool_timeout: env.millis("DB_POOL_TIMEOUT_MS", 1_000, 10, 60_000)?,
            pool_idle_timeout: env.millis("DB_POOL_IDLE_TIMEOUT_MS", 300_000, 1_000, 86_400_000)?,
            statement_timeout: env.millis("DB_STATEMENT_TIMEOUT_MS", 5_000, 10, 600_000)?,
            startup_wait: env.millis("DB_STARTUP_WAIT_MS", 5_000, 0, 600_000)?,
        })
    }
}

/// Redis: one server or a cluster; neither means single-instance mode.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: Option<String>,
    /// Nodes of a Redis Cluster (sharded pub/sub); takes the place of `url`.
    pub cluster_urls: Vec<String>,
    pub key_prefix: String,
    pub pool_max: u32,
}

impl RedisConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let cluster_urls = env.list("REDIS_CLUSTER_URLS", "");
        env.note_derived("REDIS_CLUSTER_URLS", "unset");
        if let Some(bad) = cluster_urls.iter().find(|u| !u.starts_with("redis://") && !u.starts_with("rediss://")) {
            return Err(ConfigError::new("REDIS_CLUSTER_URLS", bad.clone(), "expected comma-separated redis:// URLs"));
        }
        let key_prefix = env.string("REDIS_KEY_PREFIX", "switchboard:");
        if key_prefix.len() > 64 || key_prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::new("REDIS_KEY_PREFIX", key_prefix, "expected at most 64 characters without spaces"));
        }
        Ok(RedisConfig {
            url: env.url("REDIS_URL", &["redis", "rediss"])?,
            cluster_urls,
            key_prefix,
            pool_max: env.parse("REDIS_POOL_MAX", 32u32, |v| (1..=256).contains(v), "an integer 1..=256")?,
        })
    }

    /// For the start-up line.
    pub fn describe(&self) -> String {
        if !self.cluster_urls.is_empty() {
            format!("cluster {}", self.cluster_urls.join(","))
        } else {
            self.url.as_deref().map(redact_url).unwrap_or_else(|| "off: single-instance mode".into())
        }
    }
}

/// The group-commit writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    pub shards: usize,
    pub batch_max: usize,
    pub queue: usize,
    pub write_timeout: Duration,
    /// A commit outstanding this long means commits are stuck: writes are refused at once.
    pub stall: Duration,
}

impl WriterConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(WriterConfig {
            shards: env.parse("WRITER_SHARDS", 2usize, |v| (1..=64).contains(v), "an integer 1..=64")?,
            batch_max: env.parse("WRITER_BATCH_MAX", 512usize, |v| (1..=10_000).contains(v), "an integer 1..=10000")?,
            queue: env.parse("WRITER_QUEUE", 10_000usize, |v| (1..=1_000_000).contains(v), "an integer 1..=1000000")?,
            write_timeout: env.millis("WRITE_TIMEOUT_MS", 10_000, 100, 600_000)?,
            stall: env.millis("WRITE_STALL_MS", 2_000, 10, 600_000)?,
        })
    }
}

/// Room actors, their windows and replays.
#[derive(Clone, Debug)]
pub struct RoomsConfig {
    pub replay_limit: i64,
    /// An empty room actor stops after this long.
    pub idle: Duration,
    pub gap_heal: Duration,
    /// With Redis: how often a room with members checks for messages the bus lost.
    pub resync: Duration,
    pub recent_window: usize,
    pub warm_rooms: usize,
    pub warm_timeout: Duration,
    /// Public rooms that exist from start-up, so a newcomer has somewhere to talk.
    pub default_rooms: Vec<RoomName>,
}

impl RoomsConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(RoomsConfig {
            replay_limit: env.parse("REPLAY_LIMIT", 1000i64, |v| (0..=100_000).contains(v), "an integer 0..=100000")?,
            idle: env.millis("ROOM_IDLE_MS", 30_000, 0, 86_400_000)?,
            gap_heal: env.millis("GAP_HEAL_MS", 40, 1, 60_000)?,
            resync: env.millis("ROOM_RESYNC_MS", 5_000, 50, 3_600_000)?,
            recent_window: env.parse("RECENT_WINDOW", 200usize, |v| *v <= 100_000, "an integer 0..=100000")?,
            warm_rooms: env.parse("WARM_ROOMS", 100usize, |v| *v <= 100_000, "an integer 0..=100000")?,
            warm_timeout: env.millis("WARM_TIMEOUT_MS", 5_000, 0, 600_000)?,
            default_rooms: default_rooms(env)?,
        })
    }
}

/// Unset: `general`; set but empty: none.
fn default_rooms<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Vec<RoomName>, ConfigError> {
    env.note("DEFAULT_ROOMS", "general");
    let raw = env.set("DEFAULT_ROOMS").unwrap_or_else(|| "general".into());
    let mut rooms = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match RoomName::parse(part) {
            Ok(name) if !rooms.contains(&name) => rooms.push(name),
            Ok(_) => {}
            Err(_) => {
                return Err(ConfigError::new(
                    "DEFAULT_ROOMS",
                    raw.clone(),
                    "expected comma-separated room names ([a-z0-9_-]{1,64})",
                ))
            }
        }
    }
    Ok(rooms)
}

/// WebSocket sessions.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    pub heartbeat_interval: Duration,
    pub client_timeout: Duration,
    pub max_frame_bytes: usize,
    pub max_rooms_per_connection: usize,
    /// Unread bytes a client may sit on before its live stream pauses.
    pub max_outbound_bytes: usize,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: f64,
    /// How long a WebSocket ticket stays valid.
    pub ticket_ttl: Duration,
}

impl SocketConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let heartbeat_interval = env.millis("HEARTBEAT_MS", 10_000, 100, 600_000)?;
        let client_timeout = env.millis("CLIENT_TIMEOUT_MS", heartbeat_interval.as_millis() as u64 * 3, 200, 1_800_000)?;
        if client_timeout <= heartbeat_interval {
            return Err(ConfigError::new(
                "CLIENT_TIMEOUT_MS",
                client_timeout.as_millis().to_string(),
                "must be longer than HEARTBEAT_MS",
            ));
        }
        Ok(SocketConfig {
            heartbeat_interval,
            client_timeout,
            max_frame_bytes: env.parse(
                "MAX_FRAME_BYTES",
                16 * 1024usize,
                |v| (256..=1 << 20).contains(v),
                "bytes 256..=1048576",
            )?,
            max_rooms_per_connection: env.parse(
                "MAX_ROOMS_PER_CONNECTION",
                100usize,
                |v| (1..=10_000).contains(v),
                "an integer 1..=10000",
            )?,
            max_outbound_bytes: env.parse("MAX_OUTBOUND_BYTES", 1usize << 20, |v| *v >= 16 * 1024, "bytes >= 16384")?,
            rate_limit_per_sec: env.parse(
                "RATE_LIMIT_PER_SEC",
                20.0,
                |v: &f64| *v > 0.0 && v.is_finite(),
                "a positive number",
            )?,
            rate_limit_burst: env.parse("RATE_LIMIT_BURST", 40.0, |v: &f64| *v >= 1.0 && v.is_finite(), "a number >= 1")?,
            ticket_ttl: env.millis("WS_TICKET_TTL_MS", 30_000, 1_000, 600_000)?,
        })
    }
}

/// Abuse limits: connections, sign-ins, creations, who may connect.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub login_failures_per_min: usize,
    pub signups_per_min: usize,
    pub guests_per_min: usize,
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins allowed to open WebSockets; empty: the page's own origin only.
    pub allowed_origins: Vec<String>,
}

impl LimitsConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let raw = env.string("TRUSTED_PROXIES", "127.0.0.1,::1");
        let mut trusted_proxies = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "none") {
            let ip = part
                .parse()
                .map_err(|_| ConfigError::new("TRUSTED_PROXIES", raw.clone(), "expected comma-separated IP addresses"))?;
            trusted_proxies.push(ip);
        }
        Ok(LimitsConfig {
            max_connections: env.parse("MAX_CONNECTIONS", 50_000usize, |v| *v >= 1, "an integer >= 1")?,
            max_connections_per_ip: env.parse("MAX_CONNECTIONS_PER_IP", 1_000usize, |v| *v >= 1, "an integer >= 1")?,
            login_failures_per_min: env.parse("LOGIN_FAILURES_PER_MIN", 20usize, |v| *v >= 1, "an integer >= 1")?,
            signups_per_min: env.parse("SIGNUPS_PER_MIN", 10usize, |v| (1..=1_000_000).contains(v), "an integer 1..=1000000")?,
            guests_per_min: env.parse("GUESTS_PER_MIN", 30usize, |v| (1..=1_000_000).contains(v), "an integer 1..=1000000")?,
            trusted_proxies,
            allowed_origins: env
                .list("ALLOWED_ORIGINS", "")
                .into_iter()
                .map(|s| s.trim_end_matches('/').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }
}

/// Shutting down gently (SIGTERM).
#[derive(Clone, Copy, Debug)]
pub struct DrainConfig {
    /// Longest wait for a session's in-flight acks before it closes.
    pub grace: Duration,
    pub batch_size: usize,
    pub batch_interval: Duration,
    pub jitter: Duration,
    /// Longest wait for in-flight HTTP requests.
    pub shutdown_timeout: Duration,
}

impl DrainConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(DrainConfig {
            grace: env.millis("DRAIN_GRACE_MS", 2_000, 0, 600_000)?,
            batch_size: env.parse("DRAIN_BATCH_SIZE", 200usize, |v| (1..=1_000_000).contains(v), "an integer 1..=1000000")?,
            batch_interval: env.millis("DRAIN_BATCH_INTERVAL_MS", 100, 0, 60_000)?,
            jitter: env.millis("DRAIN_JITTER_MS", 3_000, 0, 600_000)?,
            shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000)?,
        })
    }
}

/// The token, room and membership caches.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    pub enabled: bool,
    pub max_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    /// How long after the last proof that its bus is live an instance trusts
    /// its cached tokens and memberships (see cache::lease).
    pub lease: Duration,
}

impl CacheConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(CacheConfig {
            enabled: env.bool("CACHE_ENABLED", true)?,
            max_bytes: env.parse(
                "CACHE_MAX_BYTES",
                64u64 << 20,
                |v| (1 << 16..=1 << 40).contains(v),
                "bytes 65536..=1099511627776",
            )?,
            ttl: env.millis("CACHE_TTL_MS", 60_000, 0, 86_400_000)?,
            negative_ttl: env.millis("CACHE_NEGATIVE_TTL_MS", 5_000, 0, 3_600_000)?,
            lease: env.millis("CACHE_LEASE_MS", 1_000, 50, 60_000)?,
        })
    }
}

/// Logs of slow work, and traces.
#[derive(Clone, Debug)]
pub struct ObservabilityConfig {
    pub slow_query: Duration,
    /// HTTP requests at least this slow are logged at warn with their id.
    pub slow_request: Duration,
    /// OpenTelemetry traces (`OTEL_*`, `SLOW_DELIVERY_MS`).
    pub traces: crate::telemetry::TraceConfig,
}

impl ObservabilityConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(ObservabilityConfig {
            slow_query: env.millis("SLOW_QUERY_MS", 50, 0, 3_600_000)?,
            slow_request: env.millis("SLOW_REQUEST_MS", 500, 0, 3_600_000)?,
            traces: trace_config(env)?,
        })
    }
}

/// The standard OpenTelemetry variables this server honours. Export is off
/// without an endpoint, with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
fn trace_config<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<crate::telemetry::TraceConfig, ConfigError> {
    let disabled = env.bool("OTEL_SDK_DISABLED", false)?;
    let exporter = env.string("OTEL_TRACES_EXPORTER", "otlp");
    if !matches!(exporter.trim(), "otlp" | "none") {
        return Err(ConfigError::new("OTEL_TRACES_EXPORTER", exporter, "expected otlp or none"));
    }
    let traces_endpoint = env.optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let endpoint = traces_endpoint.clone().or_else(|| env.optional("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let endpoint = endpoint.filter(|_| !disabled && exporter.trim() == "otlp");
    if let Some(url) = &endpoint {
        // This build speaks OTLP over plain HTTP (protobuf): a collector
        // beside the server (sidecar, agent) forwards over TLS if needed.
        if !url.starts_with("http://") {
            let var =
                if traces_endpoint.is_some() { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" } else { "OTEL_EXPORTER_OTLP_ENDPOINT" };
            return Err(ConfigError::new(
                var,
                url.clone(),
                "expected an http:// URL of an OTLP/HTTP receiver (an OpenTelemetry Collector beside the server)",
            ));
        }
        for var in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(p) = env.raw(var).filter(|p| p.trim() != "http/protobuf") {
                return Err(ConfigError::new(var, p, "expected http/protobuf (the protocol this build exports)"));
            }
        }
    }
    env.note("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    env.note("OTEL_TRACES_SAMPLER", "parentbased_always_on");
    env.note("OTEL_TRACES_SAMPLER_ARG", "1.0");
    let (name, arg) = (env.raw("OTEL_TRACES_SAMPLER"), env.raw("OTEL_TRACES_SAMPLER_ARG"));
    let sampler = crate::telemetry::sampler::Sampler::from_env(name.as_deref(), arg.as_deref()).map_err(|(var, problem)| {
        let value = if var == "OTEL_TRACES_SAMPLER" { name.clone() } else { arg.clone() };
        ConfigError::new(var, value.unwrap_or_default(), problem)
    })?;
    Ok(crate::telemetry::TraceConfig {
        endpoint,
        service_name: env.string("OTEL_SERVICE_NAME", "switchboard"),
        sampler,
        slow_delivery: env.millis("SLOW_DELIVERY_MS", 100, 0, 3_600_000)?,
    })
}

/// This instance among the others (with Redis).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub instance_id: String,
    pub heartbeat: Duration,
    pub ttl: Duration,
}

impl ClusterConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        env.note("INSTANCE_ID", "hostname + random suffix");
        let instance_id = match env.raw("INSTANCE_ID") {
            Some(id) => {
                let id = id.trim().to_string();
                let ok = id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(ConfigError::new("INSTANCE_ID", id, "expected 1-64 characters of [A-Za-z0-9._-]"));
                }
                id
            }
            None => default_instance_id(),
        };
        let heartbeat = env.millis("INSTANCE_HEARTBEAT_MS", 2_000, 50, 60_000)?;
        let ttl = env.millis("INSTANCE_TTL_MS", heartbeat.as_millis() as u64 * 5, 100, 600_000)?;
        if ttl <= heartbeat {
            return Err(ConfigError::new(
                "INSTANCE_TTL_MS",
                ttl.as_millis().to_string(),
                "must be longer than INSTANCE_HEARTBEAT_MS",
            ));
        }
        Ok(ClusterConfig { instance_id, heartbeat, ttl })
    }
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".into());
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(48).collect();
    let suffix: u32 = rand::random::<u32>() & 0xffffff;
    format!("{host}-{suffix:06x}")
}

/// Accounts, guests and their sessions.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    pub admin_usernames: Vec<String>,
    pub allow_guests: bool,
    pub sessions: SessionPolicy,
    /// How often the housekeeping job looks for expired sessions and idle guests.
    pub cleanup_interval: Duration,
    /// Threads hashing passwords (each holds argon2's 19 MiB while busy).
    pub hash_workers: usize,
    /// Sign-ins and sign-ups waiting for a hashing thread; beyond: 503.
    pub hash_queue: usize,
}

impl AccountsConfig {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(AccountsConfig {
            admin_usernames: env.list("ADMIN_USERNAMES", "").into_iter().map(|s| s.to_ascii_lowercase()).collect(),
            allow_guests: env.bool("ALLOW_GUESTS", true)?,
            sessions: SessionPolicy {
                idle: env.days("SESSION_IDLE_DAYS", 30.0)?,
                max_age: env.days("SESSION_MAX_DAYS", 90.0)?,
                guest_retention: env.days("GUEST_RETENTION_DAYS", 7.0)?,
            },
            cleanup_interval: env.millis("CLEANUP_INTERVAL_MS", 600_000, 100, 86_400_000)?,
            hash_workers: {
                let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
                let workers = env.parse("HASH_WORKERS", cpus, |v| (1..=256).contains(v), "an integer 1..=256")?;
                env.note_derived("HASH_WORKERS", "CPU count");
                workers
            },
            hash_queue: env.parse("HASH_QUEUE", 256usize, |v| (1..=100_000).contains(v), "an integer 1..=100000")?,
        })
    }

    pub fn is_admin(&self, username: &str) -> bool {
        let lower = username.to_ascii_lowercase();
        self.admin_usernames.contains(&lower)
    }
}

/// When tokens stop working and guests are retired.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionPolicy {
    /// A token unused this long stops working.
    pub idle: Duration,
    /// A token older than this stops working, used or not.
    pub max_age: Duration,
    /// Guests idle this long are retired (sessions gone, name free).
    pub guest_retention: Duration,
}

impl SessionPolicy {
    /// Use is recorded at most this often per token: a fraction of the idle
    /// limit, so a token in use never comes near it.
    pub fn touch_every(&self) -> Duration {
        (self.idle / 8).min(Duration::from_secs(3600))
    }
}
