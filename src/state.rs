//! Shared state handed to every handler and session through `web::Data`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::bus::redis::RedisPool;
use crate::cache::Caches;
use crate::bus::{Bus, BusEvent, Channel};
use crate::chat::room::Kick;
use crate::chat::Registry;
use crate::cluster::Liveness;
use crate::config::Config;
use crate::limits::Limits;
use crate::domain::{RoomId, TokenHash, UserId};
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
}

impl AppState {
    pub fn new(p: Parts) -> Self {
        let limits = Limits::new(&p.config);
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

    /// Closes the token's sockets here and on every other instance.
    pub fn revoke_everywhere(&self, token: &TokenHash) {
        self.connections.revoke(token);
        self.bus.publish(Channel::Control, BusEvent::Revoke { token_sha256: token.to_hex() });
    }

    /// Takes a removed member's sockets out of the room on every instance.
    pub fn kick_everywhere(&self, room: RoomId, user: UserId) {
        if let Some(addr) = self.registry.get(room) {
            addr.do_send(Kick { user_id: user });
        }
        self.bus.publish(Channel::Room(room), BusEvent::Kick { room_id: room.0, user_id: user.0 });
    }
}
