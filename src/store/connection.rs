//! Connections to PostgreSQL: how each is set up (`ConnectionSettings`),
//! the bb8 pool of them, and the one instrumented path every query takes
//! (`run_on`): a named query, its duration in
//! `switchboard_db_query_duration_seconds{query}`, errors counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::ConnectionError;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::StoreError;
use crate::config::Config;
use crate::metrics::METRICS;

pub type DbPool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

/// What every new connection is told before first use.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub url: String,
    pub statement_timeout: Duration,
    pub application_name: String,
    /// Queries at least this slow are logged with their name and row count.
    pub slow_query: Duration,
}

impl ConnectionSettings {
    pub fn from_config(config: &Config) -> Self {
        ConnectionSettings {
            url: config.database_url.clone(),
            statement_timeout: config.db_statement_timeout,
            application_name: format!("switchboard {}", config.instance_id),
            slow_query: config.slow_query,
        }
    }

    /// Opens one connection with the session settings applied.
    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let mut conn = AsyncPgConnection::establish(&self.url).await?;
        let app = self.application_name.replace('\'', "");
        let setup = format!(
            "SET statement_timeout = {}; SET application_name = '{app}'; SET idle_in_transaction_session_timeout = 60000",
            self.statement_timeout.as_millis()
        );
        conn.batch_execute(&setup)
            .await
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    }
}

/// The one instrumented path: pool wait, query time per name, errors, and a
/// warning for slow queries with their row count.
pub async fn run_on<T: Rows>(
    pool: &DbPool,
    pool_name: &'static str,
    slow: Duration,
    name: &'static str,
    query: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
) -> Result<T, StoreError> {
    let waited = Instant::now();
    let checkout = pool.get().await;
    METRICS.db_pool_wait.with_label_values(&[pool_name]).observe(waited.elapsed().as_secs_f64());
    let mut conn = checkout?;
    let start = Instant::now();
    let result = query(&mut conn).await;
    let elapsed = start.elapsed();
    if METRICS.observe_query(name, elapsed, result.is_ok(), slow) {
        let rows = result.as_ref().map(Rows::rows).unwrap_or(0);
        log::warn!("slow query {name} on {pool_name}: {:.1} ms, {rows} rows", elapsed.as_secs_f64() * 1000.0);
    }
    result.map_err(StoreError::from)
}

/// How many rows a query's result holds, for the slow-query log.
pub trait Rows {
    fn rows(&self) -> usize;
}

impl<T> Rows for Vec<T> {
    fn rows(&self) -> usize {
        self.len()
    }
}

impl<T> Rows for Option<T> {
    fn rows(&self) -> usize {
        usize::from(self.is_some())
    }
}

impl Rows for usize {
    fn rows(&self) -> usize {
        *self
    }
}

impl Rows for () {
    fn rows(&self) -> usize {
        0
    }
}

impl Rows for bool {
    fn rows(&self) -> usize {
        1
    }
}

impl Rows for String {
    fn rows(&self) -> usize {
        1
    }
}

impl<A, B> Rows for (A, B) {
    fn rows(&self) -> usize {
        1
    }
}

impl Rows for i64 {
    fn rows(&self) -> usize {
        1
    }
}

/// A bb8 pool sized from the configuration. Checkout costs no round trip: the
/// check only asks whether the connection's socket is still open (after a
/// PostgreSQL restart every old connection is closed, so it is dropped and a
/// fresh one made instead of failing a request).
pub fn build_pool(settings: &Arc<ConnectionSettings>, config: &Config) -> DbPool {
    let setup_settings = settings.clone();
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.custom_setup = Box::new(move |_url: &str| -> BoxFuture<'_, Result<AsyncPgConnection, ConnectionError>> {
        let s = setup_settings.clone();
        async move { s.connect().await }.boxed()
    });
    manager_config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn: &mut AsyncPgConnection| {
        let broken = conn.is_broken();
        async move {
            if broken {
                Err(diesel::result::Error::BrokenTransactionManager)
            } else {
                Ok(())
            }
        }
        .boxed()
    }));
    let manager = AsyncDieselConnectionManager::new_with_config(settings.url.clone(), manager_config);
    bb8::Pool::builder()
        .max_size(config.db_pool_max)
        .min_idle(Some(config.db_pool_min_idle))
        .connection_timeout(config.db_pool_timeout)
        .idle_timeout(Some(config.db_pool_idle_timeout))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .test_on_check_out(true)
        .retry_connection(false)
        .build_unchecked(manager)
}

