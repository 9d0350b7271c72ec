//! The batching writer: the only code that allocates seqs.
//!
//! Sends queue in a bounded channel per shard (rooms are spread over shards by
//! id, so one room's sends stay in order). A shard takes whatever has queued
//! while its previous commit ran, up to `WRITER_BATCH_MAX`, and stores it in
//! one transaction (`append`: seq allocation and insert together; one round
//! trip on PostgreSQL). On SQLite, which has one writer at a time, there is
//! one shard and so one writer connection. An idle server therefore commits a single
//! message at once and a busy one hundreds per round trip, with no timer.
//! Only after the commit are senders acked and rooms told.
//!
//! Every send has a deadline, `WRITE_TIMEOUT_MS` after it arrived: its
//! sender hears `unavailable` then at the latest, wherever the send is
//! (queued, or in a commit that hangs). A commit that hangs opens the
//! breaker (`health`): new sends are refused at once until commits go
//! through again. The decisions are plain data with their own tests:
//! `batch` (repeats, matching rows to senders), `retry` (when to try
//! again), `health` (the breaker); this file is the shell that runs them.

mod batch;
pub mod health;
mod retry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::AsyncPgConnection;
use tokio::sync::{mpsc, oneshot};

use self::batch::{Batch, Pending};
use self::health::Health;
use self::retry::{AttemptFailure, Next, RetryPolicy};
use super::append::{append_postgres, append_sqlite, AppendRow, Leaves};
use super::connection::{ConnectionSettings, SqliteWriterConn};
use super::models::StoredMessage;
use super::Failure;
use crate::config::Database;
use crate::domain::{Body, ClientMsgId, MessageId, RoomId, RoomName, UserId, Username};
use crate::metrics::{DeliveryStage, QueryName, METRICS};
use crate::supervisor::{self, Task};
use crate::telemetry::delivery::{self, DeliveryTrace};
use crate::time::now_millis;

/// One send, already authorised and parsed.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub room_id: RoomId,
    pub room: RoomName,
    pub user_id: UserId,
    pub user: Username,
    pub body: Body,
    pub client_msg_id: Option<ClientMsgId>,
    /// When the server received the send, for ack and delivery latency.
    pub received_at: Instant,
    /// Its delivery trace, while tracing is on.
    pub trace: Option<Arc<DeliveryTrace>>,
}

/// The stored message for a send; `duplicate` when the client_msg_id had been
/// used before and this is the original.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub message: Arc<StoredMessage>,
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Queue full, commits stuck, the deadline passed, or shutting down.
    /// The send was not stored (or, when an attempt was under way at the
    /// deadline, may have been): the client retries with the same
    /// client_msg_id and gets the original if it was.
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("the message could not be stored")]
    Internal,
}

impl WriteError {
    pub fn reason(&self) -> &'static str {
        match self {
            WriteError::Unavailable(why) => why,
            WriteError::Internal => "the message could not be stored",
        }
    }
}

/// A message just committed, on its way to the room actors (and the bus).
#[derive(Debug, Clone)]
pub struct Committed {
    pub message: Arc<StoredMessage>,
    pub received_at: Instant,
    /// When it became available on this instance: its commit here, its
    /// arrival over the bus, or its read from the database (healing).
    pub available_at: Instant,
    pub trace: Option<Arc<DeliveryTrace>>,
}

impl Committed {
    /// Messages read back from the database (healing a gap): available now,
    /// not a live send of this instance, so no trace.
    pub fn read_back(messages: Vec<StoredMessage>) -> Vec<Committed> {
        let now = Instant::now();
        messages
            .into_iter()
            .map(|m| Committed { message: Arc::new(m), received_at: now, available_at: now, trace: None })
            .collect()
    }
}

/// Who hears about commits: the room registry.
pub trait CommitListener: Send + Sync + 'static {
    fn committed(&self, batch: Vec<Committed>);
}

enum Job {
    Send(Pending),
    /// Everything queued before this is committed before the reply.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Writer {
    shards: Arc<[mpsc::Sender<Job>]>,
    closed: Arc<AtomicBool>,
    health: Arc<Health>,
    write_timeout: Duration,
}

