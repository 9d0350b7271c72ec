use super::ParseError;
use serde::Serialize;
use std::fmt;

/// `^[A-Za-z0-9_-]{3,32}$`, as the contract says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub const MAX_LEN: usize = 32;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (3..=Self::MAX_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Username(s.to_string()))
        } else {
            Err(ParseError("username must be 3-32 characters of letters, digits, '_' or '-'".into()))
        }
    }

    /// For values read back from the database, which only ever holds parsed names.
    pub(crate) fn from_trusted(s: String) -> Self {
        Username(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This name plus `-xxxx`, cut so the result is still a valid username.
    pub fn with_suffix(&self, suffix: &str) -> Username {
        let keep = Self::MAX_LEN - suffix.len() - 1;
        let base: String = self.0.chars().take(keep).collect();
        Username(format!("{base}-{suffix}"))
    }
}

impl<'de> serde::Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Username::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_pattern() {
        for ok in ["abc", "A_b-9", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in ["", "ab", &"x".repeat(33), "a b", "ab!", "ünï", "../etc", "a\u{0}b", "abc\n"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn suffix_keeps_the_name_valid() {
        let long = Username::parse(&"x".repeat(32)).unwrap();
        let s = long.with_suffix("a1b2");
        assert!(Username::parse(s.as_str()).is_ok());
        assert!(s.as_str().ends_with("-a1b2"));
    }
}
