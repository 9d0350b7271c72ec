//! Caches in front of PostgreSQL for the per-request lookups: token -> user
//! (every HTTP request and WebSocket upgrade), room by name and membership
//! (every join and send). Two tiers (`layered`); see docs/caching.md for the
//! invalidation strategy. `lease` says how long the in-process tier may be
//! trusted to have heard every revocation.

pub mod layered;
pub mod lease;
pub mod recent;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use layered::{CacheKey, CacheValue, Layered, Settings};

use crate::bus::Bus;
use crate::cache::lease::Lease;
use crate::config::CacheConfig;
use crate::domain::{RoomId, RoomName, TokenHash, UserId};
use crate::metrics::{CacheName, METRICS};
use crate::redis_pool::RedisPool;
use crate::store::models::{Room, RoomKind, SessionInfo};

/// Room facts that do not change with every message (no `last_seq`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomMeta {
    pub id: RoomId,
    pub name: RoomName,
    pub topic: String,
    pub private: bool,
    pub owner_id: Option<UserId>,
    /// (Absent in entries cached by an earlier release: an ordinary room.)
    #[serde(default)]
    pub kind: RoomKind,
}

impl From<&Room> for RoomMeta {
    fn from(r: &Room) -> Self {
        RoomMeta {
            id: r.id,
            name: r.name.clone(),
            topic: r.topic.clone(),
            private: r.private,
            owner_id: r.owner_id,
            kind: r.kind,
        }
    }
}

impl CacheKey for TokenHash {
    fn encode(&self) -> String {
        self.to_hex()
    }
    fn decode(s: &str) -> Option<Self> {
        TokenHash::from_hex(s)
    }
}

impl CacheKey for RoomName {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(s: &str) -> Option<Self> {
        RoomName::parse(s).ok()
    }
}

/// Membership key: room and user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Membership(pub RoomId, pub UserId);

impl CacheKey for Membership {
    fn encode(&self) -> String {
        format!("{}:{}", self.0, self.1)
    }
    fn decode(s: &str) -> Option<Self> {
        let (room, user) = s.split_once(':')?;
        Some(Membership(RoomId(room.parse().ok()?), UserId(user.parse().ok()?)))
    }
}

impl CacheValue for Option<SessionInfo> {
    fn is_negative(&self) -> bool {
        self.is_none()
    }
    fn weight(&self) -> u32 {
        self.as_ref().map_or(8, |s| 64 + s.user.username.as_str().len() as u32)
    }
}

impl CacheValue for Option<RoomMeta> {
    fn is_negative(&self) -> bool {
        self.is_none()
    }
    fn weight(&self) -> u32 {
        self.as_ref().map_or(8, |r| 96 + r.name.as_str().len() as u32 + r.topic.len() as u32)
    }
}

impl CacheValue for bool {
    fn is_negative(&self) -> bool {
        !*self
    }
    fn weight(&self) -> u32 {
        1
    }
}

/// A ban still in force: until when (ms since the epoch; `i64::MAX` until
/// lifted). `None`: no ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanUntil(pub i64);

impl BanUntil {
    pub fn holds(self) -> bool {
        self.0 > chrono::Utc::now().timestamp_millis()
    }
}

impl CacheValue for Option<BanUntil> {
    fn is_negative(&self) -> bool {
        self.is_none()
    }
    fn weight(&self) -> u32 {
        16
    }
}

pub struct Caches {
    pub tokens: Arc<Layered<TokenHash, Option<SessionInfo>>>,
    pub rooms: Arc<Layered<RoomName, Option<RoomMeta>>>,
    pub members: Arc<Layered<Membership, bool>>,
    pub bans: Arc<Layered<Membership, Option<BanUntil>>>,
}

impl Caches {
    /// `lease` guards the caches whose answers revocations take back.
    /// `redis` is the pool and key prefix of the shared (L2) layer.
    pub fn new(config: &CacheConfig, redis: Option<(&RedisPool, &str)>, lease: Arc<Lease>, bus: &Bus) -> Caches {
        let l2 = || redis.map(|(pool, prefix)| (pool.clone(), prefix.to_string()));
        let settings = |name, share: u64| Settings {
            name,
            max_bytes: config.max_bytes / 8 * share,
            ttl: config.ttl,
            negative_ttl: config.negative_ttl,
            l2_ttl: config.ttl * 2,
            enabled: config.enabled,
        };
        Caches {
            tokens: Layered::new(settings(CacheName::Token, 4), l2(), Some(lease.clone()), Some(bus.clone())),
            rooms: Layered::new(settings(CacheName::Room, 2), l2(), None, Some(bus.clone())),
            members: Layered::new(settings(CacheName::Membership, 2), l2(), Some(lease.clone()), Some(bus.clone())),
            bans: Layered::new(settings(CacheName::Ban, 1), l2(), Some(lease), Some(bus.clone())),
        }
    }

    /// Drops every cached token and membership (see `Layered::flush`).
    pub fn flush_revocable(&self) {
        self.tokens.flush();
        self.members.flush();
        self.bans.flush();
    }

    /// Applies an invalidation broadcast by another instance.
    pub async fn invalidate_remote(&self, cache: &str, key: &str) {
        match CacheName::parse(cache) {
            Some(CacheName::Token) => self.tokens.invalidate_encoded(key).await,
            Some(CacheName::Room) => self.rooms.invalidate_encoded(key).await,
            Some(CacheName::Membership) => self.members.invalidate_encoded(key).await,
            Some(CacheName::Ban) => self.bans.invalidate_encoded(key).await,
            Some(CacheName::History) | None => log::debug!("invalidation for a cache without shared entries: {cache}"),
        }
    }

    /// Entry counts and bytes per cache into the gauges.
    pub fn publish_sizes(&self) {
        for (name, (entries, bytes)) in [
            (CacheName::Token, self.tokens.sizes()),
            (CacheName::Room, self.rooms.sizes()),
            (CacheName::Membership, self.members.sizes()),
            (CacheName::Ban, self.bans.sizes()),
        ] {
            METRICS.cache_entries.with_label_values(&[name.as_str()]).set(entries as i64);
            METRICS.cache_bytes.with_label_values(&[name.as_str()]).set(bytes as i64);
        }
    }
}

/// How long a membership or room answer may be served: the broadcast makes it
/// much shorter in practice.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
