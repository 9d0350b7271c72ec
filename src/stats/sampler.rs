//! A sample of this instance once a second, as data: the metrics' totals
//! kept for the long window, the rooms' traffic, and the process figures;
//! from them and what the instance says about itself, its snapshot (the
//! task that drives it is in `sampling.rs` at the top of the crate).

use std::collections::VecDeque;

use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;

pub use super::snapshot::Status;
use super::snapshot::{Context, PoolFigures, Snapshot, LONG_WINDOW_SECONDS};
use super::totals::Totals;
use super::traffic::RollingTraffic;
use crate::metrics::{PoolRole, METRICS};
use crate::store::Store;

pub struct Sampler {
    process: ProcessCollector,
    ring: VecDeque<Totals>,
    traffic: RollingTraffic,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            process: ProcessCollector::for_self(),
            ring: VecDeque::with_capacity(LONG_WINDOW_SECONDS + 2),
            traffic: RollingTraffic::new(LONG_WINDOW_SECONDS),
        }
    }
}

impl Sampler {
    /// Takes this second's totals; the snapshot, once there are two samples
    /// to compare.
    pub fn sample(&mut self, status: Status) -> Option<Snapshot> {
        self.ring.push_back(Totals::capture());
        while self.ring.len() > LONG_WINDOW_SECONDS + 1 {
            self.ring.pop_front();
        }
        self.traffic.advance();
        let ctx =
            Context { status, process: process_figures(&self.process), top_rooms: self.traffic.top(super::report::TOP_ROOMS) };
        Snapshot::from_ring(&self.ring, ctx)
    }
}

/// Sets the pool gauges (so alerts see them between scrapes) and returns them.
pub fn publish_pool_gauges(store: &Store, max: u32) -> Vec<PoolFigures> {
    let mut pools = Vec::with_capacity(2);
    let mut publish = |role: PoolRole, (idle, active): (u32, u32)| {
        METRICS.set_pool(role, idle, active, max);
        pools.push(PoolFigures { pool: role.as_str().into(), idle, active, max });
    };
    publish(PoolRole::Primary, store.pool_state());
    if let Some(replica) = store.replica() {
        publish(PoolRole::Replica, replica.pool_state());
    }
    pools
}

/// (resident bytes, open file descriptors) from the process collector.
fn process_figures(process: &ProcessCollector) -> (u64, u64) {
    let (mut rss, mut fds) = (0, 0);
    for family in process.collect() {
        let value = family.get_metric().first().map(|m| m.get_gauge().get_value()).unwrap_or(0.0) as u64;
        match family.name() {
            "process_resident_memory_bytes" => rss = value,
            "process_open_fds" => fds = value,
            _ => {}
        }
    }
    (rss, fds)
}
