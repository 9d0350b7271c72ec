//! One instance's figures for the last second / ten seconds / minute: what
//! it publishes on the bus and what `/api/v1/admin/stats` aggregates.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::distribution::Distribution;
use super::totals::Totals;

/// Latency percentiles cover this many seconds (long enough to have samples,
/// short enough that a chart moves).
pub const LATENCY_WINDOW_SECONDS: usize = 10;
/// Rates "per minute", per-route/per-query tables, cache ratios and top rooms.
pub const LONG_WINDOW_SECONDS: usize = 60;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub instance: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub ready: bool,
    pub draining: bool,
    #[serde(flatten)]
    pub load: Load,
    pub db_pools: Vec<PoolFigures>,
    /// The server that last answered as the primary, and how often it changed.
    #[serde(default)]
    pub database_primary: Option<String>,
    #[serde(default)]
    pub db_primary_changes: u64,
    pub replica_lag_seconds: Option<f64>,
    pub cache: BTreeMap<String, CacheWindow>,
    pub bridge: BridgeFigures,
    pub writer: WriterFigures,
    pub process: ProcessFigures,
    pub top_rooms: Vec<(String, u64)>,
    /// This instance's latest slow deliveries and requests.
    #[serde(default)]
    pub slow: Vec<crate::telemetry::slow::SlowOp>,
}

/// The figures that add up across instances: one instance's in a snapshot,
/// the cluster's in an aggregate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Load {
    pub connections: i64,
    pub rooms_active: i64,
    pub messages_per_second: f64,
    pub messages_per_second_1m: f64,
    pub deliveries_per_second: f64,
    /// Last LATENCY_WINDOW_SECONDS.
    pub delivery: Distribution,
    pub room_lag: Distribution,
    pub http_recent: Distribution,
    pub db_recent: Distribution,
    /// Last LONG_WINDOW_SECONDS, only routes / queries that ran.
    pub http: BTreeMap<String, RouteWindow>,
    pub db: BTreeMap<String, Distribution>,
    pub slow_queries_1m: u64,
    pub slow_queries_total: u64,
    /// Last LATENCY_WINDOW_SECONDS, per delivery stage (queue, commit,
    /// fanout, bus): where the time of a delivery goes.
    #[serde(default)]
    pub stages: BTreeMap<String, Distribution>,
}

