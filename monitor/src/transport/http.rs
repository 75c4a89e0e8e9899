//! HTTP/1.1 as Streamable HTTP uses it, for one TCP connection a server accepted:
//! requests in, responses out, in order (keep-alive, pipelining). Heads and chunk sizes
//! go through `httparse` (what hyper uses, fuzzed upstream); bodies are cut by
//! Content-Length or chunked encoding, or run until the connection closes. A request
//! body is one JSON-RPC message (or batch); a response body is one too, or a
//! `text/event-stream` whose events carry them.
//!
//! Sessions: `Mcp-Session-Id` names the session a message belongs to; without it (the
//! stateless 2026-07-28 era, or an `initialize` before the server hands out an id) the
//! connection does. A response that hands out an id moves its request's session there.
//!
//! Nothing here can stop the monitor: a head or chunk that does not parse is counted
//! and the direction resynchronises at the next message; lost bytes do the same; a
//! compressed body is counted and skipped; bounds on heads, bodies and events hold
//! whatever a peer sends.
use std::collections::VecDeque;

use super::{Direction, Framed, SessionKey, bearer::Bearer, sse::SseParser};
use crate::host::identity::ClientProcess;

const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (hex digits, extensions) before it counts as malformed.
const MAX_CHUNK_LINE: usize = 1024;
/// The longest `Mcp-Session-Id` kept; longer or non-visible-ASCII ones are ignored.
const MAX_SESSION_ID: usize = 128;
/// Requests a connection remembers the sessions of while their responses are still to
/// come (a client may pipeline requests a server never answers).
const MAX_WAITING: usize = 1024;
const METHODS: &[&[u8]] = &[
    b"POST ",
    b"GET ",
    b"DELETE ",
    b"PUT ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
];

/// Whether bytes a server read open an HTTP request: a connection it accepted.
pub fn looks_like_request(bytes: &[u8]) -> bool {
    METHODS.iter().any(|m| bytes.starts_with(m))
}

/// How an MCP session is named over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HttpSession {
    /// The server's `Mcp-Session-Id`.
    Id(String),
    /// No id: the connection (its number among the server's connections) is the session.
    Connection(u64),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HttpStats {
    pub requests: u64,
    pub responses: u64,
    /// Heads or chunk framing that did not parse: that direction resynchronised.
    pub malformed: u64,
    /// Bodies with a Content-Encoding other than identity: counted, not read.
    pub encoded_bodies: u64,
    /// Bodies or SSE events longer than the message limit: dropped.
    pub oversized: u64,
    pub bytes_lost: u64,
}

impl HttpStats {
    /// What was counted since `before`.
    pub fn since(self, before: Self) -> Self {
        Self {
            requests: self.requests - before.requests,
            responses: self.responses - before.responses,
            malformed: self.malformed - before.malformed,
            encoded_bodies: self.encoded_bodies - before.encoded_bodies,
            oversized: self.oversized - before.oversized,
            bytes_lost: self.bytes_lost - before.bytes_lost,
        }
    }
}

/// What a push produced: messages, and sessions renamed by a server's new session id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    pub framed: Vec<Framed>,
    /// (from, to): the session `from` is now called `to`.
    pub aliases: Vec<(SessionKey, SessionKey)>,
}

/// What a head says that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Head {
    method: Option<String>,
    status: Option<u16>,
    content_length: Option<u64>,
    chunked: bool,
    event_stream: bool,
    /// A Content-Encoding other than identity.
    encoded: bool,
    session_id: Option<String>,
    /// `Authorization: Bearer` of a request.
    bearer: Option<Bearer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
}

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Head(Box<Head>),
    Data(Vec<u8>),
    End,
}

/// One direction's framing: heads, then bodies.
#[derive(Debug)]
struct Half {
    requests: bool,
    buf: Vec<u8>,
    body: Option<BodyState>,
    /// Dropping bytes until the next message start (after a gap or a bad head).
    resync: bool,
    /// How much of `buf` is known not to hold the end of the head (or trailer line)
    /// being waited for: a head that comes a byte at a time is scanned once, not once
    /// per byte (quadratic up to `MAX_HEAD`).
    scanned: usize,
}

