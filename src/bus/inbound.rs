//! Routes what arrives on the bus to this instance's rooms and sockets.

use std::sync::Arc;

use super::{BusEvent, BusListener, Channel, Envelope};
use crate::cache::Caches;
use crate::chat::room::{Deliver, Kick, RemotePresence, RemoteTyping};
use crate::chat::Registry;
use crate::cluster::Liveness;
use crate::domain::{RoomId, TokenHash, UserId, Username};
use crate::metrics::METRICS;
use crate::stats::StatsBoard;
use crate::store::writer::Committed;
use crate::ws::Connections;

pub struct Inbound {
    pub instance: String,
    pub registry: Registry,
    pub connections: Connections,
    pub liveness: Arc<Liveness>,
    pub caches: Arc<Caches>,
    pub stats: Arc<StatsBoard>,
}

impl BusListener for Inbound {
    fn received(&self, channel: Channel, payload: &[u8]) {
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("bus: undecodable event on {channel:?}: {e}");
                return;
            }
        };
        if envelope.origin == self.instance {
            return;
        }
        self.liveness.heard_from(&envelope.origin);
        match envelope.event {
            BusEvent::Messages { room_id, messages } => {
                METRICS.bridge_messages.with_label_values(&["in"]).inc_by(messages.len() as u64);
                let room_id = RoomId(room_id);
                let Some(room) = self.registry.get(room_id) else { return };
                let messages: Vec<Committed> = messages
                    .into_iter()
                    .filter_map(|m| m.into_stored(room_id))
                    .map(|(message, received_at)| Committed { message: Arc::new(message), received_at })
                    .collect();
                room.do_send(Deliver { messages, queued_at: std::time::Instant::now() });
            }
            BusEvent::Typing { room_id, user_id, user } => {
                if let (Some(room), Ok(user)) = (self.registry.get(RoomId(room_id)), Username::parse(&user)) {
                    room.do_send(RemoteTyping { user_id: UserId(user_id), user });
                }
            }
            BusEvent::Presence { room_id, user_id, user, online } => {
                if let (Some(room), Ok(user)) = (self.registry.get(RoomId(room_id)), Username::parse(&user)) {
                    room.do_send(RemotePresence { instance: envelope.origin, user_id: UserId(user_id), user, online });
                }
            }
            BusEvent::Kick { room_id, user_id } => {
                if let Some(room) = self.registry.get(RoomId(room_id)) {
                    room.do_send(Kick { user_id: UserId(user_id) });
                }
            }
            BusEvent::Revoke { token_sha256 } => {
                if let Some(hash) = TokenHash::from_hex(&token_sha256) {
                    self.connections.revoke(&hash);
                }
            }
            BusEvent::Invalidate { cache, key } => {
                let caches = self.caches.clone();
                actix::spawn(async move { caches.invalidate_remote(&cache, &key).await });
            }
            BusEvent::Heartbeat => {}
            BusEvent::Stats { snapshot } => self.stats.remote(&envelope.origin, *snapshot),
            BusEvent::Goodbye => {
                self.liveness.forget(&envelope.origin);
                self.stats.forget(&envelope.origin);
                self.registry.instance_gone(&envelope.origin);
            }
        }
    }

    fn resubscribed(&self, rooms: Option<&[RoomId]>) {
        self.registry.resync(rooms);
    }
}
