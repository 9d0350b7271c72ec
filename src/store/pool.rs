//! `Store`: the primary pool (and the read replica, when configured) behind
//! the named, instrumented queries of the other store modules.
//!
//! A query is written once, as the body of `db_run!` / `db_read!`, and
//! compiled once per backend: the schema's types (`sql_types`) make the same
//! diesel expression valid on PostgreSQL and on SQLite.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

use super::connection::{build_pool, run_on, ConnectionSettings, DbPool, Rows};
use super::replica::Replica;
use super::StoreError;
use crate::config::{Config, DatabaseConfig};
use crate::metrics::{PoolRole, QueryName, METRICS};

#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    settings: Arc<ConnectionSettings>,
    replica: Option<Arc<Replica>>,
    /// The primary's server as last seen, to notice a failover.
    primary_seen: Arc<parking_lot::Mutex<Option<String>>>,
}

/// The answer of `Store::primary`.
#[derive(Debug, Clone)]
pub struct Primary {
    pub server: String,
    pub writable: bool,
}

impl Store {
    /// Builds the primary pool. Connections open lazily, so this succeeds
    /// even while the database restarts; start-up already proved it reachable.
    pub fn new(config: &Config) -> Store {
        let settings = ConnectionSettings::new(&config.database, &config.cluster.instance_id, config.observability.slow_query);
        Store::open(&config.database, settings)
    }

    pub fn open(config: &DatabaseConfig, settings: ConnectionSettings) -> Store {
        let settings = Arc::new(settings);
        let pool = build_pool(&settings, config);
        let replica = config.replica_url.as_deref().map(|url| Replica::new(url, config, &settings));
        Store { pool, settings, replica, primary_seen: Arc::default() }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.pool, DbPool::Sqlite(_))
    }

    pub fn slow_query(&self) -> Duration {
        self.settings.slow_query
    }

    pub fn replica(&self) -> Option<&Arc<Replica>> {
        self.replica.as_ref()
    }

    /// Starts the embedded database's WAL checkpointer (no-op on PostgreSQL).
    pub fn spawn_checkpointer(&self) {
        if matches!(self.pool, DbPool::Sqlite(_)) {
            let settings = self.settings.clone();
            crate::supervisor::spawn(crate::supervisor::Task::Checkpointer, move || {
                super::checkpointer::run(settings.as_ref().clone())
            });
        }
    }

    /// Starts measuring the replica's lag (no-op without a replica).
    pub fn spawn_replica_monitor(&self) {
        if let (Some(r), DbPool::Postgres(primary)) = (&self.replica, &self.pool) {
            let (replica, primary) = (r.clone(), primary.clone());
            crate::supervisor::spawn(crate::supervisor::Task::ReplicaMonitor, move || replica.clone().monitor(primary.clone()));
        }
    }

    /// A read that may be served by the replica (PostgreSQL only; `db_read!`
    /// calls it): used when it is healthy and `fresh` allows; falls back to
    /// the primary when the replica fails or `accept` rejects its answer as
    /// stale.
    pub async fn read_pg<T: Rows>(
        &self,
        name: QueryName,
        may_use_replica: bool,
        accept: impl Fn(&T) -> bool,
        query: impl AsyncFn(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, StoreError> {
        if let Some(replica) = self.replica.as_ref().filter(|r| may_use_replica && r.is_healthy()) {
            match run_on(&replica.pool, PoolRole::Replica, &self.settings, name, &query).await {
                Ok(rows) if accept(&rows) => {
                    METRICS.db_read(PoolRole::Replica).inc();
                    return Ok(rows);
                }
                Ok(_) => {}
                Err(e) if e.is_unavailable() => {
                    log::warn!("replica read {} failed, using the primary: {e}", name.as_str());
                    replica.mark_unhealthy();
                }
                Err(e) => return Err(e),
            }
        }
        METRICS.db_read(PoolRole::Primary).inc();
        self.run_pg(name, query).await
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Runs a query only PostgreSQL has (plans, its catalogue) on a pooled
    /// primary connection; on SQLite it is `Unsupported`.
    pub async fn run_pg<T: Rows>(
        &self,
        name: QueryName,
        query: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, StoreError> {
        match &self.pool {
            DbPool::Postgres(pool) => run_on(pool, PoolRole::Primary, &self.settings, name, query).await,
            DbPool::Sqlite(_) => Err(StoreError::Unsupported(name.as_str())),
        }
    }

    /// Idle and in-use connections, for `/metrics` and `/readyz`.
    pub fn pool_state(&self) -> (u32, u32) {
        self.pool.state()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        db_run!(self, QueryName::HealthCheck, async |conn| conn.batch_execute("SELECT 1").await).await
    }

    /// The primary as the readiness check last found it.
    pub fn last_primary(&self) -> Option<String> {
        self.primary_seen.lock().clone()
    }

    /// Which server answers as the primary (`host:port`, or the SQLite
    /// file), and whether it is one: after a failover a pooled connection
    /// may still reach the old primary, now a standby. A change of server
    /// is logged and counted (`switchboard_db_primary_changes_total`).
    pub async fn primary(&self) -> Result<Primary, StoreError> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            server: String,
            #[diesel(sql_type = diesel::sql_types::Bool)]
            standby: bool,
        }
        let primary = match &self.pool {
            DbPool::Postgres(pool) => {
                let row = run_on(pool, PoolRole::Primary, &self.settings, QueryName::PrimaryCheck, async |conn| {
                    use diesel_async::RunQueryDsl;
                    diesel::sql_query(
                        "SELECT coalesce(host(inet_server_addr()), 'socket') || ':' || current_setting('port') AS server, \
                                pg_is_in_recovery() AS standby",
                    )
                    .get_result::<Row>(conn)
                    .await
                    .map(|r| (r.server, r.standby))
                })
                .await?;
                Primary { server: row.0, writable: !row.1 }
            }
            DbPool::Sqlite(_) => {
                self.ping().await?;
                Primary { server: self.settings.database.describe(), writable: true }
            }
        };
        if !primary.writable {
            super::connection::suspect_failover();
        }
        let mut seen = self.primary_seen.lock();
        if primary.writable && seen.as_deref() != Some(primary.server.as_str()) {
            if let Some(before) = seen.replace(primary.server.clone()) {
                log::warn!("database primary is now {} (was {before})", primary.server);
                METRICS.db_primary_changes.inc();
            }
        }
        Ok(primary)
    }
}
