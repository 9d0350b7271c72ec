use super::ParseError;
use serde::Serialize;
use std::fmt;

/// `^[a-z0-9_-]{1,64}$`: safe in URLs, logs and Redis channel names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(RoomName(s.to_string()))
        } else {
            Err(ParseError("room name must be 1-64 characters of lowercase letters, digits, '_' or '-'".into()))
        }
    }

    pub(crate) fn from_trusted(s: String) -> Self {
        RoomName(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The start of a room name, as typed in a search box: lowercased, at most
/// 64 characters of the room-name alphabet (empty: no filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomNamePrefix(String);

impl RoomNamePrefix {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let lower = s.trim().to_ascii_lowercase();
        let ok =
            lower.len() <= 64 && lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(RoomNamePrefix(lower))
        } else {
            Err(ParseError("q must be the start of a room name: lowercase letters, digits, '_' or '-'".into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for RoomNamePrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RoomNamePrefix::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for RoomName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RoomName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse("a").is_ok());
        assert!(RoomName::parse(&"z".repeat(64)).is_ok());
        for bad in ["", "General", "a b", "../x", "x/y", "%2e%2e", &"z".repeat(65), "é"] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn prefixes_are_lowercased_and_limited_to_the_alphabet() {
        assert_eq!(RoomNamePrefix::parse("Gen").map(|p| p.0), Ok("gen".into()));
        assert_eq!(RoomNamePrefix::parse("").map(|p| p.0), Ok(String::new()));
        for bad in ["a b", "%", "\0", "é", &"x".repeat(65)] {
            assert!(RoomNamePrefix::parse(bad).is_err(), "{bad:?}");
        }
    }
}