pub use crate::config::WriterConfig;

impl Writer {
    /// Starts the shards on a dedicated arbiter (thread) so commits never wait
    /// behind socket work.
    pub fn start(config: WriterConfig, settings: ConnectionSettings, listener: Arc<dyn CommitListener>) -> Writer {
        let arbiter = actix::Arbiter::new();
        let mut config = config;
        if matches!(settings.database, Database::Sqlite { .. }) {
            config.shards = 1;
        }
        let health = Arc::new(Health::new(config.shards, config.stall));
        let per_shard_queue = (config.queue / config.shards).max(1);
        let mut shards = Vec::with_capacity(config.shards);
        for index in 0..config.shards {
            let (tx, rx) = mpsc::channel(per_shard_queue);
            // The queue outlives a crashed shard: the restarted one drains it.
            let rx = supervisor::shared(rx);
            let (settings, listener, health) = (settings.clone(), listener.clone(), health.clone());
            arbiter.spawn(supervisor::supervise(Task::Writer, move || {
                let shard = Shard {
                    index,
                    rx: rx.clone(),
                    settings: settings.clone(),
                    listener: listener.clone(),
                    health: health.clone(),
                    batch_max: config.batch_max,
                    retry: RetryPolicy::default(),
                    conn: None,
                    leaves: Leaves::default(),
                    last_query: None,
                };
                shard.run()
            }));
            shards.push(tx);
        }
        Writer { shards: shards.into(), closed: Arc::new(AtomicBool::new(false)), health, write_timeout: config.write_timeout }
    }

    /// Whether commits are going through (the breaker; `/readyz` shows it).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// How long a write may take before its caller hears `unavailable`.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// Stores one send; resolves once it is committed (or refused).
    pub async fn send(&self, req: SendRequest) -> Result<SendOutcome, WriteError> {
        self.enqueue(req)?.await
    }

    /// Queues a send now (so one sender's sends keep their order, whatever
    /// order their futures are polled in); the returned future resolves once
    /// it is committed, refused, or its deadline (`WRITE_TIMEOUT_MS` after
    /// it was received) has passed.
    pub fn enqueue(
        &self,
        req: SendRequest,
    ) -> Result<impl std::future::Future<Output = Result<SendOutcome, WriteError>> + 'static, WriteError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(WriteError::Unavailable("the server is shutting down"));
        }
        let now = Instant::now();
        if self.health.verdict(now).refuses() {
            METRICS.writer_refused.inc();
            return Err(WriteError::Unavailable("the database is not committing; try again shortly"));
        }
        let deadline = req.received_at + self.write_timeout;
        let shard = &self.shards[(req.room_id.0.unsigned_abs() as usize) % self.shards.len()];
        let (reply, rx) = oneshot::channel();
        let job = Job::Send(Pending { req, id: MessageId::new(), sent_at: now_millis(), deadline, reply });
        shard.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Unavailable("too many messages waiting to be stored"),
            mpsc::error::TrySendError::Closed(_) => WriteError::Unavailable("the writer has stopped"),
        })?;
        METRICS.writer_queue_depth.inc();
        Ok(async move {
            match tokio::time::timeout_at(deadline.into(), rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(WriteError::Unavailable("the writer has stopped")),
                Err(_) => {
                    METRICS.writer_deadline_missed.inc();
                    Err(WriteError::Unavailable("the database did not answer in time"))
                }
            }
        })
    }

    /// Refuses new sends, then waits until everything accepted is committed or
    /// has failed; used on shutdown.
    pub async fn flush_and_close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut waits = Vec::new();
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            if shard.send(Job::Flush(tx)).await.is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = w.await;
        }
    }
}

struct Shard {
    index: usize,
    rx: supervisor::Shared<mpsc::Receiver<Job>>,
    settings: ConnectionSettings,
    listener: Arc<dyn CommitListener>,
    health: Arc<Health>,
    batch_max: usize,
    retry: RetryPolicy,
    conn: Option<WriterConn>,
    /// Each room's leaf partition (PostgreSQL), found once.
    leaves: Leaves,
    /// The last append query's (start, end), for the delivery traces.
    last_query: Option<(Instant, Instant)>,
}

