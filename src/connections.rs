//! Live connections on this instance, by token and by user, so a logout can
//! close the sockets a token opened, a member removal can take a user's
//! sockets out of a room, and shutdown can drain them all.
//!
//! AccessChange is "at once" (guarantee 5): the instance confirms a revocation
//! only after every affected socket can no longer act. Actor messages are
//! asynchronous, so each socket also has a `SessionGuard` that the revoking
//! code flips synchronously and the session checks before every join, send
//! and delivery. A socket is registered (by token) before its token is even
//! checked, so a revocation racing an upgrade still finds it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use actix::{Message, Recipient, WeakRecipient};
use parking_lot::Mutex;

use crate::domain::{RoomId, SessionId, TokenHash, UserId};

/// Instructions to a session from outside its socket.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Control {
    /// Its token was revoked (or expired): tell the client and close.
    Revoked,
    /// The instance is draining: send `reconnect` and close after a grace period.
    Drain { after_ms: u64 },
    /// A frame for this user's sockets (their read marker moved elsewhere).
    Frame(bytestring::ByteString),
}

/// What outside code may change about a session at once, without waiting for
/// its mailbox.
#[derive(Debug)]
pub struct SessionGuard {
    pub id: SessionId,
    revoked: AtomicBool,
    /// Bumped by every kick of this session's user, so a join that was
    /// authorised before a kick notices it and checks again.
    kick_generation: AtomicU64,
    kicked: Mutex<Vec<RoomId>>,
}

impl SessionGuard {
    fn new() -> Self {
        SessionGuard {
            id: SessionId::next(),
            revoked: AtomicBool::new(false),
            kick_generation: AtomicU64::new(0),
            kicked: Mutex::new(Vec::new()),
        }
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    pub fn kick_generation(&self) -> u64 {
        self.kick_generation.load(Ordering::Acquire)
    }

    /// Whether the user was removed from `room` since this socket last was
    /// authorised for it. The common case (never kicked) reads one atomic.
    pub fn is_kicked(&self, room: RoomId) -> bool {
        self.kick_generation() != 0 && self.kicked.lock().contains(&room)
    }

    /// A join authorised after the last kick: the room is allowed again.
    pub fn clear_kick(&self, room: RoomId) {
        if self.kick_generation() != 0 {
            self.kicked.lock().retain(|r| *r != room);
        }
    }

    fn kick(&self, room: RoomId) {
        let mut kicked = self.kicked.lock();
        if !kicked.contains(&room) {
            kicked.push(room);
        }
        self.kick_generation.fetch_add(1, Ordering::AcqRel);
    }
}

struct Entry {
    guard: Arc<SessionGuard>,
    user: Option<UserId>,
    /// Weak: a strong one costs every socket three more allocations (about
    /// 110 bytes) held for its whole life, for the rare control message.
    recipient: Option<WeakRecipient<Control>>,
}

impl Entry {
    fn tell(&self, control: Control) {
        if let Some(recipient) = self.recipient.as_ref().and_then(WeakRecipient::upgrade) {
            recipient.do_send(control);
        }
    }
}

#[derive(Default)]
struct Index {
    by_token: HashMap<TokenHash, HashMap<SessionId, Entry>>,
    by_user: HashMap<UserId, HashMap<SessionId, TokenHash>>,
}

#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<Index>>,
}

/// A socket's place in the index; dropping it removes the socket.
pub struct Registration {
    connections: Connections,
    token: TokenHash,
    pub guard: Arc<SessionGuard>,
}

impl Registration {
    /// The token the socket signed in with.
    pub fn token(&self) -> &TokenHash {
        &self.token
    }
}

impl Connections {
    /// Registers a socket for `token` before the token is checked.
    pub fn open(&self, token: TokenHash) -> Registration {
        let guard = Arc::new(SessionGuard::new());
        let entry = Entry { guard: guard.clone(), user: None, recipient: None };
        self.inner.lock().by_token.entry(token).or_default().insert(guard.id, entry);
        Registration { connections: self.clone(), token, guard }
    }

    /// The socket's actor is running for `user`: it can now be told things.
    pub fn attach(&self, registration: &Registration, user: UserId, recipient: WeakRecipient<Control>) {
        let mut index = self.inner.lock();
        let id = registration.guard.id;
        let Some(entry) = index.by_token.get_mut(&registration.token).and_then(|s| s.get_mut(&id)) else { return };
        entry.user = Some(user);
        entry.recipient = Some(recipient);
        index.by_user.entry(user).or_default().insert(id, registration.token);
    }

