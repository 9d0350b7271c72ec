//! Typed domain values: once parsed, a value is valid everywhere it travels.

mod body;
mod client_msg_id;
mod ids;
mod password;
mod room_name;
pub mod sql_types;
mod token;
mod topic;
mod username;

pub use body::Body;
pub use client_msg_id::ClientMsgId;
pub use ids::{MessageId, RoomId, SessionId, UserId};
pub use password::Password;
pub use room_name::{RoomName, RoomNamePrefix};
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

#[cfg(test)]
mod properties {
    //! Names and bodies: arbitrary input is accepted only when it is valid,
    //! and nothing panics.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn usernames(s in "\\PC{0,40}|[A-Za-z0-9_-]{0,40}") {
            if let Ok(u) = Username::parse(&s) {
                prop_assert!((3..=32).contains(&u.as_str().len()));
                prop_assert!(u.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            }
        }

        #[test]
        fn room_names_refuse_path_tricks(s in "\\PC{0,70}|[a-z0-9_./%-]{0,70}") {
            if let Ok(r) = RoomName::parse(&s) {
                prop_assert!(!r.as_str().contains('/') && !r.as_str().contains('.') && !r.as_str().contains('%'));
                prop_assert!((1..=64).contains(&r.as_str().len()));
            }
        }

        #[test]
        fn bodies_have_no_controls_and_fit(s in "\\PC{0,50}|[\\x00-\\x1f a-z]{0,50}|.{3990,4010}") {
            if let Ok(b) = Body::parse(&s) {
                prop_assert!(b.as_str().chars().count() <= Body::MAX_CHARS);
                prop_assert!(!has_forbidden_control(b.as_str()));
                prop_assert!(!b.as_str().trim().is_empty());
            }
        }

        #[test]
        fn client_msg_ids(s in "\\PC{0,140}") {
            if let Ok(c) = ClientMsgId::parse(&s) {
                prop_assert!((1..=128).contains(&c.as_str().len()));
            }
        }
    }
}
