//! Bytes of a connection to framed messages with a session key: the seam between
//! transports and MCP. A transport turns what the kernel captured (in order, with
//! gaps marked) into [`Framed`] messages; everything after it is the same for every
//! transport. `stdio` frames a server's pipes by newlines, `http` the connections an
//! HTTP server accepted (with `sse` for event streams).
use std::fmt;

pub mod bearer;
pub mod http;
pub mod sse;
pub mod stdio;
pub mod tls;

/// Where the bytes at hand sit in their stream: what was lost just before them (and
/// how much of their transfer follows them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gap {
    pub bytes: u64,
    /// The loss ends where a transfer (one syscall's or TLS call's bytes) starts. A
    /// message written whole by one call begins there, so a stream may resynchronise
    /// at once instead of dropping everything up to the next delimiter.
    pub ends_at_transfer: bool,
    /// Bytes of the same transfer the kernel still sends after the bytes at hand: room
    /// a buffer may take at once for a message that goes on. A hint (0: unknown); what
    /// arrives is what counts.
    pub transfer_rest: u64,
}

impl Gap {
    pub fn none() -> Self {
        Self::default()
    }
}

/// Empties a reassembly buffer, giving its memory back when it grew past 1 MiB: a
/// peer's message dropped for its size must not leave the daemon that much bigger.
pub fn empty_buffer(buf: &mut Vec<u8>) {
    if buf.capacity() > 1 << 20 {
        *buf = Vec::new();
    } else {
        buf.clear();
    }
}

/// Which way a message went, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// The MCP session a message belongs to. A server has many sessions; each is judged,
/// identified and reported on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionKey {
    /// A stdio server's one session: its pid and the inode of its stdin.
    Stdio { pid: u32, stdin: u64 },
    /// A session of an HTTP server: its `Mcp-Session-Id`, or the connection.
    Http { pid: u32, id: http::HttpSession },
}

impl SessionKey {
    /// The `transport` field of events.
    pub fn transport(&self) -> &'static str {
        match self {
            SessionKey::Stdio { .. } => "stdio",
            SessionKey::Http { .. } => "http",
        }
    }
}

/// How events name the session: the server's `Mcp-Session-Id` when it gave one, else
/// `stdio-<pid>-<stdin inode>` or `http-<pid>-conn-<n>` (the server's n-th connection).
impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionKey::Stdio { pid, stdin } => write!(f, "stdio-{pid}-{stdin}"),
            SessionKey::Http {
                id: http::HttpSession::Id(id),
                ..
            } => f.write_str(id),
            SessionKey::Http {
                pid,
                id: http::HttpSession::Connection(n),
            } => write!(f, "http-{pid}-conn-{n}"),
        }
    }
}

/// One message as its transport framed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    pub session: SessionKey,
    pub direction: Direction,
    /// Kernel time of the chunk that completed the message: when the server had read
    /// all of a request, or written all of a response.
    pub ts_ns: u64,
    /// One JSON-RPC message or batch, as sent.
    pub body: Vec<u8>,
    /// The bearer credential of the HTTP request that carried it.
    pub bearer: Option<bearer::Bearer>,
}
