//! A two-tier cache: L1 in process (moka, bounded by bytes), L2 in Redis
//! (shared by all instances, prefixed keys with a TTL).
//!
//! Reads: L1, then L2, then the loader (the database), one load per key at a
//! time (moka's single-flight). Writes elsewhere call `invalidate`: L1 entry
//! dropped, L2 key replaced by a short-lived tombstone, and an invalidation
//! broadcast on the bus so every instance drops its L1 entry at once. TTLs
//! are only the safety net.
//!
//! Two races are closed on purpose, because tokens and memberships are
//! security-relevant:
//! - a load that read the database before a write but finishes after its
//!   invalidation must not cache the old value: every invalidation bumps an
//!   epoch, and a load that saw the epoch move drops what it cached;
//! - the same race across instances: L2 writes by loaders are `SET NX`, so
//!   they cannot overwrite the tombstone an invalidation leaves behind.
//!
//! Redis trouble never fails a read: L2 calls have a short timeout and count
//! as misses.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bb8_redis::redis;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::Expiry;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bus::{Bus, BusEvent, Channel};
use crate::cache::lease::Lease;
use crate::metrics::{CacheName, CacheResult, METRICS};
use crate::redis_pool::{with_conn_within, RedisFailure, RedisPool};
use crate::store::StoreError;

/// A cache key with a stable text form (for Redis and the bus).
pub trait CacheKey: Clone + Eq + Hash + Send + Sync + 'static {
    fn encode(&self) -> String;
    fn decode(s: &str) -> Option<Self>;
}

/// Values that are "known absent" get the short negative TTL.
pub trait CacheValue: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {
    fn is_negative(&self) -> bool;
    /// Approximate bytes held, for the size bound.
    fn weight(&self) -> u32;
}

const TOMBSTONE: &str = "~invalidated";
/// How long an invalidated key stays uncacheable in L2: longer than any load
/// that may have read the old value (statement_timeout is 5 s by default).
const TOMBSTONE_TTL: Duration = Duration::from_secs(10);
/// Long enough for a burst of lookups queued on the pool, short enough that a
/// stalled Redis costs a request little before it falls back to PostgreSQL.
const L2_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct Settings {
    pub name: CacheName,
    pub max_bytes: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub l2_ttl: Duration,
    /// Off: every lookup goes to the loader (for measuring the cache).
    pub enabled: bool,
}

struct PerEntry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl<K, V: CacheValue> Expiry<K, V> for PerEntry {
    fn expire_after_create(&self, _: &K, value: &V, _: std::time::Instant) -> Option<Duration> {
        Some(if value.is_negative() { self.negative_ttl } else { self.ttl })
    }
}

pub struct Layered<K: CacheKey, V: CacheValue> {
    settings: Settings,
    l1: Cache<K, V>,
    l2: Option<(RedisPool, String)>,
    /// Where invalidations are broadcast (none in a cache of its own).
    bus: Option<Bus>,
    epoch: AtomicU64,
    /// For answers a revocation takes back (tokens, memberships): L1 and L2
    /// are only consulted while the lease holds (see cache::lease).
    lease: Option<Arc<Lease>>,
}

