//! W3C trace context: trace and span ids, and the `traceparent` header that
//! carries them between processes (HTTP callers, and our own bus).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub u128);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub u64);

impl TraceId {
    /// A random, valid (non-zero) id.
    pub fn random() -> TraceId {
        TraceId(rand::random::<u128>().max(1))
    }
}

impl SpanId {
    pub fn random() -> SpanId {
        SpanId(rand::random::<u64>().max(1))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A span in another process that ours continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteParent {
    pub trace: TraceId,
    pub span: SpanId,
    pub sampled: bool,
}

impl RemoteParent {
    /// Reads `00-<32 hex>-<16 hex>-<2 hex>`. Unknown future versions are read
    /// by the same prefix, as the W3C spec asks; all-zero ids are refused.
    pub fn parse(header: &str) -> Option<RemoteParent> {
        let header = header.trim();
        let mut parts = header.splitn(4, '-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        let flags = if version == "00" { flags } else { flags.get(..2)? };
        if !hex(flags, 2) {
            return None;
        }
        let trace = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(RemoteParent { trace: TraceId(trace), span: SpanId(span), sampled: flags & 1 == 1 })
    }

    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace, self.span, u8::from(self.sampled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let p =
            RemoteParent { trace: TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736), span: SpanId(0x00f067aa0ba902b7), sampled: true };
        assert_eq!(p.header(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(RemoteParent::parse(&p.header()), Some(p));
        let unsampled = RemoteParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").map(|p| p.sampled);
        assert_eq!(unsampled, Some(false));
    }

    #[test]
    fn bad_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(RemoteParent::parse(bad), None, "{bad}");
        }
        // A later version with more fields is read by its known prefix.
        assert!(RemoteParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-next").is_some());
    }
}
