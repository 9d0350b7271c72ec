//! The recent-message window of each room, so `join` with `since` (and the
//! newest history page) is served without PostgreSQL — after a deploy, a
//! reconnect storm would otherwise read every room's tail at once.
//!
//! - L1: the room actor keeps the last `RECENT_WINDOW` messages in memory.
//! - L2: a Redis list per room (RPUSH + LTRIM after each commit), so a room
//!   starting on another instance, or after a restart, loads its window with
//!   one LRANGE.
//! - Warming: at start-up the hottest rooms' windows are loaded (from Redis,
//!   else PostgreSQL) before `/readyz` turns ready, bounded in time.
//!
//! A window is used only when its seqs are contiguous and end exactly at the
//! room's `last_seq`; anything else falls back to PostgreSQL.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8_redis::redis;
use moka::future::Cache;

use crate::bus::{BusMessage, Companion};
use crate::domain::RoomId;
use crate::redis_pool::{with_conn_within, RedisPool};
use crate::store::models::StoredMessage;
use crate::store::Store;

pub type Window = VecDeque<Arc<StoredMessage>>;

#[derive(Clone)]
pub struct RecentLists {
    size: usize,
    redis: Option<(RedisPool, String)>,
    /// Windows loaded by warming, taken by the room actor when it starts.
    warm: Cache<RoomId, Arc<Vec<StoredMessage>>>,
    warmed: Arc<AtomicBool>,
}

impl RecentLists {
    pub fn new(size: usize, redis: Option<(RedisPool, String)>) -> Self {
        RecentLists {
            size,
            redis,
            warm: Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(600)).build(),
            warmed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn is_warm(&self) -> bool {
        self.warmed.load(Ordering::Acquire)
    }

    fn key(prefix: &str, room: RoomId) -> String {
        format!("{prefix}recent:{}", room.0)
    }

    /// The writes that append committed messages to the room's Redis list
    /// (write-through). They ride in the bus's publish pipeline, so the list
    /// costs no round trip of its own; empty without Redis.
    pub fn append(&self, room: RoomId, messages: &[BusMessage]) -> Companion {
        let Some((_, prefix)) = &self.redis else { return Companion::new() };
        if self.size == 0 || messages.is_empty() {
            return Companion::new();
        }
        let key = Self::key(prefix, room);
        let mut push = redis::cmd("RPUSH");
        push.arg(&key);
        for m in messages {
            // The list is read by joins later: no trace context in it (a copy
            // only while tracing is on).
            let json = match &m.traceparent {
                None => serde_json::to_string(m),
                Some(_) => serde_json::to_string(&BusMessage { traceparent: None, ..m.clone() }),
            };
            match json {
                Ok(json) => push.arg(json),
                Err(e) => {
                    log::error!("recent list: cannot encode a message: {e}");
                    return Companion::new();
                }
            };
        }
        let mut trim = redis::cmd("LTRIM");
        trim.arg(&key).arg(-(self.size as isize)).arg(-1);
        let mut expire = redis::cmd("PEXPIRE");
        expire.arg(&key).arg(3_600_000);
        vec![push, trim, expire]
    }

    /// The window ending at `last_seq`: warmed copy, else Redis, else
    /// PostgreSQL; empty if none is complete.
    pub async fn load(&self, store: &Store, room: RoomId, room_name: &crate::domain::RoomName, last_seq: i64) -> Window {
        if self.size == 0 || last_seq == 0 {
            return Window::new();
        }
        if let Some(w) = self.warm.remove(&room).await {
            if let Some(window) = complete(w.iter().cloned().collect(), last_seq) {
                return window;
            }
        }
        if let Some(window) = self.read_redis(room, last_seq).await {
            return window;
        }
        let from = (last_seq - self.size as i64).max(0);
        match store.messages_between(room, room_name, from, last_seq, self.size as i64).await {
            Ok(rows) => complete(rows, last_seq).unwrap_or_default(),
            Err(_) => Window::new(),
        }
    }

    async fn read_redis(&self, room: RoomId, last_seq: i64) -> Option<Window> {
        let (pool, prefix) = self.redis.as_ref()?;
        let key = Self::key(prefix, room);
        let size = self.size as isize;
        let get = with_conn_within(pool, "recent_read", Duration::from_millis(100), async |conn| {
            redis::cmd("LRANGE").arg(&key).arg(-size).arg(-1).query_async::<Vec<String>>(conn).await
        });
        let items = get.await.ok()?;
        let messages: Vec<StoredMessage> = items
            .iter()
            .filter_map(|s| serde_json::from_str::<BusMessage>(s).ok())
            .filter_map(|m| m.into_stored(room).map(|(m, _)| m))
            .collect();
        complete(messages, last_seq)
    }

    /// Loads the windows of the `rooms` hottest rooms, within `budget`, then
    /// marks the instance warm (readiness waits for this).
    pub async fn warm(&self, store: &Store, rooms: usize, budget: Duration) {
        let started = Instant::now();
        let mut loaded = 0;
        if rooms > 0 && self.size > 0 {
            match store.hottest_rooms(rooms as i64).await {
                Ok(hot) => {
                    for room in hot {
                        if started.elapsed() >= budget {
                            log::warn!("warming stopped at its time budget after {loaded} rooms");
                            break;
                        }
                        let window = self.load(store, room.id, &room.name, room.last_seq).await;
                        if !window.is_empty() {
                            self.warm.insert(room.id, Arc::new(window.iter().map(|m| (**m).clone()).collect())).await;
                            loaded += 1;
                        }
                    }
                }
                Err(e) => log::warn!("warming skipped: {e}"),
            }
        }
        log::info!("warmed {loaded} room windows in {:?}", started.elapsed());
        self.warmed.store(true, Ordering::Release);
    }
}

/// The messages as a window if they are contiguous and end at `last_seq`.
fn complete(messages: Vec<StoredMessage>, last_seq: i64) -> Option<Window> {
    let last = messages.last()?.seq;
    let contiguous = messages.windows(2).all(|w| w[1].seq == w[0].seq + 1);
    (contiguous && last == last_seq).then(|| messages.into_iter().map(Arc::new).collect())
}
