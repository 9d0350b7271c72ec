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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::{mpsc, oneshot};

use super::append::{append_postgres, append_sqlite, AppendInput, AppendRow};
use super::connection::{ConnectionSettings, SqliteConn};
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
    /// Queue full, database down past the write timeout, or shutting down.
    /// The send was not stored; the client may retry with the same client_msg_id.
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

struct SendJob {
    req: SendRequest,
    id: MessageId,
    sent_at: DateTime<Utc>,
    reply: oneshot::Sender<Result<SendOutcome, WriteError>>,
}

enum Job {
    Send(SendJob),
    /// Everything queued before this is committed before the reply.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Writer {
    shards: Arc<[mpsc::Sender<Job>]>,
    closed: Arc<AtomicBool>,
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
        let per_shard_queue = (config.queue / config.shards).max(1);
        let mut shards = Vec::with_capacity(config.shards);
        for index in 0..config.shards {
            let (tx, rx) = mpsc::channel(per_shard_queue);
            // The queue outlives a crashed shard: the restarted one drains it.
            let rx = supervisor::shared(rx);
            let (settings, listener, config) = (settings.clone(), listener.clone(), config);
            arbiter.spawn(supervisor::supervise(Task::Writer, move || {
                let shard = Shard {
                    index,
                    rx: rx.clone(),
                    settings: settings.clone(),
                    listener: listener.clone(),
                    batch_max: config.batch_max,
                    write_timeout: config.write_timeout,
                    conn: None,
                    last_query: None,
                };
                shard.run()
            }));
            shards.push(tx);
        }
        Writer { shards: shards.into(), closed: Arc::new(AtomicBool::new(false)) }
    }

    /// Stores one send; resolves once it is committed (or refused).
    pub async fn send(&self, req: SendRequest) -> Result<SendOutcome, WriteError> {
        self.enqueue(req)?.await
    }

    /// Queues a send now (so one sender's sends keep their order, whatever
    /// order their futures are polled in); the returned future resolves once
    /// it is committed (or refused).
    pub fn enqueue(
        &self,
        req: SendRequest,
    ) -> Result<impl std::future::Future<Output = Result<SendOutcome, WriteError>> + 'static, WriteError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(WriteError::Unavailable("the server is shutting down"));
        }
        let shard = &self.shards[(req.room_id.0.unsigned_abs() as usize) % self.shards.len()];
        let (reply, rx) = oneshot::channel();
        let job = Job::Send(SendJob { req, id: MessageId::new(), sent_at: now_millis(), reply });
        shard.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Unavailable("too many messages waiting to be stored"),
            mpsc::error::TrySendError::Closed(_) => WriteError::Unavailable("the writer has stopped"),
        })?;
        METRICS.writer_queue_depth.inc();
        Ok(async move { rx.await.unwrap_or(Err(WriteError::Unavailable("the writer has stopped"))) })
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
    batch_max: usize,
    write_timeout: Duration,
    conn: Option<WriterConn>,
    /// The last append query's (start, end), for the delivery traces.
    last_query: Option<(Instant, Instant)>,
}

/// The shard's own connection, kept across batches (one per shard: size is no concern).
#[allow(clippy::large_enum_variant)]
enum WriterConn {
    Postgres(AsyncPgConnection),
    Sqlite(SqliteConn),
}

