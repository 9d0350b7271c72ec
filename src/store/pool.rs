//! `Store`: the primary pool (and the read replica, when configured) behind
//! the named, instrumented queries of the other store modules.

use std::sync::Arc;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

use super::connection::{build_pool, run_on, ConnectionSettings, DbPool, Rows};
use super::replica::Replica;
use super::StoreError;
use crate::config::Config;
use crate::metrics::METRICS;

#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    settings: Arc<ConnectionSettings>,
    replica: Option<Arc<Replica>>,
}

impl Store {
    /// Builds the primary pool. Connections open lazily, so this succeeds
    /// even while the database restarts; start-up already proved it reachable.
    pub fn new(config: &Config) -> Store {
        let settings = Arc::new(ConnectionSettings::from_config(config));
        let pool = build_pool(&settings, config);
        let replica = config.database_replica_url.as_deref().map(|url| Replica::new(url, config));
        Store { pool, settings, replica }
    }

    pub fn replica(&self) -> Option<&Arc<Replica>> {
        self.replica.as_ref()
    }

    /// Starts measuring the replica's lag (no-op without a replica).
    pub fn spawn_replica_monitor(&self) {
        if let Some(r) = &self.replica {
            let (replica, primary) = (r.clone(), self.pool.clone());
            crate::supervisor::spawn(crate::supervisor::Task::ReplicaMonitor, move || replica.clone().monitor(primary.clone()));
        }
    }

    /// A read that may be served by the replica: used when it is healthy and
    /// `fresh` allows; falls back to the primary when the replica fails or
    /// `accept` rejects its answer as stale.
    pub async fn read<T: Rows>(
        &self,
        name: &'static str,
        may_use_replica: bool,
        accept: impl Fn(&T) -> bool,
        query: impl AsyncFn(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, StoreError> {
        if let Some(replica) = self.replica.as_ref().filter(|r| may_use_replica && r.is_healthy()) {
            match run_on(&replica.pool, "replica", self.settings.slow_query, name, &query).await {
                Ok(rows) if accept(&rows) => {
                    METRICS.db_reads.with_label_values(&["replica"]).inc();
                    return Ok(rows);
                }
                Ok(_) => {}
                Err(StoreError::Unavailable(e)) => {
                    log::warn!("replica read {name} failed, using the primary: {e}");
                    replica.mark_unhealthy();
                }
                Err(e) => return Err(e),
            }
        }
        METRICS.db_reads.with_label_values(&["primary"]).inc();
        self.run(name, query).await
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Runs one named query on a pooled primary connection. Pool exhaustion
    /// or an unreachable database is `StoreError::Unavailable` after the pool
    /// timeout.
    pub async fn run<T: Rows>(
        &self,
        name: &'static str,
        query: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, StoreError> {
        run_on(&self.pool, "primary", self.settings.slow_query, name, query).await
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
