//! Configuration from the environment (PROTOCOL.md's table plus documented knobs).
//!
//! Every variable has a safe default; a bad value is a one-line error naming the
//! variable, never a panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where messages are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// A PostgreSQL server (`postgres://…`): any number of instances.
    Postgres { url: String },
    /// The embedded SQLite file: one instance, nothing to set up.
    Sqlite { path: PathBuf },
}

impl Database {
    /// For logs: the URL without its password, or the file.
    pub fn describe(&self) -> String {
        match self {
            Database::Postgres { url } => redact_url(url),
            Database::Sqlite { path } => format!("sqlite://{}", path.display()),
        }
    }
}

/// A configuration problem, rendered as one line for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem} (got {value:?})")]
pub struct ConfigError {
    var: &'static str,
    value: String,
    problem: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind_addr: SocketAddr,
    pub database: Database,
    /// Where the embedded database lives (`DATA_DIR`).
    pub data_dir: PathBuf,
    pub database_replica_url: Option<String>,
    pub redis_url: Option<String>,
    /// Nodes of a Redis Cluster (sharded pub/sub); takes the place of `redis_url`.
    pub redis_cluster_urls: Vec<String>,
    pub instance_id: String,
    pub admin_usernames: Vec<String>,
    pub allow_guests: bool,
    pub rate_limit_per_sec: f64,
    pub rate_limit_burst: f64,
    pub replay_limit: i64,
    pub workers: usize,
    pub db_pool_max: u32,
    pub db_pool_min_idle: u32,
    pub db_pool_timeout: Duration,
    pub db_pool_idle_timeout: Duration,
    pub slow_query: Duration,
    /// HTTP requests at least this slow are logged at warn with their id.
    pub slow_request: Duration,
    /// OpenTelemetry traces (`OTEL_*`, `SLOW_DELIVERY_MS`).
    pub traces: crate::telemetry::TraceConfig,
    /// Where browsers fetch `/static/…` from (a CDN); unset: this server.
    pub asset_base_url: Option<String>,
    pub replica_max_lag: Duration,
    pub cache_enabled: bool,
    pub cache_max_bytes: u64,
    pub cache_ttl: Duration,
    pub cache_negative_ttl: Duration,
    pub warm_rooms: usize,
    pub warm_timeout: Duration,
    pub recent_window: usize,
    pub db_statement_timeout: Duration,
    pub db_startup_wait: Duration,
    pub writer_shards: usize,
    pub writer_batch_max: usize,
    pub writer_queue: usize,
    pub write_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub client_timeout: Duration,
    pub room_idle: Duration,
    pub gap_heal: Duration,
    pub max_frame_bytes: usize,
    pub max_body_bytes: usize,
    pub max_rooms_per_connection: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub login_failures_per_min: usize,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins allowed to open WebSockets; empty: the page's own origin only.
    pub allowed_origins: Vec<String>,
    pub handshake_timeout: Duration,
    pub keep_alive: Duration,
    pub max_outbound_bytes: usize,
    pub test_hooks: bool,
    pub drain_grace: Duration,
    pub drain_batch_size: usize,
    pub drain_batch_interval: Duration,
    pub drain_jitter: Duration,
    pub shutdown_timeout: Duration,
    pub redis_key_prefix: String,
    pub redis_pool_max: u32,
    pub room_resync: Duration,
    pub instance_heartbeat: Duration,
    pub instance_ttl: Duration,
    /// How long after the last proof that its bus is live an instance trusts
    /// its cached tokens and memberships (see cluster::lease).
    pub cache_lease: Duration,
    pub sessions: SessionPolicy,
    pub signups_per_min: usize,
    pub guests_per_min: usize,
    /// How often the housekeeping job looks for expired sessions and idle guests.
    pub cleanup_interval: Duration,
    /// Public rooms that exist from start-up, so a newcomer has somewhere to talk.
    pub default_rooms: Vec<crate::domain::RoomName>,
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

/// Reads variables through a lookup function so tests need not touch the process env.
struct Env<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    fn string(&self, var: &'static str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_string())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
        check: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let Some(value) = self.raw(var) else {
            return Ok(default);
        };
        match value.trim().parse::<T>() {
            Ok(v) if check(&v) => Ok(v),
            _ => Err(ConfigError { var, value, problem: format!("expected {expected}") }),
        }
    }

