//! Redis pub/sub transport.
//!
//! - Publishing: a task drains a bounded queue and sends whatever has queued
//!   as one pipeline of PUBLISH commands on a pooled (multiplexed) connection,
//!   with the writes that go with them (the rooms' recent lists), so a commit
//!   costs one round trip to Redis.
//! - Subscribing: one dedicated connection per instance (a pooled connection
//!   cannot SUBSCRIBE), subscribed to the control channel and to every room
//!   with local members. It reconnects with jittered backoff; after a
//!   reconnect every room resyncs from PostgreSQL, and rooms subscribed later
//!   resync once their subscription is confirmed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bb8_redis::redis;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify};

use super::channels::{channel_name, parse_channel};
use super::subscriber::{Link, Listening};
use super::{Channel, Companion, Intake, Subscriptions, Transport};
use crate::domain::RoomId;
use crate::metrics::METRICS;
use crate::supervisor::{self, Task};
use crate::telemetry::delivery::DeliveryTrace;

pub use crate::redis_pool::RedisPool;
use crate::redis_pool::{with_conn, RedisFailure};

/// Events waiting to be published; beyond this they are dropped (and healed
/// by resync) rather than growing memory while Redis is away.
const PUBLISH_QUEUE: usize = 65_536;
const PUBLISH_BATCH: usize = 512;

/// An event waiting to be published, with the delivery traces of its
/// messages and the writes that go with it.
struct Outgoing {
    channel: Channel,
    payload: Vec<u8>,
    traces: Vec<Arc<DeliveryTrace>>,
    companion: Companion,
}

/// Where the subscriber connects: one server, or the nodes of a cluster
/// (sharded pub/sub).
pub enum Subscriber {
    Single(redis::Client),
    Cluster(Vec<String>),
}

pub struct RedisTransport {
    prefix: String,
    pool: RedisPool,
    queue: mpsc::Sender<Outgoing>,
    changed: Arc<Notify>,
}

/// How long `publish_now` keeps trying (a reconnect of the pooled connection
/// fits; a Redis that stays away does not).
const PUBLISH_NOW_BUDGET: Duration = Duration::from_secs(2);

impl RedisTransport {
    /// Starts the publisher on its own arbiter; the subscriber starts there
    /// with the intake.
    pub fn start(
        subscriber: Subscriber,
        pool: RedisPool,
        prefix: String,
        subscriptions: Arc<Subscriptions>,
        state: Arc<AtomicU8>,
    ) -> (Arc<RedisTransport>, Intake) {
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        let changed = Arc::new(Notify::new());
        let arbiter = actix::Arbiter::new();
        // The queue outlives a crashed publisher: the restarted one drains it.
        let rx = supervisor::shared(rx);
        let (p_pool, p_prefix) = (pool.clone(), prefix.clone());
        arbiter
            .spawn(supervisor::supervise(Task::BusPublisher, move || publish_loop(rx.clone(), p_pool.clone(), p_prefix.clone())));
        // A restarted subscriber starts from a fresh connection: whatever
        // was published meanwhile is treated as lost, as after a reconnect.
        let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s_prefix, s_changed, arbiter) = (prefix.clone(), changed.clone(), arbiter.handle());
        let intake = Intake::new(move |listener| {
            let side = Listening { prefix: s_prefix, subscriptions, changed: s_changed, state, listener };
            match subscriber {
                Subscriber::Single(client) => arbiter.spawn(supervisor::supervise(Task::BusSubscriber, move || {
                    let restarted = runs.fetch_add(1, Ordering::AcqRel) > 0;
                    subscribe_loop(client.clone(), side.clone(), restarted)
                })),
                Subscriber::Cluster(urls) => arbiter.spawn(supervisor::supervise(Task::BusSubscriber, move || {
                    let restarted = runs.fetch_add(1, Ordering::AcqRel) > 0;
                    super::redis_cluster::subscribe_loop(urls.clone(), side.clone(), restarted)
                })),
            };
        });
        (Arc::new(RedisTransport { prefix, pool, queue, changed }), intake)
    }
}

