//! Prometheus metrics. One process is one instance, so a process-wide registry
//! is the honest shape. Labels are bounded sets: route patterns, query names,
//! cache names; never user or room names.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

mod deliveries;
pub mod labels;

pub use deliveries::record_delivery;
pub use labels::{CacheName, CacheResult, Cleanup, DeliveryStage, Direction, Limit, PoolRole, PoolState, QueryName};

/// The caches whose lookups skip L1 while the cluster lease has lapsed.
pub const LEASED_CACHES: [CacheName; 3] = [CacheName::Token, CacheName::Membership, CacheName::Ban];

/// Latency buckets from 100 µs to 5 s: the interesting range for chat delivery.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Declares every metric once: its field, its type and how it is made
/// (name, help, buckets, labels). The struct, the registration and nothing
/// else come from this one table.
macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $make:expr;)+) => {
        pub struct Metrics {
            pub registry: Registry,
            $($(#[$doc])* pub $field: $ty,)+
        }

        impl Metrics {
            fn new() -> Self {
                let registry = Registry::new();
                $(
                    let $field: $ty = $make;
                    registry.register(Box::new($field.clone())).expect("metric names are unique");
                )+
                #[cfg(target_os = "linux")]
                {
                    let pc = prometheus::process_collector::ProcessCollector::for_self();
                    let _ = registry.register(Box::new(pc));
                }
                let m = Metrics { registry, $($field),+ };
                m.initialise_labels();
                m
            }
        }
    };
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid counter")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid gauge")
}

fn float_gauge(name: &str, help: &str) -> Gauge {
    Gauge::new(name, help).expect("valid gauge")
}

fn counters(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter")
}

fn gauges(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge")
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid histogram")
}

fn histograms(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels).expect("valid histogram")
}

