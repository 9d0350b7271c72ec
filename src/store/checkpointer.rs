//! The embedded database's WAL checkpoints, off the commit path.
//!
//! SQLite checkpoints by itself when a commit finds the WAL past 1,000
//! pages: that commit then copies the pages into the database file and
//! syncs it, and every sender in its batch (and behind it) waits. Here
//! connections never checkpoint (`wal_autocheckpoint = 0`, set with the
//! other pragmas); this task does, in the background, every `EVERY`:
//! PASSIVE, which never waits for (nor blocks) the writer or readers. The
//! WAL stays bounded: a checkpoint that copied everything lets the next
//! commit start the file over, and `journal_size_limit` trims it then;
//! past `HARD_LIMIT_PAGES` not yet copied (readers holding old snapshots),
//! it escalates to RESTART, which waits for them.
//!
//! Commits still sync the WAL (`synchronous = FULL`): an ack still means the
//! message is on disk.

use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::connection::{ConnectionSettings, SqliteConn};
use crate::metrics::METRICS;

/// How often the checkpointer looks at the WAL.
const EVERY: Duration = Duration::from_millis(500);
/// Pages (4 KiB) left uncopied past which a checkpoint waits for readers.
const HARD_LIMIT_PAGES: i64 = 16_384;

#[derive(QueryableByName, Debug)]
struct Checkpoint {
    /// 1 when it could not finish (a reader or writer was in the way).
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    /// Frames in the WAL.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    /// Frames copied into the database file.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

/// Runs forever (supervised): checkpoints the embedded database's WAL.
pub async fn run(settings: ConnectionSettings) {
    let mut conn: SqliteConn = match settings.connect_sqlite().await {
        Ok(conn) => conn,
        Err(e) => {
            log::warn!("WAL checkpointer: cannot open the database: {e}");
            actix::clock::sleep(EVERY * 10).await;
            return;
        }
    };
    let mut escalate = false;
    loop {
        actix::clock::sleep(EVERY).await;
        crate::supervisor::checkpoint(crate::supervisor::Task::Checkpointer);
        let mode = if escalate { "RESTART" } else { "PASSIVE" };
        let started = std::time::Instant::now();
        let done = diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")).get_result::<Checkpoint>(&mut conn).await;
        METRICS.sqlite_checkpoint.observe(started.elapsed().as_secs_f64());
        match done {
            Ok(c) => {
                let behind = i64::from(c.log) - i64::from(c.checkpointed);
                METRICS.sqlite_wal_pages.set(i64::from(c.log.max(0)));
                escalate = behind > HARD_LIMIT_PAGES;
                if c.busy != 0 && escalate {
                    log::warn!(
                        "WAL checkpointer: {behind} pages not yet copied (readers hold old snapshots); waiting for them next"
                    );
                }
            }
            Err(e) => {
                log::warn!("WAL checkpointer: {mode} checkpoint failed: {e}");
                return;
            }
        }
    }
}
