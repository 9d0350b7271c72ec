//! Shared state handed to every handler and session through `web::Data`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::auth::expiry::SessionClock;
use crate::auth::ticket::Tickets;
use crate::bus::redis::RedisPool;
use crate::bus::Bus;
use crate::cache::Caches;
use crate::chat::Registry;
use crate::cluster::revocation::Revoker;
use crate::cluster::Liveness;
use crate::config::Config;
use crate::limits::Limits;
use crate::stats::StatsBoard;
use crate::store::writer::Writer;
use crate::store::Store;
use crate::ws::Connections;

pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub writer: Writer,
    pub registry: Registry,
    pub connections: Connections,
    pub bus: Bus,
    pub redis: Option<RedisPool>,
    pub liveness: Arc<Liveness>,
    pub caches: Arc<Caches>,
    pub stats: Arc<StatsBoard>,
    pub limits: Arc<Limits>,
    pub revoker: Arc<Revoker>,
    pub tickets: Tickets,
    pub session_clock: SessionClock,
    pub started_at: Instant,
    draining: AtomicBool,
}

/// The parts `AppState` is made of.
pub struct Parts {
    pub config: Arc<Config>,
    pub store: Store,
    pub writer: Writer,
    pub registry: Registry,
    pub connections: Connections,
    pub bus: Bus,
    pub redis: Option<RedisPool>,
    pub liveness: Arc<Liveness>,
    pub caches: Arc<Caches>,
    pub stats: Arc<StatsBoard>,
    pub revoker: Arc<Revoker>,
}

impl AppState {
    pub fn new(p: Parts) -> Self {
        let prefixed = p.redis.as_ref().map(|pool| (pool.clone(), p.config.redis.key_prefix.clone()));
        let limits = Limits::new(&p.config.limits, prefixed.clone());
        let tickets = Tickets::new(prefixed);
        let session_clock = SessionClock::new(p.config.accounts.sessions);
        AppState {
            config: p.config,
            store: p.store,
            writer: p.writer,
            registry: p.registry,
            connections: p.connections,
            bus: p.bus,
            redis: p.redis,
            liveness: p.liveness,
            limits,
            caches: p.caches,
            stats: p.stats,
            revoker: p.revoker,
            tickets,
            session_clock,
            started_at: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
