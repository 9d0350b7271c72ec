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
            "primary",
            $store.slow_query(),
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
                        "primary",
                        store.slow_query(),
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

pub mod append;
pub mod bootstrap;
pub mod cleanup;
pub mod connection;
#[macro_use]
pub mod messages;
#[macro_use]
pub mod rooms;
pub mod models;
pub mod plans;
pub mod pool;
pub mod replica;
pub mod schema;
pub mod sql_types;
pub mod users;
pub mod writer;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use connection::DbPool;
pub use pool::Store;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or the pool is exhausted: 503, retryable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique key said no: 409 with this text.
    #[error("{0}")]
    Conflict(String),
    #[error("query failed: {0}")]
    Query(DieselError),
    /// A PostgreSQL-only feature asked of the embedded SQLite database.
    #[error("{0} needs PostgreSQL")]
    Unsupported(&'static str),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        if is_connection_error(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Query(e)
        }
    }
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for StoreError {
    fn from(e: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Errors after which the connection (or the server behind it) is gone, as
/// opposed to errors in the statement itself.
pub fn is_connection_error(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        // diesel-async's kind for client-side failures ("connection closed").
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => true,
        DieselError::BrokenTransactionManager => true,
        // The server is a standby now (after a failover): reconnect, and
        // `target_session_attrs=read-write` finds the new primary.
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let m = info.message();
            m.contains("connection")
                || m.contains("terminating")
                || m.contains("shutting down")
                || m.contains("canceling statement due to statement timeout")
                || m.contains("the database system is")
        }
        _ => false,
    }
}

/// True when the statement failed on this unique constraint or index.
pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}
