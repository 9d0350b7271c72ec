use super::{has_forbidden_control, ParseError};
use serde::Serialize;

/// The client's idempotency key for a send: 1..=128 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 128 || has_forbidden_control(s) || s.contains(['\n', '\r', '\t']) {
            return Err(ParseError("client_msg_id must be 1-128 bytes without control characters".into()));
        }
        Ok(ClientMsgId(s.to_string()))
    }

    pub(crate) fn from_trusted(s: String) -> Self {
        ClientMsgId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert!(ClientMsgId::parse("c-1").is_ok());
        assert!(ClientMsgId::parse("").is_err());
        assert!(ClientMsgId::parse(&"x".repeat(129)).is_err());
        assert!(ClientMsgId::parse("a\nb").is_err());
    }
}
