//! Cumulative figures read from the metrics registry at one instant. Two of
//! them a window apart give rates and latency distributions for that window.

use std::collections::BTreeMap;
use std::time::Instant;

use prometheus::core::Collector;

use super::distribution::Cumulative;
use crate::metrics::{process_cpu_seconds, CacheName, CacheResult, DeliveryStage, Direction, METRICS};

#[derive(Debug, Clone)]
pub struct Totals {
    pub at: Instant,
    pub cpu_seconds: f64,
    pub messages: u64,
    pub delivered: u64,
    pub delivery: Cumulative,
    pub room_lag: Cumulative,
    pub writer_commit: Cumulative,
    pub writer_batches: u64,
    pub writer_batched: f64,
    /// "METHOD /route/pattern" -> latency over every status, and the 5xx count.
    pub http: BTreeMap<String, (Cumulative, u64)>,
    pub db: BTreeMap<String, Cumulative>,
    pub slow_queries: u64,
    /// cache -> (hits, misses)
    pub cache: BTreeMap<String, (u64, u64)>,
    pub bridge_in: u64,
    pub bridge_out: u64,
    /// Delivery stage -> its latency so far.
    pub stages: BTreeMap<String, Cumulative>,
}

fn cumulative(h: &prometheus::Histogram) -> Cumulative {
    h.collect()
        .first()
        .and_then(|f| f.get_metric().first())
        .map(|m| Cumulative::from_proto(m.get_histogram()))
        .unwrap_or_default()
}

fn add_into(target: &mut Cumulative, more: &Cumulative) {
    if target.0.len() < more.0.len() {
        target.0.resize(more.0.len(), 0);
    }
    for (t, m) in target.0.iter_mut().zip(&more.0) {
        *t += m;
    }
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    m.get_label().iter().find(|l| l.name() == name).map(|l| l.value()).unwrap_or("")
}

impl Totals {
    pub fn capture() -> Totals {
        let mut http: BTreeMap<String, (Cumulative, u64)> = BTreeMap::new();
        for family in METRICS.http_duration.collect() {
            for m in family.get_metric() {
                let key = format!("{} {}", label(m, "method"), label(m, "route"));
                let h = m.get_histogram();
                let entry = http.entry(key).or_default();
                add_into(&mut entry.0, &Cumulative::from_proto(h));
                if label(m, "status").starts_with('5') {
                    entry.1 += h.get_sample_count();
                }
            }
        }
        let mut db = BTreeMap::new();
        for family in METRICS.db_query_duration.collect() {
            for m in family.get_metric() {
                db.insert(label(m, "query").to_string(), Cumulative::from_proto(m.get_histogram()));
            }
        }
        let slow_queries = METRICS
            .db_slow_queries
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum();
        let cache = CacheName::ALL
            .into_iter()
            .map(|c| {
                let hit = METRICS.cache_request(c, CacheResult::Hit).get();
                let miss = METRICS.cache_request(c, CacheResult::Miss).get();
                (c.as_str().to_string(), (hit, miss))
            })
            .collect();
        Totals {
            at: Instant::now(),
            cpu_seconds: process_cpu_seconds(),
            messages: METRICS.messages_total.get(),
            delivered: METRICS.messages_delivered.get(),
            delivery: cumulative(&METRICS.delivery_latency),
            room_lag: cumulative(&METRICS.room_mailbox_lag),
            writer_commit: cumulative(&METRICS.writer_commit),
            writer_batches: METRICS.writer_batch_size.get_sample_count(),
            writer_batched: METRICS.writer_batch_size.get_sample_sum(),
            http,
            db,
            slow_queries,
            cache,
            bridge_in: METRICS.bridge(Direction::In).get(),
            bridge_out: METRICS.bridge(Direction::Out).get(),
            stages: DeliveryStage::ALL.iter().map(|s| (s.as_str().to_string(), cumulative(&METRICS.stage(*s)))).collect(),
        }
    }
}
