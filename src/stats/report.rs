//! Adds instance snapshots into cluster-wide figures and renders the JSON of
//! `/api/v1/admin/stats`. Latency windows merge by bucket, so cluster
//! percentiles are real percentiles, not averages of percentiles.

use crate::metrics::DeliveryStage;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::snapshot::{CacheWindow, Load, PoolFigures, Snapshot, LATENCY_WINDOW_SECONDS, LONG_WINDOW_SECONDS};

/// Rooms listed under "top rooms".
pub const TOP_ROOMS: usize = 10;

#[derive(Debug, Default)]
pub struct Aggregate {
    pub instances: usize,
    pub load: Load,
    pub pools: BTreeMap<String, PoolFigures>,
    pub cache: BTreeMap<String, CacheWindow>,
    pub bridge_in_per_second: f64,
    pub bridge_out_per_second: f64,
    pub top_rooms: BTreeMap<String, u64>,
}

/// One cluster-wide point of the admin charts.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t: i64,
    pub instances: usize,
    pub connections: i64,
    pub messages_per_second: f64,
    pub deliveries_per_second: f64,
    pub delivery_p50_ms: Option<f64>,
    pub delivery_p95_ms: Option<f64>,
    pub delivery_p99_ms: Option<f64>,
    pub http_p95_ms: Option<f64>,
    pub db_p95_ms: Option<f64>,
    pub cache_hit_ratio: Option<f64>,
}

fn ratio(w: CacheWindow) -> Option<f64> {
    let total = w.hits + w.misses;
    (total > 0).then(|| (w.hits as f64 / total as f64 * 1e4).round() / 1e4)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Aggregate {
    pub fn of<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Aggregate {
        let mut a = Aggregate::default();
        for s in snapshots {
            a.instances += 1;
            a.load.add(&s.load);
            for p in &s.db_pools {
                let mine =
                    a.pools.entry(p.pool.clone()).or_insert_with(|| PoolFigures { pool: p.pool.clone(), ..Default::default() });
                mine.idle += p.idle;
                mine.active += p.active;
                mine.max += p.max;
            }
            for (name, w) in &s.cache {
                let mine = a.cache.entry(name.clone()).or_default();
                mine.hits += w.hits;
                mine.misses += w.misses;
            }
            a.bridge_in_per_second += s.bridge.in_per_second;
            a.bridge_out_per_second += s.bridge.out_per_second;
            for (room, n) in &s.top_rooms {
                *a.top_rooms.entry(room.clone()).or_insert(0) += n;
            }
        }
        a
    }

    fn overall_cache(&self) -> CacheWindow {
        self.cache
            .values()
            .fold(CacheWindow::default(), |acc, w| CacheWindow { hits: acc.hits + w.hits, misses: acc.misses + w.misses })
    }

    pub fn point(&self) -> Point {
        Point {
            t: chrono::Utc::now().timestamp_millis(),
            instances: self.instances,
            connections: self.load.connections,
            messages_per_second: round1(self.load.messages_per_second),
            deliveries_per_second: round1(self.load.deliveries_per_second),
            delivery_p50_ms: self.load.delivery.quantile_ms(0.50),
            delivery_p95_ms: self.load.delivery.quantile_ms(0.95),
            delivery_p99_ms: self.load.delivery.quantile_ms(0.99),
            http_p95_ms: self.load.http_recent.quantile_ms(0.95),
            db_p95_ms: self.load.db_recent.quantile_ms(0.95),
            cache_hit_ratio: ratio(self.overall_cache()),
        }
    }

    /// The figures shared by the cluster and each instance.
    pub fn figures(&self) -> Value {
        let routes: Vec<Value> = self
            .load
            .http
            .iter()
            .map(|(route, w)| {
                json!({
                    "route": route,
                    "requests": w.latency.count(),
                    "errors_5xx": w.errors_5xx,
                    "p50_ms": w.latency.quantile_ms(0.50),
                    "p95_ms": w.latency.quantile_ms(0.95),
                })
            })
            .collect();
        let queries: Vec<Value> = self
            .load
            .db
            .iter()
            .map(|(query, d)| json!({"query": query, "count": d.count(), "p50_ms": d.quantile_ms(0.5), "p95_ms": d.quantile_ms(0.95)}))
            .collect();
        let cache: serde_json::Map<String, Value> = self
            .cache
            .iter()
            .map(|(name, w)| (name.clone(), json!({"hits": w.hits, "misses": w.misses, "hit_ratio": ratio(*w)})))
            .collect();
        let cache_hit_ratio: serde_json::Map<String, Value> =
            self.cache.iter().map(|(name, w)| (name.clone(), json!(ratio(*w)))).collect();
        let mut top: Vec<(&String, &u64)> = self.top_rooms.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let top_rooms: Vec<Value> =
            top.into_iter().take(TOP_ROOMS).map(|(room, n)| json!({"room": room, "messages_1m": n})).collect();
        // Every stage, even one without samples, so the page's columns are stable.
        let stages: serde_json::Map<String, Value> = DeliveryStage::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), self.load.stages.get(s.as_str()).cloned().unwrap_or_default().summary()))
            .collect();
        json!({
            "connections": self.load.connections,
            "rooms_active": self.load.rooms_active,
            "messages_per_second": round1(self.load.messages_per_second),
            "messages_per_second_1m": round1(self.load.messages_per_second_1m),
            "deliveries_per_second": round1(self.load.deliveries_per_second),
            "delivery_latency": self.load.delivery.summary(),
            "delivery_stages": stages,
            "room_mailbox_lag": self.load.room_lag.summary(),
            "http": {"p95_ms": self.load.http_recent.quantile_ms(0.95), "routes": routes},
            "db": {
                "p95_ms": self.load.db_recent.quantile_ms(0.95),
                "queries": queries,
                "slow_queries_1m": self.load.slow_queries_1m,
                "slow_queries_total": self.load.slow_queries_total,
                "pools": self.pools.values().collect::<Vec<_>>(),
            },
            "cache": cache,
            "cache_hit_ratio": cache_hit_ratio,
            "bridge": {
                "in_per_second": round1(self.bridge_in_per_second),
                "out_per_second": round1(self.bridge_out_per_second),
            },
            "top_rooms": top_rooms,
        })
    }
}

