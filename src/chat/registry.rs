//! Room name -> room actor, for this instance. A plain map behind a mutex, not
//! an actor: lookups are short and must not queue behind room traffic.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Addr};
use parking_lot::Mutex;

use super::host::RoomHost;
use super::room::{InstanceGone, Resync, Room, RoomSettings};
use crate::bus::Bus;
use crate::cache::recent::RecentLists;
use crate::chat::presence_store::PresenceStore;
use crate::domain::{RoomId, RoomName};
use crate::store::Store;

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    /// Each running room's actor and which start of it that is.
    rooms: Mutex<HashMap<RoomId, (Addr<Room>, u64)>>,
    starts: std::sync::atomic::AtomicU64,
    online: Mutex<HashMap<RoomId, usize>>,
    store: Store,
    settings: RoomSettings,
    presence: PresenceStore,
    recent: RecentLists,
    bus: Bus,
}

impl Registry {
    pub fn new(store: Store, settings: RoomSettings, presence: PresenceStore, recent: RecentLists, bus: Bus) -> Self {
        Registry {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                starts: std::sync::atomic::AtomicU64::new(0),
                online: Mutex::new(HashMap::new()),
                store,
                settings,
                presence,
                recent,
                bus,
            }),
        }
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn recent(&self) -> &RecentLists {
        &self.inner.recent
    }

    pub fn presence(&self) -> &PresenceStore {
        &self.inner.presence
    }

    /// The running actors of these rooms (one lock for the lot).
    pub(crate) fn running(&self, ids: impl Iterator<Item = RoomId>) -> Vec<(RoomId, Addr<Room>)> {
        let rooms = self.inner.rooms.lock();
        ids.filter_map(|id| rooms.get(&id).map(|(a, _)| (id, a.clone()))).collect()
    }

    /// Asks rooms (all, or these) to read what they may have missed.
    pub fn resync(&self, rooms: Option<&[RoomId]>) {
        let map = self.inner.rooms.lock();
        match rooms {
            None => map.values().for_each(|(a, _)| a.do_send(Resync)),
            Some(ids) => ids.iter().filter_map(|id| map.get(id)).for_each(|(a, _)| a.do_send(Resync)),
        }
    }

    /// Another instance is gone: every room forgets who was online there.
    pub fn instance_gone(&self, instance: &str) {
        for addr in self.all() {
            addr.do_send(InstanceGone { instance: instance.to_string() });
        }
    }

    /// The room's actor, started on the calling arbiter if it is not running.
    /// Must be called from within an actix system.
    pub fn get_or_start(&self, id: RoomId, name: &RoomName) -> Addr<Room> {
        let mut rooms = self.inner.rooms.lock();
        if let Some((addr, _)) = rooms.get(&id) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let generation = self.inner.starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let host: Arc<dyn RoomHost> = Arc::new(self.clone());
        let addr = Room::new(id, name.clone(), generation, host).start();
        rooms.insert(id, (addr.clone(), generation));
        addr
    }

    pub fn get(&self, id: RoomId) -> Option<Addr<Room>> {
        self.inner.rooms.lock().get(&id).map(|(a, _)| a).filter(|a| a.connected()).cloned()
    }

    pub fn active_rooms(&self) -> usize {
        self.inner.rooms.lock().len()
    }

    /// Users online in a room on this instance.
    pub fn online_count(&self, id: RoomId) -> usize {
        self.inner.online.lock().get(&id).copied().unwrap_or(0)
    }

    /// Every running room, e.g. to drain them on shutdown.
    pub fn all(&self) -> Vec<Addr<Room>> {
        self.inner.rooms.lock().values().map(|(a, _)| a.clone()).collect()
    }
}

impl RoomHost for Registry {
    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn settings(&self) -> &RoomSettings {
        &self.inner.settings
    }

    fn bus(&self) -> &Bus {
        Registry::bus(self)
    }

    fn presence(&self) -> &PresenceStore {
        Registry::presence(self)
    }

    fn recent(&self) -> &RecentLists {
        Registry::recent(self)
    }

    fn set_online(&self, room: RoomId, users: usize) {
        self.inner.online.lock().insert(room, users);
    }

    /// Forgets a stopping room, unless a newer actor already took its place.
    fn stopped(&self, room: RoomId, generation: u64) {
        let mut rooms = self.inner.rooms.lock();
        if rooms.get(&room).is_some_and(|(_, g)| *g == generation) {
            rooms.remove(&room);
        }
        self.inner.online.lock().remove(&room);
    }
}
