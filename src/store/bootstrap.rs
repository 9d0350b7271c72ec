//! Start-up work on the database: create it if missing, then run the embedded
//! migrations under a PostgreSQL advisory lock so replicas starting together
//! take turns.
//!
//! diesel's migration harness is synchronous, and diesel-async's wrapper blocks
//! on a runtime, which actix's single-threaded runtimes forbid. So this runs on
//! a plain thread with `AsyncConnectionWrapper`'s own runtime.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::redact_url;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Arbitrary but fixed: the key every instance locks while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x5357_4254_4348; // "SWBTCH"

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot connect to PostgreSQL at {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("cannot create database {name:?}: {cause}")]
    Create { name: String, cause: String },
    #[error("migrations failed: {0}")]
    Migrate(String),
    #[error("DATABASE_URL has no database name: {0}")]
    NoDatabaseName(String),
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

/// Creates the database if needed and applies pending migrations. Blocking:
/// call it from a thread that is not running an async runtime.
pub fn prepare_database(url: &str, wait: Duration) -> Result<(), BootstrapError> {
    let (maintenance_url, name) = split_database_url(url)?;
    let deadline = Instant::now() + wait;

    match connect_with_retry(url, deadline) {
        Ok(conn) => return migrate(conn),
        Err(BootstrapError::Connect { cause, .. }) if cause.contains("does not exist") => {}
        Err(other) => return Err(other),
    }
    let mut admin = connect_with_retry(&maintenance_url, deadline)?;
    create_database(&mut admin, &name)?;
    drop(admin);
    migrate(connect_with_retry(url, deadline)?)
}

fn connect_with_retry(url: &str, deadline: Instant) -> Result<SyncConn, BootstrapError> {
    let mut delay = Duration::from_millis(100);
    loop {
        match SyncConn::establish(url) {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                let cause = e.to_string();
                let missing_db = cause.contains("does not exist");
                if missing_db || Instant::now() + delay > deadline {
                    return Err(BootstrapError::Connect { url: redact_url(url), cause: one_line(&cause) });
                }
                log::warn!("PostgreSQL not reachable yet ({}), retrying", one_line(&cause));
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn create_database(admin: &mut SyncConn, name: &str) -> Result<(), BootstrapError> {
    let exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result::<Exists>(admin)
        .map_err(|e| BootstrapError::Create { name: name.into(), cause: e.to_string() })?;
    if exists.exists {
        return Ok(());
    }
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match admin.batch_execute(&format!("CREATE DATABASE {quoted}")) {
        Ok(()) => {
            log::info!("created database {name:?}");
            Ok(())
        }
        // Another instance won the race: fine.
        Err(e) if e.to_string().contains("already exists") || crate::store::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(BootstrapError::Create { name: name.into(), cause: e.to_string() }),
    }
}

fn migrate(mut conn: SyncConn) -> Result<(), BootstrapError> {
    let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})");
    conn.batch_execute(&lock).map_err(|e| BootstrapError::Migrate(e.to_string()))?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|applied| {
            for m in &applied {
                log::info!("applied migration {m}");
            }
        })
        .map_err(|e| BootstrapError::Migrate(e.to_string()));
    let unlock = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})");
    let _ = conn.batch_execute(&unlock);
    result
}

/// `postgres://h/db?x` -> (`postgres://h/postgres?x`, `db`).
fn split_database_url(url: &str) -> Result<(String, String), BootstrapError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let slash = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .ok_or_else(|| BootstrapError::NoDatabaseName(redact_url(url)))?;
    let name = &base[slash + 1..];
    if name.is_empty() {
        return Err(BootstrapError::NoDatabaseName(redact_url(url)));
    }
    let mut maintenance = format!("{}/postgres", &base[..slash]);
    if let Some(q) = query {
        maintenance.push('?');
        maintenance.push_str(q);
    }
    Ok((maintenance, name.to_string()))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let (m, n) = split_database_url("postgres://u@h:5432/chat?sslmode=disable").unwrap();
        assert_eq!(m, "postgres://u@h:5432/postgres?sslmode=disable");
        assert_eq!(n, "chat");
        assert!(split_database_url("postgres://u@h:5432").is_err());
        assert!(split_database_url("postgres://u@h:5432/").is_err());
    }
}
