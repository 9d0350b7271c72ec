//! Connections to the database, PostgreSQL or the embedded SQLite file:
//! how each is set up (`ConnectionSettings`), the bb8 pool of them
//! (`DbPool`, one variant per backend), and the one instrumented path every
//! query takes (`run_on`): a named query, its duration in
//! `switchboard_db_query_duration_seconds{query}`, errors counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sqlite::SqliteConnection;
use diesel::ConnectionError;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError, PoolableConnection, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::StoreError;
use crate::config::{Database, DatabaseConfig};
use crate::metrics::{PoolRole, QueryName, METRICS};

pub type PgPool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;
/// diesel's synchronous SQLite connection, run on tokio's blocking pool.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;
/// The writer's SQLite connection, run on the writer's own thread.
pub type SqliteWriterConn = SyncConnectionWrapper<SqliteConnection, InPlace>;

/// Runs each call on the calling thread. Only for a caller with a thread
/// of its own (the writer's arbiter, where nothing else waits): a commit
/// then costs no hand-over to tokio's blocking pool and back, two thread
/// wake-ups per commit (docs/performance.md, "The embedded writer commits
/// on its own thread").
pub struct InPlace;

impl SpawnBlocking for InPlace {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        std::future::ready(Ok(task())).boxed()
    }

    fn get_runtime() -> Self {
        InPlace
    }
}

/// The `db.system.name` of a connection type, for spans.
pub trait DbSystem {
    const SYSTEM: &'static str;

    /// Whether the connection still answers. Asked after an error whose
    /// kind does not tell (diesel-async passes most SQLSTATEs on as
    /// `Unknown`): "terminating connection", "the database system is
    /// shutting down" and the like leave a connection that no longer does.
    fn answers(&mut self) -> BoxFuture<'_, bool>;
}

impl DbSystem for AsyncPgConnection {
    const SYSTEM: &'static str = "postgresql";

    fn answers(&mut self) -> BoxFuture<'_, bool> {
        async move {
            !self.is_broken()
                && matches!(tokio::time::timeout(Duration::from_secs(1), self.batch_execute("SELECT 1")).await, Ok(Ok(())))
        }
        .boxed()
    }
}

impl<S: SpawnBlocking + Send> DbSystem for SyncConnectionWrapper<SqliteConnection, S> {
    const SYSTEM: &'static str = "sqlite";

    /// A file has no server to lose.
    fn answers(&mut self) -> BoxFuture<'_, bool> {
        async { true }.boxed()
    }
}
pub type SqlitePool = bb8::Pool<AsyncDieselConnectionManager<SqliteConn>>;

/// The primary database's pool.
#[derive(Clone)]
pub enum DbPool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl DbPool {
    /// Idle and in-use connections.
    pub fn state(&self) -> (u32, u32) {
        let s = match self {
            DbPool::Postgres(p) => p.state(),
            DbPool::Sqlite(p) => p.state(),
        };
        (s.idle_connections, s.connections.saturating_sub(s.idle_connections))
    }
}

/// The embedded database's checkpointer asking the writer to run one
/// checkpoint itself between batches (`store::checkpointer`).
#[derive(Debug, Default)]
pub struct WalCatchUp(std::sync::atomic::AtomicBool);

impl WalCatchUp {
    pub fn ask(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True once after each request.
    pub fn take(&self) -> bool {
        self.0.swap(false, std::sync::atomic::Ordering::Relaxed)
    }
}

/// What every new connection is told before first use.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub database: Database,
    pub statement_timeout: Duration,
    pub application_name: String,
    /// Queries at least this slow are logged with their name and row count.
    pub slow_query: Duration,
    /// The embedded database's checkpointer asks the writer through this.
    pub wal_catch_up: Arc<WalCatchUp>,
}