    fn remove(&self, token: &TokenHash, id: SessionId) {
        let mut index = self.inner.lock();
        let Some(sessions) = index.by_token.get_mut(token) else { return };
        let user = sessions.remove(&id).and_then(|e| e.user);
        if sessions.is_empty() {
            index.by_token.remove(token);
        }
        if let Some(user) = user {
            if let Some(ids) = index.by_user.get_mut(&user) {
                ids.remove(&id);
                if ids.is_empty() {
                    index.by_user.remove(&user);
                }
            }
        }
    }

    /// Every socket opened with this token stops acting now and is closed.
    pub fn revoke(&self, token: &TokenHash) {
        let index = self.inner.lock();
        for entry in index.by_token.get(token).into_iter().flat_map(HashMap::values) {
            entry.guard.revoked.store(true, Ordering::Release);
            entry.tell(Control::Revoked);
        }
    }

    /// Writes `frame` to every socket of `user` here, but `except`.
    pub fn tell_user(&self, user: UserId, frame: &bytestring::ByteString, except: Option<SessionId>) {
        let index = self.inner.lock();
        for (id, token) in index.by_user.get(&user).into_iter().flat_map(HashMap::iter) {
            if Some(*id) == except {
                continue;
            }
            if let Some(entry) = index.by_token.get(token).and_then(|s| s.get(id)) {
                entry.tell(Control::Frame(frame.clone()));
            }
        }
    }

    /// Every socket of `user` stops sending to and receiving from `room` now.
    pub fn kick(&self, user: UserId, room: RoomId) {
        let index = self.inner.lock();
        for (id, token) in index.by_user.get(&user).into_iter().flat_map(HashMap::iter) {
            if let Some(entry) = index.by_token.get(token).and_then(|s| s.get(id)) {
                entry.guard.kick(room);
            }
        }
    }

    pub fn count(&self) -> usize {
        self.inner.lock().by_token.values().map(HashMap::len).sum()
    }

    /// Every running socket here.
    pub fn all(&self) -> Vec<Recipient<Control>> {
        let index = self.inner.lock();
        index.by_token.values().flat_map(|s| s.values().filter_map(|e| e.recipient.as_ref()?.upgrade())).collect()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.remove(&self.token, self.guard.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u8) -> TokenHash {
        TokenHash([n; 32])
    }

    #[test]
    fn revocation_reaches_sockets_registered_before_their_token_was_checked() {
        let c = Connections::default();
        let a = c.open(token(1));
        let b = c.open(token(2));
        c.revoke(&token(1));
        assert!(a.guard.is_revoked());
        assert!(!b.guard.is_revoked());
        assert_eq!(c.count(), 2);
        drop(a);
        assert_eq!(c.count(), 1);
    }

    #[test]
    fn kicks_mark_every_socket_of_the_user_until_a_fresh_join() {
        let c = Connections::default();
        let user = UserId(uuid::Uuid::new_v4());
        let other = UserId(uuid::Uuid::new_v4());
        let regs: Vec<Registration> = (1..=3).map(|n| c.open(token(n))).collect();
        // Attached without an actor: a recipient is only needed for Control.
        for (i, r) in regs.iter().enumerate() {
            let mut index = c.inner.lock();
            let u = if i < 2 { user } else { other };
            index.by_token.get_mut(&r.token).and_then(|s| s.get_mut(&r.guard.id)).expect("registered").user = Some(u);
            index.by_user.entry(u).or_default().insert(r.guard.id, r.token);
        }
        let room = RoomId(7);
        let before = regs[0].guard.kick_generation();
        c.kick(user, room);
        assert!(regs[0].guard.is_kicked(room) && regs[1].guard.is_kicked(room));
        assert!(!regs[2].guard.is_kicked(room));
        assert!(!regs[0].guard.is_kicked(RoomId(8)));
        assert_ne!(regs[0].guard.kick_generation(), before);
        regs[0].guard.clear_kick(room);
        assert!(!regs[0].guard.is_kicked(room));
        drop(regs);
        assert_eq!(c.count(), 0);
        assert!(c.inner.lock().by_user.is_empty());
    }
}
