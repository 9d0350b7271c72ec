//! Typed domain values: once parsed, a value is valid everywhere it travels.

mod body;
mod client_msg_id;
mod ids;
mod password;
mod room_name;
mod token;
mod topic;
mod username;

pub use body::Body;
pub use client_msg_id::ClientMsgId;
pub use ids::{MessageId, RoomId, SessionId, UserId};
pub use password::Password;
pub use room_name::RoomName;
pub use token::{Token, TokenHash};
pub use topic::Topic;
pub use username::Username;

/// Why a value was refused; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Control characters other than tab and newlines have no place in chat text,
/// and PostgreSQL cannot store NUL at all.
pub(crate) fn has_forbidden_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}
