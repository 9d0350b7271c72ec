//! Per-address limits on creating accounts and guests (`SIGNUPS_PER_MIN`,
//! `GUESTS_PER_MIN`): beyond them a 429 with `Retry-After`.
//!
//! A sliding one-minute window: every creation in the last 60 s counts, so
//! there is no burst at a window boundary, and `Retry-After` is exactly when
//! the oldest one leaves the window. With Redis the window is one sorted set
//! per address, updated by one script, so the limit holds for the cluster,
//! not per instance. When Redis does not answer, each instance falls back to
//! its own window: the limit degrades to one per instance rather than to
//! none, and sign-up keeps working.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bb8_redis::redis;
use parking_lot::Mutex;

use crate::error::ApiError;
use crate::metrics::{Limit, METRICS};
use crate::redis_pool::{with_conn_within, RedisPool};

const WINDOW: Duration = Duration::from_secs(60);
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);
/// Addresses tracked in memory before stale ones are swept.
const LOCAL_SWEEP_AT: usize = 100_000;

/// What is being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Creation {
    Account,
    Guest,
}

impl Creation {
    pub const ALL: [Creation; 2] = [Creation::Account, Creation::Guest];

    /// Its limit: the `limit` label of `switchboard_limit_hits_total`, and
    /// (as a string) the Redis key part.
    pub fn limit(self) -> Limit {
        match self {
            Creation::Account => Limit::Signups,
            Creation::Guest => Limit::Guests,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.limit().as_str()
    }

    fn refusal(self) -> &'static str {
        match self {
            Creation::Account => "too many accounts created from this address; try again later",
            Creation::Guest => "too many guests created from this address; try again later",
        }
    }
}

/// Keys: the address, trimmed of its sorted-set members older than the
/// window. Returns -1 when admitted (and recorded), else milliseconds until
/// a slot frees.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return -1
";

pub struct CreationLimits {
    signups_per_min: usize,
    guests_per_min: usize,
    redis: Option<(RedisPool, String)>,
    script: redis::Script,
    local: Mutex<HashMap<(Creation, IpAddr), VecDeque<Instant>>>,
}

impl CreationLimits {
    pub fn new(signups_per_min: usize, guests_per_min: usize, redis: Option<(RedisPool, String)>) -> Self {
        CreationLimits {
            signups_per_min,
            guests_per_min,
            redis,
            script: redis::Script::new(SCRIPT),
            local: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, kind: Creation) -> usize {
        match kind {
            Creation::Account => self.signups_per_min,
            Creation::Guest => self.guests_per_min,
        }
    }

    /// Counts one creation from `ip`, or refuses it. No address (a peer whose
    /// address is unknown, such as a Unix socket) is not limited.
    pub async fn admit(&self, kind: Creation, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let wait = match self.admit_shared(kind, ip).await {
            Some(verdict) => verdict,
            None => self.admit_local(kind, ip, Instant::now()),
        };
        match wait {
            None => Ok(()),
            Some(wait) => {
                METRICS.limit_hit(kind.limit()).inc();
                Err(ApiError::RetryAfter { message: kind.refusal().into(), wait })
            }
        }
    }

    /// The cluster-wide verdict (`Some(None)`: admitted), or `None` when
    /// there is no Redis or it did not answer.
    async fn admit_shared(&self, kind: Creation, ip: IpAddr) -> Option<Option<Duration>> {
        let (pool, prefix) = self.redis.as_ref()?;
        let key = format!("{prefix}limit:{}:{ip}", kind.as_str());
        let member = uuid::Uuid::new_v4().to_string();
        let limit = self.limit(kind);
        let run = with_conn_within(pool, "rate_limit", REDIS_TIMEOUT, async |conn| {
            self.script.key(&key).arg(WINDOW.as_millis() as u64).arg(limit).arg(&member).invoke_async::<i64>(conn).await
        });
        match run.await {
            Ok(wait_ms) => Some((wait_ms >= 0).then(|| Duration::from_millis(wait_ms.unsigned_abs()))),
            Err(e) => {
                log::warn!("creation limit: Redis failed ({e}); limiting per instance");
                None
            }
        }
    }

    fn admit_local(&self, kind: Creation, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.local.lock();
        if map.len() >= LOCAL_SWEEP_AT {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let recent = map.entry((kind, ip)).or_default();
        while recent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            recent.pop_front();
        }
        if recent.len() >= self.limit(kind) {
            let oldest = *recent.front()?;
            return Some((oldest + WINDOW).saturating_duration_since(now).max(Duration::from_millis(1)));
        }
        recent.push_back(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sliding_window_per_address_and_kind() {
        let limits = CreationLimits::new(2, 3, None);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let t0 = Instant::now();
        assert_eq!(limits.admit_local(Creation::Account, a, t0), None);
        assert_eq!(limits.admit_local(Creation::Account, a, t0 + Duration::from_secs(10)), None);
        let wait = limits.admit_local(Creation::Account, a, t0 + Duration::from_secs(20)).expect("refused");
        assert_eq!(wait, Duration::from_secs(40), "until the oldest leaves the window");
        assert_eq!(limits.admit_local(Creation::Account, b, t0), None, "another address");
        assert_eq!(limits.admit_local(Creation::Guest, a, t0), None, "another kind");
        assert_eq!(limits.admit_local(Creation::Account, a, t0 + Duration::from_secs(61)), None, "the oldest left");
    }
}