/// One instance: its own figures plus what only an instance has.
fn instance(s: &Snapshot) -> Value {
    let mut v = Aggregate::of([s]).figures();
    if let Value::Object(map) = &mut v {
        map.insert("instance".into(), json!(s.instance));
        map.insert("version".into(), json!(s.version));
        map.insert("uptime_seconds".into(), json!(s.uptime_seconds));
        map.insert("ready".into(), json!(s.ready));
        map.insert("draining".into(), json!(s.draining));
        map.insert("process".into(), json!(s.process));
        map.insert(
            "writer".into(),
            json!({
                "queue_depth": s.writer.queue_depth,
                "mean_batch": s.writer.mean_batch,
                "commit": s.writer.commit.summary(),
            }),
        );
        map.insert("replica_lag_seconds".into(), json!(s.replica_lag_seconds));
        if let Some(Value::Object(bridge)) = map.get_mut("bridge") {
            bridge.insert("state".into(), json!(s.bridge.state));
            bridge.insert("reconnects_total".into(), json!(s.bridge.reconnects_total));
            bridge.insert("dropped_total".into(), json!(s.bridge.dropped_total));
        }
    }
    v
}

/// The whole `/api/v1/admin/stats` body.
pub fn render(reporter: &str, snapshots: &[Arc<Snapshot>], history: &[Point]) -> Value {
    let aggregate = Aggregate::of(snapshots.iter().map(Arc::as_ref));
    let mut cluster = aggregate.figures();
    if let Value::Object(map) = &mut cluster {
        map.insert("instances".into(), json!(aggregate.instances));
        let ready = snapshots.iter().filter(|s| s.ready).count();
        map.insert("instances_ready".into(), json!(ready));
    }
    json!({
        "generated_at": chrono::Utc::now(),
        "reported_by": reporter,
        "windows": {"latency_seconds": LATENCY_WINDOW_SECONDS, "rates_seconds": LONG_WINDOW_SECONDS},
        "cluster": cluster,
        "instances": snapshots.iter().map(|s| instance(s)).collect::<Vec<_>>(),
        "slow": slow_list(snapshots),
        "history": history,
    })
}

/// Rows listed under "slow deliveries and requests", newest first.
pub const SLOW_LISTED: usize = 20;

/// Every instance's latest slow operations, newest first, with the instance.
fn slow_list(snapshots: &[Arc<Snapshot>]) -> Vec<Value> {
    let mut all: Vec<(&str, &crate::telemetry::slow::SlowOp)> =
        snapshots.iter().flat_map(|s| s.slow.iter().map(move |op| (s.instance.as_str(), op))).collect();
    all.sort_by_key(|(_, op)| std::cmp::Reverse(op.at_ms));
    all.into_iter()
        .take(SLOW_LISTED)
        .map(|(instance, op)| {
            let stages: serde_json::Map<String, Value> = op.stages.iter().map(|(s, ms)| (s.clone(), json!(ms))).collect();
            json!({
                "at": op.at_ms,
                "instance": instance,
                "kind": op.kind,
                "what": op.what,
                "total_ms": op.total_ms,
                "stages": stages,
                "trace_id": op.trace_id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::distribution::{Cumulative, Distribution};

    fn snapshot(name: &str, connections: i64, latencies: &[f64], hits: u64, misses: u64) -> Arc<Snapshot> {
        let mut c: Vec<u64> =
            crate::metrics::LATENCY_BUCKETS.iter().map(|b| latencies.iter().filter(|o| *o <= b).count() as u64).collect();
        c.push(latencies.len() as u64);
        let mut s = Snapshot {
            instance: name.into(),
            load: Load {
                connections,
                messages_per_second: 10.0,
                delivery: Distribution::between(None, &Cumulative(c)),
                ..Load::default()
            },
            ..Snapshot::default()
        };
        s.cache.insert("token".into(), CacheWindow { hits, misses });
        s.top_rooms = vec![("lobby".into(), 5), (name.into(), 1)];
        Arc::new(s)
    }

    #[test]
    fn cluster_figures_add_up_and_percentiles_merge() {
        let a = snapshot("a", 3, &[0.0003; 99], 9, 1);
        let b = snapshot("b", 4, &[0.3], 0, 10);
        let v = render("a", &[a, b], &[]);
        let c = &v["cluster"];
        assert_eq!(c["instances"], 2);
        assert_eq!(c["connections"], 7);
        assert_eq!(c["messages_per_second"], 20.0);
        assert_eq!(c["delivery_latency"]["count"], 100);
        assert!(c["delivery_latency"]["p50_ms"].as_f64().expect("a number") < 0.5);
        assert!(c["delivery_latency"]["p99_ms"].as_f64().expect("a number") <= 0.5, "{}", c["delivery_latency"]);
        assert_eq!(c["cache_hit_ratio"]["token"], 0.45);
        assert_eq!(c["top_rooms"][0]["room"], "lobby");
        assert_eq!(c["top_rooms"][0]["messages_1m"], 10);
        assert_eq!(v["instances"][1]["instance"], "b");
        assert!(v["instances"][1]["delivery_latency"]["p50_ms"].as_f64().expect("a number") > 250.0);
    }
}
