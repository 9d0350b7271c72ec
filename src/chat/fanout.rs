//! Where a commit goes next: the step between the writer and the rooms.
//!
//! The writer hands every committed batch here (it is the writer's
//! `CommitListener`). Each room's part goes to the room actor on this
//! instance, and, when other instances may exist, onto the bus (one event per
//! room per batch), with the writes to the room's recent-message list in
//! Redis in the same pipeline. On the
//! other instances, `cluster::inbound` hands the same messages to their rooms.

use std::collections::HashMap;

use super::room::Deliver;
use super::Registry;
use crate::bus::{BusEvent, BusMessage, Channel};
use crate::domain::RoomId;
use crate::store::writer::{CommitListener, Committed};

pub struct Fanout {
    registry: Registry,
}

impl Fanout {
    pub fn new(registry: Registry) -> Self {
        Fanout { registry }
    }
}

impl CommitListener for Fanout {
    /// Hands each room its part of a committed batch (already in seq order)
    /// and publishes it, one bus event per room, for the other instances.
    fn committed(&self, batch: Vec<Committed>) {
        let mut by_room: HashMap<RoomId, Vec<Committed>> = HashMap::new();
        for c in batch {
            by_room.entry(c.message.room_id).or_default().push(c);
        }
        for messages in by_room.values() {
            if let Some(first) = messages.first() {
                crate::stats::traffic::record(first.message.room.as_str(), messages.len() as u64);
            }
        }
        let bus = self.registry.bus();
        if bus.is_shared() {
            for (id, messages) in &by_room {
                let wire: Vec<BusMessage> = messages
                    .iter()
                    .map(|c| BusMessage::from_stored(&c.message, c.received_at, c.available_at, c.trace.as_deref()))
                    .collect();
                let companion = self.registry.recent().append(*id, &wire);
                let traces = messages.iter().filter_map(|c| c.trace.clone()).collect();
                let event = BusEvent::Messages { room_id: id.0, messages: wire };
                bus.publish_with(Channel::Room(*id), event, traces, companion);
            }
        }
        let running: HashMap<RoomId, _> = self.registry.running(by_room.keys().copied()).into_iter().collect();
        for (id, messages) in by_room {
            if let Some(addr) = running.get(&id) {
                addr.do_send(Deliver { messages, queued_at: std::time::Instant::now() });
            }
        }
    }
}
