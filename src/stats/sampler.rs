//! Once a second: read the metrics, build this instance's snapshot, keep it
//! and publish it on the bus for the other instances' `/admin`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;

use super::snapshot::{Context, PoolFigures, Snapshot, LONG_WINDOW_SECONDS};
use super::totals::Totals;
use super::traffic::RollingTraffic;
use crate::bus::{BusEvent, Channel};
use crate::metrics::{PoolRole, METRICS};
use crate::state::AppState;

const EVERY: Duration = Duration::from_secs(1);
/// Readiness runs real checks (a database round trip), so less often.
const READINESS_EVERY: Duration = Duration::from_secs(2);

/// `ready`: what the readiness task last found (`watch_readiness`).
pub async fn run(state: web::Data<AppState>, ready: Arc<AtomicBool>) {
    let process = ProcessCollector::for_self();
    let mut ring: VecDeque<Totals> = VecDeque::with_capacity(LONG_WINDOW_SECONDS + 2);
    let mut traffic = RollingTraffic::new(LONG_WINDOW_SECONDS);
    let mut tick = actix_web::rt::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::supervisor::checkpoint(crate::supervisor::Task::StatsSampler);
        let db_pools = publish_pool_gauges(&state);
        state.caches.publish_sizes();
        ring.push_back(Totals::capture());
        while ring.len() > LONG_WINDOW_SECONDS + 1 {
            ring.pop_front();
        }
        traffic.advance();
        let ctx = Context {
            instance: state.config.cluster.instance_id.clone(),
            uptime_seconds: state.started_at.elapsed().as_secs(),
            ready: ready.load(Ordering::Acquire),
            draining: state.is_draining(),
            rooms_active: state.registry.active_rooms() as i64,
            db_pools,
            database_primary: state.store.last_primary(),
            bridge_state: state.bus.state().as_str(),
            process: process_figures(&process),
            top_rooms: traffic.top(super::report::TOP_ROOMS),
        };
        let Some(snapshot) = Snapshot::from_ring(&ring, ctx) else { continue };
        if state.bus.is_shared() {
            match serde_json::to_value(&snapshot) {
                Ok(encoded) => state.bus.publish(Channel::Control, BusEvent::Stats { snapshot: Box::new(encoded) }),
                Err(e) => log::error!("stats: cannot encode this instance's figures: {e}"),
            }
        }
        state.stats.set_own(snapshot);
    }
}

pub async fn watch_readiness(state: web::Data<AppState>, ready: Arc<AtomicBool>) {
    let mut tick = actix_web::rt::time::interval(READINESS_EVERY);
    loop {
        tick.tick().await;
        crate::supervisor::checkpoint(crate::supervisor::Task::Readiness);
        let is_ready = crate::readiness::check(&state).await.is_ready();
        ready.store(is_ready, Ordering::Release);
        METRICS.ready.set(i64::from(is_ready));
    }
}

/// Sets the pool gauges (so alerts see them between scrapes) and returns them.
pub fn publish_pool_gauges(state: &AppState) -> Vec<PoolFigures> {
    let max = state.config.database.pool_max;
    let mut pools = Vec::with_capacity(2);
    let mut publish = |role: PoolRole, (idle, active): (u32, u32)| {
        METRICS.set_pool(role, idle, active, max);
        pools.push(PoolFigures { pool: role.as_str().into(), idle, active, max });
    };
    publish(PoolRole::Primary, state.store.pool_state());
    if let Some(replica) = state.store.replica() {
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
