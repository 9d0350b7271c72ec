//! The bus on a Redis Cluster: Redis 7 sharded pub/sub. Each channel lives on
//! the node of its slot; the cluster connection (RESP3) keeps one connection
//! per node, SSUBSCRIBEs each room channel on its node, and resubscribes by
//! itself after a node or connection comes back. A disconnection is
//! followed by a resync of every room from PostgreSQL, as on one server.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bb8_redis::redis::cluster::ClusterClient;
use bb8_redis::redis::cluster_async::ClusterConnection;
use bb8_redis::redis::{self, PushInfo, PushKind, Value};

use super::channels::{channel_name, parse_channel};
use super::{BusListener, BusState, Channel, Subscriptions};
use crate::domain::RoomId;
use crate::metrics::METRICS;
use crate::supervisor::{self, Task};

pub async fn subscribe_loop(urls: Vec<String>, side: super::redis::Listening, restarted: bool) {
    let super::redis::Listening { prefix, subscriptions, changed, state, listener } = side;
    // Pushes (messages, disconnections) arrive on this channel; it is the
    // client library's interface, drained as fast as it fills.
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let client = match ClusterClient::builder(urls)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .connection_timeout(Duration::from_millis(500))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log::error!("bus: REDIS_CLUSTER_URLS unusable: {e}");
            return;
        }
    };
    let mut backoff = Duration::from_millis(100);
    let mut conn: ClusterConnection = loop {
        match client.get_async_connection().await {
            Ok(c) => break c,
            Err(e) => {
                state.store(BusState::Disconnected as u8, Ordering::Release);
                log::warn!("bus: cannot reach the Redis Cluster ({e}); retrying in {backoff:?}");
                actix::clock::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let control = channel_name(&prefix, Channel::Control);
    while let Err(e) = conn.ssubscribe(&control).await {
        log::warn!("bus: SSUBSCRIBE control failed ({e}); retrying");
        actix::clock::sleep(Duration::from_millis(500)).await;
    }
    state.store(BusState::Connected as u8, Ordering::Release);
    if restarted {
        // A fresh start after a crash: what was published meanwhile is lost.
        listener.control_restored();
        listener.resubscribed(None);
    }
    let mut subscribed: HashSet<RoomId> = HashSet::new();
    reconcile(&mut conn, &prefix, &subscriptions, &mut subscribed, &*listener).await;
    let mut lost = false;
    // Whether the control channel may have lost its subscription: a
    // disconnection push does not say which node it was.
    let mut control_lost = false;
    loop {
        supervisor::checkpoint(Task::BusSubscriber);
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else { return };
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        if let [Value::BulkString(name), Value::BulkString(payload), ..] = push.data.as_slice() {
                            if let Some(channel) = std::str::from_utf8(name).ok().and_then(|n| parse_channel(&prefix, n)) {
                                listener.received(channel, payload);
                            }
                        }
                    }
                    PushKind::Disconnection => {
                        if !lost {
                            log::warn!("bus: a Redis Cluster connection dropped; it resubscribes by itself");
                        }
                        lost = true;
                        control_lost = true;
                        state.store(BusState::Disconnected as u8, Ordering::Release);
                        listener.subscription_lost();
                    }
                    PushKind::SSubscribe if control_lost && is_channel(&push.data, &control) => {
                        control_lost = false;
                        listener.control_restored();
                        if lost {
                            lost = false;
                            METRICS.bridge_reconnects.inc();
                            state.store(BusState::Connected as u8, Ordering::Release);
                            listener.resubscribed(None);
                        }
                    }
                    PushKind::SSubscribe if lost => {
                        // Subscriptions are back: catch up from PostgreSQL.
                        lost = false;
                        METRICS.bridge_reconnects.inc();
                        state.store(BusState::Connected as u8, Ordering::Release);
                        listener.resubscribed(None);
                    }
                    _ => {}
                }
            }
            _ = changed.notified() => {
                reconcile(&mut conn, &prefix, &subscriptions, &mut subscribed, &*listener).await;
            }
        }
    }
}

/// Whether a push names `channel` first (subscription confirmations do).
fn is_channel(data: &[Value], channel: &str) -> bool {
    matches!(data.first(), Some(Value::BulkString(name)) if name.as_slice() == channel.as_bytes())
}

async fn reconcile(
    conn: &mut ClusterConnection,
    prefix: &str,
    subscriptions: &Subscriptions,
    subscribed: &mut HashSet<RoomId>,
    listener: &dyn BusListener,
) {
    let wanted = subscriptions.snapshot();
    let add: Vec<RoomId> = wanted.difference(subscribed).copied().collect();
    let drop: Vec<RoomId> = subscribed.difference(&wanted).copied().collect();
    let mut added = Vec::new();
    // One channel per command: channels of one command must share a slot.
    for room in add {
        match conn.ssubscribe(channel_name(prefix, Channel::Room(room))).await {
            Ok(()) => {
                subscribed.insert(room);
                added.push(room);
            }
            Err(e) => log::warn!("bus: SSUBSCRIBE room {room} failed: {e}"),
        }
    }
    for room in drop {
        if conn.sunsubscribe(channel_name(prefix, Channel::Room(room))).await.is_ok() {
            subscribed.remove(&room);
        }
    }
    if !added.is_empty() {
        listener.resubscribed(Some(&added));
    }
}