impl Half {
    fn new(requests: bool) -> Self {
        Self {
            requests,
            buf: Vec::new(),
            body: None,
            resync: false,
            scanned: 0,
        }
    }

    /// Where `needle` is in `buf`, looking only at what earlier calls did not (the
    /// caller drains `buf` up to a match, which starts the next search afresh).
    fn find_new(&mut self, needle: &[u8]) -> Option<usize> {
        let from = self.scanned.saturating_sub(needle.len() - 1);
        let found = find(&self.buf[from..], needle).map(|i| from + i);
        self.scanned = if found.is_some() { 0 } else { self.buf.len() };
        found
    }

    fn lost(&mut self) {
        self.scanned = 0;
        super::empty_buffer(&mut self.buf);
        self.body = None;
        self.resync = true;
    }

    /// What is left of the message is skipped: the next one starts at a line that
    /// opens a request (or a response).
    fn malformed(&mut self, stats: &mut HttpStats) {
        stats.malformed += 1;
        self.body = None;
        self.resync = true;
    }

    /// Where the next message may start in `buf` after a loss: a request line
    /// (`METHOD target HTTP/1.x`) or a status line (`HTTP/1.x NNN`). Bodies need not end
    /// with a newline, so the start of a line is not required; the whole line is. A
    /// candidate whose line is not complete yet is returned too, while it is short: more
    /// bytes decide.
    fn message_start(&self) -> Option<usize> {
        // A status line before the last line end is complete; one after it is still a
        // candidate only while it is short (else a buffer that never gets a CRLF grows).
        let last_eol = if self.requests {
            None
        } else {
            self.buf.windows(2).rposition(|w| w == b"\r\n")
        };
        (0..self.buf.len()).find(|&i| {
            let rest = &self.buf[i..];
            if self.requests {
                if !METHODS.iter().any(|m| rest.starts_with(m)) {
                    return false;
                }
                match find(rest, b"\r\n") {
                    Some(eol) => rest[..eol].ends_with(b" HTTP/1.1") || rest[..eol].ends_with(b" HTTP/1.0"),
                    None => rest.len() < MAX_CHUNK_LINE * 8,
                }
            } else {
                let status = b"HTTP/1.";
                let n = rest.len().min(status.len());
                if rest[..n] != status[..n] {
                    return false;
                }
                let status_line =
                    rest.len() < 12 || (rest[8] == b' ' && rest[9..12].iter().all(u8::is_ascii_digit));
                status_line && (last_eol.is_some_and(|e| e > i) || rest.len() < MAX_CHUNK_LINE * 8)
            }
        })
    }

