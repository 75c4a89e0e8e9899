//! W3C trace context a client put in a request's `params._meta` (`traceparent`,
//! `tracestate`; MCP SEP-414, the OpenTelemetry MCP conventions), so the span of the
//! call can be a child of the agent's own span. From a watched process: parsed
//! strictly, bounded, and anything malformed is no context at all (a new trace).

use serde_json::Value;

/// Longest `tracestate` kept (W3C: 32 members of at most 256 bytes each would be
/// 8 KiB; vendors keep to 512). A longer one is dropped, the parent kept.
pub const MAX_TRACESTATE_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
    pub state: Option<String>,
}

impl TraceParent {
    /// From a request's `_meta` object, when it has a valid `traceparent`.
    pub fn from_meta(meta: &Value) -> Option<Self> {
        let parent = meta.get("traceparent")?.as_str()?;
        let state = meta.get("tracestate").and_then(Value::as_str);
        Self::parse(parent, state)
    }

    /// `version-traceid-parentid-flags`: version 00 exactly, or a later version with
    /// at least those fields (W3C: a parser reads the known part of a future version).
    /// Lowercase hex only; an all-zero trace or parent id is invalid.
    pub fn parse(parent: &str, state: Option<&str>) -> Option<Self> {
        let b = parent.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex::<1>(&b[..2])?[0];
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let trace_id = hex::<16>(&b[3..35])?;
        let span_id = hex::<8>(&b[36..52])?;
        let flags = hex::<1>(&b[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let state = state
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE_BYTES && s.is_ascii())
            .map(str::to_string);
        Some(Self {
            trace_id,
            span_id,
            flags,
            state,
        })
    }
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_and_tracestate_are_read() {
        let t = TraceParent::from_meta(&json!({"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE"}))
            .unwrap();
        assert_eq!(t.trace_id[..4], [0x4b, 0xf9, 0x2f, 0x35]);
        assert_eq!(t.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(t.flags, 1);
        assert_eq!(t.state.as_deref(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn malformed_ones_are_no_context() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad, None), None, "{bad:?}");
        }
        assert_eq!(TraceParent::from_meta(&json!({"traceparent": 7})), None);
        // A future version: its known part is read.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later";
        assert!(TraceParent::parse(future, None).is_some());
    }

    #[test]
    fn an_overlong_or_non_ascii_tracestate_is_dropped_and_the_parent_kept() {
        let long = "a=".to_string() + &"b".repeat(MAX_TRACESTATE_BYTES);
        assert_eq!(TraceParent::parse(VALID, Some(&long)).unwrap().state, None);
        assert_eq!(TraceParent::parse(VALID, Some("a=é")).unwrap().state, None);
    }
}
