//! The instance's once-a-second tasks: its figures sampled into the stats
//! board and published for the other instances' `/admin`, and its readiness
//! checked into the `ready` gauge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::bus::{BusEvent, Channel};
use crate::metrics::METRICS;
use crate::state::AppState;
use crate::stats::sampler::{publish_pool_gauges, Sampler, Status};

const EVERY: Duration = Duration::from_secs(1);
/// Readiness runs real checks (a database round trip), so less often.
const READINESS_EVERY: Duration = Duration::from_secs(2);

/// `ready`: what the readiness task last found (`watch_readiness`).
pub async fn run(state: web::Data<AppState>, ready: Arc<AtomicBool>) {
    let mut sampler = Sampler::default();
    let mut tick = actix_web::rt::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::supervisor::checkpoint(crate::supervisor::Task::StatsSampler);
        let db_pools = publish_pool_gauges(&state.store, state.config.database.pool_max);
        state.caches.publish_sizes();
        let status = Status {
            instance: state.config.cluster.instance_id.clone(),
            uptime_seconds: state.started_at.elapsed().as_secs(),
            ready: ready.load(Ordering::Acquire),
            draining: state.is_draining(),
            rooms_active: state.registry.active_rooms() as i64,
            db_pools,
            database_primary: state.store.last_primary(),
            bridge_state: state.bus.state().as_str(),
        };
        let Some(snapshot) = sampler.sample(status) else { continue };
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
        let is_ready = crate::readiness::check(state.probe()).await.is_ready();
        ready.store(is_ready, Ordering::Release);
        METRICS.ready.set(i64::from(is_ready));
    }
}