    fn push(&mut self, bytes: &[u8], stats: &mut HttpStats) -> Vec<Piece> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let progressed = match self.body {
                None => self.head(&mut out, stats),
                Some(state) => self.body(state, &mut out, stats),
            };
            if !progressed {
                return out;
            }
        }
    }

    /// Parses a head if a whole one is there; false when more bytes are needed.
    fn head(&mut self, out: &mut Vec<Piece>, stats: &mut HttpStats) -> bool {
        if self.resync {
            match self.message_start() {
                Some(i) => {
                    self.buf.drain(..i);
                    self.scanned = 0;
                    // Wait for the whole line when it could still be something else.
                    if find(&self.buf, b"\r\n").is_none() {
                        return false;
                    }
                    self.resync = false;
                }
                None => {
                    // Keep a tail in case a method token is split across chunks.
                    let keep = self.buf.len().min(8);
                    self.buf.drain(..self.buf.len() - keep);
                    return false;
                }
            }
        }
        let Some(end) = self.find_new(b"\r\n\r\n").map(|i| i + 4) else {
            if self.buf.len() > MAX_HEAD {
                self.scanned = 0;
                super::empty_buffer(&mut self.buf);
                self.malformed(stats);
            }
            return false;
        };
        let parsed = if self.requests {
            parse_request(&self.buf[..end])
        } else {
            parse_response(&self.buf[..end])
        };
        self.buf.drain(..end);
        let Some(head) = parsed else {
            self.malformed(stats);
            return true;
        };
        let body = if head.chunked {
            Some(BodyState::ChunkSize)
        } else if let Some(n) = head.content_length {
            (n > 0).then_some(BodyState::Length(n))
        } else if self.requests || matches!(head.status, Some(100..=199 | 204 | 304)) {
            None
        } else {
            Some(BodyState::UntilClose)
        };
        out.push(Piece::Head(Box::new(head)));
        match body {
            Some(b) => self.body = Some(b),
            None => out.push(Piece::End),
        }
        true
    }

    fn body(&mut self, state: BodyState, out: &mut Vec<Piece>, stats: &mut HttpStats) -> bool {
        match state {
            BodyState::Length(n) | BodyState::ChunkData(n) => {
                if self.buf.is_empty() {
                    return false;
                }
                let take = (n as usize).min(self.buf.len());
                out.push(Piece::Data(self.buf.drain(..take).collect()));
                let left = n - take as u64;
                self.body = match (state, left) {
                    (BodyState::Length(_), 0) => {
                        out.push(Piece::End);
                        None
                    }
                    (BodyState::Length(_), l) => Some(BodyState::Length(l)),
                    (_, 0) => Some(BodyState::ChunkEnd),
                    (_, l) => Some(BodyState::ChunkData(l)),
                };
                true
            }
            BodyState::UntilClose => {
                if self.buf.is_empty() {
                    return false;
                }
                out.push(Piece::Data(std::mem::take(&mut self.buf)));
                false
            }
            BodyState::ChunkSize => {
                let Some(eol) = find(&self.buf, b"\r\n") else {
                    if self.buf.len() > MAX_CHUNK_LINE {
                        super::empty_buffer(&mut self.buf);
                        self.malformed(stats);
                    }
                    return false;
                };
                match httparse::parse_chunk_size(&self.buf[..eol + 2]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.buf.drain(..used);
                        self.body = Some(if size == 0 {
                            BodyState::Trailers
                        } else {
                            BodyState::ChunkData(size)
                        });
                    }
                    _ => self.malformed(stats),
                }
                true
            }
            BodyState::ChunkEnd => {
                if self.buf.len() < 2 {
                    return false;
                }
                if self.buf.starts_with(b"\r\n") {
                    self.buf.drain(..2);
                    self.body = Some(BodyState::ChunkSize);
                } else {
                    self.malformed(stats);
                }
                true
            }
            BodyState::Trailers => {
                let Some(eol) = self.find_new(b"\r\n") else {
                    if self.buf.len() > MAX_HEAD {
                        self.scanned = 0;
                        super::empty_buffer(&mut self.buf);
                        self.malformed(stats);
                    }
                    return false;
                };
                self.buf.drain(..eol + 2);
                if eol == 0 {
                    self.body = None;
                    out.push(Piece::End);
                }
                true
            }
        }
    }

    /// The connection closed: a body that runs until then is complete.
    fn close(&mut self) -> Vec<Piece> {
        let ends = self.body == Some(BodyState::UntilClose);
        self.scanned = 0;
        super::empty_buffer(&mut self.buf);
        self.body = None;
        if ends { vec![Piece::End] } else { Vec::new() }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_request(bytes: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let mut head = head_of(req.headers)?;
    head.method = req.method.map(str::to_string);
    Some(head)
}

fn parse_response(bytes: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let mut head = head_of(resp.headers)?;
    head.status = resp.code;
    Some(head)
}

/// The headers that matter; None when they contradict each other (two lengths).
fn head_of(headers: &[httparse::Header]) -> Option<Head> {
    let mut head = Head::default();
    for h in headers {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().ok()?;
            if head.content_length.is_some_and(|m| m != n) {
                return None;
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked |= value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            head.event_stream |= value.to_ascii_lowercase().starts_with("text/event-stream");
        } else if name.eq_ignore_ascii_case("content-encoding") {
            head.encoded |= !value.eq_ignore_ascii_case("identity") && !value.is_empty();
        } else if name.eq_ignore_ascii_case("authorization") {
            head.bearer = Bearer::from_header(h.value);
        } else if name.eq_ignore_ascii_case("mcp-session-id") {
            let visible = value.bytes().all(|b| (0x21..=0x7e).contains(&b));
            if visible && !value.is_empty() && value.len() <= MAX_SESSION_ID {
                head.session_id = Some(value.to_string());
            }
        }
    }
    Some(head)
}

/// A message being received: its session and its body so far.
#[derive(Debug)]
struct Current {
    session: SessionKey,
    body: Vec<u8>,
    sse: Option<SseParser>,
    /// The body outgrew the limit (or is encoded): its bytes are skipped.
    skip: bool,
    /// A request's bearer credential.
    bearer: Option<Bearer>,
}

/// One HTTP connection a server accepted.
#[derive(Debug)]
pub struct HttpConnection {
    /// The client process on the other end, when it is on this host.
    pub peer: Option<ClientProcess>,
    /// The client's `ip:port`.
    pub peer_addr: Option<String>,
    /// Read from TLS plaintext (the OpenSSL uprobes), not from the socket.
    pub tls: bool,
    pid: u32,
    /// The connection's number among the server's connections.
    conn: u64,
    requests: Half,
    responses: Half,
    request: Option<Current>,
    response: Option<Current>,
    /// Sessions of the requests whose responses are still to come, in order.
    waiting: VecDeque<SessionKey>,
    /// Requests after those of `waiting` (past `MAX_WAITING`) whose responses are still
    /// to come: their sessions are not kept; their responses go by their own heads.
    unqueued: u64,
    max_message: usize,
    pub stats: HttpStats,
}

impl HttpConnection {
    /// Connection `conn` of server `pid`; bodies and events longer than `max_message`
    /// are dropped and counted.
    pub fn new(pid: u32, conn: u64, max_message: usize) -> Self {
        Self {
            peer: None,
            peer_addr: None,
            tls: false,
            pid,
            conn,
            requests: Half::new(true),
            responses: Half::new(false),
            request: None,
            response: None,
            waiting: VecDeque::new(),
            unqueued: 0,
            max_message,
            stats: HttpStats::default(),
        }
    }

    fn key(&self, head: &Head) -> SessionKey {
        let id = match &head.session_id {
            Some(s) => HttpSession::Id(s.clone()),
            None => HttpSession::Connection(self.conn),
        };
        SessionKey::Http { pid: self.pid, id }
    }

    /// Bytes of one direction, in order; `ts_ns` the kernel time of the chunk.
    pub fn push(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64) -> Pushed {
        let mut out = Pushed::default();
        let pieces = match dir {
            Direction::ClientToServer => self.requests.push(bytes, &mut self.stats),
            Direction::ServerToClient => self.responses.push(bytes, &mut self.stats),
        };
        for piece in pieces {
            self.piece(dir, piece, ts_ns, &mut out);
        }
        out
    }

    /// `n` bytes of one direction never arrived: that direction resynchronises at the
    /// next message, and which request a response answers is no longer known.
    pub fn lost(&mut self, dir: Direction, n: u64) {
        self.stats.bytes_lost += n;
        self.waiting.clear();
        self.unqueued = 0;
        match dir {
            Direction::ClientToServer => {
                self.requests.lost();
                self.request = None;
            }
            Direction::ServerToClient => {
                self.responses.lost();
                self.response = None;
            }
        }
    }

    /// The connection closed: a response that ran until then is complete.
    pub fn close(&mut self, ts_ns: u64) -> Pushed {
        let mut out = Pushed::default();
        for piece in self.responses.close() {
            self.piece(Direction::ServerToClient, piece, ts_ns, &mut out);
        }
        out
    }

    fn piece(&mut self, dir: Direction, piece: Piece, ts_ns: u64, out: &mut Pushed) {
        match piece {
            Piece::Head(head) => self.head(dir, *head, out),
            Piece::Data(bytes) => self.data(dir, &bytes, ts_ns, out),
            Piece::End => self.end(dir, ts_ns, out),
        }
    }

    fn head(&mut self, dir: Direction, head: Head, out: &mut Pushed) {
        let mut session = self.key(&head);
        if dir == Direction::ServerToClient {
            self.stats.responses += 1;
            // A 1xx is not the response yet.
            let informational = matches!(head.status, Some(100..=199));
            let asked = if informational {
                self.waiting.front().cloned()
            } else if self.waiting.is_empty() {
                self.unqueued = self.unqueued.saturating_sub(1);
                None
            } else {
                self.waiting.pop_front()
            };
            if let Some(asked) = asked {
                // The server handed out a session id: the request's session goes by it.
                if asked != session && head.session_id.is_some() {
                    out.aliases.push((asked, session.clone()));
                } else {
                    session = asked;
                }
            }
        } else {
            self.stats.requests += 1;
            if self.unqueued == 0 && self.waiting.len() < MAX_WAITING {
                self.waiting.push_back(session.clone());
            } else {
                self.unqueued += 1;
            }
        }
        if head.encoded {
            self.stats.encoded_bodies += 1;
        }
        let current = Current {
            session,
            sse: (dir == Direction::ServerToClient && head.event_stream)
                .then(|| SseParser::new(self.max_message)),
            skip: head.encoded,
            bearer: head.bearer,
            body: Vec::new(),
        };
        *self.current(dir) = Some(current);
    }

    fn current(&mut self, dir: Direction) -> &mut Option<Current> {
        match dir {
            Direction::ClientToServer => &mut self.request,
            Direction::ServerToClient => &mut self.response,
        }
    }

    fn data(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Pushed) {
        let max = self.max_message;
        let Some(cur) = self.current(dir).as_mut() else {
            return;
        };
        if cur.skip {
            return;
        }
        if let Some(sse) = &mut cur.sse {
            let before = sse.oversized_events;
            for event in sse.push(bytes) {
                if !event.data.is_empty() {
                    out.framed.push(Framed {
                        session: cur.session.clone(),
                        direction: dir,
                        ts_ns,
                        body: event.data,
                        bearer: None,
                    });
                }
            }
            let oversized = sse.oversized_events - before;
            self.stats.oversized += oversized;
            return;
        }
        if cur.body.len() + bytes.len() > max {
            cur.skip = true;
            cur.body = Vec::new();
            self.stats.oversized += 1;
            return;
        }
        cur.body.extend_from_slice(bytes);
    }

    fn end(&mut self, dir: Direction, ts_ns: u64, out: &mut Pushed) {
        let Some(cur) = self.current(dir).take() else {
            return;
        };
        if cur.skip || cur.sse.is_some() || cur.body.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        out.framed.push(Framed {
            session: cur.session,
            direction: dir,
            ts_ns,
            body: cur.body,
            bearer: cur.bearer,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C2S: Direction = Direction::ClientToServer;
    const S2C: Direction = Direction::ServerToClient;

    fn conn() -> HttpConnection {
        HttpConnection::new(10, 77, 1 << 20)
    }

    fn bodies(p: &Pushed) -> Vec<(String, String)> {
        p.framed
            .iter()
            .map(|f| {
                (
                    f.session.to_string(),
                    String::from_utf8_lossy(&f.body).into_owned(),
                )
            })
            .collect()
    }

    const STATELESS_REQ: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8771\r\ncontent-type: application/json\r\nmcp-method: tools/call\r\nContent-Length: 24\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2}";
    const STATELESS_RESP: &[u8] = b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\ncontent-length: 30\r\ncontent-type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"r\":1}";

    #[test]
    fn a_stateless_exchange_is_one_message_each_way_on_the_connection_session() {
        let mut c = conn();
        let req = c.push(C2S, STATELESS_REQ, 1);
        assert_eq!(
            bodies(&req),
            [("http-10-conn-77".into(), "{\"jsonrpc\":\"2.0\",\"id\":2}".into())]
        );
        assert_eq!(req.framed[0].direction, C2S);
        let resp = c.push(S2C, STATELESS_RESP, 2);
        assert_eq!(resp.framed.len(), 1);
        assert_eq!(resp.framed[0].session, req.framed[0].session);
        assert_eq!(resp.framed[0].ts_ns, 2);
        assert_eq!(c.stats.requests, 1);
        assert_eq!(c.stats.malformed, 0);
    }

    #[test]
    fn every_split_of_pipelined_requests_gives_the_same_messages() {
        let two: Vec<u8> = [STATELESS_REQ, STATELESS_REQ].concat();
        let whole = bodies(&conn().push(C2S, &two, 1));
        assert_eq!(whole.len(), 2);
        for cut in 0..=two.len() {
            let mut c = conn();
            let mut got = bodies(&c.push(C2S, &two[..cut], 1));
            got.extend(bodies(&c.push(C2S, &two[cut..], 2)));
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_chunked_sse_response_gives_each_event_on_the_session_the_server_named() {
        let init = b"POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let sse = b"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}\r\n\r\n";
        let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nmcp-session-id: abc-123\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in sse.chunks(20) {
            resp.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            resp.extend_from_slice(part);
            resp.extend_from_slice(b"\r\n");
        }
        resp.extend_from_slice(b"0\r\n\r\n");
        for cut in 0..=resp.len() {
            let mut c = conn();
            let req = c.push(C2S, init, 1);
            assert_eq!(req.framed[0].session.to_string(), "http-10-conn-77");
            let mut out = c.push(S2C, &resp[..cut], 2);
            let rest = c.push(S2C, &resp[cut..], 3);
            out.framed.extend(rest.framed);
            out.aliases.extend(rest.aliases);
            assert_eq!(
                bodies(&out),
                [(
                    "abc-123".into(),
                    "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}".into()
                )],
                "cut at {cut}"
            );
            assert_eq!(out.aliases.len(), 1, "cut at {cut}");
            assert_eq!(out.aliases[0].1.to_string(), "abc-123");
            assert_eq!(c.stats.malformed, 0);
        }
    }

    #[test]
    fn a_standing_get_stream_carries_server_requests_until_close() {
        let mut c = conn();
        c.push(
            C2S,
            b"GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: s1\r\n\r\n",
            1,
        );
        let head = c.push(
            S2C,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n",
            2,
        );
        assert!(head.framed.is_empty());
        let ev = c.push(
            S2C,
            b"data: {\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"roots/list\"}\n\n",
            3,
        );
        assert_eq!(bodies(&ev)[0].0, "s1");
        assert!(c.close(4).framed.is_empty());
    }

    #[test]
    fn a_response_resumed_on_another_connection_is_on_its_request_session() {
        // The POST's stream broke before the answer; the client resumes with a GET
        // carrying Last-Event-ID on a new connection and the server replays it there.
        let mut first = conn();
        let req = first.push(
            C2S,
            b"POST /mcp HTTP/1.1\r\nMcp-Session-Id: s9\r\nContent-Length: 46\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\"}",
            1,
        );
        assert_eq!(bodies(&req)[0].0, "s9");
        assert!(first.close(2).framed.is_empty());
        let mut second = HttpConnection::new(10, 78, 1 << 20);
        second.push(
            C2S,
            b"GET /mcp HTTP/1.1\r\nmcp-session-id: s9\r\nLast-Event-ID: e1\r\n\r\n",
            3,
        );
        let resp = second.push(
            S2C,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid: e2\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n",
            4,
        );
        assert_eq!(
            bodies(&resp),
            [("s9".into(), "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}".into())]
        );
        assert_eq!(
            resp.framed[0].session, req.framed[0].session,
            "one session across connections"
        );
    }

    #[test]
    fn a_request_carries_its_own_bearer_credential_and_a_response_none() {
        let mut c = conn();
        let with = c.push(
            C2S,
            b"POST /mcp HTTP/1.1\r\nAuthorization: Bearer opaque-1\r\nContent-Length: 2\r\n\r\n{}",
            1,
        );
        let b = with.framed[0].bearer.as_ref().expect("the request's credential");
        assert_eq!(b.claims, None);
        let resp = c.push(S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 2);
        assert_eq!(resp.framed[0].bearer, None);
        let without = c.push(C2S, b"POST /mcp HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 3);
        assert_eq!(
            without.framed[0].bearer, None,
            "not inherited from the previous request"
        );
    }

    #[test]
    fn malformed_and_truncated_input_resynchronises_at_the_next_request() {
        let mut c = conn();
        let mut bytes = b"POST /mcp HTTP/1.1\r\nContent-Length: nope\r\n\r\n".to_vec();
        bytes.extend_from_slice(STATELESS_REQ);
        let got = c.push(C2S, &bytes, 1);
        assert_eq!(got.framed.len(), 1);
        assert_eq!(c.stats.malformed, 1);
        // Bytes lost mid-request: the rest of it is dropped, the next one is whole.
        c.push(C2S, &STATELESS_REQ[..30], 2);
        c.lost(C2S, 100);
        let got = c.push(C2S, &[&STATELESS_REQ[60..], STATELESS_REQ].concat(), 3);
        assert_eq!(got.framed.len(), 1);
        assert_eq!(c.stats.bytes_lost, 100);
        // A chunk size that is not hex.
        let mut c = conn();
        c.push(
            S2C,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            1,
        );
        assert_eq!(c.stats.malformed, 1);
        // A head that never ends is bounded.
        let mut c = conn();
        c.push(C2S, b"POST / HTTP/1.1\r\nX: ", 1);
        c.push(C2S, &vec![b'a'; MAX_HEAD + 1], 2);
        assert_eq!(c.stats.malformed, 1);
        assert!(c.requests.buf.len() <= 8);
    }

    #[test]
    fn a_status_line_that_never_ends_is_not_kept_after_a_loss() {
        let mut c = conn();
        c.push(C2S, STATELESS_REQ, 1);
        c.lost(S2C, 10);
        c.push(S2C, b"HTTP/1.1 200 ", 2);
        for _ in 0..1000 {
            c.push(S2C, &[b'a'; 100], 3);
        }
        let held = c.responses.buf.len();
        assert!(held <= MAX_CHUNK_LINE * 8 + 100, "{held}");
        // The next whole status line is found.
        let got = c.push(S2C, b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 4);
        assert_eq!(bodies(&got), [("http-10-conn-77".into(), "{}".into())]);
    }

    #[test]
    fn pipelined_requests_never_answered_are_bounded_and_later_responses_stay_paired() {
        let mut c = conn();
        let req =
            |id: &str| format!("POST /mcp HTTP/1.1\r\nMcp-Session-Id: {id}\r\nContent-Length: 2\r\n\r\n{{}}");
        for _ in 0..MAX_WAITING {
            c.push(C2S, req("a").as_bytes(), 1);
        }
        for _ in 0..10_000 {
            c.push(C2S, req("b").as_bytes(), 2);
        }
        assert_eq!(c.waiting.len(), MAX_WAITING);
        // The first responses answer the remembered requests, in order.
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        for _ in 0..MAX_WAITING {
            assert_eq!(bodies(&c.push(S2C, resp, 3))[0].0, "a");
        }
        // Those past the bound go by their own heads until they are all answered; then
        // a new request is remembered again.
        for _ in 0..10_000 {
            assert_eq!(bodies(&c.push(S2C, resp, 4))[0].0, "http-10-conn-77");
        }
        c.push(C2S, req("c").as_bytes(), 5);
        assert_eq!(bodies(&c.push(S2C, resp, 6))[0].0, "c");
    }

    #[test]
    fn compressed_and_oversized_bodies_are_counted_not_read() {
        let mut c = HttpConnection::new(10, 77, 16);
        let gz = b"POST /mcp HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00";
        assert!(c.push(C2S, gz, 1).framed.is_empty());
        assert_eq!(c.stats.encoded_bodies, 1);
        assert!(c.push(C2S, STATELESS_REQ, 2).framed.is_empty());
        assert_eq!(c.stats.oversized, 1);
        assert_eq!(c.stats.requests, 2);
    }

    #[test]
    fn a_hostile_session_id_is_ignored() {
        let mut c = conn();
        let long = format!(
            "POST /mcp HTTP/1.1\r\nMcp-Session-Id: {}\r\nContent-Length: 2\r\n\r\n{{}}",
            "x".repeat(MAX_SESSION_ID + 1)
        );
        assert_eq!(bodies(&c.push(C2S, long.as_bytes(), 1))[0].0, "http-10-conn-77");
    }
}
