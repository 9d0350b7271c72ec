//! Room name -> room actor, for this instance. A plain map behind a mutex, not
//! an actor: lookups are short and must not queue behind room traffic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use std::sync::OnceLock;

use actix::{Actor, Addr};
use parking_lot::Mutex;

use super::room::{InstanceGone, Resync, Room};
use crate::bus::Bus;
use crate::cache::recent::RecentLists;
use crate::cluster::presence::PresenceStore;
use crate::domain::RoomId;
use crate::store::models::Room as RoomModel;
use crate::store::Store;

/// What every room actor needs from its instance.
#[derive(Clone)]
pub struct RoomSettings {
    pub replay_limit: i64,
    pub idle: Duration,
    pub gap_heal: Duration,
    /// How often a room with members checks the database for messages the
    /// bus lost (only when other instances may exist).
    pub resync: Duration,
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    rooms: Mutex<HashMap<RoomId, Addr<Room>>>,
    online: Mutex<HashMap<RoomId, usize>>,
    store: Store,
    settings: RoomSettings,
    presence: PresenceStore,
    recent: RecentLists,
    /// Set once at start-up; the bus needs the registry to deliver into.
    bus: OnceLock<Bus>,
}

impl Registry {
    pub fn new(store: Store, settings: RoomSettings, presence: PresenceStore, recent: RecentLists) -> Self {
        Registry {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                online: Mutex::new(HashMap::new()),
                store,
                settings,
                presence,
                recent,
                bus: OnceLock::new(),
            }),
        }
    }

    /// Connects the bus; called once, before any room starts.
    pub fn attach_bus(&self, bus: Bus) {
        if self.inner.bus.set(bus).is_err() {
            log::error!("registry: bus attached twice");
        }
    }

    pub fn bus(&self) -> &Bus {
        self.inner.bus.get().expect("bus attached at start-up")
    }

    pub fn presence(&self) -> &PresenceStore {
        &self.inner.presence
    }

    pub fn recent(&self) -> &RecentLists {
        &self.inner.recent
    }

    /// The running actors of these rooms (one lock for the lot).
    pub(crate) fn running(&self, ids: impl Iterator<Item = RoomId>) -> Vec<(RoomId, Addr<Room>)> {
        let rooms = self.inner.rooms.lock();
        ids.filter_map(|id| rooms.get(&id).map(|a| (id, a.clone()))).collect()
    }

    /// Asks rooms (all, or these) to read what they may have missed.
    pub fn resync(&self, rooms: Option<&[RoomId]>) {
        let map = self.inner.rooms.lock();
        match rooms {
            None => map.values().for_each(|a| a.do_send(Resync)),
            Some(ids) => ids.iter().filter_map(|id| map.get(id)).for_each(|a| a.do_send(Resync)),
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
    pub fn get_or_start(&self, room: &RoomModel) -> Addr<Room> {
        let mut rooms = self.inner.rooms.lock();
        if let Some(addr) = rooms.get(&room.id) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let addr = Room::new(room, self.clone(), self.inner.store.clone(), self.inner.settings.clone()).start();
        rooms.insert(room.id, addr.clone());
        addr
    }

    pub fn get(&self, id: RoomId) -> Option<Addr<Room>> {
        self.inner.rooms.lock().get(&id).filter(|a| a.connected()).cloned()
    }

    /// Forgets a stopping room, unless a newer actor already took its place.
    pub(crate) fn remove(&self, id: RoomId, addr: &Addr<Room>) {
        let mut rooms = self.inner.rooms.lock();
        if rooms.get(&id).is_some_and(|a| a == addr) {
            rooms.remove(&id);
        }
        self.inner.online.lock().remove(&id);
    }

    pub fn active_rooms(&self) -> usize {
        self.inner.rooms.lock().len()
    }

    /// Users online in a room on this instance.
    pub fn online_count(&self, id: RoomId) -> usize {
        self.inner.online.lock().get(&id).copied().unwrap_or(0)
    }

    pub(crate) fn set_online(&self, id: RoomId, users: usize) {
        self.inner.online.lock().insert(id, users);
    }

    /// Every running room, e.g. to drain them on shutdown.
    pub fn all(&self) -> Vec<Addr<Room>> {
        self.inner.rooms.lock().values().cloned().collect()
    }
}
