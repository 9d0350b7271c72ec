//! The in-process bus: instances in one process reach each other directly.
//! In single-instance mode (no `REDIS_URL`) there is no other instance, so
//! nothing is delivered, and nothing needs to be: the writer already hands
//! committed messages to the local rooms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{BusListener, Channel, Intake, Subscriptions, Transport};
use crate::redis_pool::RedisFailure;
use crate::telemetry::delivery::DeliveryTrace;

type Handler = Arc<dyn BusListener>;

struct Member {
    id: u64,
    subscriptions: Arc<Subscriptions>,
    handler: Handler,
}

/// One process-wide meeting point; each `LocalTransport` is one instance on it.
#[derive(Default, Clone)]
pub struct LocalHub {
    members: Arc<Mutex<Vec<Member>>>,
    next_id: Arc<AtomicU64>,
}

pub struct LocalTransport {
    id: u64,
    hub: LocalHub,
}

impl LocalHub {
    /// An instance on the hub; it hears the others once its intake starts.
    pub fn join(&self, subscriptions: Arc<Subscriptions>) -> (LocalTransport, Intake) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let members = self.members.clone();
        let intake = Intake::new(move |handler| members.lock().push(Member { id, subscriptions, handler }));
        (LocalTransport { id, hub: self.clone() }, intake)
    }
}

impl Transport for LocalTransport {
    fn publish(&self, channel: Channel, payload: Vec<u8>, traces: Vec<Arc<DeliveryTrace>>, _companion: super::Companion) {
        let now = std::time::Instant::now();
        for t in &traces {
            t.published(now, now, 1);
        }
        let targets: Vec<Handler> = self
            .hub
            .members
            .lock()
            .iter()
            .filter(|m| m.id != self.id)
            .filter(|m| match channel {
                Channel::Control => true,
                Channel::Room(room) => m.subscriptions.rooms.lock().contains(&room),
            })
            .map(|m| m.handler.clone())
            .collect();
        for handler in targets {
            handler.received(channel, &payload);
        }
    }

    fn publish_now(
        &self,
        channel: Channel,
        payload: Vec<u8>,
    ) -> futures_util::future::BoxFuture<'static, Result<(), RedisFailure>> {
        self.publish(channel, payload, Vec::new(), Vec::new());
        Box::pin(async { Ok(()) })
    }

    fn subscriptions_changed(&self) {}
}

impl Drop for LocalTransport {
    fn drop(&mut self) {
        self.hub.members.lock().retain(|m| m.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RoomId;

    #[test]
    fn delivers_to_other_subscribed_members_only() {
        let hub = LocalHub::default();
        type Got = Arc<Mutex<Vec<(u64, Channel, Vec<u8>)>>>;
        struct Recorder(u64, Got);
        impl BusListener for Recorder {
            fn received(&self, c: Channel, p: &[u8]) {
                self.1.lock().push((self.0, c, p.to_vec()));
            }
            fn resubscribed(&self, _: Option<&[RoomId]>) {}
        }
        let got: Got = Arc::default();
        let make = |n: u64, subs: Arc<Subscriptions>| {
            let (transport, intake) = hub.join(subs);
            intake.start(Arc::new(Recorder(n, got.clone())));
            transport
        };
        let subs_a = Arc::new(Subscriptions::default());
        let subs_b = Arc::new(Subscriptions::default());
        subs_b.rooms.lock().insert(RoomId(7));
        let a = make(1, subs_a);
        let _b = make(2, subs_b);

        a.publish(Channel::Room(RoomId(7)), b"m".to_vec(), Vec::new(), Vec::new());
        a.publish(Channel::Room(RoomId(8)), b"x".to_vec(), Vec::new(), Vec::new());
        a.publish(Channel::Control, b"c".to_vec(), Vec::new(), Vec::new());
        let got = got.lock().clone();
        assert_eq!(got, vec![(2, Channel::Room(RoomId(7)), b"m".to_vec()), (2, Channel::Control, b"c".to_vec())]);
    }
}
