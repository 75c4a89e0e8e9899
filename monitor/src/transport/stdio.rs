//! stdio: a server's stdin carries the client's messages, its stdout the server's, one
//! JSON-RPC message per line. [`StdioTransport`] routes captured bytes by pipe inode
//! and frames them with a [`LineReassembler`] per direction.
//!
//! Reassembly: chunks arrive in order; the caller, which sees the kernel's stream
//! offsets, reports lost bytes with [`LineReassembler::lost`], and the stream then
//! resynchronises at the next newline. Nothing here can stop the monitor: bad input is
//! dropped and counted.
use super::{Direction, Framed, Gap, SessionKey};
use crate::host::identity::Stdio;

/// A stdio server's two streams and the one session they carry.
pub struct StdioTransport {
    /// The inodes of its stdin and stdout.
    pub stdio: Stdio,
    key: SessionKey,
    from_client: LineReassembler,
    to_client: LineReassembler,
}

impl StdioTransport {
    pub fn new(pid: u32, stdio: Stdio, max_message: usize) -> Self {
        Self {
            stdio,
            key: SessionKey::Stdio {
                pid,
                stdin: stdio.stdin.unwrap_or(0),
            },
            from_client: LineReassembler::new(max_message),
            to_client: LineReassembler::new(max_message),
        }
    }

    /// The session its messages belong to.
    pub fn key(&self) -> &SessionKey {
        &self.key
    }

    /// Which direction of the session bytes on `inode` belong to, if any: what the
    /// server's tree reads from its stdin, and what it writes to its stdout.
    pub fn direction_of(&self, inode: u64, read: bool) -> Option<Direction> {
        match read {
            true if self.stdio.stdin == Some(inode) => Some(Direction::ClientToServer),
            false if self.stdio.stdout == Some(inode) => Some(Direction::ServerToClient),
            _ => None,
        }
    }

    fn stream(&mut self, dir: Direction) -> &mut LineReassembler {
        match dir {
            Direction::ClientToServer => &mut self.from_client,
            Direction::ServerToClient => &mut self.to_client,
        }
    }

    /// Bytes of one direction were lost: resynchronise at the next message.
    pub fn lost(&mut self, dir: Direction, gap: Gap) {
        let s = self.stream(dir);
        s.lost(gap.bytes);
        s.at_transfer = gap.ends_at_transfer;
    }

    /// Feeds captured bytes of one direction; returns the messages they complete.
    /// `transfer_rest`: bytes of their transfer still to come (`Gap::transfer_rest`).
    pub fn push(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, transfer_rest: u64) -> Vec<Framed> {
        let lines = self.stream(dir).push_transfer(bytes, ts_ns, transfer_rest);
        lines
            .into_iter()
            .map(|line| Framed {
                session: self.key.clone(),
                direction: dir,
                ts_ns: line.last_ts_ns,
                body: line.bytes,
                bearer: None,
            })
            .collect()
    }

    /// Messages dropped whole for outgrowing the limit, both directions.
    pub fn oversized(&self) -> u64 {
        self.from_client.stats.oversized_lines + self.to_client.stats.oversized_lines
    }

    /// Lost and discarded bytes over both directions.
    pub fn stream_loss(&self) -> (u64, u64) {
        let (a, b) = (self.from_client.stats, self.to_client.stats);
        (a.bytes_lost + b.bytes_lost, a.bytes_discarded + b.bytes_discarded)
    }
}

/// One complete line, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub bytes: Vec<u8>,
    /// Kernel timestamp of the chunk that started the line.
    pub first_ts_ns: u64,
    /// Kernel timestamp of the chunk that completed the line.
    pub last_ts_ns: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub lines: u64,
    /// Bytes the kernel counted but never delivered (gaps in stream offsets).
    pub bytes_lost: u64,
    /// Bytes dropped while resynchronising, or because a line outgrew the limit.
    pub bytes_discarded: u64,
    /// Lines dropped whole because they outgrew the limit.
    pub oversized_lines: u64,
}

pub struct LineReassembler {
    buf: Vec<u8>,
    first_ts_ns: u64,
    /// Dropping bytes until the next newline (after a gap or an oversized line).
    resync: bool,
    /// The next bytes begin a transfer: after a gap, a line that starts there with
    /// `{` is taken as a message (a JSON-RPC message is one JSON object).
    at_transfer: bool,
    max_line: usize,
    pub stats: ReassemblyStats,
}