impl<K: CacheKey, V: CacheValue> Layered<K, V> {
    pub fn new(settings: Settings, redis: Option<(RedisPool, String)>, lease: Option<Arc<Lease>>, bus: Option<Bus>) -> Arc<Self> {
        let name = settings.name;
        let l1 = Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|k: &K, v: &V| (k.encode().len() as u32).saturating_add(v.weight()).saturating_add(64))
            .expire_after(PerEntry { ttl: settings.ttl, negative_ttl: settings.negative_ttl })
            .eviction_listener(move |_, _, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    METRICS.cache_evictions.with_label_values(&[name.as_str()]).inc();
                }
            })
            .build();
        Arc::new(Layered { settings, l1, l2: redis, bus, epoch: AtomicU64::new(0), lease })
    }

    pub fn name(&self) -> CacheName {
        self.settings.name
    }

    fn l2_key(&self, key: &K) -> Option<(RedisPool, String)> {
        self.l2
            .as_ref()
            .map(|(pool, prefix)| (pool.clone(), format!("{prefix}cache:{}:{}", self.settings.name.as_str(), key.encode())))
    }

    /// The cached value, or the loader's (at most one load per key at once).
    pub async fn get_or_load(
        &self,
        key: &K,
        load: impl std::future::Future<Output = Result<V, StoreError>>,
    ) -> Result<V, StoreError> {
        let name = self.settings.name;
        if !self.settings.enabled {
            METRICS.cache_request(name, CacheResult::Miss).inc();
            return load.await;
        }
        if self.lease.as_ref().is_some_and(|lease| !lease.valid()) {
            // Revocations may be in flight towards us: ask the database.
            METRICS.cache_request(name, CacheResult::Miss).inc();
            METRICS.cache_lease_bypass.with_label_values(&[name.as_str()]).inc();
            return load.await;
        }
        if let Some(v) = self.l1.get(key).await {
            METRICS.cache_request(name, CacheResult::Hit).inc();
            return Ok(v);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut loaded_from_db = false;
        let result = self
            .l1
            .try_get_with_by_ref(key, async {
                if let Some(v) = self.l2_get(key).await {
                    return Ok(v);
                }
                loaded_from_db = true;
                let v = load.await?;
                if self.epoch.load(Ordering::Acquire) == epoch {
                    self.l2_set(key, &v).await;
                }
                Ok::<V, StoreError>(v)
            })
            .await;
        let label = if loaded_from_db { CacheResult::Miss } else { CacheResult::Hit };
        METRICS.cache_request(name, label).inc();
        if self.epoch.load(Ordering::Acquire) != epoch {
            // Something was invalidated while this loaded: do not keep it.
            self.l1.invalidate(key).await;
        }
        result.map_err(|e| match Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(shared) => StoreError::Shared(shared),
        })
    }

    /// Puts a value just written to the database (write-through).
    pub async fn put(&self, key: &K, value: V) {
        self.l1.insert(key.clone(), value).await;
    }

    /// Drops the key here, tombstones it in Redis and tells every instance.
    /// For changes that take a right away (revocation, removal).
    pub async fn invalidate(&self, key: &K) {
        self.drop_everywhere(key, true).await;
    }

    /// Drops the key here and in Redis and tells every instance, without a
    /// tombstone: for changes that only grant (a new room), where a racing
    /// stale "no" costs at most the negative TTL.
    pub async fn invalidate_grant(&self, key: &K) {
        self.drop_everywhere(key, false).await;
    }

    /// Write-through for a grant: the new value goes to L1 and Redis
    /// (replacing what was there) and other instances drop their copies.
    pub async fn grant(&self, key: &K, value: V) {
        self.drop_everywhere(key, false).await;
        if let (Some((pool, l2_key)), Ok(text)) = (self.l2_key(key), serde_json::to_string(&value)) {
            let ttl = self.settings.l2_ttl.as_millis().max(1) as u64;
            let set = with_conn_within(&pool, "cache_grant", L2_TIMEOUT, async |conn| {
                redis::cmd("SET").arg(&l2_key).arg(&text).arg("PX").arg(ttl).query_async::<()>(conn).await
            });
            let _ = set.await;
        }
        self.l1.insert(key.clone(), value).await;
    }

    async fn drop_everywhere(&self, key: &K, tombstone: bool) {
        self.invalidate_local(key).await;
        if let Some((pool, l2_key)) = self.l2_key(key) {
            let ttl = TOMBSTONE_TTL.as_millis() as u64;
            let write = with_conn_within(&pool, "cache_invalidate", L2_TIMEOUT * 4, async |conn| {
                if tombstone {
                    redis::cmd("SET").arg(&l2_key).arg(TOMBSTONE).arg("PX").arg(ttl).query_async::<()>(conn).await
                } else {
                    redis::cmd("DEL").arg(&l2_key).query_async::<()>(conn).await
                }
            });
            // A timeout is left to the TTL and the broadcast, unlogged as before.
            if let Err(e @ (RedisFailure::Checkout(_) | RedisFailure::Command(_))) = write.await {
                log::warn!("cache {}: invalidation in Redis failed: {e}", self.settings.name.as_str());
            }
        }
        if let Some(bus) = &self.bus {
            bus.publish(
                Channel::Control,
                BusEvent::Invalidate { cache: self.settings.name.as_str().to_string(), key: key.encode() },
            );
        }
    }

    /// Replaces the L2 entry with a tombstone, or fails: a revocation must
    /// not go ahead while Redis could still hand the old answer to another
    /// instance. No-op without Redis.
    pub async fn tombstone(&self, key: &K) -> Result<(), RedisFailure> {
        let Some((pool, l2_key)) = self.l2_key(key) else { return Ok(()) };
        let ttl = TOMBSTONE_TTL.as_millis() as u64;
        let mut last = RedisFailure::TimedOut(L2_TIMEOUT * 4);
        for attempt in 0..3u32 {
            if attempt > 0 {
                actix::clock::sleep(L2_TIMEOUT * attempt).await;
            }
            let write = with_conn_within(&pool, "cache_tombstone", L2_TIMEOUT * 4, async |conn| {
                redis::cmd("SET").arg(&l2_key).arg(TOMBSTONE).arg("PX").arg(ttl).query_async::<()>(conn).await
            });
            match write.await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Forgets every L1 entry (and any load in flight): after control events
    /// were lost, nothing cached here can be vouched for.
    pub fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.l1.invalidate_all();
    }

    /// What an invalidation from another instance does here.
    pub async fn invalidate_local(&self, key: &K) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.l1.invalidate(key).await;
    }

    pub async fn invalidate_encoded(&self, key: &str) {
        if let Some(k) = K::decode(key) {
            self.invalidate_local(&k).await;
        }
    }

    async fn l2_get(&self, key: &K) -> Option<V> {
        let (pool, l2_key) = self.l2_key(key)?;
        let get = with_conn_within(&pool, "cache_get", L2_TIMEOUT, async |conn| {
            redis::cmd("GET").arg(&l2_key).query_async::<Option<String>>(conn).await
        });
        let text = get.await.ok()??;
        if text == TOMBSTONE {
            return None;
        }
        serde_json::from_str(&text).ok()
    }

    async fn l2_set(&self, key: &K, value: &V) {
        let Some((pool, l2_key)) = self.l2_key(key) else { return };
        let Ok(text) = serde_json::to_string(value) else { return };
        let ttl = if value.is_negative() { self.settings.negative_ttl } else { self.settings.l2_ttl };
        let ttl = ttl.as_millis().max(1) as u64;
        let set = with_conn_within(&pool, "cache_set", L2_TIMEOUT, async |conn| {
            redis::cmd("SET").arg(&l2_key).arg(&text).arg("NX").arg("PX").arg(ttl).query_async::<()>(conn).await
        });
        let _ = set.await;
    }

    /// Entries and approximate bytes in L1, for /metrics.
    pub fn sizes(&self) -> (u64, u64) {
        (self.l1.entry_count(), self.l1.weighted_size())
    }
}