impl ConnectionSettings {
    pub fn new(config: &DatabaseConfig, instance_id: &str, slow_query: Duration) -> Self {
        ConnectionSettings {
            database: config.kind.clone(),
            statement_timeout: config.statement_timeout,
            application_name: format!("switchboard {instance_id}"),
            slow_query,
            wal_catch_up: Arc::default(),
        }
    }

    /// An embedded database file with the defaults, for tests and the
    /// instruction benches that open the writer's connection as it is opened.
    pub fn embedded(path: std::path::PathBuf) -> Self {
        ConnectionSettings {
            database: Database::Sqlite { path },
            statement_timeout: Duration::from_secs(5),
            application_name: String::new(),
            slow_query: Duration::from_secs(1),
            wal_catch_up: Arc::default(),
        }
    }

    /// The PostgreSQL URL (empty for SQLite, whose connections never use it).
    pub fn url(&self) -> &str {
        match &self.database {
            Database::Postgres { url } => url,
            Database::Sqlite { .. } => "",
        }
    }

    /// Opens one PostgreSQL connection with the session settings applied.
    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let mut conn = AsyncPgConnection::establish(&with_connect_timeout(self.url())).await?;
        let app = self.application_name.replace('\'', "");
        // No JIT: every query here is short, but estimates over partitions
        // can pass jit_above_cost, and compiling then costs far more than
        // running (the room list's unread counts over 10M messages: 701 ms
        // of JIT for 35 ms of execution).
        let setup = format!(
            "SET statement_timeout = {}; SET application_name = '{app}'; SET idle_in_transaction_session_timeout = 60000; \
             SET jit = off",
            self.statement_timeout.as_millis()
        );
        conn.batch_execute(&setup).await.map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    }

    /// The writer's connection: its statements have one shape whatever the
    /// batch, so one generic plan serves them all; a custom plan per call
    /// (PostgreSQL's choice when the array parameters make the generic
    /// plan look dearer) would be planned anew on every commit.
    pub async fn connect_writer(&self) -> Result<AsyncPgConnection, ConnectionError> {
        let mut conn = self.connect().await?;
        conn.batch_execute("SET plan_cache_mode = force_generic_plan")
            .await
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    }

    /// Opens one SQLite connection. `synchronous = FULL` in WAL mode syncs
    /// the log on every commit, so an ack still means the message is on
    /// disk; a writer waits for the lock up to the statement timeout instead
    /// of failing at once.
    pub async fn connect_sqlite<S: SpawnBlocking + Send + 'static>(
        &self,
    ) -> Result<SyncConnectionWrapper<SqliteConnection, S>, ConnectionError> {
        let path = self.sqlite_path().to_string_lossy().into_owned();
        let mut conn = SyncConnectionWrapper::<SqliteConnection, S>::establish(&path).await?;
        conn.batch_execute(&sqlite_pragmas(self.statement_timeout))
            .await
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        Ok(conn)
    }

    fn sqlite_path(&self) -> PathBuf {
        match &self.database {
            Database::Sqlite { path } => path.clone(),
            Database::Postgres { .. } => PathBuf::new(),
        }
    }
}

/// A host that does not answer at all (its machine is gone) must not hold
/// up a connect: each host of a multi-host URL gets 2 s unless the URL says
/// otherwise, then the next is tried.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&connect_timeout=2")
    } else {
        format!("{url}?connect_timeout=2")
    }
}

/// Per-connection SQLite settings (WAL itself is set once, in the file).
/// `wal_autocheckpoint = 0`: no commit checkpoints; `store::checkpointer`
/// does, in the background. `journal_size_limit`: a WAL started over is
/// trimmed to 64 MiB.
pub fn sqlite_pragmas(busy: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864",
        busy.as_millis().max(1000)
    )
}

