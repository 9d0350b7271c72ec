use super::{has_forbidden_control, ParseError};

/// A room topic: up to 256 characters, single line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topic(String);

impl Topic {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.chars().count() > 256 || has_forbidden_control(s) || s.contains(['\n', '\r']) {
            return Err(ParseError("topic must be at most 256 characters on one line".into()));
        }
        Ok(Topic(s.trim().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