impl Transport for RedisTransport {
    fn publish(&self, channel: Channel, payload: Vec<u8>, traces: Vec<Arc<DeliveryTrace>>, companion: Companion) {
        if self.queue.try_send(Outgoing { channel, payload, traces, companion }).is_err() {
            METRICS.bridge_dropped.inc();
        }
    }

    fn publish_now(
        &self,
        channel: Channel,
        payload: Vec<u8>,
    ) -> futures_util::future::BoxFuture<'static, Result<(), RedisFailure>> {
        let (pool, name) = (self.pool.clone(), channel_name(&self.prefix, channel));
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + PUBLISH_NOW_BUDGET;
            let mut wait = Duration::from_millis(20);
            loop {
                let command = if pool.is_cluster() { "SPUBLISH" } else { "PUBLISH" };
                let once = with_conn(&pool, "publish_now", async |conn| {
                    redis::cmd(command).arg(&name).arg(&payload).query_async::<redis::Value>(conn).await
                });
                let error = match tokio::time::timeout_at(deadline, once).await {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(e)) => e,
                    Err(_) => RedisFailure::TimedOut(PUBLISH_NOW_BUDGET),
                };
                if tokio::time::Instant::now() + wait >= deadline {
                    METRICS.bridge_publish_errors.inc();
                    return Err(error);
                }
                actix::clock::sleep(wait).await;
                wait *= 2;
            }
        })
    }

    fn subscriptions_changed(&self) {
        self.changed.notify_one();
    }
}

impl Drop for RedisTransport {
    fn drop(&mut self) {
        log::debug!("redis bus for prefix {} dropped", self.prefix);
    }
}

async fn publish_loop(queue: supervisor::Shared<mpsc::Receiver<Outgoing>>, pool: RedisPool, prefix: String) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    let mut rx = queue.lock().await;
    while let Some(first) = rx.recv().await {
        supervisor::checkpoint(Task::BusPublisher);
        batch.push(first);
        while batch.len() < PUBLISH_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let events = batch.len();
        let traces: Vec<Arc<DeliveryTrace>> = batch.iter_mut().flat_map(|o| std::mem::take(&mut o.traces)).collect();
        let sent = if pool.is_cluster() {
            // Sharded pub/sub: each channel lives on its slot's node, and a
            // companion's keys on theirs (one key per companion: one node).
            let sends = batch.drain(..).map(|Outgoing { channel, payload, companion, .. }| {
                let name = channel_name(&prefix, channel);
                let pool = &pool;
                async move {
                    if !companion.is_empty() {
                        let mut pipe = redis::pipe();
                        for cmd in companion {
                            pipe.add_command(cmd).ignore();
                        }
                        with_conn(pool, "publish", async |conn| pipe.query_async::<()>(conn).await).await?;
                    }
                    with_conn(pool, "publish", async |conn| {
                        redis::cmd("SPUBLISH").arg(&name).arg(&payload).query_async::<()>(conn).await
                    })
                    .await
                }
            });
            futures_util::future::join_all(sends).await.into_iter().find(Result::is_err).unwrap_or(Ok(()))
        } else {
            let mut pipe = redis::pipe();
            for Outgoing { channel, payload, companion, .. } in batch.drain(..) {
                for cmd in companion {
                    pipe.add_command(cmd).ignore();
                }
                pipe.publish(channel_name(&prefix, channel), payload).ignore();
            }
            with_conn(&pool, "publish", async |conn| pipe.query_async::<()>(conn).await).await
        };
        let done = std::time::Instant::now();
        for t in &traces {
            t.published(started, done, events);
        }
        drop(traces);
        if let Err(e) = sent {
            METRICS.bridge_publish_errors.inc();
            log::warn!("bus: publish failed: {e}");
        }
    }
}

