//! What a room actor is sent, and by whom.

use std::sync::Arc;

use actix::prelude::*;

use crate::chat::events::RoomEvent;
use crate::domain::{SessionId, UserId, Username};
use crate::store::models::StoredMessage;
use crate::store::writer::Committed;

/// A session joins; the room answers with `RoomEvent::Joined`, then (with
/// `since`) the replay, then the live stream.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub session: SessionId,
    pub user_id: UserId,
    pub user: Username,
    pub recipient: Recipient<RoomEvent>,
    /// The last seq the client saw, when it is recovering.
    pub since: Option<i64>,
}

/// A session stops receiving the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
}

/// A session's user is typing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    pub session: SessionId,
}

/// Messages committed for this room, in ascending seq.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub messages: Vec<Committed>,
    /// When it was sent to the room: the mailbox wait is the room's lag.
    pub queued_at: std::time::Instant,
}

/// A user lost membership: every session of theirs leaves the room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick {
    pub user_id: UserId,
}

/// Someone is typing in this room on another instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteTyping {
    pub user_id: UserId,
    pub user: Username,
}

/// A user's first connection opened (or last closed) on another instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemotePresence {
    pub instance: String,
    pub user_id: UserId,
    pub user: Username,
    pub online: bool,
}

/// Another instance is gone: its users are offline unless seen elsewhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InstanceGone {
    pub instance: String,
}

/// The newest page of history from the room's window, if the window reaches
/// `at_least` (the room's last_seq per the primary) and holds the page.
#[derive(Message)]
#[rtype(result = "Option<(Vec<Arc<StoredMessage>>, bool)>")]
pub struct NewestPage {
    pub limit: usize,
    pub at_least: i64,
}

/// Who is online in the room, cluster-wide (for the member list).
#[derive(Message)]
#[rtype(result = "Vec<UserId>")]
pub struct OnlineUsers;

/// Read any committed messages this room has not delivered yet (after the
/// bus reconnected, or a subscription took effect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync;