impl Shard {
    async fn run(mut self) {
        let mut flushes = Vec::new();
        let queue = self.rx.clone();
        let mut rx = queue.lock().await;
        while let Some(first) = rx.recv().await {
            supervisor::checkpoint(Task::Writer);
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Send(s) => batch.push(s),
                    Job::Flush(done) => flushes.push(done),
                }
                if batch.len() < self.batch_max {
                    next = rx.try_recv().ok();
                }
            }
            METRICS.writer_queue_depth.sub(batch.len() as i64);
            if !batch.is_empty() {
                self.commit(batch).await;
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Commits a batch, retrying through connection loss until the write
    /// timeout; then answers every sender.
    async fn commit(&mut self, batch: Vec<SendJob>) {
        let started = Instant::now();
        // A repeated (room, user, client_msg_id) inside one batch is stored
        // once; the repeats share the first one's outcome.
        let mut first_of: HashMap<(RoomId, UserId, &str), usize> = HashMap::new();
        let mut unique: Vec<usize> = Vec::with_capacity(batch.len());
        let mut alias: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, job) in batch.iter().enumerate() {
            let slot = match &job.req.client_msg_id {
                Some(c) => *first_of.entry((job.req.room_id, job.req.user_id, c.as_str())).or_insert_with(|| {
                    unique.push(i);
                    i
                }),
                None => {
                    unique.push(i);
                    i
                }
            };
            alias.push(slot);
        }
        let jobs: Vec<&SendJob> = unique.iter().map(|&i| &batch[i]).collect();

        // Every attempt (connect included) is bounded by what is left of the
        // write timeout: a primary whose machine vanished never answers, and
        // a sender must still hear `unavailable` in time. An attempt cut
        // short has an unknown outcome; the retry carries the same ids, so
        // the `(room_id, id)` key makes it safe.
        let mut attempt = 0u32;
        let rows = loop {
            attempt += 1;
            let left = self.write_timeout.saturating_sub(started.elapsed());
            let result = match actix::clock::timeout(left, self.append(&jobs)).await {
                Ok(result) => result,
                Err(_) => Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UnableToSendCommand,
                    Box::new(format!("no answer from the database within {left:?}")),
                )),
            };
            match result {
                Ok(rows) => break Ok(rows),
                Err(e) => {
                    let failure = self.failure(&e).await;
                    let transient = failure != Failure::Statement || crate::store::is_unique_violation(&e);
                    if failure == Failure::ConnectionLost {
                        // Gone, or now a standby: the next connect finds the primary.
                        self.conn = None;
                    }
                    let left = self.write_timeout.saturating_sub(started.elapsed());
                    if !transient && attempt >= 2 || left.is_zero() {
                        log::error!("writer shard {}: giving up on {} messages: {e}", self.index, jobs.len());
                        break Err(if transient {
                            WriteError::Unavailable("the database is unavailable")
                        } else {
                            WriteError::Internal
                        });
                    }
                    METRICS.writer_retries.inc();
                    let backoff = Duration::from_millis(20u64 << attempt.min(6)).min(Duration::from_secs(1)).min(left);
                    log::warn!("writer shard {}: commit failed (attempt {attempt}), retrying in {backoff:?}: {e}", self.index);
                    actix::clock::sleep(backoff).await;
                }
            }
        };
        METRICS.writer_commit.observe(started.elapsed().as_secs_f64());
        METRICS.writer_batch_size.observe(jobs.len() as f64);

        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
                return;
            }
        };
        // Stages `queue` (received -> this batch's commit starts) and
        // `commit` (the commit, retries included), per message.
        let done = Instant::now();
        let commit_seconds = done.duration_since(started).as_secs_f64();
        let (queue, commit) = (METRICS.stage(DeliveryStage::Queue), METRICS.stage(DeliveryStage::Commit));
        for job in &jobs {
            queue.observe(started.saturating_duration_since(job.req.received_at).as_secs_f64());
            commit.observe(commit_seconds);
        }
        let backend = if matches!(self.settings.database, Database::Sqlite { .. }) { "sqlite" } else { "postgresql" };

        // ord is 1-based over `jobs`.
        let mut by_ord: Vec<Option<(Arc<StoredMessage>, bool)>> = vec![None; jobs.len()];
        let mut committed = Vec::with_capacity(jobs.len());
        let mut new_count = 0u64;
        for row in rows {
            // The ordinal comes back from PostgreSQL: checked, never trusted as an index.
            let Some((ord, job)) =
                row.out_ord.checked_sub(1).and_then(|i| usize::try_from(i).ok()).and_then(|i| Some((i, jobs.get(i)?)))
            else {
                continue;
            };
            // Found by our own id: an earlier attempt committed it after all.
            let duplicate = row.out_existed && row.out_id != job.id.0;
            let message = Arc::new(StoredMessage {
                room_id: job.req.room_id,
                room: job.req.room.clone(),
                seq: row.out_seq,
                id: MessageId(row.out_id),
                user_id: job.req.user_id,
                user: job.req.user.clone(),
                body: row.out_body,
                sent_at: row.out_sent_at,
                client_msg_id: job.req.client_msg_id.clone(),
            });
            if let Some(trace) = &job.req.trace {
                trace.committed(row.out_seq, started, done, jobs.len(), attempt);
                if let Some((start, end)) = self.last_query {
                    trace.queried(start, end, backend);
                }
            }
            if !duplicate {
                new_count += u64::from(!row.out_existed);
                committed.push(Committed {
                    message: message.clone(),
                    received_at: job.req.received_at,
                    available_at: done,
                    trace: job.req.trace.clone(),
                });
            }
            if let Some(slot) = by_ord.get_mut(ord) {
                *slot = Some((message, duplicate));
            }
        }
        METRICS.messages_total.inc_by(new_count);
        committed.sort_by_key(|c| (c.message.room_id, c.message.seq));
        if !committed.is_empty() {
            self.listener.committed(committed);
        }

        let slot_of: HashMap<usize, usize> = unique.iter().enumerate().map(|(k, &i)| (i, k)).collect();
        for (i, job) in batch.into_iter().enumerate() {
            let first = alias[i];
            let outcome = slot_of.get(&first).and_then(|&k| by_ord[k].clone());
            let result = match outcome {
                // A repeat inside the batch is a duplicate of the first.
                Some((message, duplicate)) => Ok(SendOutcome { message, duplicate: duplicate || first != i }),
                None => {
                    log::error!("writer shard {}: no row returned for a send to room {}", self.index, job.req.room_id);
                    Err(WriteError::Internal)
                }
            };
            METRICS.ack_latency.observe(job.req.received_at.elapsed().as_secs_f64());
            let _ = job.reply.send(result);
        }
    }

    /// What a failed append says about the writer's connection.
    async fn failure(&mut self, e: &diesel::result::Error) -> Failure {
        let out_of_time = self.last_query.is_some_and(|(start, end)| end - start >= self.settings.statement_timeout);
        match self.conn.as_mut() {
            Some(WriterConn::Postgres(conn)) => Failure::of(e, conn, out_of_time).await,
            Some(WriterConn::Sqlite(conn)) => Failure::of(e, conn, out_of_time).await,
            None => Failure::by_kind(e).unwrap_or(Failure::ConnectionLost),
        }
    }

    async fn append(&mut self, jobs: &[&SendJob]) -> Result<Vec<AppendRow>, diesel::result::Error> {
        let lost = |e: diesel::ConnectionError| {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::ClosedConnection, Box::new(e.to_string()))
        };
        if self.conn.is_none() {
            self.conn = Some(match self.settings.database {
                Database::Postgres { .. } => WriterConn::Postgres(self.settings.connect().await.map_err(lost)?),
                Database::Sqlite { .. } => WriterConn::Sqlite(self.settings.connect_sqlite().await.map_err(lost)?),
            });
        }
        let inputs: Vec<AppendInput> = jobs
            .iter()
            .map(|j| AppendInput {
                room_id: j.req.room_id.0,
                user_id: j.req.user_id.0,
                id: j.id.0,
                body: j.req.body.as_str(),
                client_msg_id: j.req.client_msg_id.as_ref().map(|c| c.as_str()),
                sent_at: j.sent_at,
            })
            .collect();
        let start = Instant::now();
        let result = match self.conn.as_mut() {
            Some(WriterConn::Postgres(conn)) => append_postgres(conn, &inputs).await,
            Some(WriterConn::Sqlite(conn)) => append_sqlite(conn, &inputs).await,
            None => Err(lost(diesel::ConnectionError::BadConnection("no writer connection".into()))),
        };
        let elapsed = start.elapsed();
        self.last_query = Some((start, start + elapsed));
        if METRICS.observe_query(QueryName::AppendMessages, elapsed, result.is_ok(), self.settings.slow_query) {
            let rows = result.as_ref().map(Vec::len).unwrap_or(0);
            let traces = delivery::trace_ids(jobs.iter().filter_map(|j| j.req.trace.as_ref()));
            log::warn!("slow query append_messages: {:.1} ms, {rows} rows{traces}", elapsed.as_secs_f64() * 1000.0);
        }
        result
    }
}
