//! Presence snapshots in Redis, so a room starting on an instance learns who
//! is already online elsewhere. One hash per room; each field is
//! `instance|user_id|username` with an expiry time (unix ms) as value. Fields
//! are refreshed while the user stays online and ignored once expired, so an
//! instance that dies without saying goodbye fades out on its own. Live
//! changes travel on the bus; this is only the starting point.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bb8_redis::redis;
use uuid::Uuid;

use crate::domain::{RoomId, UserId, Username};
use crate::redis_pool::{with_conn, RedisPool};

#[derive(Clone)]
pub struct PresenceStore {
    pool: Option<RedisPool>,
    prefix: String,
    instance: String,
    ttl: Duration,
}

/// Someone online in a room on another instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOnline {
    pub instance: String,
    pub user_id: UserId,
    pub user: Username,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl PresenceStore {
    /// `pool` is None in single-instance mode: every call is then a no-op.
    pub fn new(pool: Option<RedisPool>, prefix: &str, instance: &str, ttl: Duration) -> Self {
        PresenceStore { pool, prefix: prefix.to_string(), instance: instance.to_string(), ttl }
    }

    fn key(&self, room: RoomId) -> String {
        format!("{}presence:{}", self.prefix, room.0)
    }

    fn field(&self, user_id: UserId, user: &Username) -> String {
        format!("{}|{}|{}", self.instance, user_id.0, user)
    }

    /// Marks these local users online (again) for another TTL.
    pub async fn refresh(&self, room: RoomId, users: &[(UserId, Username)]) {
        let Some(pool) = &self.pool else { return };
        if users.is_empty() {
            return;
        }
        let expiry = now_ms() + self.ttl.as_millis() as u64;
        let mut pipe = redis::pipe();
        let key = self.key(room);
        for (id, name) in users {
            pipe.hset(&key, self.field(*id, name), expiry).ignore();
        }
        // The hash itself outlives its newest field by a margin, then goes.
        pipe.pexpire(&key, (self.ttl.as_millis() * 4) as i64).ignore();
        if let Err(e) = with_conn(pool, "presence_set", async |conn| pipe.query_async::<()>(conn).await).await {
            log::debug!("presence refresh failed: {e}");
        }
    }

    pub async fn remove(&self, room: RoomId, user_id: UserId, user: &Username) {
        let Some(pool) = &self.pool else { return };
        let (key, field) = (self.key(room), self.field(user_id, user));
        let r =
            with_conn(pool, "presence_remove", async |conn| redis::cmd("HDEL").arg(key).arg(field).query_async::<()>(conn).await)
                .await;
        if let Err(e) = r {
            log::debug!("presence remove failed: {e}");
        }
    }

    /// Users online in the room on other instances, per the snapshot.
    pub async fn others(&self, room: RoomId) -> Vec<RemoteOnline> {
        let Some(pool) = &self.pool else { return Vec::new() };
        let key = self.key(room);
        let fields: HashMap<String, u64> =
            with_conn(pool, "presence_read", async |conn| redis::cmd("HGETALL").arg(key).query_async(conn).await)
                .await
                .unwrap_or_default();
        let now = now_ms();
        fields
            .into_iter()
            .filter(|(_, expiry)| *expiry > now)
            .filter_map(|(field, _)| parse_field(&field))
            .filter(|r| r.instance != self.instance)
            .collect()
    }

    /// Distinct online users per room across all instances (snapshot view),
    /// for rooms not running here.
    pub async fn online_counts(&self, rooms: &[RoomId]) -> HashMap<RoomId, usize> {
        let Some(pool) = &self.pool else { return HashMap::new() };
        if rooms.is_empty() {
            return HashMap::new();
        }
        let all: Vec<HashMap<String, u64>> = if pool.is_cluster() {
            // Keys live on different nodes: one command each.
            let reads = rooms.iter().map(|r| {
                let key = self.key(*r);
                async move {
                    with_conn(pool, "presence_read", async |conn| redis::cmd("HGETALL").arg(&key).query_async(conn).await).await
                }
            });
            futures_util::future::join_all(reads).await.into_iter().map(Result::unwrap_or_default).collect()
        } else {
            let mut pipe = redis::pipe();
            for r in rooms {
                pipe.hgetall(self.key(*r));
            }
            with_conn(pool, "presence_read", async |conn| pipe.query_async(conn).await).await.unwrap_or_default()
        };
        let now = now_ms();
        rooms
            .iter()
            .zip(all)
            .map(|(room, fields)| {
                let users: HashSet<Uuid> = fields
                    .into_iter()
                    .filter(|(_, e)| *e > now)
                    .filter_map(|(f, _)| parse_field(&f).map(|r| r.user_id.0))
                    .collect();
                (*room, users.len())
            })
            .collect()
    }
}

fn parse_field(field: &str) -> Option<RemoteOnline> {
    let mut parts = field.splitn(3, '|');
    let instance = parts.next()?.to_string();
    let user_id = UserId(parts.next()?.parse().ok()?);
    let user = Username::parse(parts.next()?).ok()?;
    Some(RemoteOnline { instance, user_id, user })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let s = PresenceStore::new(None, "p:", "inst-1", Duration::from_secs(5));
        let id = UserId(Uuid::new_v4());
        let name = Username::parse("alice").unwrap();
        let f = s.field(id, &name);
        assert_eq!(parse_field(&f), Some(RemoteOnline { instance: "inst-1".into(), user_id: id, user: name }));
        assert_eq!(parse_field("garbage"), None);
    }
}
