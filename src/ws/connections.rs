//! Live connections on this instance by token, so a logout can close the
//! sockets that token opened, and shutdown can drain them all.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Message, Recipient};
use parking_lot::Mutex;

use crate::domain::{SessionId, TokenHash};

/// Instructions to a session from outside its socket.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum Control {
    /// Its token was revoked: tell the client and close.
    Revoked,
    /// The instance is draining: send `reconnect` and close after a grace period.
    Drain { after_ms: u64 },
}

#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Mutex<HashMap<TokenHash, HashMap<SessionId, Recipient<Control>>>>>,
}

impl Connections {
    pub fn add(&self, token: TokenHash, session: SessionId, recipient: Recipient<Control>) {
        self.inner.lock().entry(token).or_default().insert(session, recipient);
    }

    pub fn remove(&self, token: &TokenHash, session: SessionId) {
        let mut map = self.inner.lock();
        if let Some(sessions) = map.get_mut(token) {
            sessions.remove(&session);
            if sessions.is_empty() {
                map.remove(token);
            }
        }
    }

    /// Closes every connection opened with this token.
    pub fn revoke(&self, token: &TokenHash) {
        let sessions = self.inner.lock().remove(token);
        for recipient in sessions.into_iter().flat_map(|s| s.into_values()) {
            recipient.do_send(Control::Revoked);
        }
    }

    pub fn count(&self) -> usize {
        self.inner.lock().values().map(HashMap::len).sum()
    }

    pub fn all(&self) -> Vec<Recipient<Control>> {
        self.inner.lock().values().flat_map(|s| s.values().cloned()).collect()
    }
}
