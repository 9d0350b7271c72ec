//! Routes what arrives on the bus to this instance's rooms and sockets.
//!
//! Room traffic is handed to room actors at once. Control events go through
//! one ordered queue (`run_control`) and are applied one after the other,
//! each to completion: a revocation is applied before any lease ping that
//! was published after it (see cache::lease), and only then confirmed.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::bus::{BusEvent, BusListener, Channel, Envelope};
use crate::cache::lease::Lease;
use crate::cache::Caches;
use crate::chat::room::{Deliver, RemotePresence, RemoteTyping};
use crate::chat::Registry;
use crate::cluster::revocation::{AccessChange, Revoker};
use crate::cluster::Liveness;
use crate::domain::{RoomId, TokenHash, UserId, Username};
use crate::metrics::{DeliveryStage, Direction, METRICS};
use crate::stats::StatsBoard;
use crate::store::writer::Committed;
use crate::supervisor::{self, Task};
use crate::telemetry::delivery::DeliveryTrace;

/// Control events waiting to be applied. Past this, events are dropped and
/// the caches they might have invalidated are flushed instead.
const CONTROL_QUEUE: usize = 65_536;

pub struct Inbound {
    pub instance: String,
    pub registry: Registry,
    pub liveness: Arc<Liveness>,
    pub caches: Arc<Caches>,
    pub stats: Arc<StatsBoard>,
    pub revoker: Arc<Revoker>,
    control: mpsc::Sender<Envelope>,
}

/// What applies control events, in order; run it as a task (a restarted
/// one drains the same queue).
#[derive(Clone)]
pub struct ControlLoop {
    rx: supervisor::Shared<mpsc::Receiver<Envelope>>,
    inbound: Arc<Inbound>,
}

impl Inbound {
    pub fn new(
        instance: &str,
        registry: Registry,
        liveness: Arc<Liveness>,
        caches: Arc<Caches>,
        stats: Arc<StatsBoard>,
        revoker: Arc<Revoker>,
    ) -> (Arc<Inbound>, ControlLoop) {
        let (control, rx) = mpsc::channel(CONTROL_QUEUE);
        let inbound = Arc::new(Inbound { instance: instance.to_string(), registry, liveness, caches, stats, revoker, control });
        (inbound.clone(), ControlLoop { rx: supervisor::shared(rx), inbound })
    }

    fn lease(&self) -> &Arc<Lease> {
        self.revoker.lease()
    }

    /// Cached answers that revocations may have changed can no longer be
    /// trusted: some control events were lost.
    fn forget_security_answers(&self) {
        self.lease().reset();
        self.caches.flush_revocable();
    }

    fn room_event(&self, origin: String, event: BusEvent) {
        match event {
            BusEvent::Messages { room_id, messages } => {
                METRICS.bridge(Direction::In).inc_by(messages.len() as u64);
                let room_id = RoomId(room_id);
                let Some(room) = self.registry.get(room_id) else { return };
                let arrived = std::time::Instant::now();
                let bus = METRICS.stage(DeliveryStage::Bus);
                let messages: Vec<Committed> = messages
                    .into_iter()
                    .filter_map(|mut m| {
                        let delay = m.bus_delay();
                        if let Some(delay) = delay {
                            bus.observe(delay.as_secs_f64());
                        }
                        let traceparent = m.traceparent.take();
                        let (message, received_at) = m.into_stored(room_id)?;
                        let trace = DeliveryTrace::from_bus(
                            room_id,
                            &message.room,
                            message.seq,
                            traceparent.as_deref(),
                            arrived,
                            delay.unwrap_or_default(),
                            received_at,
                        );
                        Some(Committed { message: Arc::new(message), received_at, available_at: arrived, trace })
                    })
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
                    room.do_send(RemotePresence { instance: origin, user_id: UserId(user_id), user, online });
                }
            }
            other => self.enqueue_control(Envelope { origin, event: other }),
        }
    }

    fn enqueue_control(&self, envelope: Envelope) {
        if let Err(e) = self.control.try_send(envelope) {
            log::warn!("bus: control queue full; dropping an event and flushing the revocable caches ({e})");
            METRICS.bridge_dropped.inc();
            self.forget_security_answers();
        }
    }
}

impl ControlLoop {
    pub async fn run(self) {
        let mut rx = self.rx.lock().await;
        while let Some(envelope) = rx.recv().await {
            supervisor::checkpoint(Task::ControlLoop);
            self.inbound.apply_control(envelope).await;
        }
    }
}

impl Inbound {
    async fn apply_control(&self, envelope: Envelope) {
        let Envelope { origin, event } = envelope;
        let own = origin == self.instance;
        match event {
            BusEvent::Lease { stamp } if own => self.lease().heard_own(stamp),
            BusEvent::Revoke { token_sha256, confirm } => {
                if let Some(hash) = TokenHash::from_hex(&token_sha256) {
                    self.revoker.on_event(&origin, AccessChange::TokenRevoked(hash), confirm).await;
                }
            }
            BusEvent::Kick { room_id, user_id, confirm } => {
                let revocation = AccessChange::MemberRemoved { room: RoomId(room_id), user: UserId(user_id) };
                self.revoker.on_event(&origin, revocation, confirm).await;
            }
            BusEvent::Grant { room_id, user_id, confirm } => {
                let change = AccessChange::MemberAdded { room: RoomId(room_id), user: UserId(user_id) };
                self.revoker.on_event(&origin, change, confirm).await;
            }
            BusEvent::Confirm { id } if !own => self.revoker.on_confirm(&origin, id),
            _ if own => {}
            BusEvent::Invalidate { cache, key } => self.caches.invalidate_remote(&cache, &key).await,
            BusEvent::Read { user_id, room, last_read, unread } => {
                let frame = crate::frames::read(&room, last_read, unread);
                self.revoker.connections().tell_user(UserId(user_id), &frame, None);
            }
            BusEvent::Heartbeat | BusEvent::Lease { .. } | BusEvent::Confirm { .. } => {}
            BusEvent::Stats { snapshot } => self.stats.remote_encoded(&origin, *snapshot),
            BusEvent::Goodbye => {
                self.liveness.forget(&origin);
                self.stats.forget(&origin);
                self.registry.instance_gone(&origin);
            }
            room @ (BusEvent::Messages { .. } | BusEvent::Typing { .. } | BusEvent::Presence { .. }) => {
                self.room_event(origin, room)
            }
        }
    }
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
        if envelope.origin != self.instance {
            // Heard now, in channel order: a revoker that sees its own echo
            // knows every instance announced before it.
            self.liveness.heard_from(&envelope.origin);
        }
        match channel {
            Channel::Control => self.enqueue_control(envelope),
            Channel::Room(_) if envelope.origin == self.instance => {}
            Channel::Room(_) => self.room_event(envelope.origin, envelope.event),
        }
    }

    fn resubscribed(&self, rooms: Option<&[RoomId]>) {
        self.registry.resync(rooms);
    }

    fn subscription_lost(&self) {
        self.lease().reset();
    }

    fn control_restored(&self) {
        self.forget_security_answers();
    }
}