    fn millis(&self, var: &'static str, default_ms: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
        let expected = format!("milliseconds between {min} and {max}");
        self.parse(var, default_ms, |v| (min..=max).contains(v), &expected).map(Duration::from_millis)
    }

    /// A positive number of days (fractions allowed: tests use seconds).
    fn days(&self, var: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let days =
            self.parse(var, default, |v: &f64| v.is_finite() && *v > 0.0 && *v <= 36_500.0, "days, a number in (0, 36500]")?;
        Ok(Duration::from_secs_f64(days * 86_400.0))
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.raw(var) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError { var, value, problem: "expected true or false".into() }),
        }
    }

    fn url(&self, var: &'static str, schemes: &[&str]) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.raw(var) else {
            return Ok(None);
        };
        let value = value.trim().to_string();
        if schemes.iter().any(|s| value.starts_with(&format!("{s}://"))) {
            Ok(Some(value))
        } else {
            Err(ConfigError { problem: format!("expected a URL starting with {}://", schemes.join(":// or ")), var, value })
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// An http(s) URL that can prefix `/static/…` inside an HTML attribute.
    fn asset_base_url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.url(var, &["https", "http"])? else {
            return Ok(None);
        };
        let host = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        let safe = |c: char| c.is_ascii_alphanumeric() || "-._~:/%@".contains(c);
        if host.is_empty() || host.starts_with('/') || !url.chars().all(safe) {
            return Err(ConfigError {
                var,
                value: url,
                problem: "expected http(s)://host[:port][/path] without query or quotes".into(),
            });
        }
        Ok(Some(url.trim_end_matches('/').to_string()))
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);

        let bind_addr =
            env.parse("BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)), |_| true, "host:port, e.g. 0.0.0.0:8080")?;
        let data_dir = PathBuf::from(env.string("DATA_DIR", "./data"));
        let database = match env.url("DATABASE_URL", &["postgres", "postgresql", "sqlite"])? {
            Some(url) if url.starts_with("sqlite://") => match &url["sqlite://".len()..] {
                "" => Database::Sqlite { path: data_dir.join("switchboard.db") },
                path => Database::Sqlite { path: PathBuf::from(path) },
            },
            Some(url) => Database::Postgres { url },
            None => Database::Sqlite { path: data_dir.join("switchboard.db") },
        };
        let database_replica_url = env.url("DATABASE_REPLICA_URL", &["postgres", "postgresql"])?;
        let redis_url = env.url("REDIS_URL", &["redis", "rediss"])?;
        let redis_cluster_urls: Vec<String> =
            env.string("REDIS_CLUSTER_URLS", "").split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if let Some(bad) = redis_cluster_urls.iter().find(|u| !u.starts_with("redis://") && !u.starts_with("rediss://")) {
            return Err(ConfigError {
                var: "REDIS_CLUSTER_URLS",
                value: bad.clone(),
                problem: "expected comma-separated redis:// URLs".into(),
            });
        }
        if let Database::Sqlite { path } = &database {
            let shared = if redis_url.is_some() {
                Some("REDIS_URL")
            } else if !redis_cluster_urls.is_empty() {
                Some("REDIS_CLUSTER_URLS")
            } else if database_replica_url.is_some() {
                Some("DATABASE_REPLICA_URL")
            } else {
                None
            };
            if let Some(other) = shared {
                return Err(ConfigError {
                    var: "DATABASE_URL",
                    value: env.raw("DATABASE_URL").unwrap_or_else(|| format!("unset: sqlite://{}", path.display())),
                    problem: format!(
                        "{other} is set, which means several instances (or a replica), but the embedded SQLite database serves one; \
                         set DATABASE_URL to a PostgreSQL URL (postgres://user@host:5432/switchboard) shared by every instance"
                    ),
                });
            }
        }
        let instance_id = match env.raw("INSTANCE_ID") {
            Some(id) => {
                let id = id.trim().to_string();
                let ok = id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(ConfigError {
                        var: "INSTANCE_ID",
                        value: id,
                        problem: "expected 1-64 characters of [A-Za-z0-9._-]".into(),
                    });
                }
                id
            }
            None => default_instance_id(),
        };
        let admin_usernames = env
            .string("ADMIN_USERNAMES", "")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        let rate_limit_per_sec =
            env.parse("RATE_LIMIT_PER_SEC", 20.0, |v: &f64| *v > 0.0 && v.is_finite(), "a positive number")?;
        let rate_limit_burst = env.parse("RATE_LIMIT_BURST", 40.0, |v: &f64| *v >= 1.0 && v.is_finite(), "a number >= 1")?;

        let db_pool_max = env.parse("DB_POOL_MAX", 16u32, |v| (1..=1000).contains(v), "an integer 1..=1000")?;
        let db_pool_min_idle =
            env.parse("DB_POOL_MIN_IDLE", 2u32.min(db_pool_max), |v| *v <= db_pool_max, "an integer <= DB_POOL_MAX")?;

        let heartbeat_interval = env.millis("HEARTBEAT_MS", 10_000, 100, 600_000)?;
        let client_timeout = env.millis("CLIENT_TIMEOUT_MS", heartbeat_interval.as_millis() as u64 * 3, 200, 1_800_000)?;
        if client_timeout <= heartbeat_interval {
            return Err(ConfigError {
                var: "CLIENT_TIMEOUT_MS",
                value: client_timeout.as_millis().to_string(),
                problem: "must be longer than HEARTBEAT_MS".into(),
            });
        }

        let instance_heartbeat = env.millis("INSTANCE_HEARTBEAT_MS", 2_000, 50, 60_000)?;
        let instance_ttl = env.millis("INSTANCE_TTL_MS", instance_heartbeat.as_millis() as u64 * 5, 100, 600_000)?;
        if instance_ttl <= instance_heartbeat {
            return Err(ConfigError {
                var: "INSTANCE_TTL_MS",
                value: instance_ttl.as_millis().to_string(),
                problem: "must be longer than INSTANCE_HEARTBEAT_MS".into(),
            });
        }

        Ok(Config {
            bind_addr,
            database,
            data_dir,
            database_replica_url,
            redis_url,
            redis_cluster_urls,
            instance_id,
            admin_usernames,
            allow_guests: env.bool("ALLOW_GUESTS", true)?,
            rate_limit_per_sec,
            rate_limit_burst,
            replay_limit: env.parse("REPLAY_LIMIT", 1000i64, |v| (0..=100_000).contains(v), "an integer 0..=100000")?,
            workers: env.parse("WORKERS", cpus, |v| (1..=256).contains(v), "an integer 1..=256")?,
            db_pool_max,
            db_pool_min_idle,
            db_pool_timeout: env.millis("DB_POOL_TIMEOUT_MS", 1_000, 10, 60_000)?,
            db_pool_idle_timeout: env.millis("DB_POOL_IDLE_TIMEOUT_MS", 300_000, 1_000, 86_400_000)?,
            slow_query: env.millis("SLOW_QUERY_MS", 50, 0, 3_600_000)?,
            slow_request: env.millis("SLOW_REQUEST_MS", 500, 0, 3_600_000)?,
            traces: trace_config(&env)?,
            asset_base_url: env.asset_base_url("ASSET_BASE_URL")?,
            replica_max_lag: env.millis("REPLICA_MAX_LAG_MS", 1_000, 0, 3_600_000)?,
            cache_enabled: env.bool("CACHE_ENABLED", true)?,
            cache_max_bytes: env.parse(
                "CACHE_MAX_BYTES",
                64u64 << 20,
                |v| (1 << 16..=1 << 40).contains(v),
                "bytes 65536..=1099511627776",
            )?,
            cache_ttl: env.millis("CACHE_TTL_MS", 60_000, 0, 86_400_000)?,
            cache_negative_ttl: env.millis("CACHE_NEGATIVE_TTL_MS", 5_000, 0, 3_600_000)?,
            warm_rooms: env.parse("WARM_ROOMS", 100usize, |v| *v <= 100_000, "an integer 0..=100000")?,
            warm_timeout: env.millis("WARM_TIMEOUT_MS", 5_000, 0, 600_000)?,
            recent_window: env.parse("RECENT_WINDOW", 200usize, |v| *v <= 100_000, "an integer 0..=100000")?,
            db_statement_timeout: env.millis("DB_STATEMENT_TIMEOUT_MS", 5_000, 10, 600_000)?,
            db_startup_wait: env.millis("DB_STARTUP_WAIT_MS", 5_000, 0, 600_000)?,
            writer_shards: env.parse("WRITER_SHARDS", 2usize, |v| (1..=64).contains(v), "an integer 1..=64")?,
            writer_batch_max: env.parse("WRITER_BATCH_MAX", 512usize, |v| (1..=10_000).contains(v), "an integer 1..=10000")?,
            writer_queue: env.parse("WRITER_QUEUE", 10_000usize, |v| (1..=1_000_000).contains(v), "an integer 1..=1000000")?,
            write_timeout: env.millis("WRITE_TIMEOUT_MS", 10_000, 100, 600_000)?,
            heartbeat_interval,
            client_timeout,
            room_idle: env.millis("ROOM_IDLE_MS", 30_000, 0, 86_400_000)?,
            gap_heal: env.millis("GAP_HEAL_MS", 40, 1, 60_000)?,
            max_frame_bytes: env.parse(
                "MAX_FRAME_BYTES",
                16 * 1024usize,
                |v| (256..=1 << 20).contains(v),
                "bytes 256..=1048576",
            )?,
            max_body_bytes: env.parse(
                "MAX_BODY_BYTES",
                64 * 1024usize,
                |v| (1024..=16 << 20).contains(v),
                "bytes 1024..=16777216",
            )?,
            max_rooms_per_connection: env.parse(
                "MAX_ROOMS_PER_CONNECTION",
                100usize,
                |v| (1..=10_000).contains(v),
                "an integer 1..=10000",
            )?,
            max_connections: env.parse("MAX_CONNECTIONS", 50_000usize, |v| *v >= 1, "an integer >= 1")?,
            max_connections_per_ip: env.parse("MAX_CONNECTIONS_PER_IP", 1_000usize, |v| *v >= 1, "an integer >= 1")?,
            login_failures_per_min: env.parse("LOGIN_FAILURES_PER_MIN", 20usize, |v| *v >= 1, "an integer >= 1")?,
            trusted_proxies: {
                let raw = env.string("TRUSTED_PROXIES", "127.0.0.1,::1");
                let mut ips = Vec::new();
                for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "none") {
                    match part.parse() {
                        Ok(ip) => ips.push(ip),
                        Err(_) => {
                            return Err(ConfigError {
                                var: "TRUSTED_PROXIES",
                                value: raw.clone(),
                                problem: "expected comma-separated IP addresses".into(),
                            })
                        }
                    }
                }
                ips
            },
            allowed_origins: env
                .string("ALLOWED_ORIGINS", "")
                .split(',')
                .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            handshake_timeout: env.millis("HANDSHAKE_TIMEOUT_MS", 5_000, 100, 600_000)?,
            keep_alive: env.millis("KEEP_ALIVE_MS", 15_000, 0, 3_600_000)?,
            max_outbound_bytes: env.parse("MAX_OUTBOUND_BYTES", 1usize << 20, |v| *v >= 16 * 1024, "bytes >= 16384")?,
            test_hooks: env.bool("SWITCHBOARD_TEST_HOOKS", false)?,
            drain_grace: env.millis("DRAIN_GRACE_MS", 2_000, 0, 600_000)?,
            drain_batch_size: env.parse(
                "DRAIN_BATCH_SIZE",
                200usize,
                |v| (1..=1_000_000).contains(v),
                "an integer 1..=1000000",
            )?,
            drain_batch_interval: env.millis("DRAIN_BATCH_INTERVAL_MS", 100, 0, 60_000)?,
            drain_jitter: env.millis("DRAIN_JITTER_MS", 3_000, 0, 600_000)?,
            shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000)?,
            redis_key_prefix: {
                let p = env.string("REDIS_KEY_PREFIX", "switchboard:");
                if p.len() > 64 || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ConfigError {
                        var: "REDIS_KEY_PREFIX",
                        value: p,
                        problem: "expected at most 64 characters without spaces".into(),
                    });
                }
                p
            },
            redis_pool_max: env.parse("REDIS_POOL_MAX", 32u32, |v| (1..=256).contains(v), "an integer 1..=256")?,
            room_resync: env.millis("ROOM_RESYNC_MS", 5_000, 50, 3_600_000)?,
            instance_heartbeat,
            instance_ttl,
            cache_lease: env.millis("CACHE_LEASE_MS", 1_000, 50, 60_000)?,
            sessions: SessionPolicy {
                idle: env.days("SESSION_IDLE_DAYS", 30.0)?,
                max_age: env.days("SESSION_MAX_DAYS", 90.0)?,
                guest_retention: env.days("GUEST_RETENTION_DAYS", 7.0)?,
            },
            signups_per_min: env.parse("SIGNUPS_PER_MIN", 10usize, |v| (1..=1_000_000).contains(v), "an integer 1..=1000000")?,
            guests_per_min: env.parse("GUESTS_PER_MIN", 30usize, |v| (1..=1_000_000).contains(v), "an integer 1..=1000000")?,
            cleanup_interval: env.millis("CLEANUP_INTERVAL_MS", 600_000, 100, 86_400_000)?,
            default_rooms: {
                // Unset: `general`; set but empty: none.
                let raw = (env.0)("DEFAULT_ROOMS").unwrap_or_else(|| "general".into());
                let mut rooms = Vec::new();
                for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match crate::domain::RoomName::parse(part) {
                        Ok(name) if !rooms.contains(&name) => rooms.push(name),
                        Ok(_) => {}
                        Err(_) => {
                            return Err(ConfigError {
                                var: "DEFAULT_ROOMS",
                                value: raw.clone(),
                                problem: "expected comma-separated room names ([a-z0-9_-]{1,64})".into(),
                            })
                        }
                    }
                }
                rooms
            },
        })
    }

    /// Whether Redis (one server or a cluster) is configured.
    pub fn has_redis(&self) -> bool {
        self.redis_url.is_some() || !self.redis_cluster_urls.is_empty()
    }

    pub fn is_admin(&self, username: &str) -> bool {
        let lower = username.to_ascii_lowercase();
        self.admin_usernames.contains(&lower)
    }
}

