//! Redis connections for commands (not subscriptions): a bb8-redis pool for
//! one server, or one multiplexed cluster connection for a Redis Cluster.
//!
//! bb8-redis's manager never reports a connection as broken, so after a Redis
//! restart the pool would keep handing out dead connections (unless it PINGs
//! on every checkout, doubling the commands per message). Here a failed
//! command marks its connection broken and bb8 replaces it.

use std::sync::Arc;
use std::time::Duration;

use bb8_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use bb8_redis::redis::cluster::ClusterClient;
use bb8_redis::redis::cluster_async::ClusterConnection;
use bb8_redis::redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use bb8_redis::RedisConnectionManager;
use tokio::sync::OnceCell;

/// A Redis call that failed, by where it failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    /// No pooled connection within the pool's timeout.
    #[error("no Redis connection: {0}")]
    Checkout(#[from] bb8::RunError<RedisError>),
    /// The command, or the connection under it.
    #[error("{0}")]
    Command(#[from] RedisError),
    /// No answer in the time the caller allowed.
    #[error("no answer from Redis within {0:?}")]
    TimedOut(Duration),
}

pub struct Manager(RedisConnectionManager);

pub struct Conn {
    conn: MultiplexedConnection,
    broken: bool,
}

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

// One per process (cloned as a handle): variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum RedisPool {
    Single(bb8::Pool<Manager>),
    /// Connected on first use, so the cluster may come up after us.
    Cluster(ClusterClient, Arc<OnceCell<ClusterConnection>>),
}

/// Either kind of connection, for the commands in `with_conn`.
pub enum AnyConn<'a> {
    Single(&'a mut MultiplexedConnection),
    Cluster(&'a mut ClusterConnection),
}

impl ConnectionLike for AnyConn<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            AnyConn::Single(c) => c.req_packed_command(cmd),
            AnyConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            AnyConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConn::Single(c) => c.get_db(),
            AnyConn::Cluster(c) => c.get_db(),
        }
    }
}

/// A lazily connecting pool: Redis may come up after this instance.
pub fn build(url: &str, max_size: u32) -> RedisResult<RedisPool> {
    let manager = Manager(RedisConnectionManager::new(url)?);
    Ok(RedisPool::Single(
        bb8::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_millis(500))
            .test_on_check_out(false)
            .build_unchecked(manager),
    ))
}

pub fn build_cluster(urls: &[String]) -> RedisResult<RedisPool> {
    let client = ClusterClient::builder(urls.to_vec())
        .connection_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(2))
        .build()?;
    Ok(RedisPool::Cluster(client, Arc::new(OnceCell::new())))
}

impl RedisPool {
    /// Pipelines may only hold one key's commands in a cluster (keys live on
    /// different nodes); callers split them when this is true.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisPool::Cluster(..))
    }
}

/// Runs commands on a connection; on one server, any error retires the
/// pooled connection (the cluster connection heals itself). `name` labels
/// the command batch in the span of the request it runs for, if any.
pub async fn with_conn<T>(
    pool: &RedisPool,
    name: &'static str,
    f: impl AsyncFnOnce(&mut AnyConn<'_>) -> RedisResult<T>,
) -> Result<T, RedisFailure> {
    let start = std::time::Instant::now();
    let result = run_with_conn(pool, f).await;
    crate::telemetry::request::child(
        name,
        opentelemetry::trace::SpanKind::Client,
        start,
        std::time::Instant::now(),
        vec![opentelemetry::KeyValue::new("db.system.name", "redis"), opentelemetry::KeyValue::new("db.operation.name", name)],
        result.is_err(),
    );
    result
}

/// `with_conn`, bounded: no answer within `limit` is `RedisFailure::TimedOut`.
pub async fn with_conn_within<T>(
    pool: &RedisPool,
    name: &'static str,
    limit: Duration,
    f: impl AsyncFnOnce(&mut AnyConn<'_>) -> RedisResult<T>,
) -> Result<T, RedisFailure> {
    tokio::time::timeout(limit, with_conn(pool, name, f)).await.unwrap_or(Err(RedisFailure::TimedOut(limit)))
}

async fn run_with_conn<T>(pool: &RedisPool, f: impl AsyncFnOnce(&mut AnyConn<'_>) -> RedisResult<T>) -> Result<T, RedisFailure> {
    match pool {
        RedisPool::Single(pool) => {
            let mut pooled = pool.get().await?;
            let result = f(&mut AnyConn::Single(&mut pooled.conn)).await;
            if result.is_err() {
                pooled.broken = true;
            }
            Ok(result?)
        }
        RedisPool::Cluster(client, cell) => {
            let conn = cell.get_or_try_init(|| client.get_async_connection()).await?;
            let mut conn = conn.clone();
            Ok(f(&mut AnyConn::Cluster(&mut conn)).await?)
        }
    }
}
