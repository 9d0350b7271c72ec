//! What a room actor needs from its instance, as a trait: the store and the
//! room settings, the bus, the presence snapshot, the message lists in
//! Redis, and somewhere to report
//! its online count and its end. The registry implements it; rooms do not
//! depend on the registry (which starts them).

use super::room::RoomSettings;
use crate::bus::Bus;
use crate::cache::recent::RecentLists;
use crate::chat::presence_store::PresenceStore;
use crate::domain::RoomId;
use crate::store::Store;

pub trait RoomHost: Send + Sync + 'static {
    fn store(&self) -> &Store;
    fn settings(&self) -> &RoomSettings;
    fn bus(&self) -> &Bus;
    fn presence(&self) -> &PresenceStore;
    fn recent(&self) -> &RecentLists;
    /// Users online in the room on this instance, for room lists.
    fn set_online(&self, room: RoomId, users: usize);
    /// The room actor started as `generation` is stopping.
    fn stopped(&self, room: RoomId, generation: u64);
}
