//! Read markers: moving a member's marker (HTTP `PUT …/read` and the
//! WebSocket `read` frame share this) and telling the user's other sockets,
//! on every instance, so two tabs or two devices stay in step.

use crate::bus::{BusEvent, Channel};
use crate::chat::frames;
use crate::domain::SessionId;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::models::User;

/// `user` has read `room` up to `seq`. A marker never moves back (a lower
/// or a future seq changes nothing); when it moves, every other socket of
/// the user gets `{"type":"read","room","last_read","unread"}` (`except` is
/// the socket that said so).
pub async fn mark(state: &AppState, user: &User, room: &str, seq: i64, except: Option<SessionId>) -> Result<(), ApiError> {
    if seq < 0 {
        return Err(ApiError::BadRequest("seq must be >= 0".into()));
    }
    let room = crate::access::visible_room(state, user, room).await?;
    if !room.private {
        // Public rooms remember who joined them; reading one is joining enough.
        crate::access::ensure_member(state, room.id, user.id).await?;
    }
    let Some(last_read) = state.store.mark_read(room.id, user.id, seq).await? else { return Ok(()) };
    let unread = state.store.read_states(user.id, &[room.id]).await?.first().map_or(0, |r| r.unread);
    state.connections.tell_user(user.id, &frames::read(room.name.as_str(), last_read, unread), except);
    if state.bus.is_shared() {
        let event = BusEvent::Read { user_id: user.id.0, room: room.name.to_string(), last_read, unread };
        state.bus.publish(Channel::Control, event);
    }
    Ok(())
}
