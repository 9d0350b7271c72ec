//! The Redis connection pool: bb8-redis, plus what it lacks. Its manager
//! never reports a connection as broken, so after a Redis restart the pool
//! would keep handing out dead connections (unless it PINGs on every
//! checkout, doubling the commands per message). Here a failed command marks
//! its connection broken and bb8 replaces it.

use std::time::Duration;

use bb8_redis::redis::aio::MultiplexedConnection;
use bb8_redis::redis::{RedisError, RedisResult};
use bb8_redis::RedisConnectionManager;

pub struct Manager(RedisConnectionManager);

pub struct Conn {
    conn: MultiplexedConnection,
    broken: bool,
}

pub type RedisPool = bb8::Pool<Manager>;

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = RedisError;

    async fn connect(&self) -> Result<Conn, RedisError> {
        self.0.connect().await.map(|conn| Conn { conn, broken: false })
    }

    async fn is_valid(&self, c: &mut Conn) -> Result<(), RedisError> {
        self.0.is_valid(&mut c.conn).await
    }

    fn has_broken(&self, c: &mut Conn) -> bool {
        c.broken
    }
}

/// A lazily connecting pool: Redis may come up after this instance.
pub fn build(url: &str, max_size: u32) -> RedisResult<RedisPool> {
    let manager = Manager(RedisConnectionManager::new(url)?);
    Ok(bb8::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_millis(500))
        .test_on_check_out(false)
        .build_unchecked(manager))
}

/// Runs commands on a pooled connection; any error retires the connection.
pub async fn with_conn<T>(
    pool: &RedisPool,
    f: impl AsyncFnOnce(&mut MultiplexedConnection) -> RedisResult<T>,
) -> Result<T, String> {
    let mut pooled = pool.get().await.map_err(|e| e.to_string())?;
    let result = f(&mut pooled.conn).await;
    if result.is_err() {
        pooled.broken = true;
    }
    result.map_err(|e| e.to_string())
}