/// The standard OpenTelemetry variables this server honours. Export is off
/// without an endpoint, with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
fn trace_config<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<crate::telemetry::TraceConfig, ConfigError> {
    let disabled = env.bool("OTEL_SDK_DISABLED", false)?;
    let exporter = env.string("OTEL_TRACES_EXPORTER", "otlp");
    if !matches!(exporter.trim(), "otlp" | "none") {
        return Err(ConfigError { var: "OTEL_TRACES_EXPORTER", value: exporter, problem: "expected otlp or none".into() });
    }
    let endpoint = env.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| env.raw("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let endpoint = endpoint.filter(|_| !disabled && exporter.trim() == "otlp");
    if let Some(url) = &endpoint {
        // This build speaks OTLP over plain HTTP (protobuf): a collector
        // beside the server (sidecar, agent) forwards over TLS if needed.
        if !url.starts_with("http://") {
            let var = if env.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some() {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            } else {
                "OTEL_EXPORTER_OTLP_ENDPOINT"
            };
            return Err(ConfigError {
                var,
                value: url.clone(),
                problem: "expected an http:// URL of an OTLP/HTTP receiver (an OpenTelemetry Collector beside the server)".into(),
            });
        }
        for var in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(p) = env.raw(var) {
                if p.trim() != "http/protobuf" {
                    return Err(ConfigError {
                        var,
                        value: p,
                        problem: "expected http/protobuf (the protocol this build exports)".into(),
                    });
                }
            }
        }
    }
    let (name, arg) = (env.raw("OTEL_TRACES_SAMPLER"), env.raw("OTEL_TRACES_SAMPLER_ARG"));
    let sampler = crate::telemetry::sampler::Sampler::from_env(name.as_deref(), arg.as_deref()).map_err(|(var, problem)| {
        let value = if var == "OTEL_TRACES_SAMPLER" { name.clone() } else { arg.clone() };
        ConfigError { var, value: value.unwrap_or_default(), problem }
    })?;
    Ok(crate::telemetry::TraceConfig {
        endpoint,
        service_name: env.string("OTEL_SERVICE_NAME", "switchboard"),
        sampler,
        slow_delivery: env.millis("SLOW_DELIVERY_MS", 100, 0, 3_600_000)?,
    })
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

/// The URL with any password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn the_embedded_database_is_the_default_and_refused_beside_redis() {
        let c = config(&[("DATA_DIR", "/srv/chat")]).expect("valid");
        assert_eq!(c.database, Database::Sqlite { path: PathBuf::from("/srv/chat/switchboard.db") });
        let c = config(&[("DATABASE_URL", "sqlite:///tmp/x.db")]).expect("valid");
        assert_eq!(c.database, Database::Sqlite { path: PathBuf::from("/tmp/x.db") });
        let c = config(&[("DATABASE_URL", "postgres://u@h/db")]).expect("valid");
        assert_eq!(c.database, Database::Postgres { url: "postgres://u@h/db".into() });
        for (var, value) in [
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_CLUSTER_URLS", "redis://a:1"),
            ("DATABASE_REPLICA_URL", "postgres://r/db"),
        ] {
            let err = config(&[(var, value)]).expect_err("SQLite with a shared service").to_string();
            assert!(err.starts_with("DATABASE_URL: ") && err.contains(var) && err.contains("postgres://"), "{err}");
        }
        assert!(config(&[("REDIS_URL", "redis://h"), ("DATABASE_URL", "postgres://u@h/db")]).is_ok());
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.bind_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.database, Database::Sqlite { path: PathBuf::from("./data/switchboard.db") });
        assert!(c.redis_url.is_none());
        assert!(c.allow_guests);
        assert_eq!(c.rate_limit_per_sec, 20.0);
        assert_eq!(c.rate_limit_burst, 40.0);
        assert_eq!(c.replay_limit, 1000);
        assert_eq!(c.sessions.idle, Duration::from_secs(30 * 86_400));
        assert_eq!(c.sessions.max_age, Duration::from_secs(90 * 86_400));
        assert_eq!(c.sessions.guest_retention, Duration::from_secs(7 * 86_400));
        assert_eq!((c.signups_per_min, c.guests_per_min), (10, 30));
        assert_eq!(c.sessions.touch_every(), Duration::from_secs(3600));
        assert_eq!(c.default_rooms.iter().map(|r| r.as_str()).collect::<Vec<_>>(), vec!["general"]);
    }

    #[test]
    fn traces_are_off_by_default_and_bad_otel_settings_name_their_variable() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.traces.endpoint, None);
        assert_eq!(c.traces.slow_delivery, Duration::from_millis(100));
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")];
        assert_eq!(config(&on).expect("valid").traces.endpoint.as_deref(), Some("http://collector:4318"));
        let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_SDK_DISABLED", "true")];
        assert_eq!(config(&off).expect("valid").traces.endpoint, None);
        let none = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_TRACES_EXPORTER", "none")];
        assert_eq!(config(&none).expect("valid").traces.endpoint, None);
        for (vars, var) in [
            (vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")], "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (vec![("OTEL_TRACES_SAMPLER", "sometimes")], "OTEL_TRACES_SAMPLER"),
            (vec![("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.5")], "OTEL_TRACES_SAMPLER_ARG"),
            (vec![("OTEL_TRACES_EXPORTER", "zipkin")], "OTEL_TRACES_EXPORTER"),
            (vec![("SLOW_DELIVERY_MS", "soon")], "SLOW_DELIVERY_MS"),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{var}:")), "{err}");
        }
    }

    #[test]
    fn default_rooms_can_be_listed_or_turned_off() {
        let c = config(&[("DEFAULT_ROOMS", " lobby, help ,lobby")]).expect("valid");
        assert_eq!(c.default_rooms.iter().map(|r| r.as_str()).collect::<Vec<_>>(), vec!["lobby", "help"]);
        assert!(config(&[("DEFAULT_ROOMS", "")]).expect("valid").default_rooms.is_empty());
        let err = config(&[("DEFAULT_ROOMS", "Not A Room")]).unwrap_err().to_string();
        assert!(err.starts_with("DEFAULT_ROOMS:"), "{err}");
    }

    #[test]
    fn session_days_accept_fractions_and_refuse_nonsense() {
        let c = config(&[("SESSION_IDLE_DAYS", "0.5")]).expect("valid");
        assert_eq!(c.sessions.idle, Duration::from_secs(43_200));
        for bad in ["0", "-1", "NaN", "inf", "soon"] {
            let err = config(&[("GUEST_RETENTION_DAYS", bad)]).unwrap_err().to_string();
            assert!(err.starts_with("GUEST_RETENTION_DAYS:"), "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("RATE_LIMIT_PER_SEC", "fast")]).unwrap_err().to_string();
        assert!(err.starts_with("RATE_LIMIT_PER_SEC:"), "{err}");
        let err = config(&[("BIND_ADDR", "nowhere")]).unwrap_err().to_string();
        assert!(err.starts_with("BIND_ADDR:"), "{err}");
        let err = config(&[("REDIS_URL", "localhost:6379")]).unwrap_err().to_string();
        assert!(err.starts_with("REDIS_URL:"), "{err}");
        let err = config(&[("ALLOW_GUESTS", "maybe")]).unwrap_err().to_string();
        assert!(err.starts_with("ALLOW_GUESTS:"), "{err}");
        for bad in ["cdn.example.com", "https://", "https://cdn\"x", "https://cdn/?v=1", "javascript:alert(1)"] {
            let err = config(&[("ASSET_BASE_URL", bad)]).unwrap_err().to_string();
            assert!(err.starts_with("ASSET_BASE_URL:"), "{err}");
        }
        let c = config(&[("ASSET_BASE_URL", "https://cdn.example.com/sb/")]).expect("valid");
        assert_eq!(c.asset_base_url.as_deref(), Some("https://cdn.example.com/sb"));
    }

    #[test]
    fn admins_are_case_insensitive() {
        let c = config(&[("ADMIN_USERNAMES", " Alice, bob ,,")]).expect("valid");
        assert!(c.is_admin("alice"));
        assert!(c.is_admin("BOB"));
        assert!(!c.is_admin("carol"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
