//! WebSocket tickets: `POST /api/v1/sessions/ticket` trades the bearer token
//! for a single-use ticket valid `WS_TICKET_TTL_MS` (30 s by default), and
//! the upgrade takes `?ticket=`, so
//! long-lived tokens never appear in URLs (proxy logs print request lines).
//!
//! A ticket only names its token; the upgrade then authenticates that token
//! as usual, so a ticket dies with its token. With Redis, tickets live there
//! (an upgrade may land on any instance behind the load balancer) and are
//! taken with GETDEL, which makes single use atomic cluster-wide; without
//! Redis there is one instance and they live in memory. Only a digest of the
//! ticket is stored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bb8_redis::redis;
use parking_lot::Mutex;

use crate::domain::{Token, TokenHash};
use crate::error::ApiError;
use crate::redis_pool::{with_conn_within, RedisFailure, RedisPool};

/// Memory bound for the in-process store (expired tickets go first).
const LOCAL_MAX: usize = 100_000;
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Tickets {
    /// How long a ticket stays valid.
    ttl: Duration,
    store: Store,
}

// One per process: the size of the in-process map is no concern.
#[allow(clippy::large_enum_variant)]
enum Store {
    Local(Mutex<HashMap<TokenHash, (TokenHash, Instant)>>),
    Redis { pool: RedisPool, prefix: String },
}

impl Tickets {
    pub fn new(redis: Option<(RedisPool, String)>, ttl: Duration) -> Self {
        let store = match redis {
            Some((pool, prefix)) => Store::Redis { pool, prefix },
            None => Store::Local(Mutex::new(HashMap::new())),
        };
        Tickets { ttl, store }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new ticket for `token`.
    pub async fn issue(&self, token: &TokenHash) -> Result<Token, ApiError> {
        let ticket = Token::generate();
        let key = ticket.hash();
        match &self.store {
            Store::Local(map) => {
                let mut map = map.lock();
                if map.len() >= LOCAL_MAX {
                    let now = Instant::now();
                    map.retain(|_, (_, expires)| *expires > now);
                    if map.len() >= LOCAL_MAX {
                        return Err(ApiError::Unavailable("too many open tickets; try again".into()));
                    }
                }
                map.insert(key, (*token, Instant::now() + self.ttl));
            }
            Store::Redis { pool, prefix } => {
                let (name, value, ttl) = (redis_key(prefix, &key), token.to_hex(), self.ttl.as_millis() as u64);
                with_conn_within(pool, "ticket_store", REDIS_TIMEOUT, async |conn| {
                    redis::cmd("SET").arg(&name).arg(&value).arg("PX").arg(ttl).query_async::<()>(conn).await
                })
                .await
                .map_err(|e| unavailable(&e))?;
            }
        }
        Ok(ticket)
    }

    /// The token a ticket was issued for; the ticket is used up. `None` for
    /// an unknown, used or expired ticket.
    pub async fn redeem(&self, ticket: &str) -> Result<Option<TokenHash>, ApiError> {
        let key = TokenHash::of(ticket);
        match &self.store {
            Store::Local(map) => {
                Ok(map.lock().remove(&key).filter(|(_, expires)| *expires > Instant::now()).map(|(token, _)| token))
            }
            Store::Redis { pool, prefix } => {
                let name = redis_key(prefix, &key);
                let value = with_conn_within(pool, "ticket_take", REDIS_TIMEOUT, async |conn| {
                    redis::cmd("GETDEL").arg(&name).query_async::<Option<String>>(conn).await
                })
                .await
                .map_err(|e| unavailable(&e))?;
                Ok(value.as_deref().and_then(TokenHash::from_hex))
            }
        }
    }
}

fn redis_key(prefix: &str, key: &TokenHash) -> String {
    format!("{prefix}ticket:{}", key.to_hex())
}

fn unavailable(why: &RedisFailure) -> ApiError {
    log::warn!("tickets: Redis unavailable: {why}");
    ApiError::Unavailable("tickets are unavailable; try again".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_local_ticket_works_once() {
        let tickets = Tickets::new(None, Duration::from_secs(30));
        let token = TokenHash([3; 32]);
        let ticket = tickets.issue(&token).await.expect("issued");
        assert_eq!(tickets.redeem(ticket.as_str()).await.expect("redeem"), Some(token));
        assert_eq!(tickets.redeem(ticket.as_str()).await.expect("redeem"), None, "single use");
        assert_eq!(tickets.redeem("made-up").await.expect("redeem"), None);
    }

    #[actix_rt::test]
    async fn a_local_ticket_expires_after_its_lifetime() {
        let tickets = Tickets::new(None, Duration::from_millis(50));
        let token = TokenHash([4; 32]);
        let ticket = tickets.issue(&token).await.expect("issued");
        actix_rt::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(tickets.redeem(ticket.as_str()).await.expect("redeem"), None, "expired");
    }
}