impl LineReassembler {
    /// `max_line`: longest line kept, in bytes (a longer one is dropped and counted).
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            first_ts_ns: 0,
            resync: false,
            at_transfer: false,
            max_line,
            stats: ReassemblyStats::default(),
        }
    }

    /// Bytes currently held for an incomplete line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next chunk of the stream; returns the lines it completes.
    pub fn push(&mut self, bytes: &[u8], ts_ns: u64) -> Vec<Line> {
        self.feed(bytes, ts_ns, 0)
    }

    /// [`Self::push`], for a chunk followed by `transfer_rest` more bytes of its
    /// transfer: a line that goes on past the chunk gets room for them at once (within
    /// `max_line`) instead of a buffer regrown, and copied, chunk after chunk.
    pub fn push_transfer(&mut self, bytes: &[u8], ts_ns: u64, transfer_rest: u64) -> Vec<Line> {
        self.feed(bytes, ts_ns, transfer_rest)
    }

    /// The kernel or userspace lost `n` bytes of this stream at the current position.
    pub fn lost(&mut self, n: u64) {
        self.stats.bytes_lost += n;
        self.stats.bytes_discarded += self.buf.len() as u64;
        super::empty_buffer(&mut self.buf);
        self.resync = true;
    }

    /// Drops any partial line: the next chunk starts a fresh stream.
    pub fn reset(&mut self) {
        self.stats.bytes_discarded += self.buf.len() as u64;
        super::empty_buffer(&mut self.buf);
        self.resync = false;
    }

    fn feed(&mut self, mut bytes: &[u8], ts_ns: u64, transfer_rest: u64) -> Vec<Line> {
        if bytes.is_empty() {
            return Vec::new();
        }
        if std::mem::take(&mut self.at_transfer)
            && self.resync
            && bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        {
            self.resync = false;
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match memchr(b'\n', bytes) {
                Some(i) => {
                    let (head, rest) = (&bytes[..i], &bytes[i + 1..]);
                    bytes = rest;
                    if self.resync {
                        self.stats.bytes_discarded += head.len() as u64 + 1;
                        self.resync = false;
                        continue;
                    }
                    if self.buf.is_empty() {
                        self.first_ts_ns = ts_ns;
                    }
                    if self.buf.len() + head.len() > self.max_line {
                        self.stats.oversized_lines += 1;
                        self.stats.bytes_discarded += (self.buf.len() + head.len() + 1) as u64;
                        super::empty_buffer(&mut self.buf);
                        continue;
                    }
                    self.buf.extend_from_slice(head);
                    let line = std::mem::take(&mut self.buf);
                    // Blank lines (and the \r of \r\n framing) carry nothing.
                    let line = strip_cr(line);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.stats.lines += 1;
                    out.push(Line {
                        bytes: line,
                        first_ts_ns: self.first_ts_ns,
                        last_ts_ns: ts_ns,
                    });
                }
                None => {
                    if self.resync {
                        self.stats.bytes_discarded += bytes.len() as u64;
                    } else if self.buf.len() + bytes.len() > self.max_line {
                        self.stats.oversized_lines += 1;
                        self.stats.bytes_discarded += (self.buf.len() + bytes.len()) as u64;
                        super::empty_buffer(&mut self.buf);
                        self.resync = true;
                    } else {
                        if self.buf.is_empty() {
                            self.first_ts_ns = ts_ns;
                        }
                        // Within the limit (checked above); the line then leaves by
                        // `take`, in this same allocation.
                        let room = self.max_line.saturating_sub(self.buf.len() + bytes.len());
                        let rest = usize::try_from(transfer_rest).unwrap_or(usize::MAX).min(room);
                        self.buf.reserve(bytes.len() + rest);
                        self.buf.extend_from_slice(bytes);
                    }
                    break;
                }
            }
        }
        out
    }
}