/// The one instrumented path: pool wait, query time per name, errors, and a
/// warning for slow queries with their row count.
pub async fn run_on<C, T: Rows>(
    pool: &bb8::Pool<AsyncDieselConnectionManager<C>>,
    pool_name: PoolRole,
    settings: &ConnectionSettings,
    query_name: QueryName,
    query: impl AsyncFnOnce(&mut C) -> diesel::QueryResult<T>,
) -> Result<T, StoreError>
where
    C: PoolableConnection + DbSystem + 'static,
    AsyncDieselConnectionManager<C>: bb8::ManageConnection<Connection = C, Error = PoolError>,
{
    let waited = Instant::now();
    let checkout = pool.get().await;
    METRICS.pool_wait(pool_name).observe(waited.elapsed().as_secs_f64());
    let mut conn = checkout?;
    let start = Instant::now();
    let result = query(&mut conn).await;
    let elapsed = start.elapsed();
    let failure = match &result {
        Ok(_) => None,
        Err(e) => Some(super::Failure::of(e, &mut *conn, elapsed >= settings.statement_timeout).await),
    };
    if failure == Some(super::Failure::ConnectionLost) {
        suspect_failover();
    }
    let name = query_name.as_str();
    crate::telemetry::request::child(
        name,
        opentelemetry::trace::SpanKind::Client,
        start,
        start + elapsed,
        vec![
            opentelemetry::KeyValue::new("db.system.name", C::SYSTEM),
            opentelemetry::KeyValue::new("db.operation.name", name),
            opentelemetry::KeyValue::new("switchboard.pool", pool_name.as_str()),
        ],
        result.is_err(),
    );
    if METRICS.observe_query(query_name, elapsed, result.is_ok(), settings.slow_query) {
        let rows = result.as_ref().map(Rows::rows).unwrap_or(0);
        let trace = crate::telemetry::request::log_suffix();
        log::warn!("slow query {name} on {}: {:.1} ms, {rows} rows{trace}", pool_name.as_str(), elapsed.as_secs_f64() * 1000.0);
    }
    result.map_err(|e| StoreError::failed(e, failure.unwrap_or(super::Failure::Statement)))
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

/// An outcome with a refusal (edits and deletes): one row when it went through.
impl<T, E> Rows for Result<T, E> {
    fn rows(&self) -> usize {
        usize::from(self.is_ok())
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

impl<A, B, C, D, E, F> Rows for (A, B, C, D, E, F) {
    fn rows(&self) -> usize {
        1
    }
}

impl<A, B, C, D, E, F, G> Rows for (A, B, C, D, E, F, G) {
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
/// check only asks whether the connection is still usable (after a
/// PostgreSQL restart every old connection is closed, so it is dropped and a
/// fresh one made instead of failing a request).
pub fn build_pool(settings: &Arc<ConnectionSettings>, config: &DatabaseConfig) -> DbPool {
    match settings.database {
        Database::Postgres { .. } => DbPool::Postgres(build_pg_pool(settings, config)),
        Database::Sqlite { .. } => {
            let setup = settings.clone();
            let manager_config = manager_config(
                move || {
                    let s = setup.clone();
                    async move { s.connect_sqlite().await }.boxed()
                },
                |conn: &mut SqliteConn| {
                    let broken = conn.is_broken();
                    async move {
                        if broken {
                            Err(diesel::result::Error::BrokenTransactionManager)
                        } else {
                            Ok(())
                        }
                    }
                    .boxed()
                },
            );
            let manager = AsyncDieselConnectionManager::new_with_config(String::new(), manager_config);
            DbPool::Sqlite(pool_builder(config).build_unchecked(manager))
        }
    }
}

/// A PostgreSQL pool (the primary's, or the read replica's).
pub fn build_pg_pool(settings: &Arc<ConnectionSettings>, config: &DatabaseConfig) -> PgPool {
    let setup = settings.clone();
    let manager_config = manager_config(
        move || {
            let s = setup.clone();
            async move { s.connect().await }.boxed()
        },
        recycle_pg,
    );
    let manager = AsyncDieselConnectionManager::new_with_config(settings.url().to_string(), manager_config);
    pool_builder(config).build_unchecked(manager)
}

fn manager_config<C: PoolableConnection + 'static>(
    connect: impl Fn() -> BoxFuture<'static, Result<C, ConnectionError>> + Send + Sync + 'static,
    recycle: for<'c> fn(&'c mut C) -> BoxFuture<'c, diesel::QueryResult<()>>,
) -> ManagerConfig<C> {
    let mut manager_config = ManagerConfig::<C>::default();
    manager_config.custom_setup = Box::new(move |_url: &str| connect());
    manager_config.recycling_method = RecyclingMethod::CustomFunction(Box::new(recycle));
    manager_config
}

/// Until this instant (Unix ms) pooled PostgreSQL connections are checked
/// on checkout for still reaching the primary: set for a while after a
/// connection error or a write refused as read-only, which is what a
/// failover looks like from here. Otherwise checkout costs no round trip.
static FAILOVER_SUSPECTED_UNTIL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A query failed in a way a failover would explain.
pub fn suspect_failover() {
    FAILOVER_SUSPECTED_UNTIL.store(now_unix_ms() + 30_000, std::sync::atomic::Ordering::Relaxed);
}

fn failover_suspected() -> bool {
    now_unix_ms() < FAILOVER_SUSPECTED_UNTIL.load(std::sync::atomic::Ordering::Relaxed)
}

/// Drops a broken connection, and while a failover is suspected one that
/// reaches a standby (the old primary, demoted): a new connection's
/// `target_session_attrs=read-write` then finds the new primary.
fn recycle_pg(conn: &mut AsyncPgConnection) -> BoxFuture<'_, diesel::QueryResult<()>> {
    async move {
        if conn.is_broken() {
            return Err(diesel::result::Error::BrokenTransactionManager);
        }
        if failover_suspected() {
            #[derive(diesel::QueryableByName)]
            struct Standby {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                standby: bool,
            }
            use diesel_async::RunQueryDsl;
            let row = diesel::sql_query("SELECT pg_is_in_recovery() AS standby").get_result::<Standby>(conn).await?;
            if row.standby {
                return Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ReadOnlyTransaction,
                    Box::new("the server is a standby now".to_string()),
                ));
            }
        }
        Ok(())
    }
    .boxed()
}

