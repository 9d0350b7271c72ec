use super::{has_forbidden_control, ParseError};
use std::fmt;

/// A message body: 1..=4000 Unicode scalar values, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.trim().is_empty() {
            return Err(ParseError("body must not be empty".into()));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(ParseError(format!("body must be at most {} characters", Self::MAX_CHARS)));
        }
        if has_forbidden_control(s) {
            return Err(ParseError("body must not contain control characters".into()));
        }
        Ok(Body(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_scalar_values_not_bytes() {
        assert!(Body::parse(&"é".repeat(4000)).is_ok());
        assert!(Body::parse(&"é".repeat(4001)).is_err());
        assert!(Body::parse(&"😀".repeat(4000)).is_ok());
    }

    #[test]
    fn refuses_empty_and_controls() {
        assert!(Body::parse("").is_err());
        assert!(Body::parse("   ").is_err());
        assert!(Body::parse("a\u{0}b").is_err());
        assert!(Body::parse("a\u{7}b").is_err());
        assert!(Body::parse("line one\nline two\ttab").is_ok());
        assert!(Body::parse("<script>alert(1)</script>").is_ok());
    }
}
