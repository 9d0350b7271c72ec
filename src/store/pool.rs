//! The bb8 pool of `AsyncPgConnection`s and the one instrumented path every
//! query takes (`Store::run`): a named query, its duration in
//! `switchboard_db_query_duration_seconds{query}`, errors counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::ConnectionError;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::StoreError;
use crate::config::Config;
use crate::metrics::METRICS;

pub type DbPool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    settings: Arc<ConnectionSettings>,
}

/// What every new connection is told before first use.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub url: String,
    pub statement_timeout: Duration,
    pub application_name: String,
}

impl ConnectionSettings {
    pub fn from_config(config: &Config) -> Self {
        ConnectionSettings {
            url: config.database_url.clone(),
            statement_timeout: config.db_statement_timeout,
            application_name: format!("switchboard {}", config.instance_id),
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

impl Store {
    /// Builds the pool. Connections open lazily, so this succeeds even while the
    /// database restarts; start-up already proved it reachable.
    pub fn new(config: &Config) -> Store {
        let settings = Arc::new(ConnectionSettings::from_config(config));
        let setup_settings = settings.clone();
        let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
        manager_config.custom_setup = Box::new(move |_url: &str| -> BoxFuture<'_, Result<AsyncPgConnection, ConnectionError>> {
            let s = setup_settings.clone();
            async move { s.connect().await }.boxed()
        });
        // Broken connections are detected by the failed query itself; a ping
        // per checkout would add a round trip to every request.
        manager_config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::new_with_config(config.database_url.clone(), manager_config);
        let pool = bb8::Pool::builder()
            .max_size(config.db_pool_max)
            .min_idle(Some(config.db_pool_min_idle))
            .connection_timeout(config.db_pool_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            .test_on_check_out(false)
            .retry_connection(false)
            .build_unchecked(manager);
        Store { pool, settings }
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Runs one named query on a pooled connection. Pool exhaustion or an
    /// unreachable database is `StoreError::Unavailable` after the pool timeout.
    pub async fn run<T>(
        &self,
        name: &'static str,
        query: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get().await?;
        let start = Instant::now();
        let result = query(&mut conn).await;
        METRICS.observe_query(name, start.elapsed(), result.is_ok());
        result.map_err(StoreError::from)
    }

    /// Idle and in-use connections, for `/metrics` and `/readyz`.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.idle_connections, s.connections.saturating_sub(s.idle_connections))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("health_check", async |conn| conn.batch_execute("SELECT 1").await).await
    }
}
