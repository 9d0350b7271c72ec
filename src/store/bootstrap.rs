//! Start-up work on the database: create it if missing, then run the embedded
//! migrations (`migrations/postgres` or `migrations/sqlite`). On PostgreSQL
//! they run under an advisory lock so replicas starting together take turns;
//! the SQLite file is created with its directory and switched to WAL.
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

use std::path::Path;

use diesel::sqlite::SqliteConnection;

use super::connection::sqlite_pragmas;
use crate::config::{redact_url, Database};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Arbitrary but fixed: the key every instance locks while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x5357_4254_4348; // "SWBTCH"

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot connect to PostgreSQL at {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("cannot open the database file {path}: {cause}")]
    Open { path: String, cause: String },
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
pub fn prepare_database(database: &Database, wait: Duration) -> Result<(), BootstrapError> {
    match database {
        Database::Postgres { url } => prepare_postgres(url, wait),
        Database::Sqlite { path } => prepare_sqlite(path),
    }
}

fn prepare_sqlite(path: &Path) -> Result<(), BootstrapError> {
    let open_error = |cause: String| BootstrapError::Open { path: path.display().to_string(), cause };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut conn = SqliteConnection::establish(&path.to_string_lossy()).map_err(|e| open_error(e.to_string()))?;
    // WAL is a property of the file: set once, kept across restarts.
    conn.batch_execute(&format!("PRAGMA journal_mode = WAL; {}", sqlite_pragmas(Duration::from_secs(5))))
        .map_err(|e| open_error(e.to_string()))?;
    let applied = conn.run_pending_migrations(SQLITE_MIGRATIONS).map_err(|e| BootstrapError::Migrate(e.to_string()))?;
    for m in &applied {
        log::info!("applied migration {m}");
    }
    log::info!(
        "embedded SQLite database at {} (one instance; PostgreSQL-only features are off: \
         table partitions, the read replica, query plans, several instances)",
        path.display()
    );
    Ok(())
}

fn prepare_postgres(url: &str, wait: Duration) -> Result<(), BootstrapError> {
    let (maintenance_url, name) = split_database_url(url)?;
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(100);
    loop {
        let cause = match SyncConn::establish(url) {
            Ok(conn) => return migrate(conn),
            Err(e) => connect_cause(url, &e),
        };
        // Whether the database is missing is the server catalogue's answer,
        // asked on the maintenance database (the error does not carry its
        // SQLSTATE through diesel-async).
        if let Ok(mut admin) = SyncConn::establish(&maintenance_url) {
            if !database_exists(&mut admin, &name)? {
                create_database(&mut admin, &name)?;
                continue;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BootstrapError::Connect { url: redact_url(url), cause });
        }
        log::warn!("PostgreSQL not reachable yet ({cause}), retrying");
        // The last try lands on the deadline: the whole wait is used.
        std::thread::sleep(delay.min(left));
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The connect error, with the socket error diesel-async drops (it keeps
/// only "error connecting to server"): the socket is asked directly.
fn connect_cause(url: &str, e: &diesel::ConnectionError) -> String {
    let cause = error_chain(e);
    match tcp_cause(url) {
        Some(why) => format!("{cause}: {why}"),
        None => cause,
    }
}

fn database_exists(admin: &mut SyncConn, name: &str) -> Result<bool, BootstrapError> {
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<Text, _>(name)
        .get_result::<Exists>(admin)
        .map(|row| row.exists)
        .map_err(|e| BootstrapError::Create { name: name.into(), cause: e.to_string() })
}

fn create_database(admin: &mut SyncConn, name: &str) -> Result<(), BootstrapError> {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match admin.batch_execute(&format!("CREATE DATABASE {quoted}")) {
        Ok(()) => {
            log::info!("created database {name:?}");
            Ok(())
        }
        // Another instance may have won the race: then it exists now.
        Err(_) if database_exists(admin, name)? => Ok(()),
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

/// Why a TCP connection to the URL's host(s) fails, e.g. "127.0.0.1:5432:
/// Connection refused (os error 111)"; None when every host accepts (the
/// failure is then above TCP: authentication, TLS, the database itself).
fn tcp_cause(url: &str) -> Option<String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut problems = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let target =
            if host.starts_with('[') || host.matches(':').count() == 1 { host.to_string() } else { format!("{host}:5432") };
        let result = target.to_socket_addrs().map_err(|e| e.to_string()).and_then(|mut addrs| {
            let addr = addrs.next().ok_or_else(|| "no address".to_string())?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map(drop).map_err(|e| e.to_string())
        });
        if let Err(why) = result {
            problems.push(format!("{target}: {why}"));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The error and every cause under it ("error connecting to server:
/// Connection refused (os error 111)"), on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    one_line(&text)
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

    #[test]
    fn a_refused_connection_names_its_cause() {
        let why = tcp_cause("postgres://u:secret@127.0.0.1:1/chat?x=y").expect("nothing listens on port 1");
        assert!(why.starts_with("127.0.0.1:1: ") && why.contains("refused"), "{why}");
        assert!(!why.contains("secret"));
    }
}
