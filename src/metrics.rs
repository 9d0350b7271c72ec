//! Prometheus metrics. One process is one instance, so a process-wide registry
//! is the honest shape. Labels are bounded sets: route patterns, query names,
//! cache names; never user or room names.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets from 100 µs to 5 s: the interesting range for chat delivery.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Every query name the store uses; pre-registered so dashboards see zeros.
pub const QUERY_NAMES: &[&str] = &[
    "user_create",
    "user_by_name",
    "user_by_token",
    "session_create",
    "session_delete",
    "room_by_name",
    "room_create",
    "room_ensure_public",
    "room_list_for_user",
    "member_check",
    "member_add",
    "member_remove",
    "member_list",
    "history_newest",
    "history_before",
    "history_after",
    "history_range",
    "append_messages",
    "health_check",
    "idempotency_lookup",
    "retry_lookup_by_id",
    "seq_allocation",
    "room_counts",
    "room_set_topic",
    "rooms_hottest",
    "session_touch",
    "cleanup_sessions",
    "cleanup_guests",
];

/// The caches, as the `cache` label of the cache metrics and the name an
/// invalidation carries over the bus: the one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheName {
    Token,
    Room,
    Membership,
    /// The newest page of a running room (its window), not a `Layered` cache.
    History,
}

impl CacheName {
    pub const ALL: [CacheName; 4] = [CacheName::Token, CacheName::Room, CacheName::Membership, CacheName::History];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheName::Token => "token",
            CacheName::Room => "room",
            CacheName::Membership => "membership",
            CacheName::History => "history",
        }
    }

    pub fn parse(name: &str) -> Option<CacheName> {
        CacheName::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Where a delivery's time goes (`switchboard_delivery_stage_seconds`); the
/// boundaries are documented in docs/observability.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStage {
    /// Received by the server -> its batch's commit starts (waiting for the writer).
    Queue,
    /// The batch's durable commit, retries included.
    Commit,
    /// Available on this instance (committed here, or arrived over the bus)
    /// -> written to a recipient's socket.
    Fanout,
    /// Committed on the origin instance -> arrived here over the bus.
    Bus,
}

impl DeliveryStage {
    pub const ALL: [DeliveryStage; 4] = [DeliveryStage::Queue, DeliveryStage::Commit, DeliveryStage::Fanout, DeliveryStage::Bus];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStage::Queue => "queue",
            DeliveryStage::Commit => "commit",
            DeliveryStage::Fanout => "fanout",
            DeliveryStage::Bus => "bus",
        }
    }
}

/// (method, route pattern, success status) of every route, for zero-initialisation.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/api/v1/users", "201"),
    ("POST", "/api/v1/sessions", "200"),
    ("POST", "/api/v1/sessions/guest", "200"),
    ("POST", "/api/v1/sessions/ticket", "200"),
    ("DELETE", "/api/v1/sessions", "204"),
    ("GET", "/api/v1/me", "200"),
    ("GET", "/api/v1/rooms", "200"),
    ("POST", "/api/v1/rooms", "201"),
    ("GET", "/api/v1/rooms/{name}", "200"),
    ("PATCH", "/api/v1/rooms/{name}", "200"),
    ("POST", "/api/v1/rooms/{name}/members", "204"),
    ("GET", "/api/v1/rooms/{name}/members", "200"),
    ("DELETE", "/api/v1/rooms/{name}/members/{username}", "204"),
    ("GET", "/api/v1/rooms/{name}/messages", "200"),
    ("POST", "/api/v1/rooms/{name}/messages", "201"),
    ("GET", "/api/v1/admin/stats", "200"),
    ("GET", "/ws", "101"),
    ("GET", "/healthz", "200"),
    ("GET", "/readyz", "200"),
    ("GET", "/metrics", "200"),
    ("GET", "/", "200"),
    ("GET", "/admin", "200"),
];

