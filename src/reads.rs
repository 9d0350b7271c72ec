//! Read markers: moving a member's marker (HTTP `PUT …/read` and the
//! WebSocket `read` frame share the checks) and telling the user's other
//! sockets, on every instance, so two tabs or two devices stay in step.
//!
//! HTTP moves the marker before it answers. WebSocket markers are
//! coalesced: a client may send one per batch of messages it reads (dozens
//! a second in a busy room), so `ReadMarks` keeps only the newest per user
//! and room and stores them together every `FLUSH` (one statement on
//! PostgreSQL), then tells the users' other sockets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::access::Access;
use crate::bus::{Bus, BusEvent, Channel};
use crate::connections::Connections;
use crate::domain::{RoomId, RoomName, SessionId, UserId};
use crate::error::ApiError;
use crate::frames;
use crate::store::models::User;
use crate::store::Store;

/// How long markers gather before they are stored together.
const FLUSH: Duration = Duration::from_millis(500);

/// The newest marker a socket asked for in a room, not stored yet.
struct Pending {
    seq: i64,
    room: RoomName,
    except: Option<SessionId>,
}

/// The WebSocket markers waiting to be stored (see the module).
pub struct ReadMarks {
    pending: Mutex<HashMap<(UserId, RoomId), Pending>>,
    wake: Notify,
    started: std::sync::Once,
    access: Access,
    store: Store,
    connections: Connections,
    bus: Bus,
}

impl ReadMarks {
    pub fn new(access: Access, store: Store, connections: Connections, bus: Bus) -> Arc<ReadMarks> {
        Arc::new(ReadMarks {
            pending: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            started: std::sync::Once::new(),
            access,
            store,
            connections,
            bus,
        })
    }

    /// Keeps the newest marker per user and room until the next flush.
    pub fn queue(self: &Arc<Self>, user: UserId, room: RoomId, name: RoomName, seq: i64, except: Option<SessionId>) {
        self.started.call_once(|| {
            let me = self.clone();
            tokio::spawn(async move { me.run().await });
        });
        let mut pending = self.pending.lock();
        let entry = pending.entry((user, room)).or_insert(Pending { seq, room: name, except });
        if seq >= entry.seq {
            entry.seq = seq;
            entry.except = except;
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// The room whose marker `user` may move, or why not.
    async fn room_to_mark(&self, user: &User, room: &str, seq: i64) -> Result<crate::cache::RoomMeta, ApiError> {
        if seq < 0 {
            return Err(ApiError::BadRequest("seq must be >= 0".into()));
        }
        let room = self.access.visible_room(user, room).await?;
        if !room.private {
            // Public rooms remember who joined them; reading one is joining enough.
            self.access.ensure_member(room.id, user.id).await?;
        }
        Ok(room)
    }

    /// `user` has read `room` up to `seq` (HTTP): stored before this returns.
    /// A marker never moves back (a lower or a future seq changes nothing);
    /// when it moves, every socket of the user gets
    /// `{"type":"read","room","last_read","unread"}`.
    pub async fn mark(&self, user: &User, room: &str, seq: i64) -> Result<(), ApiError> {
        let room = self.room_to_mark(user, room, seq).await?;
        let Some(last_read) = self.store.mark_read(room.id, user.id, seq).await? else { return Ok(()) };
        let unread = self.store.read_states(user.id, &[room.id]).await?.first().map_or(0, |r| r.unread);
        tell(&self.connections, &self.bus, user.id, room.name.as_str(), last_read, unread, None);
        Ok(())
    }

    /// The same from socket `from` (WebSocket `read`): checked now, stored
    /// with the others within `FLUSH`; the socket that said so is not told.
    pub async fn mark_soon(self: &Arc<Self>, user: &User, room: &str, seq: i64, from: SessionId) -> Result<(), ApiError> {
        let room = self.room_to_mark(user, room, seq).await?;
        self.queue(user.id, room.id, room.name, seq, Some(from));
        Ok(())
    }

    async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(FLUSH).await;
            let batch: Vec<((UserId, RoomId), Pending)> = self.pending.lock().drain().collect();
            if batch.is_empty() {
                continue;
            }
            let marks: Vec<(UserId, RoomId, i64)> = batch.iter().map(|((u, r), p)| (*u, *r, p.seq)).collect();
            let moved = match self.store.mark_read_many(&marks).await {
                Ok(moved) => moved,
                Err(e) => {
                    // Markers are advice: the client sends a newer one as it reads on.
                    log::warn!("{} read markers not stored: {e}", marks.len());
                    continue;
                }
            };
            let by_key: HashMap<(UserId, RoomId), &Pending> = batch.iter().map(|(k, p)| (*k, p)).collect();
            for m in moved {
                let key = (UserId(m.user_id), RoomId(m.room_id));
                let Some(p) = by_key.get(&key) else { continue };
                tell(&self.connections, &self.bus, key.0, p.room.as_str(), m.last_read, m.unread, p.except);
            }
        }
    }
}

/// The user's other sockets here hear of it, and those on other instances.
fn tell(connections: &Connections, bus: &Bus, user: UserId, room: &str, last_read: i64, unread: i64, except: Option<SessionId>) {
    connections.tell_user(user, &frames::read(room, last_read, unread), except);
    if bus.is_shared() {
        bus.publish(Channel::Control, BusEvent::Read { user_id: user.0, room: room.to_string(), last_read, unread });
    }
}
