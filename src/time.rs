//! Timestamps on the wire: RFC 3339, UTC, millisecond precision.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, cut to whole milliseconds so what is stored equals what is sent.
pub fn now_millis() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

pub mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// For an `Option` skipped when `None`.
    pub fn serialize_some<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_with_millis_and_z() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 17, 5, 3).unwrap() + chrono::Duration::milliseconds(123);
        assert_eq!(rfc3339_millis::format(&t), "2026-11-26T17:05:03.123Z");
    }
}