pub struct Metrics {
    pub registry: Registry,
    pub ws_connections: IntGauge,
    pub rooms_active: IntGauge,
    pub messages_total: IntCounter,
    pub delivery_latency: Histogram,
    pub ack_latency: Histogram,
    pub http_duration: HistogramVec,
    pub db_query_duration: HistogramVec,
    pub db_query_errors: IntCounterVec,
    pub db_pool_connections: IntGaugeVec,
    pub db_pool_wait: HistogramVec,
    pub db_replica_lag: prometheus::Gauge,
    pub db_reads: IntCounterVec,
    pub cache_requests: IntCounterVec,
    pub cache_evictions: IntCounterVec,
    pub cache_entries: IntGaugeVec,
    pub cache_bytes: IntGaugeVec,
    pub bridge_messages: IntCounterVec,
    pub writer_batch_size: Histogram,
    pub writer_commit: Histogram,
    pub writer_queue_depth: IntGauge,
    pub writer_retries: IntCounter,
    pub ws_errors: IntCounterVec,
    pub rate_limited: IntCounter,
    pub gap_heals: IntCounter,
    pub messages_delivered: IntCounter,
    pub bridge_dropped: IntCounter,
    pub bridge_publish_errors: IntCounter,
    pub bridge_reconnects: IntCounter,
    pub bridge_connected: IntGauge,
    pub cluster_instances: IntGauge,
    pub limit_hits: IntCounterVec,
    pub slow_consumers: IntCounter,
    pub catchups: IntCounter,
    pub db_primary_changes: IntCounter,
    pub task_restarts: IntCounterVec,
    /// Precise CPU time (the process collector's counter is whole seconds).
    pub cpu_seconds: prometheus::Gauge,
    pub db_slow_queries: IntCounterVec,
    pub db_pool_max: IntGaugeVec,
    pub room_mailbox_lag: Histogram,
    pub http_slow_requests: IntCounter,
    pub ready: IntGauge,
    pub build_info: IntGaugeVec,
    pub delivery_stage: HistogramVec,
    pub revocations: IntCounterVec,
    pub revocation_seconds: Histogram,
    pub cache_lease_bypass: IntCounterVec,
    pub cache_lease_valid: IntGauge,
    pub cleanup_rows: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid histogram")
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            ws_connections: IntGauge::new("switchboard_ws_connections", "Open WebSocket connections on this instance")
                .expect("valid"),
            rooms_active: IntGauge::new("switchboard_rooms_active", "Room actors running on this instance").expect("valid"),
            messages_total: IntCounter::new("switchboard_messages_total", "Messages durably stored by this instance's writer")
                .expect("valid"),
            delivery_latency: histogram(
                "switchboard_delivery_latency_seconds",
                "From the server receiving a message to writing it to a recipient's socket",
                LATENCY_BUCKETS,
            ),
            ack_latency: histogram(
                "switchboard_ack_latency_seconds",
                "From the server receiving a send to the sender's ack (commit included)",
                LATENCY_BUCKETS,
            ),
            http_duration: HistogramVec::new(
                HistogramOpts::new("switchboard_http_request_duration_seconds", "HTTP request duration")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["method", "route", "status"],
            )
            .expect("valid"),
            db_query_duration: HistogramVec::new(
                HistogramOpts::new("switchboard_db_query_duration_seconds", "Database query duration by query name")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["query"],
            )
            .expect("valid"),
            db_query_errors: IntCounterVec::new(
                Opts::new("switchboard_db_query_errors_total", "Failed database queries by query name"),
                &["query"],
            )
            .expect("valid"),
            db_pool_connections: IntGaugeVec::new(
                Opts::new("switchboard_db_pool_connections", "Database pool connections by state"),
                &["pool", "state"],
            )
            .expect("valid"),
            db_pool_wait: HistogramVec::new(
                HistogramOpts::new("switchboard_db_pool_wait_seconds", "Time waiting for a pooled database connection")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["pool"],
            )
            .expect("valid"),
            db_replica_lag: prometheus::Gauge::new(
                "switchboard_db_replica_lag_seconds",
                "Replay lag of the read replica (-1 when unreachable or not configured)",
            )
            .expect("valid"),
            db_reads: IntCounterVec::new(
                Opts::new("switchboard_db_reads_total", "History and room-list reads by the pool that served them"),
                &["pool"],
            )
            .expect("valid"),
            cache_requests: IntCounterVec::new(
                Opts::new("switchboard_cache_requests_total", "Cache lookups by cache and result"),
                &["cache", "result"],
            )
            .expect("valid"),
            cache_evictions: IntCounterVec::new(
                Opts::new("switchboard_cache_evictions_total", "L1 cache entries evicted for size or expiry"),
                &["cache"],
            )
            .expect("valid"),
            cache_entries: IntGaugeVec::new(Opts::new("switchboard_cache_entries", "L1 cache entries"), &["cache"])
                .expect("valid"),
            cache_bytes: IntGaugeVec::new(Opts::new("switchboard_cache_bytes", "Approximate L1 cache bytes"), &["cache"])
                .expect("valid"),
            bridge_messages: IntCounterVec::new(
                Opts::new("switchboard_bridge_messages_total", "Messages through the cross-instance bridge"),
                &["direction"],
            )
            .expect("valid"),
            writer_batch_size: histogram(
                "switchboard_writer_batch_size",
                "Messages per group commit",
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0],
            ),
            writer_commit: histogram("switchboard_writer_commit_seconds", "Duration of one group commit", LATENCY_BUCKETS),
            writer_queue_depth: IntGauge::new("switchboard_writer_queue_depth", "Sends waiting for the writer").expect("valid"),
            writer_retries: IntCounter::new("switchboard_writer_retries_total", "Group commits retried after an error")
                .expect("valid"),
            ws_errors: IntCounterVec::new(
                Opts::new("switchboard_ws_errors_total", "Error frames sent to clients by code"),
                &["code"],
            )
            .expect("valid"),
            rate_limited: IntCounter::new("switchboard_rate_limited_total", "Sends refused by the per-connection limit")
                .expect("valid"),
            gap_heals: IntCounter::new("switchboard_room_gap_heals_total", "Seq gaps filled from the database").expect("valid"),
            messages_delivered: IntCounter::new("switchboard_messages_delivered_total", "Message frames written to sockets")
                .expect("valid"),
            bridge_dropped: IntCounter::new(
                "switchboard_bridge_dropped_total",
                "Bus events dropped because the publish queue was full (healed by resync)",
            )
            .expect("valid"),
            bridge_publish_errors: IntCounter::new(
                "switchboard_bridge_publish_errors_total",
                "Failed publish pipelines to Redis",
            )
            .expect("valid"),
            bridge_reconnects: IntCounter::new("switchboard_bridge_reconnects_total", "Bus subscriber reconnections")
                .expect("valid"),
            bridge_connected: IntGauge::new(
                "switchboard_bridge_connected",
                "1 when the bus subscriber is connected (or the bus is in-process), else 0",
            )
            .expect("valid"),
            cluster_instances: IntGauge::new("switchboard_cluster_instances", "Instances this one hears from, itself included")
                .expect("valid"),
            limit_hits: IntCounterVec::new(
                Opts::new("switchboard_limit_hits_total", "Requests refused by an abuse limit"),
                &["limit"],
            )
            .expect("valid"),
            slow_consumers: IntCounter::new(
                "switchboard_slow_consumer_disconnects_total",
                "WebSockets closed because the client stopped reading",
            )
            .expect("valid"),
            task_restarts: IntCounterVec::new(
                Opts::new("switchboard_task_restarts_total", "Background tasks restarted after a panic or an exit"),
                &["task"],
            )
            .expect("valid"),
            catchups: IntCounter::new(
                "switchboard_catchups_total",
                "Times a slow reader's live stream was paused at MAX_OUTBOUND_BYTES, to be caught up from the database",
            )
            .expect("valid"),
            db_primary_changes: IntCounter::new(
                "switchboard_db_primary_changes_total",
                "times this instance found the database primary on another server (a failover)",
            )
            .expect("metric"),
            cpu_seconds: prometheus::Gauge::new(
                "switchboard_process_cpu_seconds",
                "User plus system CPU seconds of this process, to the clock tick",
            )
            .expect("valid"),
            db_slow_queries: IntCounterVec::new(
                Opts::new("switchboard_db_slow_queries_total", "Queries slower than SLOW_QUERY_MS by query name"),
                &["query"],
            )
            .expect("valid"),
            db_pool_max: IntGaugeVec::new(Opts::new("switchboard_db_pool_max", "Configured pool size"), &["pool"])
                .expect("valid"),
            room_mailbox_lag: histogram(
                "switchboard_room_mailbox_lag_seconds",
                "Time a committed batch waits in a room actor's mailbox before fan-out",
                LATENCY_BUCKETS,
            ),
            http_slow_requests: IntCounter::new(
                "switchboard_http_slow_requests_total",
                "HTTP requests slower than SLOW_REQUEST_MS",
            )
            .expect("valid"),
            ready: IntGauge::new("switchboard_ready", "1 while /readyz would answer ready, else 0").expect("valid"),
            build_info: IntGaugeVec::new(
                Opts::new("switchboard_build_info", "Always 1; labelled with the version"),
                &["version"],
            )
            .expect("valid"),
            delivery_stage: HistogramVec::new(
                HistogramOpts::new(
                    "switchboard_delivery_stage_seconds",
                    "Where delivery time goes: queue (received to commit start), commit, fanout (available on this \
                     instance to socket write), bus (origin commit to arrival here)",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["stage"],
            )
            .expect("valid"),
            revocations: IntCounterVec::new(
                Opts::new(
                    "switchboard_revocations_total",
                    "Token and membership revocations by how every instance was made to hold them",
                ),
                &["outcome"],
            )
            .expect("valid"),
            revocation_seconds: histogram(
                "switchboard_revocation_seconds",
                "From a revocation's database change to every instance holding it",
                LATENCY_BUCKETS,
            ),
            cache_lease_bypass: IntCounterVec::new(
                Opts::new(
                    "switchboard_cache_lease_bypass_total",
                    "Token and membership lookups sent to the database because the cache lease had lapsed",
                ),
                &["cache"],
            )
            .expect("valid"),
            cache_lease_valid: IntGauge::new(
                "switchboard_cache_lease_valid",
                "1 while this instance may trust its cached tokens and memberships, else 0",
            )
            .expect("valid"),
            cleanup_rows: IntCounterVec::new(
                Opts::new("switchboard_cleanup_rows_total", "Rows removed by the housekeeping job"),
                &["kind"],
            )
            .expect("valid"),
            registry,
        };
        m.register_all();
        m.initialise_labels();
        m
    }

    fn register_all(&self) {
        let r = &self.registry;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.ws_connections.clone()),
            Box::new(self.rooms_active.clone()),
            Box::new(self.messages_total.clone()),
            Box::new(self.delivery_latency.clone()),
            Box::new(self.ack_latency.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.db_query_duration.clone()),
            Box::new(self.db_query_errors.clone()),
            Box::new(self.db_pool_connections.clone()),
            Box::new(self.db_pool_wait.clone()),
            Box::new(self.db_replica_lag.clone()),
            Box::new(self.db_reads.clone()),
            Box::new(self.cache_requests.clone()),
            Box::new(self.cache_evictions.clone()),
            Box::new(self.cache_entries.clone()),
            Box::new(self.cache_bytes.clone()),
            Box::new(self.bridge_messages.clone()),
            Box::new(self.writer_batch_size.clone()),
            Box::new(self.writer_commit.clone()),
            Box::new(self.writer_queue_depth.clone()),
            Box::new(self.writer_retries.clone()),
            Box::new(self.ws_errors.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.gap_heals.clone()),
            Box::new(self.messages_delivered.clone()),
            Box::new(self.bridge_dropped.clone()),
            Box::new(self.bridge_publish_errors.clone()),
            Box::new(self.bridge_reconnects.clone()),
            Box::new(self.bridge_connected.clone()),
            Box::new(self.cluster_instances.clone()),
            Box::new(self.cpu_seconds.clone()),
            Box::new(self.limit_hits.clone()),
            Box::new(self.slow_consumers.clone()),
            Box::new(self.catchups.clone()),
            Box::new(self.db_primary_changes.clone()),
            Box::new(self.task_restarts.clone()),
            Box::new(self.db_slow_queries.clone()),
            Box::new(self.db_pool_max.clone()),
            Box::new(self.room_mailbox_lag.clone()),
            Box::new(self.http_slow_requests.clone()),
            Box::new(self.ready.clone()),
            Box::new(self.build_info.clone()),
            Box::new(self.delivery_stage.clone()),
            Box::new(self.revocations.clone()),
            Box::new(self.revocation_seconds.clone()),
            Box::new(self.cache_lease_bypass.clone()),
            Box::new(self.cache_lease_valid.clone()),
            Box::new(self.cleanup_rows.clone()),
        ];
        for c in collectors {
            r.register(c).expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
    }

    fn initialise_labels(&self) {
        for q in QUERY_NAMES {
            self.db_query_duration.with_label_values(&[q]);
            self.db_query_errors.with_label_values(&[q]);
            self.db_slow_queries.with_label_values(&[q]);
        }
        self.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in CacheName::ALL.map(CacheName::as_str) {
            for result in ["hit", "miss"] {
                self.cache_requests.with_label_values(&[c, result]);
            }
            self.cache_evictions.with_label_values(&[c]);
            self.cache_entries.with_label_values(&[c]);
            self.cache_bytes.with_label_values(&[c]);
        }
        for d in ["in", "out"] {
            self.bridge_messages.with_label_values(&[d]);
        }
        for pool in ["primary", "replica"] {
            for state in ["idle", "active"] {
                self.db_pool_connections.with_label_values(&[pool, state]);
            }
            self.db_pool_wait.with_label_values(&[pool]);
            self.db_pool_max.with_label_values(&[pool]);
            self.db_reads.with_label_values(&[pool]);
        }
        self.db_replica_lag.set(-1.0);
        for task in crate::supervisor::Task::ALL {
            self.task_restarts.with_label_values(&[task.as_str()]);
        }
        for stage in DeliveryStage::ALL {
            self.delivery_stage.with_label_values(&[stage.as_str()]);
        }
        for outcome in crate::cluster::revocation::Outcome::ALL {
            self.revocations.with_label_values(&[outcome.as_str()]);
        }
        for cache in ["token", "membership"] {
            self.cache_lease_bypass.with_label_values(&[cache]);
        }
        for kind in ["sessions", "guests"] {
            self.cleanup_rows.with_label_values(&[kind]);
        }
        for limit in ["connections", "connections_per_ip", "login", "origin", "signups", "guests"] {
            self.limit_hits.with_label_values(&[limit]);
        }
        for (method, route, status) in ROUTES {
            self.http_duration.with_label_values(&[method, route, status]);
        }
        for code in crate::error::ErrorCode::ALL {
            self.ws_errors.with_label_values(&[code.as_str()]);
        }
    }

    /// Records one query; true when it was slow (the caller logs it with detail).
    pub fn observe_query(&self, name: &'static str, elapsed: Duration, ok: bool, slow: Duration) -> bool {
        self.db_query_duration.with_label_values(&[name]).observe(elapsed.as_secs_f64());
        if !ok {
            self.db_query_errors.with_label_values(&[name]).inc();
        }
        let is_slow = elapsed >= slow;
        if is_slow {
            self.db_slow_queries.with_label_values(&[name]).inc();
        }
        is_slow
    }

    pub fn stage(&self, stage: DeliveryStage) -> Histogram {
        self.delivery_stage.with_label_values(&[stage.as_str()])
    }

    pub fn set_pool(&self, pool: &str, idle: u32, active: u32) {
        self.db_pool_connections.with_label_values(&[pool, "idle"]).set(i64::from(idle));
        self.db_pool_connections.with_label_values(&[pool, "active"]).set(i64::from(active));
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        self.cpu_seconds.set(process_cpu_seconds());
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            log::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// utime + stime of this process from /proc (0 where there is no /proc).
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat, counted after the process name. Linux's
    // USER_HZ is 100 on every architecture this runs on.
    (ticks(11) + ticks(12)) / 100.0
}

