//! Persistence: the database pool (PostgreSQL, or the embedded SQLite file),
//! migrations, queries and the batching writer.
//!
//! Handlers call the query modules through `Store`; sends go through
//! `writer::Writer`, the only code that allocates seqs.

/// One named query on the SQLite pool (the one database: always "primary").
macro_rules! sqlite_run {
    ($store:ident, $pool:ident, $name:expr, async |$conn:ident| $body:expr) => {
        $crate::store::connection::run_on(
            $pool,
            $crate::metrics::PoolRole::Primary,
            $store.settings(),
            $name,
            async |$conn: &mut $crate::store::connection::SqliteConn| $body,
        )
        .await
    };
}

/// Runs one named query on the primary. The body is written once and
/// compiled for each backend (`conn` is a PostgreSQL or a SQLite connection);
/// pool exhaustion or an unreachable database is `StoreError::Unavailable`
/// after the pool timeout.
macro_rules! db_run {
    ($store:expr, $name:expr, async |$conn:ident| $body:expr) => {{
        async {
            let store: &$crate::store::Store = $store;
            match store.pool() {
                $crate::store::DbPool::Postgres(pool) => {
                    $crate::store::connection::run_on(
                        pool,
                        $crate::metrics::PoolRole::Primary,
                        store.settings(),
                        $name,
                        async |$conn: &mut ::diesel_async::AsyncPgConnection| $body,
                    )
                    .await
                }
                $crate::store::DbPool::Sqlite(pool) => sqlite_run!(store, pool, $name, async |$conn| $body),
            }
        }
    }};
}

/// A read the PostgreSQL read replica may serve (see `Store::read_pg`); on
/// SQLite, a plain `db_run!`.
macro_rules! db_read {
    ($store:expr, $name:expr, $may_use_replica:expr, $accept:expr, async |$conn:ident| $body:expr) => {{
        async {
            let store: &$crate::store::Store = $store;
            match store.pool() {
                $crate::store::DbPool::Postgres(_) => {
                    store
                        .read_pg($name, $may_use_replica, $accept, async |$conn: &mut ::diesel_async::AsyncPgConnection| $body)
                        .await
                }
                $crate::store::DbPool::Sqlite(pool) => sqlite_run!(store, pool, $name, async |$conn| $body),
            }
        }
    }};
}

/// A hand-written statement (a `QueryFragment` over a struct) whose text
/// is fixed: diesel keeps it prepared per connection, keyed by its text
/// (`sql_query`, and diesel's own `UPDATE`, are never kept).
macro_rules! cached_statement {
    ($($t:ty),*) => {$(
        impl diesel::query_builder::QueryId for $t {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl diesel::query_builder::Query for $t {
            type SqlType = diesel::sql_types::Untyped;
        }
    )*};
}

pub mod amend;
pub mod append;
pub mod bootstrap;
pub mod checkpointer;
pub mod cleanup;
pub mod connection;
#[macro_use]
pub mod messages;
pub mod moderation;
#[macro_use]
pub mod rooms;
pub mod models;
pub mod plans;
pub mod pool;
pub mod reads;
pub mod replica;
pub mod schema;
/// The column types of the schema live beside the values they carry.
pub use crate::domain::sql_types;
pub mod users;
pub mod writer;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::error::ApiError;

pub use connection::DbPool;
pub use pool::Store;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection within the pool's timeout (the pool is exhausted or
    /// the database unreachable): 503, retryable.
    #[error("database unavailable: {0}")]
    Pool(#[from] bb8::RunError<diesel_async::pooled_connection::PoolError>),
    /// The connection, or the server behind it, went away under the
    /// statement (or became a standby): 503, retryable.
    #[error("database connection lost: {0}")]
    ConnectionLost(#[source] DieselError),
    /// The statement ran out its statement timeout: 503, retryable.
    #[error("database statement timed out: {0}")]
    TimedOut(#[source] DieselError),
    /// A unique key said no: 409 with this text.
    #[error("{0}")]
    Conflict(String),
    #[error("query failed: {0}")]
    Query(#[source] DieselError),
    /// A PostgreSQL-only feature asked of the embedded SQLite database.
    #[error("{0} needs PostgreSQL")]
    Unsupported(&'static str),
    /// The failure of a load another caller ran for the same cache key.
    #[error("{0}")]
    Shared(std::sync::Arc<StoreError>),
    /// EXPLAIN answered JSON that does not parse (plans only).
    #[error("unreadable plan: {0}")]
    Plan(#[from] serde_json::Error),
    /// A row this statement wrote was not there to read back.
    #[error("the {0} vanished after it was written")]
    Vanished(&'static str),
}

impl StoreError {
    /// A failed statement, as `Failure` found it.
    pub fn failed(e: DieselError, failure: Failure) -> Self {
        match failure {
            Failure::Statement => StoreError::Query(e),
            Failure::ConnectionLost => StoreError::ConnectionLost(e),
            Failure::TimedOut => StoreError::TimedOut(e),
        }
    }

    /// Whether trying again later may succeed: 503 `unavailable`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) | StoreError::ConnectionLost(_) | StoreError::TimedOut(_) => true,
            StoreError::Shared(inner) => inner.is_unavailable(),
            _ => false,
        }
    }
}

/// An error outside `run_on`, where no connection can be asked: by its kind.
impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        let failure = Failure::by_kind(&e).unwrap_or(Failure::Statement);
        StoreError::failed(e, failure)
    }
}

/// The contract's answer to a store failure.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            log::warn!("store unavailable: {e}");
            return ApiError::Unavailable("the database is unavailable, try again".into());
        }
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::Unsupported(what) => {
                ApiError::NotFound(format!("{what} needs PostgreSQL; this instance runs on the embedded SQLite database"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// What a failed statement says about where it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The statement itself failed (a constraint, bad input): the
    /// connection is fine.
    Statement,
    /// The connection, or the server behind it, is gone, or is a standby
    /// now (after a failover: reconnecting with
    /// `target_session_attrs=read-write` finds the new primary).
    ConnectionLost,
    /// The statement ran out its statement timeout.
    TimedOut,
}

impl Failure {
    /// By the error's kind alone; `None` when the kind does not tell.
    pub fn by_kind(e: &DieselError) -> Option<Failure> {
        match e {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ReadOnlyTransaction,
                _,
            )
            | DieselError::BrokenTransactionManager => Some(Failure::ConnectionLost),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, _) => None,
            _ => Some(Failure::Statement),
        }
    }

    /// By kind, else by asking the connection whether it still answers;
    /// `ran_out_of_time` when the statement took its whole timeout.
    pub async fn of<C: connection::DbSystem>(e: &DieselError, conn: &mut C, ran_out_of_time: bool) -> Failure {
        match Failure::by_kind(e) {
            Some(failure) => failure,
            None if !conn.answers().await => Failure::ConnectionLost,
            None if ran_out_of_time => Failure::TimedOut,
            None => Failure::Statement,
        }
    }
}

/// True when the statement failed on this unique constraint or index.
pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}