/// The shard's own connection, kept across batches (one per shard: size is no concern).
#[allow(clippy::large_enum_variant)]
enum WriterConn {
    Postgres(AsyncPgConnection),
    Sqlite(SqliteWriterConn),
}

/// Why an attempt produced no rows.
enum AttemptError {
    /// Cut at the batch's deadline: its outcome is unknown.
    Abandoned,
    /// No connection could be made.
    Connect(diesel::ConnectionError),
    Query(diesel::result::Error),
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptError::Abandoned => f.write_str("no answer before the batch's deadline"),
            AttemptError::Connect(e) => write!(f, "cannot connect: {e}"),
            AttemptError::Query(e) => e.fmt(f),
        }
    }
}

impl Shard {
    async fn run(mut self) {
        let mut flushes = Vec::new();
        let queue = self.rx.clone();
        let mut rx = queue.lock().await;
        while let Some(first) = rx.recv().await {
            supervisor::checkpoint(Task::Writer);
            let mut sends = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Send(s) => sends.push(s),
                    Job::Flush(done) => flushes.push(done),
                }
                if sends.len() < self.batch_max {
                    next = rx.try_recv().ok();
                }
            }
            METRICS.writer_queue_depth.sub(sends.len() as i64);
            let mut batch = Batch::new(sends);
            // Senders whose deadline passed while queued were answered already.
            batch.drop_abandoned();
            if !batch.is_empty() {
                self.commit(batch).await;
            }
            if let Some(WriterConn::Sqlite(conn)) = self.conn.as_mut() {
                if self.settings.wal_catch_up.take() {
                    super::checkpointer::catch_up(conn).await;
                }
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Commits a batch, retrying through failures until its last sender's
    /// deadline; then answers every sender still waiting.
    async fn commit(&mut self, mut batch: Batch) {
        let started = Instant::now();
        let deadline = batch.deadline().unwrap_or(started);
        // An attempt cut short has an unknown outcome; the retry carries the
        // same ids, so the `(room_id, id)` key makes it safe.
        let mut attempt = 0u32;
        let rows = loop {
            attempt += 1;
            let attempt_started = Instant::now();
            self.health.attempt_started(self.index, attempt_started);
            let result = match tokio::time::timeout_at(deadline.into(), self.append(&batch)).await {
                Ok(result) => result,
                Err(_) => Err(AttemptError::Abandoned),
            };
            self.health.attempt_ended(self.index, result.is_ok());
            let e = match result {
                Ok(rows) => break Ok(rows),
                Err(e) => e,
            };
            let failure = self.failure(&e).await;
            if failure == AttemptFailure::ConnectionLost || failure == AttemptFailure::Abandoned {
                // Gone, a standby now, or in an unknown state mid-statement:
                // the next attempt connects afresh.
                self.conn = None;
            }
            match self.retry.after(attempt, failure, deadline.saturating_duration_since(Instant::now())) {
                Next::GiveUp(err) => {
                    log::error!("writer shard {}: giving up on {} messages: {e}", self.index, batch.len());
                    if err != WriteError::Internal {
                        self.health.ran_out_of_time(Instant::now());
                    }
                    break Err(err);
                }
                Next::RetryAfter(pause) => {
                    METRICS.writer_retries.inc();
                    log::warn!("writer shard {}: commit failed (attempt {attempt}), retrying in {pause:?}: {e}", self.index);
                    actix::clock::sleep(pause).await;
                    // Senders answered meanwhile (deadline) are not stored behind their backs.
                    batch.drop_abandoned();
                    if batch.is_empty() {
                        break Err(WriteError::Unavailable("the database did not answer in time"));
                    }
                }
            }
        };
        METRICS.writer_commit.observe(started.elapsed().as_secs_f64());
        METRICS.writer_batch_size.observe(batch.len() as f64);

        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => return batch.fail(err),
        };
        // Stages `queue` (received -> this batch's commit starts) and
        // `commit` (the commit, retries included), per message.
        let done = Instant::now();
        let commit_seconds = done.duration_since(started).as_secs_f64();
        let (queue, commit) = (METRICS.stage(DeliveryStage::Queue), METRICS.stage(DeliveryStage::Commit));
        for req in batch.requests() {
            queue.observe(started.saturating_duration_since(req.received_at).as_secs_f64());
            commit.observe(commit_seconds);
            METRICS.ack_latency.observe(req.received_at.elapsed().as_secs_f64());
        }
        let backend = if matches!(self.settings.database, Database::Sqlite { .. }) { "sqlite" } else { "postgresql" };
        let (size, last_query) = (batch.len(), self.last_query);
        let settled = batch.settle(rows, done, |req, seq| {
            if let Some(trace) = &req.trace {
                trace.committed(seq, started, done, size, attempt);
                if let Some((start, end)) = last_query {
                    trace.queried(start, end, backend);
                }
            }
        });
        if settled.missing > 0 {
            log::error!("writer shard {}: no row returned for {} sends", self.index, settled.missing);
        }
        METRICS.messages_total.inc_by(settled.new_rows);
        let mut settled = settled;
        let committed = std::mem::take(&mut settled.committed);
        if !committed.is_empty() {
            self.listener.committed(committed);
        }
        // Only now the acks: a join that follows an ack sees the message.
        settled.answer();
    }

