//! The embedded database's WAL checkpoints, off the commit path.
//!
//! SQLite checkpoints by itself when a commit finds the WAL past 1,000
//! pages: that commit then copies the pages into the database file and
//! syncs it, and every sender in its batch (and behind it) waits. Here
//! connections never checkpoint (`wal_autocheckpoint = 0`, set with the
//! other pragmas); this task does, in the background, every `EVERY`:
//! PASSIVE, which never waits for (nor blocks) the writer or readers.
//!
//! A PASSIVE checkpoint alone did not bound the WAL under steady writes:
//! the file starts over only when a checkpoint has copied every frame, and
//! a writer committing every millisecond always adds frames while it runs
//! (W1 grew the WAL by 22 MB/s, 700 MB in 30 s, each commit extending the
//! file and so its sync writing metadata too). So once the WAL is past
//! `CATCH_UP_PAGES`, this task asks the writer (`connection::WalCatchUp`) to
//! run one more PASSIVE checkpoint itself between two batches: no commit
//! can overtake it, so it copies the few frames since this task's pass, and
//! the next commit starts the file over (`journal_size_limit` trims it
//! then). A RESTART from here would do the same, but the writer would wait
//! for it in SQLite's busy handler, whose back-off sleeps for tens of
//! milliseconds. Past `HARD_LIMIT_PAGES` not yet copied (readers holding
//! old snapshots), this task escalates to RESTART, which waits for them.
//!
//! Commits still sync the WAL (`synchronous = FULL`): an ack still means the
//! message is on disk.

use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::connection::{ConnectionSettings, SqliteConn, SqliteWriterConn};
use crate::metrics::METRICS;

/// How often the checkpointer looks at the WAL.
const EVERY: Duration = Duration::from_millis(500);
/// WAL frames (4 KiB pages) past which the writer is asked to catch up.
const CATCH_UP_PAGES: i32 = 4_096;
/// Pages left uncopied past which a checkpoint waits for readers.
const HARD_LIMIT_PAGES: i32 = 16_384;

/// The writer's part, between batches: a PASSIVE checkpoint that no commit
/// can overtake, so the next commit starts the WAL over.
pub async fn catch_up(conn: &mut SqliteWriterConn) {
    let _ = checkpoint(conn, "PASSIVE").await;
}

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
        let Some(c) = checkpoint(&mut conn, mode).await else { return };
        let behind = c.log - c.checkpointed;
        escalate = behind > HARD_LIMIT_PAGES;
        if c.busy != 0 && escalate {
            log::warn!("WAL checkpointer: {behind} pages not yet copied (readers hold old snapshots); waiting for them next");
        }
        if c.log > CATCH_UP_PAGES {
            settings.wal_catch_up.ask();
        }
    }
}

/// One checkpoint in `mode`, timed; `None` when it failed (logged). The
/// background task then ends and its supervisor starts it again; the
/// writer goes on with its next batch.
async fn checkpoint<C>(conn: &mut C, mode: &str) -> Option<Checkpoint>
where
    C: diesel_async::AsyncConnection<Backend = diesel::sqlite::Sqlite>,
{
    let started = std::time::Instant::now();
    let done = diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")).get_result::<Checkpoint>(conn).await;
    METRICS.sqlite_checkpoint.observe(started.elapsed().as_secs_f64());
    match done {
        Ok(c) => {
            METRICS.sqlite_wal_pages.set(i64::from(c.log.max(0)));
            Some(c)
        }
        Err(e) => {
            log::warn!("WAL checkpointer: {mode} checkpoint failed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel_async::SimpleAsyncConnection;

    use super::{catch_up, checkpoint};
    use crate::config::Database;
    use crate::store::connection::{ConnectionSettings, SqliteWriterConn};

    /// After the writer's catch-up, its next commit writes the WAL from the
    /// start instead of appending to it.
    #[actix_rt::test]
    async fn the_writers_catch_up_starts_the_wal_over() {
        let dir = std::path::PathBuf::from(format!("{}/target/checkpointer-{}", env!("CARGO_MANIFEST_DIR"), std::process::id()));
        let path = dir.join("test.db");
        let _ = std::fs::remove_dir_all(&dir);
        crate::store::bootstrap::prepare_database(&Database::Sqlite { path: path.clone() }, std::time::Duration::from_secs(5))
            .expect("a fresh embedded database");
        let mut writer: SqliteWriterConn =
            ConnectionSettings::embedded(path.clone()).connect_sqlite().await.expect("the writer's connection");
        writer.batch_execute("INSERT INTO rooms (name) VALUES ('general')").await.expect("a room");
        let commit = "UPDATE room_seqs SET last_seq = last_seq + 1";
        for _ in 0..50 {
            writer.batch_execute(commit).await.expect("a commit");
        }
        let wal = std::fs::metadata(path.with_extension("db-wal")).expect("the WAL").len();
        assert!(wal >= 50 * 4096, "50 commits, {wal} bytes of WAL");

        catch_up(&mut writer).await;
        writer.batch_execute(commit).await.expect("a commit");
        let frames = checkpoint(&mut writer, "PASSIVE").await.expect("a checkpoint").log;
        assert!(frames <= 2, "the WAL did not start over: {frames} frames");
        assert_eq!(std::fs::metadata(path.with_extension("db-wal")).expect("the WAL").len(), wal, "written over in place");
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
