//! The databases of the tests: this run's PostgreSQL (or a SQLite file),
//! one database per test, and blocking admin work off the test's runtime.

use std::sync::{Arc, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// The PostgreSQL of this run (found or started by `services`).
pub fn pg_base() -> String {
    crate::support::services::services().pg_base.clone()
}

/// host:port of this run's PostgreSQL and Redis (for proxies in front of them).
pub fn pg_addr() -> String {
    pg_base().rsplit('@').next().unwrap_or_default().to_string()
}

pub fn redis_addr() -> String {
    shared_redis().trim_start_matches("redis://").to_string()
}

/// The shared Redis of this run.
pub fn shared_redis() -> String {
    crate::support::services::services().redis_url.clone()
}

fn admin_conn(base: &str) -> SyncConn {
    SyncConn::establish(&format!("{base}/postgres")).unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"))
}

/// Runs blocking database admin work on its own thread (tests run inside an
/// actix runtime, where blocking on another runtime is not allowed).
pub fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("admin thread panicked")
}

/// Which database the servers of a test use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    /// The embedded SQLite file (one instance).
    Sqlite,
}

thread_local! {
    static BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Postgres) };
}

/// Sets the backend for the test running on this thread (`on_both_backends!`).
pub fn use_backend(backend: Backend) {
    BACKEND.with(|b| b.set(backend));
}

/// A database of its own for one test, dropped when the last holder goes:
/// a PostgreSQL database, or a SQLite file under target/tmp/sqlite.
pub struct TestDb {
    pub name: String,
    pub backend: Backend,
    base: String,
}

impl TestDb {
    /// On the backend of the running test (PostgreSQL unless the test runs
    /// on both).
    pub fn new() -> Arc<TestDb> {
        Self::new_on(BACKEND.with(|b| b.get()))
    }

    pub fn new_on(backend: Backend) -> Arc<TestDb> {
        let base = match backend {
            Backend::Postgres => pg_base(),
            Backend::Sqlite => String::new(),
        };
        Self::with_base(backend, base)
    }

    /// A PostgreSQL database on another server (the replica tests' primary).
    pub fn on_server(base: &str) -> Arc<TestDb> {
        Self::with_base(Backend::Postgres, base.to_string())
    }

    fn with_base(backend: Backend, base: String) -> Arc<TestDb> {
        if backend == Backend::Postgres {
            static SWEEP: Once = Once::new();
            let b = base.clone();
            SWEEP.call_once(move || off_runtime(move || sweep_leftovers(&b)));
        }
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let name = format!("sbt_{secs}_{:08x}", rand::random::<u32>());
        Arc::new(TestDb { name, backend, base })
    }

    fn sqlite_path(&self) -> String {
        let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/sqlite");
        let _ = std::fs::create_dir_all(dir);
        format!("{dir}/{}.db", self.name)
    }

    pub fn url(&self) -> String {
        match self.backend {
            Backend::Postgres => format!("{}/{}", self.base, self.name),
            Backend::Sqlite => format!("sqlite://{}", self.sqlite_path()),
        }
    }

    /// Runs SQL against this test's database and returns its one value
    /// (column `v`): `db.scalar::<i64>(…)`, `db.scalar::<String>(…)`.
    pub fn scalar<T: Scalar>(&self, sql: &str) -> T {
        self.query(sql, T::from_row)
    }

    fn query<R, T>(&self, sql: &str, take: fn(R) -> T) -> T
    where
        R: diesel::QueryableByName<diesel::pg::Pg> + diesel::QueryableByName<diesel::sqlite::Sqlite> + 'static,
        T: Send + 'static,
    {
        let (backend, url, path, sql) = (self.backend, self.url(), self.sqlite_path(), sql.to_string());
        off_runtime(move || {
            use diesel::RunQueryDsl;
            let row: R = match backend {
                Backend::Postgres => {
                    let mut conn = SyncConn::establish(&url).expect("connect to test db");
                    diesel::sql_query(sql).get_result(&mut conn).expect("query")
                }
                Backend::Sqlite => {
                    let mut conn = diesel::SqliteConnection::establish(&path).expect("open test db");
                    diesel::sql_query(sql).get_result(&mut conn).expect("query")
                }
            };
            take(row)
        })
    }