metrics! {
    ws_connections: IntGauge = gauge("switchboard_ws_connections", "Open WebSocket connections on this instance");
    rooms_active: IntGauge = gauge("switchboard_rooms_active", "Room actors running on this instance");
    messages_total: IntCounter = counter("switchboard_messages_total", "Messages durably stored by this instance's writer");
    delivery_latency: Histogram = histogram(
        "switchboard_delivery_latency_seconds",
        "From the server receiving a message to writing it to a recipient's socket",
        LATENCY_BUCKETS,
    );
    ack_latency: Histogram = histogram(
        "switchboard_ack_latency_seconds",
        "From the server receiving a send to the sender's ack (commit included)",
        LATENCY_BUCKETS,
    );
    http_duration: HistogramVec =
        histograms("switchboard_http_request_duration_seconds", "HTTP request duration", &["method", "route", "status"]);
    db_query_duration: HistogramVec =
        histograms("switchboard_db_query_duration_seconds", "Database query duration by query name", &["query"]);
    db_query_errors: IntCounterVec =
        counters("switchboard_db_query_errors_total", "Failed database queries by query name", &["query"]);
    db_pool_connections: IntGaugeVec =
        gauges("switchboard_db_pool_connections", "Database pool connections by state", &["pool", "state"]);
    db_pool_wait: HistogramVec =
        histograms("switchboard_db_pool_wait_seconds", "Time waiting for a pooled database connection", &["pool"]);
    db_replica_lag: Gauge = float_gauge(
        "switchboard_db_replica_lag_seconds",
        "Replay lag of the read replica (-1 when unreachable or not configured)",
    );
    db_reads: IntCounterVec =
        counters("switchboard_db_reads_total", "History and room-list reads by the pool that served them", &["pool"]);
    cache_requests: IntCounterVec =
        counters("switchboard_cache_requests_total", "Cache lookups by cache and result", &["cache", "result"]);
    cache_evictions: IntCounterVec =
        counters("switchboard_cache_evictions_total", "L1 cache entries evicted for size or expiry", &["cache"]);
    cache_entries: IntGaugeVec = gauges("switchboard_cache_entries", "L1 cache entries", &["cache"]);
    cache_bytes: IntGaugeVec = gauges("switchboard_cache_bytes", "Approximate L1 cache bytes", &["cache"]);
    bridge_messages: IntCounterVec =
        counters("switchboard_bridge_messages_total", "Messages through the cross-instance bridge", &["direction"]);
    writer_batch_size: Histogram = histogram(
        "switchboard_writer_batch_size",
        "Messages per group commit",
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0],
    );
    writer_commit: Histogram = histogram("switchboard_writer_commit_seconds", "Duration of one group commit", LATENCY_BUCKETS);
    writer_queue_depth: IntGauge = gauge("switchboard_writer_queue_depth", "Sends waiting for the writer");
    writer_retries: IntCounter = counter("switchboard_writer_retries_total", "Group commits retried after an error");
    sqlite_checkpoint: Histogram = histogram(
        "switchboard_sqlite_checkpoint_seconds",
        "Background WAL checkpoints of the embedded database (off the commit path)",
        LATENCY_BUCKETS
    );
    sqlite_wal_pages: IntGauge = gauge("switchboard_sqlite_wal_pages", "Pages in the embedded database's WAL at the last checkpoint");
    writer_refused: IntCounter =
        counter("switchboard_writer_refused_total", "Sends refused at once because commits were stuck (the breaker)");
    writer_deadline_missed: IntCounter =
        counter("switchboard_writer_deadline_missed_total", "Sends answered unavailable because WRITE_TIMEOUT_MS passed first");
    ws_errors: IntCounterVec = counters("switchboard_ws_errors_total", "Error frames sent to clients by code", &["code"]);
    rate_limited: IntCounter = counter("switchboard_rate_limited_total", "Sends refused by the per-connection limit");
    gap_heals: IntCounter = counter("switchboard_room_gap_heals_total", "Seq gaps filled from the database");
    messages_delivered: IntCounter = counter("switchboard_messages_delivered_total", "Message frames written to sockets");
    bridge_dropped: IntCounter = counter(
        "switchboard_bridge_dropped_total",
        "Bus events dropped because the publish queue was full (healed by resync)",
    );
    bridge_publish_errors: IntCounter =
        counter("switchboard_bridge_publish_errors_total", "Failed publish pipelines to Redis");
    bridge_reconnects: IntCounter = counter("switchboard_bridge_reconnects_total", "Bus subscriber reconnections");
    bridge_connected: IntGauge = gauge(
        "switchboard_bridge_connected",
        "1 when the bus subscriber is connected (or the bus is in-process), else 0",
    );
    cluster_instances: IntGauge =
        gauge("switchboard_cluster_instances", "Instances this one hears from, itself included");
    /// Precise CPU time (the process collector's counter is whole seconds).
    cpu_seconds: Gauge =
        float_gauge("switchboard_process_cpu_seconds", "User plus system CPU seconds of this process, to the clock tick");
    limit_hits: IntCounterVec =
        counters("switchboard_limit_hits_total", "Requests refused by an abuse limit", &["limit"]);
    slow_consumers: IntCounter = counter(
        "switchboard_slow_consumer_disconnects_total",
        "WebSockets closed because the client stopped reading",
    );
    catchups: IntCounter = counter(
        "switchboard_catchups_total",
        "Times a slow reader's live stream was paused at MAX_OUTBOUND_BYTES, to be caught up from the database",
    );
    db_primary_changes: IntCounter = counter(
        "switchboard_db_primary_changes_total",
        "times this instance found the database primary on another server (a failover)",
    );
    task_restarts: IntCounterVec = counters(
        "switchboard_task_restarts_total",
        "Background tasks restarted after a panic or an exit",
        &["task"],
    );
    db_slow_queries: IntCounterVec =
        counters("switchboard_db_slow_queries_total", "Queries slower than SLOW_QUERY_MS by query name", &["query"]);
    db_pool_max: IntGaugeVec = gauges("switchboard_db_pool_max", "Configured pool size", &["pool"]);
    room_mailbox_lag: Histogram = histogram(
        "switchboard_room_mailbox_lag_seconds",
        "Time a committed batch waits in a room actor's mailbox before fan-out",
        LATENCY_BUCKETS,
    );
    http_slow_requests: IntCounter =
        counter("switchboard_http_slow_requests_total", "HTTP requests slower than SLOW_REQUEST_MS");
    ready: IntGauge = gauge("switchboard_ready", "1 while /readyz would answer ready, else 0");
    build_info: IntGaugeVec = gauges("switchboard_build_info", "Always 1; labelled with the version", &["version"]);
    delivery_stage: HistogramVec = histograms(
        "switchboard_delivery_stage_seconds",
        "Where delivery time goes: queue (received to commit start), commit, fanout (available on this \
         instance to socket write), bus (origin commit to arrival here)",
        &["stage"],
    );
    revocations: IntCounterVec = counters(
        "switchboard_revocations_total",
        "Token and membership revocations by how every instance was made to hold them",
        &["outcome"],
    );
    revocation_seconds: Histogram = histogram(
        "switchboard_revocation_seconds",
        "From a revocation's database change to every instance holding it",
        LATENCY_BUCKETS,
    );
    cache_lease_bypass: IntCounterVec = counters(
        "switchboard_cache_lease_bypass_total",
        "Token and membership lookups sent to the database because the cache lease had lapsed",
        &["cache"],
    );
    cache_lease_valid: IntGauge = gauge(
        "switchboard_cache_lease_valid",
        "1 while this instance may trust its cached tokens and memberships, else 0",
    );
    cleanup_rows: IntCounterVec = counters("switchboard_cleanup_rows_total", "Rows removed by the housekeeping job", &["kind"]);
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    /// Every bounded label set is exposed at zero from the start, so
    /// dashboards and rate() see a series before its first event.
    fn initialise_labels(&self) {
        for q in QueryName::ALL {
            self.db_query_duration.with_label_values(&[q.as_str()]);
            self.db_query_errors.with_label_values(&[q.as_str()]);
            self.db_slow_queries.with_label_values(&[q.as_str()]);
        }
        self.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in CacheName::ALL {
            for result in CacheResult::ALL {
                self.cache_request(c, result);
            }
            self.cache_evictions.with_label_values(&[c.as_str()]);
            self.cache_entries.with_label_values(&[c.as_str()]);
            self.cache_bytes.with_label_values(&[c.as_str()]);
        }
        for c in LEASED_CACHES {
            self.cache_lease_bypass.with_label_values(&[c.as_str()]);
        }
        for d in Direction::ALL {
            self.bridge(d);
        }
        for pool in PoolRole::ALL {
            for state in PoolState::ALL {
                self.db_pool_connections.with_label_values(&[pool.as_str(), state.as_str()]);
            }
            self.db_pool_wait.with_label_values(&[pool.as_str()]);
            self.db_pool_max.with_label_values(&[pool.as_str()]);
            self.db_read(pool);
        }
        self.db_replica_lag.set(-1.0);
        for stage in DeliveryStage::ALL {
            self.stage(stage);
        }
        for kind in Cleanup::ALL {
            self.cleanup(kind);
        }
        for limit in Limit::ALL {
            self.limit_hit(limit);
        }
    }

    /// Exposes the series of a label set another module owns at zero (the
    /// owner calls this at start-up: the registry stays below it).
    pub fn expose(&self, family: &IntCounterVec, labels: impl IntoIterator<Item = &'static str>) {
        for label in labels {
            family.with_label_values(&[label]);
        }
    }

    /// Exposes a route's series at zero (called as the routes are mounted).
    pub fn initialise_route(&self, method: &str, pattern: &str, status: &str) {
        self.http_duration.with_label_values(&[method, pattern, status]);
    }

    pub fn cache_request(&self, cache: CacheName, result: CacheResult) -> IntCounter {
        self.cache_requests.with_label_values(&[cache.as_str(), result.as_str()])
    }

    pub fn limit_hit(&self, limit: Limit) -> IntCounter {
        self.limit_hits.with_label_values(&[limit.as_str()])
    }

    pub fn bridge(&self, direction: Direction) -> IntCounter {
        self.bridge_messages.with_label_values(&[direction.as_str()])
    }

    pub fn db_read(&self, pool: PoolRole) -> IntCounter {
        self.db_reads.with_label_values(&[pool.as_str()])
    }

    pub fn cleanup(&self, kind: Cleanup) -> IntCounter {
        self.cleanup_rows.with_label_values(&[kind.as_str()])
    }

    pub fn pool_wait(&self, pool: PoolRole) -> Histogram {
        self.db_pool_wait.with_label_values(&[pool.as_str()])
    }

    /// Records one query; true when it was slow (the caller logs it with detail).
    pub fn observe_query(&self, query: QueryName, elapsed: Duration, ok: bool, slow: Duration) -> bool {
        let name = query.as_str();
        self.db_query_duration.with_label_values(&[name]).observe(elapsed.as_secs_f64());
        if !ok {
            self.db_query_errors.with_label_values(&[name]).inc();
        }
        // A probe's time is mostly the wait for a thread to run it (on SQLite
        // a `SELECT 1` takes microseconds; the rest is the blocking pool and
        // the CPU), so a slow probe is not a slow query: it stays in the
        // histogram, and /readyz reports one that does not answer at all.
        let is_slow = elapsed >= slow && !query.is_probe();
        if is_slow {
            self.db_slow_queries.with_label_values(&[name]).inc();
        }
        is_slow
    }

    pub fn stage(&self, stage: DeliveryStage) -> Histogram {
        self.delivery_stage.with_label_values(&[stage.as_str()])
    }

    pub fn set_pool(&self, pool: PoolRole, idle: u32, active: u32, max: u32) {
        let connections = |state: PoolState| self.db_pool_connections.with_label_values(&[pool.as_str(), state.as_str()]);
        connections(PoolState::Idle).set(i64::from(idle));
        connections(PoolState::Active).set(i64::from(active));
        self.db_pool_max.with_label_values(&[pool.as_str()]).set(i64::from(max));
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