fn pool_builder<C>(config: &DatabaseConfig) -> bb8::Builder<AsyncDieselConnectionManager<C>>
where
    C: PoolableConnection + 'static,
    AsyncDieselConnectionManager<C>: bb8::ManageConnection<Connection = C, Error = PoolError>,
{
    bb8::Pool::builder()
        .max_size(config.pool_max)
        .min_idle(Some(config.pool_min_idle))
        .connection_timeout(config.pool_timeout)
        .idle_timeout(Some(config.pool_idle_timeout))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .test_on_check_out(true)
        .retry_connection(false)
}

#[cfg(test)]
mod tests {
    use diesel::{Connection, QueryableByName, RunQueryDsl};

    /// `.cargo/config.toml` builds the bundled SQLite with the query planner
    /// stability guarantee. Without it, every statement that binds a LIMIT
    /// or a client_msg_id is parsed and planned again each time it runs.
    #[test]
    fn the_embedded_sqlite_plans_a_statement_once() {
        #[derive(QueryableByName)]
        struct Opt {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }
        let mut c = diesel::sqlite::SqliteConnection::establish(":memory:").expect("an in-memory SQLite");
        let opts: Vec<Opt> = diesel::sql_query("PRAGMA compile_options").load(&mut c).expect("its compile options");
        assert!(
            opts.iter().any(|o| o.compile_options == "ENABLE_QPSG"),
            "SQLite was built without SQLITE_ENABLE_QPSG (LIBSQLITE3_FLAGS in .cargo/config.toml)"
        );
    }
}