impl Load {
    /// Adds another instance's figures (rates and counts sum, latency
    /// distributions merge).
    pub fn add(&mut self, o: &Load) {
        self.connections += o.connections;
        self.rooms_active += o.rooms_active;
        self.messages_per_second += o.messages_per_second;
        self.messages_per_second_1m += o.messages_per_second_1m;
        self.deliveries_per_second += o.deliveries_per_second;
        self.delivery.merge(&o.delivery);
        self.room_lag.merge(&o.room_lag);
        self.http_recent.merge(&o.http_recent);
        self.db_recent.merge(&o.db_recent);
        for (route, w) in &o.http {
            let mine = self.http.entry(route.clone()).or_default();
            mine.errors_5xx += w.errors_5xx;
            mine.latency.merge(&w.latency);
        }
        for (query, d) in &o.db {
            self.db.entry(query.clone()).or_default().merge(d);
        }
        self.slow_queries_1m += o.slow_queries_1m;
        self.slow_queries_total += o.slow_queries_total;
        for (stage, d) in &o.stages {
            self.stages.entry(stage.clone()).or_default().merge(d);
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouteWindow {
    pub errors_5xx: u64,
    pub latency: Distribution,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolFigures {
    pub pool: String,
    pub idle: u32,
    pub active: u32,
    pub max: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CacheWindow {
    pub hits: u64,
    pub misses: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BridgeFigures {
    pub state: String,
    pub in_per_second: f64,
    pub out_per_second: f64,
    pub reconnects_total: u64,
    pub dropped_total: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriterFigures {
    pub queue_depth: i64,
    pub mean_batch: Option<f64>,
    pub commit: Distribution,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessFigures {
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub open_fds: u64,
}

/// What the instance says about itself at a sample (the figures the
/// metrics registry cannot give).
pub struct Status {
    pub instance: String,
    pub uptime_seconds: u64,
    pub ready: bool,
    pub draining: bool,
    pub rooms_active: i64,
    pub db_pools: Vec<PoolFigures>,
    pub database_primary: Option<String>,
    pub bridge_state: &'static str,
}

/// What the sampler adds to the status: the process figures (resident
/// bytes, open descriptors) and the busiest rooms.
pub struct Context {
    pub status: Status,
    pub process: (u64, u64),
    pub top_rooms: Vec<(String, u64)>,
}

/// The sample `seconds` before the newest one (or the oldest there is).
fn ago(ring: &VecDeque<Totals>, seconds: usize) -> Option<&Totals> {
    let newest = ring.len().checked_sub(1)?;
    ring.get(newest.saturating_sub(seconds))
}

fn per_second(newer: u64, older: u64, newer_t: &Totals, older_t: &Totals) -> f64 {
    let secs = newer_t.at.duration_since(older_t.at).as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    let rate = newer.saturating_sub(older) as f64 / secs;
    (rate * 10.0).round() / 10.0
}

impl Snapshot {
    /// Builds the snapshot from a ring of once-a-second totals (newest last).
    pub fn from_ring(ring: &VecDeque<Totals>, ctx: Context) -> Option<Snapshot> {
        let now = ring.back()?;
        let one = ago(ring, 1).unwrap_or(now);
        let short = ago(ring, LATENCY_WINDOW_SECONDS).unwrap_or(now);
        let long = ago(ring, LONG_WINDOW_SECONDS).unwrap_or(now);
        let window = |pick: fn(&Totals) -> &super::distribution::Cumulative, from: &Totals| {
            if std::ptr::eq(from, now) {
                Distribution::default()
            } else {
                Distribution::between(Some(pick(from)), pick(now))
            }
        };

        let mut http = BTreeMap::new();
        let mut http_recent = Distribution::default();
        for (route, (cum, errors)) in &now.http {
            let old = long.http.get(route);
            let latency = Distribution::between(old.map(|o| &o.0), cum);
            if !std::ptr::eq(short, now) {
                http_recent.merge(&Distribution::between(short.http.get(route).map(|o| &o.0), cum));
            }
            if latency.count() > 0 && !std::ptr::eq(long, now) {
                let errors_5xx = errors.saturating_sub(old.map(|o| o.1).unwrap_or(0));
                http.insert(route.clone(), RouteWindow { errors_5xx, latency });
            }
        }
        let mut db = BTreeMap::new();
        let mut db_recent = Distribution::default();
        for (query, cum) in &now.db {
            if !std::ptr::eq(short, now) {
                db_recent.merge(&Distribution::between(short.db.get(query), cum));
            }
            let d = Distribution::between(long.db.get(query), cum);
            if d.count() > 0 && !std::ptr::eq(long, now) {
                db.insert(query.clone(), d);
            }
        }
        let cache = now
            .cache
            .iter()
            .map(|(name, (hit, miss))| {
                let (old_hit, old_miss) = long.cache.get(name).copied().unwrap_or((0, 0));
                let base = !std::ptr::eq(long, now);
                let w = if base {
                    CacheWindow { hits: hit.saturating_sub(old_hit), misses: miss.saturating_sub(old_miss) }
                } else {
                    CacheWindow::default()
                };
                (name.clone(), w)
            })
            .collect();
        let batches = now.writer_batches.saturating_sub(short.writer_batches);
        let cpu_secs = now.at.duration_since(one.at).as_secs_f64();
        let cpu_percent =
            if cpu_secs > 0.0 { ((now.cpu_seconds - one.cpu_seconds).max(0.0) / cpu_secs * 1000.0).round() / 10.0 } else { 0.0 };
        let metrics = &crate::metrics::METRICS;
        let lag = metrics.db_replica_lag.get();
        Some(Snapshot {
            instance: ctx.status.instance,
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: ctx.status.uptime_seconds,
            ready: ctx.status.ready,
            draining: ctx.status.draining,
            load: Load {
                connections: metrics.ws_connections.get(),
                rooms_active: ctx.status.rooms_active,
                messages_per_second: per_second(now.messages, one.messages, now, one),
                messages_per_second_1m: per_second(now.messages, long.messages, now, long),
                deliveries_per_second: per_second(now.delivered, one.delivered, now, one),
                delivery: window(|t| &t.delivery, short),
                room_lag: window(|t| &t.room_lag, short),
                http_recent,
                db_recent,
                http,
                db,
                slow_queries_1m: now.slow_queries.saturating_sub(long.slow_queries),
                slow_queries_total: now.slow_queries,
                stages: now
                    .stages
                    .iter()
                    .map(|(stage, cum)| {
                        let d = if std::ptr::eq(short, now) {
                            Distribution::default()
                        } else {
                            Distribution::between(short.stages.get(stage), cum)
                        };
                        (stage.clone(), d)
                    })
                    .collect(),
            },
            db_pools: ctx.status.db_pools,
            database_primary: ctx.status.database_primary,
            db_primary_changes: metrics.db_primary_changes.get(),
            replica_lag_seconds: (lag >= 0.0).then_some(lag),
            cache,
            bridge: BridgeFigures {
                state: ctx.status.bridge_state.to_string(),
                in_per_second: per_second(now.bridge_in, one.bridge_in, now, one),
                out_per_second: per_second(now.bridge_out, one.bridge_out, now, one),
                reconnects_total: metrics.bridge_reconnects.get(),
                dropped_total: metrics.bridge_dropped.get(),
            },
            writer: WriterFigures {
                queue_depth: metrics.writer_queue_depth.get(),
                mean_batch: (batches > 0)
                    .then(|| ((now.writer_batched - short.writer_batched) / batches as f64 * 10.0).round() / 10.0),
                commit: window(|t| &t.writer_commit, short),
            },
            process: ProcessFigures { cpu_percent, rss_bytes: ctx.process.0, open_fds: ctx.process.1 },
            top_rooms: ctx.top_rooms,
            slow: crate::telemetry::slow::latest(),
        })
    }
}
