//! Server-Sent Events framing (the `text/event-stream` of Streamable HTTP): lines end
//! with LF, CRLF or CR; `data:` lines of one event are joined with LF; a blank line
//! dispatches the event; `:` starts a comment. Bytes arrive in any split. An event that
//! outgrows the limit is dropped whole and counted.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:` (empty: the default type, `message`).
    pub kind: String,
    /// `id:`, when the event had one (resumption with `Last-Event-ID`).
    pub id: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The last byte was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    kind: String,
    id: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    /// Dropping the current event: it outgrew `max`.
    oversized: bool,
    max: usize,
    pub oversized_events: u64,
}

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        Self {
            max: max_event,
            ..Self::default()
        }
    }

    /// Feeds bytes of the stream; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.end_line(&line) {
                        out.push(e);
                    }
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() + self.data.len() < self.max {
                        self.line.push(b);
                    } else {
                        self.oversized = true;
                    }
                }
            }
        }
        out
    }

    fn end_line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.kind = String::from_utf8_lossy(value).into_owned(),
            b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = Event {
            kind: std::mem::take(&mut self.kind),
            id: self.id.take(),
            data: std::mem::take(&mut self.data),
        };
        let had = std::mem::take(&mut self.has_data);
        if std::mem::take(&mut self.oversized) {
            self.oversized_events += 1;
            return None;
        }
        had.then_some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b": priming\r\nid: 7\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1}\r\n\r\nretry: 10\n\nid:8\rdata:{}\r\rdata: x\n\n";

    fn all(p: &mut SseParser, chunks: &[&[u8]]) -> Vec<Event> {
        chunks.iter().flat_map(|c| p.push(c)).collect()
    }

    fn expected() -> Vec<Event> {
        vec![
            Event {
                kind: "message".into(),
                id: Some("7".into()),
                data: b"{\"jsonrpc\":\"2.0\",\n\"id\":1}".to_vec(),
            },
            Event {
                kind: String::new(),
                id: Some("8".into()),
                data: b"{}".to_vec(),
            },
            Event {
                kind: String::new(),
                id: None,
                data: b"x".to_vec(),
            },
        ]
    }

    #[test]
    fn events_are_the_same_whatever_the_split() {
        assert_eq!(all(&mut SseParser::new(1 << 20), &[STREAM]), expected());
        for cut in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(cut);
            assert_eq!(
                all(&mut SseParser::new(1 << 20), &[a, b]),
                expected(),
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(all(&mut SseParser::new(1 << 20), &bytes), expected());
    }

    #[test]
    fn an_oversized_event_is_dropped_and_counted_and_the_next_one_kept() {
        let mut p = SseParser::new(16);
        let got = p.push(b"data: 0123456789abcdefghij\n\ndata: ok\n\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, b"ok");
        assert_eq!(p.oversized_events, 1);
    }
}