/// Per-thread buffers for the per-delivery metrics.
struct DeliveryBuffer {
    latency: prometheus::local::LocalHistogram,
    fanout: prometheus::local::LocalHistogram,
    count: u64,
    last_flush: std::time::Instant,
}

impl DeliveryBuffer {
    fn flush(&mut self) {
        self.latency.flush();
        self.fanout.flush();
        METRICS.messages_delivered.inc_by(self.count);
        self.count = 0;
        self.last_flush = std::time::Instant::now();
    }
}

thread_local! {
    /// Per-thread buffer for the per-delivery metrics, so the hot path does
    /// not bounce shared cache lines between cores on every frame.
    static DELIVERIES: std::cell::RefCell<DeliveryBuffer> = std::cell::RefCell::new(DeliveryBuffer {
        latency: METRICS.delivery_latency.local(),
        fanout: METRICS.stage(DeliveryStage::Fanout).local(),
        count: 0,
        last_flush: std::time::Instant::now(),
    });
}

/// Counts one frame written to a socket, its latency since the server
/// received the message and its `fanout` stage (when known). Flushed every
/// 256 deliveries, and by a per-thread timer every 100 ms so quiet periods
/// are not left unflushed.
pub fn record_delivery(received_at: Option<std::time::Instant>, available_at: Option<std::time::Instant>) {
    DELIVERIES.with(|cell| {
        let mut b = cell.borrow_mut();
        let now = std::time::Instant::now();
        if let Some(t) = received_at {
            b.latency.observe(now.saturating_duration_since(t).as_secs_f64());
        }
        if let Some(t) = available_at {
            b.fanout.observe(now.saturating_duration_since(t).as_secs_f64());
        }
        b.count += 1;
        if b.count >= 256 || now.saturating_duration_since(b.last_flush) >= Duration::from_millis(100) {
            b.flush();
        }
    });
    FLUSHER.with(|started| {
        if !started.replace(true) {
            // Sessions run on actix workers, so a local task is available.
            actix::spawn(async {
                let mut tick = actix::clock::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    flush_deliveries();
                }
            });
        }
    });
}

fn flush_deliveries() {
    DELIVERIES.with(|cell| cell.borrow_mut().flush());
}

thread_local! {
    static FLUSHER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
mod cache_name_tests {
    use super::*;

    #[test]
    fn cache_names_parse_back() {
        for c in CacheName::ALL {
            assert_eq!(CacheName::parse(c.as_str()), Some(c));
        }
        assert_eq!(CacheName::parse("nope"), None);
    }
}
