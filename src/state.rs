//! The state the HTTP handlers share through `web::Data`. The modules below
//! them are handed only the parts they use (`Access`, `Authenticator`,
//! `Editor`, `ReadMarks`, `SessionParts`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::access::Access;
use crate::auth::password::Hasher;
use crate::auth::ticket::Tickets;
use crate::auth::Authenticator;
use crate::bus::redis::RedisPool;
use crate::bus::Bus;
use crate::cache::Caches;
use crate::chat::Registry;
use crate::cluster::revocation::Revoker;
use crate::cluster::Liveness;
use crate::config::Config;
use crate::connections::Connections;
use crate::edits::Editor;
use crate::limits::Limits;
use crate::reads::ReadMarks;
use crate::stats::StatsBoard;
use crate::store::writer::Writer;
use crate::store::Store;
use crate::ws::session::{SessionParts, Settings};

/// Everything the handlers share: the parts start-up built and what is made
/// from them.
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
    pub revoker: Arc<Revoker>,
    pub limits: Arc<Limits>,
    pub hasher: Hasher,
    pub tickets: Tickets,
    pub access: Access,
    pub authenticator: Arc<Authenticator>,
    pub editor: Editor,
    pub started_at: Instant,
    /// Read markers: HTTP ones stored at once, WebSocket ones gathered (reads.rs).
    pub read_marks: Arc<ReadMarks>,
    /// What every WebSocket session is handed.
    pub sessions: Arc<SessionParts>,
    draining: AtomicBool,
}

/// What start-up built, from which `AppState` makes the rest.
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
    pub fn new(parts: Parts) -> Self {
        let Parts { config, store, writer, registry, connections, bus, redis, liveness, caches, stats, revoker } = parts;
        let prefixed = redis.as_ref().map(|pool| (pool.clone(), config.redis.key_prefix.clone()));
        let access = Access::new(store.clone(), caches.clone(), revoker.clone());
        let authenticator = Arc::new(Authenticator::new(access.clone(), store.clone(), config.accounts.clone()));
        let editor = Editor::new(access.clone(), store.clone(), writer.clone(), registry.clone());
        let read_marks = ReadMarks::new(access.clone(), store.clone(), connections.clone(), bus.clone());
        let sessions = Arc::new(SessionParts {
            settings: Settings::new(&config, authenticator.policy()),
            access: access.clone(),
            authenticator: authenticator.clone(),
            registry: registry.clone(),
            writer: writer.clone(),
            editor: editor.clone(),
            read_marks: read_marks.clone(),
            store: store.clone(),
            connections: connections.clone(),
        });
        AppState {
            limits: Limits::new(&config.limits, prefixed.clone()),
            hasher: Hasher::start(config.accounts.hash_workers, config.accounts.hash_queue),
            tickets: Tickets::new(prefixed, config.sockets.ticket_ttl),
            access,
            authenticator,
            editor,
            read_marks,
            sessions,
            config,
            store,
            writer,
            registry,
            connections,
            bus,
            redis,
            liveness,
            caches,
            stats,
            revoker,
            started_at: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    /// What the readiness checks look at.
    pub fn probe(&self) -> crate::readiness::Probe<'_> {
        crate::readiness::Probe {
            store: &self.store,
            redis: self.redis.as_ref(),
            writer: &self.writer,
            bus: &self.bus,
            draining: self.is_draining(),
            warm: self.registry.recent().is_warm(),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