fn strip_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// The first `needle` in `haystack`: vectorised (a 64 KiB line is scanned at memory
/// speed, not byte by byte).
fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
            .collect()
    }

    #[test]
    fn several_messages_in_one_chunk() {
        let mut r = LineReassembler::new(1 << 20);
        let out = r.push(b"{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\r\n", 5);
        assert_eq!(texts(&out), ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn message_split_over_many_chunks_keeps_first_and_last_timestamps() {
        let mut r = LineReassembler::new(1 << 20);
        let msg = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}\n";
        let mut out = Vec::new();
        for (i, b) in msg.iter().enumerate() {
            out.extend(r.push(&[*b], 100 + i as u64));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, &msg[..msg.len() - 1]);
        assert_eq!(out[0].first_ts_ns, 100);
        assert_eq!(out[0].last_ts_ns, 100 + msg.len() as u64 - 1);
    }

    #[test]
    fn ten_megabyte_line_is_reassembled() {
        let mut r = LineReassembler::new(64 << 20);
        let mut line = vec![b'x'; 10 << 20];
        line.push(b'\n');
        let mut out = Vec::new();
        for c in line.chunks(16384) {
            out.extend(r.push(c, 1));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes.len(), 10 << 20);
    }

    #[test]
    fn gap_drops_the_broken_line_and_resynchronises() {
        let mut r = LineReassembler::new(1 << 20);
        assert!(r.push(b"{\"first\":", 1).is_empty());
        // 5 bytes lost: the rest of this line is garbage until the newline.
        r.lost(5);
        let out = r.push(b"tail\"}\n{\"next\":1}\n", 2);
        assert_eq!(texts(&out), ["{\"next\":1}"]);
        assert_eq!(r.stats.bytes_lost, 5);
        assert_eq!(r.stats.bytes_discarded, 9 + 7);
        assert_eq!(r.stats.lines, 1);
    }

    #[test]
    fn a_loss_that_ends_where_a_transfer_starts_resynchronises_there() {
        let stdio = Stdio {
            stdin: Some(2),
            stdout: Some(3),
        };
        let mut s = StdioTransport::new(1, stdio, 1 << 20);
        let dir = Direction::ServerToClient;
        s.push(dir, b"{\"jsonrpc\":\"2.0\",\"id\":1,", 1, 0);
        // The rest of that write was cut: the next write is a whole message.
        s.lost(
            dir,
            Gap {
                bytes: 40,
                ends_at_transfer: true,
                ..Gap::none()
            },
        );
        let out = s.push(dir, b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n", 2, 0);
        assert_eq!(out.len(), 1, "the next transfer's message is kept");
        assert_eq!(out[0].body, b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}");
        // Not at a transfer start, or not a `{` there: dropped up to the newline as before.
        s.lost(
            dir,
            Gap {
                bytes: 5,
                ends_at_transfer: false,
                ..Gap::none()
            },
        );
        assert!(s.push(dir, b"{\"id\":3}\n", 3, 0).is_empty());
        s.lost(
            dir,
            Gap {
                bytes: 5,
                ends_at_transfer: true,
                ..Gap::none()
            },
        );
        assert!(s.push(dir, b"ult\":{}}\n", 4, 0).is_empty());
        assert_eq!(s.push(dir, b"{\"id\":5}\n", 5, 0).len(), 1);
    }

    #[test]
    fn explicit_loss_resynchronises_too() {
        let mut r = LineReassembler::new(1 << 20);
        r.push(b"{\"partial", 1);
        r.lost(100);
        let out = r.push(b"rest}\n{\"ok\":true}\n", 2);
        assert_eq!(texts(&out), ["{\"ok\":true}"]);
    }

    #[test]
    fn oversized_line_is_dropped_and_counted_then_stream_goes_on() {
        let mut r = LineReassembler::new(10);
        assert!(r.push(b"0123456789abcdef", 1).is_empty());
        let out = r.push(b"ghij\nshort\n", 2);
        assert_eq!(texts(&out), ["short"]);
        assert_eq!(r.stats.oversized_lines, 1);
        let out = r.push(b"0123456789ABCDEF\nok\n", 3);
        assert_eq!(texts(&out), ["ok"]);
        assert_eq!(r.stats.oversized_lines, 2);
    }

    #[test]
    fn a_dropped_oversized_line_gives_its_memory_back() {
        let mut r = LineReassembler::new(64 << 20);
        r.push(&vec![b'x'; 8 << 20], 1);
        assert!(r.buf.capacity() >= 8 << 20);
        r.lost(1);
        assert_eq!(r.buf.capacity(), 0, "8 MiB not kept after the loss");
        // Outgrowing the limit drops what was held, and its memory.
        let mut r = LineReassembler::new(4 << 20);
        r.push(&vec![b'x'; 3 << 20], 1);
        r.push(&vec![b'x'; 2 << 20], 2);
        assert_eq!(r.stats.oversized_lines, 1);
        assert_eq!(r.buf.capacity(), 0);
    }

    #[test]
    fn a_line_longer_than_its_chunk_is_held_in_one_allocation() {
        let mut r = LineReassembler::new(1 << 20);
        let mut line = vec![b'x'; 40_000];
        line.push(b'\n');
        let mut rest = line.len();
        let (mut out, mut caps) = (Vec::new(), Vec::new());
        for c in line.chunks(16384) {
            rest -= c.len();
            out.extend(r.push_transfer(c, 1, rest as u64));
            caps.push(r.buf.capacity());
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes.len(), 40_000);
        // Room for the whole line at its first chunk, never regrown; handed out as is.
        assert!(caps[0] >= 40_000);
        assert!(caps[..caps.len() - 1].iter().all(|&c| c == caps[0]));
        assert_eq!(out[0].bytes.capacity(), caps[0]);
        // The transfer's word is bounded by the longest line kept.
        let mut r = LineReassembler::new(100);
        assert!(r.push_transfer(b"{", 1, u64::MAX).is_empty());
        assert!(r.buf.capacity() <= 100);
        // Lines that end in the chunk reserve nothing for the rest.
        let mut r = LineReassembler::new(1 << 20);
        let out = r.push_transfer(b"{}\n", 1, 1 << 20);
        assert!(out[0].bytes.capacity() < 1024);
    }

    #[test]
    fn non_utf8_bytes_pass_through_unchanged() {
        let mut r = LineReassembler::new(100);
        let out = r.push(&[0xff, 0xfe, b'{', b'\n'], 1);
        assert_eq!(out[0].bytes, vec![0xff, 0xfe, b'{']);
    }

    #[test]
    fn reset_starts_a_fresh_stream() {
        let mut r = LineReassembler::new(100);
        r.push(b"half", 1);
        r.reset();
        let out = r.push(b"new\n", 2);
        assert_eq!(texts(&out), ["new"]);
        assert_eq!(r.stats.bytes_discarded, 4);
        assert_eq!(r.stats.bytes_lost, 0);
    }
}
