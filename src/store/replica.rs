//! The optional read replica (`DATABASE_REPLICA_URL`). History and room-list
//! reads go to it while it is reachable and within `REPLICA_MAX_LAG_MS` of
//! the primary; otherwise, and whenever a replica read fails, they go to the
//! primary. A monitor measures the lag every 500 ms.
//!
//! Read-your-writes: history pages are checked against the room's `last_seq`
//! read from the primary. Seqs are gap-free, so a page from the replica that
//! ends short of where the primary says it must end is stale and is read
//! again from the primary: a client never misses a message acked before its
//! request. Room lists go to the primary for a while after the user's own
//! membership changes on this instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Double, Nullable};
use diesel::QueryableByName;
use parking_lot::Mutex;

use super::connection::{build_pg_pool, ConnectionSettings, PgPool};
use super::StoreError;
use crate::config::DatabaseConfig;
use crate::domain::UserId;
use crate::metrics::METRICS;

pub struct Replica {
    pub(super) pool: PgPool,
    healthy: AtomicBool,
    max_lag: Duration,
    /// Users whose membership changed here recently, and when.
    recent_writers: Mutex<HashMap<UserId, Instant>>,
}

#[derive(QueryableByName)]
struct Lsn {
    #[diesel(sql_type = Nullable<BigInt>)]
    lsn: Option<i64>,
}

#[derive(QueryableByName)]
struct ReplayState {
    #[diesel(sql_type = Nullable<BigInt>)]
    replayed: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    age_seconds: Option<f64>,
}

impl Replica {
    pub fn new(url: &str, config: &DatabaseConfig, primary: &ConnectionSettings) -> Arc<Replica> {
        let settings = Arc::new(ConnectionSettings {
            database: crate::config::Database::Postgres { url: url.to_string() },
            application_name: format!("{} (replica reads)", primary.application_name),
            ..primary.clone()
        });
        Arc::new(Replica {
            pool: build_pg_pool(&settings, config),
            healthy: AtomicBool::new(false),
            max_lag: config.replica_max_lag,
            recent_writers: Mutex::new(HashMap::new()),
        })
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(super) fn mark_unhealthy(&self) {
        self.healthy.store(false, Ordering::Release);
    }

    pub fn note_write(&self, user: UserId) {
        let mut map = self.recent_writers.lock();
        map.insert(user, Instant::now());
        if map.len() > 10_000 {
            let horizon = self.write_horizon();
            map.retain(|_, t| t.elapsed() < horizon);
        }
    }

    /// True when the user changed memberships too recently for the replica.
    pub fn wrote_recently(&self, user: UserId) -> bool {
        self.recent_writers.lock().get(&user).is_some_and(|t| t.elapsed() < self.write_horizon())
    }

    fn write_horizon(&self) -> Duration {
        self.max_lag * 2 + Duration::from_secs(1)
    }

    /// Measures the lag forever: the primary's flushed WAL position (all a
    /// replica can have received) versus what the replica has replayed, and
    /// the age of the last replayed commit.
    pub async fn monitor(self: Arc<Self>, primary: PgPool) {
        let mut tick = actix::clock::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            crate::supervisor::checkpoint(crate::supervisor::Task::ReplicaMonitor);
            let healthy = match tokio::time::timeout(Duration::from_secs(2), self.measure(&primary)).await {
                Ok(Ok(Some(lag))) => {
                    METRICS.db_replica_lag.set(lag.as_secs_f64());
                    lag <= self.max_lag
                }
                Ok(Ok(None)) => {
                    log::debug!("replica check: not a streaming replica");
                    METRICS.db_replica_lag.set(-1.0);
                    false
                }
                Ok(Err(e)) => {
                    log::debug!("replica check failed: {e}");
                    METRICS.db_replica_lag.set(-1.0);
                    false
                }
                Err(_) => {
                    METRICS.db_replica_lag.set(-1.0);
                    false
                }
            };
            if healthy != self.is_healthy() {
                log::info!("read replica {}", if healthy { "in use" } else { "bypassed: unreachable or lagging" });
            }
            self.healthy.store(healthy, Ordering::Release);
        }
    }

    /// The replica's lag; `None` when it is not a streaming replica.
    async fn measure(&self, primary: &PgPool) -> Result<Option<Duration>, StoreError> {
        use diesel_async::RunQueryDsl;
        let mut p = primary.get().await?;
        let current: Lsn =
            diesel::sql_query("SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint AS lsn").get_result(&mut *p).await?;
        drop(p);
        let mut r = self.pool.get().await?;
        let state: ReplayState = diesel::sql_query(
            "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint AS replayed, \
                    EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS age_seconds",
        )
        .get_result(&mut *r)
        .await?;
        let (Some(primary_at), Some(replayed)) = (current.lsn, state.replayed) else {
            return Ok(None);
        };
        if replayed >= primary_at {
            Ok(Some(Duration::ZERO))
        } else {
            // Behind: as old as the last commit it has replayed.
            Ok(Some(lag_of(state.age_seconds)))
        }
    }

    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.idle_connections, s.connections.saturating_sub(s.idle_connections))
    }
}

/// The lag of a replica that is behind, from the age of its last replayed
/// commit. No commit replayed yet (NULL), a NaN or an age beyond what a
/// `Duration` holds all mean "unknown, assume the worst": never a panic.
fn lag_of(age_seconds: Option<f64>) -> Duration {
    match age_seconds {
        Some(age) if !age.is_nan() => Duration::try_from_secs_f64(age.max(0.0)).unwrap_or(Duration::MAX),
        _ => Duration::MAX,
    }
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    #[test]
    fn any_age_postgres_reports_is_a_lag_without_panicking() {
        assert_eq!(lag_of(Some(1.5)), Duration::from_millis(1500));
        assert_eq!(lag_of(Some(-3.0)), Duration::ZERO, "clock skew between the hosts");
        for unknown in [None, Some(f64::NAN), Some(f64::INFINITY), Some(f64::MAX), Some(1e300)] {
            assert_eq!(lag_of(unknown), Duration::MAX, "{unknown:?}");
        }
    }
}
