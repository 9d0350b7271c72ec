//! The bus between instances: committed messages, typing, presence and
//! control events (revoked tokens, removed members, liveness) travel over it.
//!
//! Two transports: Redis pub/sub (one publisher pool, one dedicated subscriber
//! connection per instance, subscribed to the rooms with local members) and an
//! in-process bus for single-instance mode. The bus is only the fast path:
//! rooms heal gaps and resync from PostgreSQL, so a lost or reordered bus
//! message never becomes a lost, duplicated or out-of-order delivery.

pub mod channels;
pub mod events;
pub mod local;
pub mod redis;
pub mod redis_cluster;
pub mod subscriber;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use events::{BusEvent, BusMessage, Envelope};

use crate::domain::RoomId;
use crate::metrics::{Direction, METRICS};
use crate::redis_pool::RedisFailure;
use crate::telemetry::delivery::DeliveryTrace;

/// Where an event goes: one room's channel, or the control channel every
/// instance listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Room(RoomId),
    Control,
}

/// Redis writes that ride in the same pipeline as a publish (a room's recent
/// list beside its messages), so a commit costs one round trip to Redis. A
/// transport without Redis drops them: nothing reads them there.
pub type Companion = Vec<bb8_redis::redis::Cmd>;

/// What a transport must do. Publishing never blocks and never fails the
/// caller: an event that cannot be sent is counted and dropped, and the
/// database-backed resync covers it.
pub trait Transport: Send + Sync + 'static {
    /// `traces`: the delivery traces of the messages in `payload`, told when
    /// the broker has taken it (empty unless tracing is on); `companion`:
    /// writes sent in the same pipeline, before the publish.
    fn publish(&self, channel: Channel, payload: Vec<u8>, traces: Vec<Arc<DeliveryTrace>>, companion: Companion);
    /// Publishes now, outside the queue, and resolves once the broker has
    /// taken the event (for revocations, whose timing matters).
    fn publish_now(&self, channel: Channel, payload: Vec<u8>) -> BoxFuture<'static, Result<(), RedisFailure>>;
    /// Recomputes subscriptions from `Subscriptions` (called after a change).
    fn subscriptions_changed(&self);
}

/// Who hears what arrives on the bus.
pub trait BusListener: Send + Sync + 'static {
    fn received(&self, channel: Channel, payload: &[u8]);
    /// Subscriptions were (re)established: these rooms (`None`: every room)
    /// may have missed messages meanwhile and should resync.
    fn resubscribed(&self, rooms: Option<&[RoomId]>);
    /// The subscription may be losing messages from now on.
    fn subscription_lost(&self) {}
    /// The control channel is subscribed again after a loss: control events
    /// published meanwhile are gone.
    fn control_restored(&self) {}
}

/// Connection state of the bus, for readiness and /admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BusState {
    Local = 0,
    Connected = 1,
    Disconnected = 2,
}

impl BusState {
    pub fn as_str(self) -> &'static str {
        match self {
            BusState::Local => "local",
            BusState::Connected => "connected",
            BusState::Disconnected => "disconnected",
        }
    }
}

/// Rooms this instance wants to hear about, shared with the transport.
#[derive(Default)]
pub struct Subscriptions {
    rooms: parking_lot::Mutex<std::collections::HashSet<RoomId>>,
}

impl Subscriptions {
    pub fn snapshot(&self) -> std::collections::HashSet<RoomId> {
        self.rooms.lock().clone()
    }
}

/// Why an event could not be published at once.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Redis(#[from] RedisFailure),
}

/// The bus's receiving side. The `Bus` is built first, so that everything
/// that publishes gets it when it is made; what listens (the inbound router)
/// is made from those parts last, and starts the intake.
pub struct Intake {
    start: Box<dyn FnOnce(Arc<dyn BusListener>) + Send>,
}

impl Intake {
    pub fn new(start: impl FnOnce(Arc<dyn BusListener>) + Send + 'static) -> Intake {
        Intake { start: Box::new(start) }
    }

    /// From now on, what arrives is handed to `listener`.
    pub fn start(self, listener: Arc<dyn BusListener>) {
        (self.start)(listener)
    }
}

/// Where the bus runs: in process (one instance) or over Redis.
#[allow(clippy::large_enum_variant)] // made once, at start-up
pub enum Medium {
    Local,
    Redis { subscriber: redis::Subscriber, pool: redis::RedisPool, prefix: String },
}

#[derive(Clone)]
pub struct Bus {
    instance: Arc<str>,
    transport: Arc<dyn Transport>,
    subscriptions: Arc<Subscriptions>,
    state: Arc<AtomicU8>,
}

impl Bus {
    /// The bus, publishing from now on, and its intake, to start once its
    /// listener exists.
    pub fn build(instance: &str, medium: Medium) -> (Bus, Intake) {
        let subscriptions = Arc::new(Subscriptions::default());
        let (transport, intake, state): (Arc<dyn Transport>, Intake, _) = match medium {
            Medium::Local => {
                let (transport, intake) = local::LocalHub::default().join(subscriptions.clone());
                (Arc::new(transport), intake, Arc::new(AtomicU8::new(BusState::Local as u8)))
            }
            Medium::Redis { subscriber, pool, prefix } => {
                // Disconnected until the subscriber is in (readiness says so).
                let state = Arc::new(AtomicU8::new(BusState::Disconnected as u8));
                let (transport, intake) =
                    redis::RedisTransport::start(subscriber, pool, prefix, subscriptions.clone(), state.clone());
                (transport, intake, state)
            }
        };
        (Bus { instance: instance.into(), transport, subscriptions, state }, intake)
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn state(&self) -> BusState {
        match self.state.load(Ordering::Acquire) {
            0 => BusState::Local,
            1 => BusState::Connected,
            _ => BusState::Disconnected,
        }
    }

    /// True when other instances may exist (Redis mode).
    pub fn is_shared(&self) -> bool {
        self.state() != BusState::Local
    }

    pub fn publish(&self, channel: Channel, event: BusEvent) {
        self.publish_with(channel, event, Vec::new(), Vec::new());
    }

    /// Publishes messages whose delivery traces want the publish's timing,
    /// with the Redis writes that go with them (see `Companion`).
    pub fn publish_with(&self, channel: Channel, event: BusEvent, traces: Vec<Arc<DeliveryTrace>>, companion: Companion) {
        if let BusEvent::Messages { messages, .. } = &event {
            METRICS.bridge(Direction::Out).inc_by(messages.len() as u64);
        }
        let envelope = Envelope { origin: self.instance.to_string(), event };
        match serde_json::to_vec(&envelope) {
            Ok(payload) => self.transport.publish(channel, payload, traces, companion),
            Err(e) => log::error!("bus: cannot encode an event: {e}"),
        }
    }

    /// Publishes ahead of the queue and waits until the broker has it.
    pub async fn publish_now(&self, channel: Channel, event: BusEvent) -> Result<(), PublishError> {
        let envelope = Envelope { origin: self.instance.to_string(), event };
        let payload = serde_json::to_vec(&envelope)?;
        Ok(self.transport.publish_now(channel, payload).await?)
    }

    pub fn subscribe(&self, room: RoomId) {
        if self.subscriptions.rooms.lock().insert(room) {
            self.transport.subscriptions_changed();
        }
    }

    pub fn unsubscribe(&self, room: RoomId) {
        if self.subscriptions.rooms.lock().remove(&room) {
            self.transport.subscriptions_changed();
        }
    }
}