    /// Creates this test's database and runs the server's migrations up to,
    /// not including, the one named `name` (its directory name after the
    /// version): a database as an older release left it, for the server to
    /// upgrade.
    pub fn migrate_before(&self, name: &str) {
        use diesel::migration::{MigrationConnection, MigrationSource};
        use diesel_migrations::MigrationHarness;
        fn run_before<DB: diesel::backend::Backend>(
            conn: &mut (impl MigrationHarness<DB> + MigrationConnection),
            source: impl MigrationSource<DB>,
            name: &str,
        ) {
            let mut all = source.migrations().expect("the migrations");
            all.sort_by_key(|m| m.name().version().to_string());
            let at = all
                .iter()
                .position(|m| m.name().to_string().split_once('_').is_some_and(|(_, n)| n == name))
                .expect("a migration by that name");
            conn.setup().expect("the migrations' table");
            for m in &all[..at] {
                conn.run_migration(m.as_ref()).expect("an earlier migration");
            }
        }
        let (backend, base, db, url, path, name) =
            (self.backend, self.base.clone(), self.name.clone(), self.url(), self.sqlite_path(), name.to_string());
        off_runtime(move || match backend {
            Backend::Postgres => {
                admin_conn(&base).batch_execute(&format!("CREATE DATABASE \"{db}\"")).expect("create");
                let mut conn = SyncConn::establish(&url).expect("connect to test db");
                run_before(&mut conn, switchboard::store::bootstrap::MIGRATIONS, &name);
            }
            Backend::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(&path).expect("open test db");
                run_before(&mut conn, switchboard::store::bootstrap::SQLITE_MIGRATIONS, &name);
            }
        })
    }

    /// Runs SQL (several statements allowed) against this test's database.
    pub fn exec(&self, sql: &str) {
        let (backend, url, path, sql) = (self.backend, self.url(), self.sqlite_path(), sql.to_string());
        off_runtime(move || match backend {
            Backend::Postgres => SyncConn::establish(&url).expect("connect to test db").batch_execute(&sql).expect("exec"),
            Backend::Sqlite => {
                diesel::SqliteConnection::establish(&path).expect("open test db").batch_execute(&sql).expect("exec")
            }
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.backend {
            Backend::Postgres => {
                let (base, name) = (self.base.clone(), self.name.clone());
                // The server may be gone (a failover test's lost primary).
                off_runtime(move || {
                    if let Ok(mut conn) = SyncConn::establish(&format!("{base}/postgres")) {
                        let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
                    }
                });
            }
            Backend::Sqlite => {
                let path = self.sqlite_path();
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}

/// Drops test databases left behind by killed runs (older than an hour).
fn sweep_leftovers(base: &str) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    use diesel::RunQueryDsl;
    let mut conn = admin_conn(base);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'sbt\\_%'").load(&mut conn).unwrap_or_default();
    for n in names {
        let ts = n.datname.split('_').nth(1).and_then(|t| t.parse::<u64>().ok()).unwrap_or(now);
        if now.saturating_sub(ts) > 3600 {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", n.datname));
        }
    }
}

/// A type `TestDb::scalar` can read, with the row that carries it.
pub trait Scalar: Send + Sized + 'static {
    type Row: diesel::QueryableByName<diesel::pg::Pg> + diesel::QueryableByName<diesel::sqlite::Sqlite> + 'static;
    fn from_row(row: Self::Row) -> Self;
}

macro_rules! scalar {
    ($t:ty, $sql:ty, $row:ident) => {
        #[derive(diesel::QueryableByName)]
        pub struct $row {
            #[diesel(sql_type = $sql)]
            v: $t,
        }

        impl Scalar for $t {
            type Row = $row;
            fn from_row(row: $row) -> $t {
                row.v
            }
        }
    };
}

scalar!(i64, diesel::sql_types::BigInt, BigIntRow);
scalar!(String, diesel::sql_types::Text, TextRow);