async fn subscribe_loop(client: redis::Client, side: Listening, restarted: bool) {
    let (mut link, told) = Link::new(restarted);
    side.apply(&link, told);
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                log::warn!("bus: cannot connect the subscriber ({e}); retrying in {backoff:?}");
                pause(&mut backoff).await;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let control = channel_name(&side.prefix, Channel::Control);
        let mut subscribed: HashSet<RoomId> = HashSet::new();
        // Rooms first, then the link is up: rooms resync once their channels
        // are live.
        let quiet = link.rooms_resync_anyway();
        let ok = match sink.subscribe(&control).await {
            Ok(()) => reconcile(&mut sink, &side, &mut subscribed, quiet).await,
            Err(e) => {
                log::warn!("bus: subscribe to control failed: {e}");
                false
            }
        };
        if ok {
            backoff = Duration::from_millis(100);
            let told = link.subscribed(true);
            side.apply(&link, told);
            listen(&mut sink, &mut stream, &side, &mut subscribed).await;
        } else {
            // Connected but refused (an ACL, a server in trouble): not again at once.
            pause(&mut backoff).await;
        }
        let told = link.lost();
        side.apply(&link, told);
    }
}

/// Waits out `backoff` with jitter, and doubles it (up to 5 s).
async fn pause(backoff: &mut Duration) {
    let jitter = Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 2 + 1));
    actix::clock::sleep(*backoff + jitter).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
}

/// Hands on what arrives until the connection fails.
async fn listen(
    sink: &mut redis::aio::PubSubSink,
    stream: &mut redis::aio::PubSubStream,
    side: &Listening,
    subscribed: &mut HashSet<RoomId>,
) {
    let ping_every = Duration::from_secs(5);
    let mut ping = actix::clock::interval_at(actix::clock::Instant::now() + ping_every, ping_every);
    loop {
        supervisor::checkpoint(Task::BusSubscriber);
        tokio::select! {
            msg = stream.next() => match msg {
                Some(msg) => {
                    if let Some(channel) = parse_channel(&side.prefix, msg.get_channel_name()) {
                        side.listener.received(channel, msg.get_payload_bytes());
                    }
                }
                None => return,
            },
            _ = side.changed.notified() => {
                if !reconcile(sink, side, subscribed, false).await {
                    return;
                }
            }
            _ = ping.tick() => {
                // Detects a connection that died without a FIN. In
                // subscribed mode the reply is an array, hence Value.
                let alive = tokio::time::timeout(Duration::from_secs(3), sink.ping::<redis::Value>()).await;
                if !matches!(alive, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}

/// Brings the live subscriptions in line with the wanted set. Newly
/// subscribed rooms resync (they may have missed messages before the
/// subscription took effect). False when the connection failed.
async fn reconcile(sink: &mut redis::aio::PubSubSink, side: &Listening, subscribed: &mut HashSet<RoomId>, quiet: bool) -> bool {
    let prefix = side.prefix.as_str();
    let wanted = side.subscriptions.snapshot();
    let add: Vec<RoomId> = wanted.difference(subscribed).copied().collect();
    let drop: Vec<RoomId> = subscribed.difference(&wanted).copied().collect();
    for chunk in add.chunks(256) {
        let names: Vec<String> = chunk.iter().map(|r| channel_name(prefix, Channel::Room(*r))).collect();
        if let Err(e) = sink.subscribe(&names).await {
            log::warn!("bus: subscribe failed: {e}");
            return false;
        }
        subscribed.extend(chunk.iter().copied());
    }
    for chunk in drop.chunks(256) {
        let names: Vec<String> = chunk.iter().map(|r| channel_name(prefix, Channel::Room(*r))).collect();
        if let Err(e) = sink.unsubscribe(&names).await {
            log::warn!("bus: unsubscribe failed: {e}");
            return false;
        }
        for r in chunk {
            subscribed.remove(r);
        }
    }
    if !add.is_empty() && !quiet {
        side.listener.resubscribed(Some(&add));
    }
    true
}

/// PING through the pool, for readiness.
pub async fn ping(pool: &RedisPool) -> Result<(), RedisFailure> {
    with_conn(pool, "ping", async |conn| redis::cmd("PING").query_async::<String>(conn).await).await.map(|_| ())
}
