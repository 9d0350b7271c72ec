//! The bus on a Redis Cluster: Redis 7 sharded pub/sub. Each channel lives on
//! the node of its slot; the cluster connection (RESP3) keeps one connection
//! per node, SSUBSCRIBEs each room channel on its node, and resubscribes by
//! itself after a node or connection comes back. A disconnection is
//! followed by a resync of every room from PostgreSQL, as on one server.

use std::collections::HashSet;
use std::time::Duration;

use bb8_redis::redis::cluster::ClusterClient;
use bb8_redis::redis::cluster_async::ClusterConnection;
use bb8_redis::redis::{self, PushInfo, PushKind, Value};

use super::channels::{channel_name, parse_channel};
use super::subscriber::{Link, Listening};
use super::Channel;
use crate::domain::RoomId;
use crate::supervisor::{self, Task};

pub async fn subscribe_loop(urls: Vec<String>, side: Listening, restarted: bool) {
    let (mut link, told) = Link::new(restarted);
    side.apply(&link, told);
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
                log::warn!("bus: cannot reach the Redis Cluster ({e}); retrying in {backoff:?}");
                actix::clock::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let control = channel_name(&side.prefix, Channel::Control);
    while let Err(e) = conn.ssubscribe(&control).await {
        log::warn!("bus: SSUBSCRIBE control failed ({e}); retrying");
        actix::clock::sleep(Duration::from_millis(500)).await;
    }
    let mut subscribed: HashSet<RoomId> = HashSet::new();
    reconcile(&mut conn, &side, &mut subscribed, link.rooms_resync_anyway()).await;
    let told = link.subscribed(true);
    side.apply(&link, told);
    // The connection resubscribes by itself after a node comes back; the
    // confirmations tell the link (a disconnection push does not say which
    // node it was, so the control channel counts as lost with the rest).
    loop {
        supervisor::checkpoint(Task::BusSubscriber);
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else { return };
                let told = match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        if let [Value::BulkString(name), Value::BulkString(payload), ..] = push.data.as_slice() {
                            if let Some(channel) = std::str::from_utf8(name).ok().and_then(|n| parse_channel(&side.prefix, n)) {
                                side.listener.received(channel, payload);
                            }
                        }
                        continue;
                    }
                    PushKind::Disconnection => link.lost(),
                    PushKind::SSubscribe => link.subscribed(is_channel(&push.data, &control)),
                    _ => continue,
                };
                if !told.is_empty() {
                    side.apply(&link, told);
                }
            }
            _ = side.changed.notified() => {
                reconcile(&mut conn, &side, &mut subscribed, false).await;
            }
        }
    }
}

/// Whether a push names `channel` first (subscription confirmations do).
fn is_channel(data: &[Value], channel: &str) -> bool {
    matches!(data.first(), Some(Value::BulkString(name)) if name.as_slice() == channel.as_bytes())
}

async fn reconcile(conn: &mut ClusterConnection, side: &Listening, subscribed: &mut HashSet<RoomId>, quiet: bool) {
    let prefix = side.prefix.as_str();
    let wanted = side.subscriptions.snapshot();
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
    if !added.is_empty() && !quiet {
        side.listener.resubscribed(Some(&added));
    }
}