    /// What a failed attempt says about the writer's connection.
    async fn failure(&mut self, e: &AttemptError) -> AttemptFailure {
        let e = match e {
            AttemptError::Abandoned => return AttemptFailure::Abandoned,
            AttemptError::Connect(_) => return AttemptFailure::ConnectionLost,
            AttemptError::Query(e) => e,
        };
        if crate::store::is_unique_violation(e) {
            return AttemptFailure::Conflict;
        }
        // Whatever failed, find the rooms' partitions afresh next time.
        self.leaves.forget();
        let out_of_time = self.last_query.is_some_and(|(start, end)| end - start >= self.settings.statement_timeout);
        let failure = match self.conn.as_mut() {
            Some(WriterConn::Postgres(conn)) => Failure::of(e, conn, out_of_time).await,
            Some(WriterConn::Sqlite(conn)) => Failure::of(e, conn, out_of_time).await,
            None => Failure::by_kind(e).unwrap_or(Failure::ConnectionLost),
        };
        match failure {
            Failure::Statement => AttemptFailure::Statement,
            Failure::ConnectionLost => AttemptFailure::ConnectionLost,
            Failure::TimedOut => AttemptFailure::TimedOut,
        }
    }

    async fn append(&mut self, batch: &Batch) -> Result<Vec<AppendRow>, AttemptError> {
        if self.conn.is_none() {
            self.conn = Some(match self.settings.database {
                Database::Postgres { .. } => {
                    WriterConn::Postgres(self.settings.connect_writer().await.map_err(AttemptError::Connect)?)
                }
                Database::Sqlite { .. } => {
                    WriterConn::Sqlite(self.settings.connect_sqlite().await.map_err(AttemptError::Connect)?)
                }
            });
        }
        let inputs = batch.inputs();
        let start = Instant::now();
        let result = match self.conn.as_mut() {
            Some(WriterConn::Postgres(conn)) => append_postgres(conn, &mut self.leaves, &inputs).await,
            Some(WriterConn::Sqlite(conn)) => append_sqlite(conn, &inputs).await,
            None => return Err(AttemptError::Connect(diesel::ConnectionError::BadConnection("no writer connection".into()))),
        };
        let elapsed = start.elapsed();
        self.last_query = Some((start, start + elapsed));
        if METRICS.observe_query(QueryName::AppendMessages, elapsed, result.is_ok(), self.settings.slow_query) {
            let rows = result.as_ref().map(Vec::len).unwrap_or(0);
            let traces = delivery::trace_ids(batch.requests().filter_map(|r| r.trace.as_ref()));
            log::warn!("slow query append_messages: {:.1} ms, {rows} rows{traces}", elapsed.as_secs_f64() * 1000.0);
        }
        result.map_err(AttemptError::Query)
    }
}
