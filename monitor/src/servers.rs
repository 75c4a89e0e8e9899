//! A watched MCP server: who it is (process, policy entry, homes, its own program
//! files), the transports that carry its messages, and its MCP sessions by key.
use std::collections::{HashMap, HashSet};

use crate::{
    host::{
        effects::Effect,
        identity::{ClientProcess, Stdio},
        procs::Process,
        workload::Workload,
    },
    kernel::id_map::IdMap,
    mcp::{
        jsonrpc::{self, ParseError},
        methods,
        session::{Direction, Output, PeerInfo, Session, SessionStats},
    },
    policy::{Homes, UNREGISTERED},
    transport::{
        Framed, Gap, SessionKey,
        http::{self, HttpConnection, HttpStats},
        stdio::StdioTransport,
    },
};

/// `sessions`' session `key` (see `Server::session`); `stdio` is the server's stdio
/// session, never forgotten.
fn open_session<'s>(
    sessions: &'s mut HashMap<SessionKey, Session>,
    stdio: &SessionKey,
    epoch: u64,
    full: &mut u64,
    key: &SessionKey,
) -> Option<&'s mut Session> {
    if !sessions.contains_key(key) {
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|k, s| k == stdio || s.in_flight() > 0);
            if sessions.len() >= MAX_SESSIONS {
                *full += 1;
                return None;
            }
        }
        sessions.insert(key.clone(), Session::new(None, epoch));
    }
    sessions.get_mut(key)
}

/// HTTP connections tracked per server; past this, new ones are counted, not read.
const MAX_CONNECTIONS: usize = 1024;
/// Sockets remembered as not carrying HTTP to the server (a cache: cleared when full).
const MAX_NOT_HTTP: usize = 4096;
/// MCP sessions per server (clients choose how many session ids they send): past this,
/// sessions with nothing in flight are forgotten; if none, messages of new sessions
/// are dropped and counted.
const MAX_SESSIONS: usize = 4096;

/// A pipe or socket of the server's tree, as the pipeline knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// A pipe, by inode: only its stdio matters.
    Pipe(u64),
    /// A socket by inode, found through /proc (open before the daemon saw it accepted).
    Socket(u64),
    /// A connection the kernel said the tree accepted, by the number it was given.
    Accepted(u64),
}

/// The client of an accepted connection, known before its first bytes.
#[derive(Debug)]
struct Accepted {
    peer: Option<ClientProcess>,
    peer_addr: Option<String>,
}

/// What bytes on one of the server's pipes or sockets gave.
#[derive(Debug, Default)]
pub struct Received {
    pub outputs: Vec<(SessionKey, Output)>,
    pub errors: Vec<ParseError>,
    /// What the HTTP framing counted meanwhile (malformed heads, encoded bodies...).
    pub http: HttpStats,
    /// A new HTTP connection could not be tracked (too many open).
    pub untracked: bool,
    /// Messages dropped because their session could not be opened (too many sessions).
    pub sessions_full: u64,
    /// Stdio messages dropped for outgrowing `--max-message-mb`.
    pub oversized: u64,
}

pub struct Server {
    /// The policy's server entry that matched, by name; None: unregistered.
    pub rule: Option<String>,
    /// Named by a policy match or `--watch` (rather than found by what it speaks): its
    /// processes get the TLS uprobes from the start.
    pub named: bool,
    /// What `~` stands for in the policy's path globs (see `Homes`).
    pub homes: Homes,
    /// Its executable, interpreter and script: opening them is runtime noise.
    pub program_files: Vec<String>,
    pub pid: u32,
    pub exe: String,
    pub cmdline: String,
    /// `cmdline` as events show it (credentials redacted), worked out at first use.
    pub shown_cmdline: std::sync::OnceLock<String>,
    /// The `server` object of its events as last written, with what it was written
    /// from: most events repeat it, and writing it was a tenth of a small call's cost.
    pub shown: std::cell::RefCell<Option<ShownServer>>,
    pub uid: u32,
    /// Its cgroup, container and pod, when known.
    pub workload: Option<Workload>,
    pub stdio: StdioTransport,
    /// HTTP connections its tree accepted, by number.
    pub http: IdMap<u64, HttpConnection>,
    /// Connections accepted whose first bytes are still to come.
    accepted: IdMap<u64, Accepted>,
    /// Connections found through /proc (open before the daemon saw them accepted):
    /// socket inode to number.
    socket_conns: IdMap<u64, u64>,
    /// Sockets whose first bytes were not an HTTP request to it.
    not_http: HashSet<u64>,
    /// Connections numbered so far.
    conns: u64,
    max_message: usize,
    /// Its MCP sessions, whatever transport carries them.
    pub sessions: HashMap<SessionKey, Session>,
    /// Sessions ended with their connection, still there until their outputs are out.
    closed_sessions: Vec<SessionKey>,
    /// Messages dropped because their session could not be opened (`MAX_SESSIONS`).
    pub sessions_full: u64,
    /// Requests in flight its sessions forgot to stay within their bounds.
    pub requests_evicted: u64,
    /// Policy epoch stamped on calls as they start (a reload applies to later calls).
    epoch: u64,
    pub parse_errors: u64,
    /// Messages by direction (client to server, server to client), for metrics.
    pub messages: [u64; 2],
    /// Requests seen since the last `take_requests`: (who sent it, method).
    seen: Vec<(Direction, &'static str)>,
    /// What it added to `mcp_server_static_secrets`: (server label, class, count),
    /// taken back when it exits (under the labels it was added with).
    pub static_secret_gauges: Vec<(String, String, i64)>,
}

/// What is read on the host about a new server: what `~` means for it, and the files
/// its program opens to start itself.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServerHost {
    pub homes: Homes,
    pub program_files: Vec<String>,
}

impl ServerHost {
    pub fn read(p: &Process) -> Self {
        Self {
            homes: Homes::new(p.uid, env_home(p.pid)),
            program_files: crate::host::program_files::program_files(
                std::path::Path::new("/proc"),
                p.pid,
                &p.exe,
                &p.cmdline,
            ),
        }
    }
}

/// A server's `server` event object (JSON text) and what it was written from: valid
/// while the entry name, the server's info and its workload are the same.
#[derive(Debug)]
pub struct ShownServer {
    pub entry: String,
    pub info: Option<PeerInfo>,
    pub workload: Option<Workload>,
    pub json: Box<serde_json::value::RawValue>,
}

impl Server {
    /// A server found on stdio, with `client` on the other end of its stdin.
    pub fn new(
        p: &Process,
        stdio: Stdio,
        client: Option<ClientProcess>,
        host: ServerHost,
        max_message: usize,
        epoch: u64,
    ) -> Self {
        let stdio = StdioTransport::new(p.pid, stdio, max_message);
        let session = Session::new(client, epoch);
        Self {
            rule: None,
            named: false,
            homes: host.homes,
            program_files: host.program_files,
            pid: p.pid,
            exe: p.exe.clone(),
            cmdline: p.cmdline_string(),
            shown_cmdline: std::sync::OnceLock::new(),
            shown: std::cell::RefCell::new(None),
            uid: p.uid,
            workload: None,
            sessions: HashMap::from([(stdio.key().clone(), session)]),
            stdio,
            http: IdMap::default(),
            accepted: IdMap::default(),
            socket_conns: IdMap::default(),
            not_http: HashSet::new(),
            conns: 0,
            sessions_full: 0,
            closed_sessions: Vec::new(),
            requests_evicted: 0,
            max_message,
            epoch,
            parse_errors: 0,
            messages: [0; 2],
            seen: Vec::new(),
            static_secret_gauges: Vec::new(),
        }
    }

    /// A connection its tree accepted (the kernel said so): numbered now, read as HTTP
    /// when its first bytes are a request. `peer`/`peer_addr` name the client.
    pub fn accepted(&mut self, peer: Option<ClientProcess>, peer_addr: Option<String>) -> Option<u64> {
        if self.accepted.len() >= MAX_CONNECTIONS {
            return None;
        }
        let conn = self.next_conn();
        self.accepted.insert(conn, Accepted { peer, peer_addr });
        Some(conn)
    }

    fn next_conn(&mut self) -> u64 {
        self.conns += 1;
        self.conns
    }

    /// Bytes the server's tree read (`read`) or wrote on `stream`: its stdio, or a
    /// connection it accepted that speaks HTTP. `gap`: bytes of that stream lost just
    /// before these. `tls`: the plaintext of a TLS connection. `peer_of` names the
    /// client of a connection that was open before the daemon saw it accepted: its
    /// process and address.
    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &mut self,
        stream: Stream,
        read: bool,
        bytes: &[u8],
        ts_ns: u64,
        gap: Gap,
        tls: bool,
        peer_of: impl FnOnce(u64) -> (Option<ClientProcess>, Option<String>),
    ) -> Received {
        // Pipes only: a socket's reads may be an HTTP body, JSON-RPC without a head.
        if let Stream::Pipe(inode) = stream {
            self.learn_stdin(inode, read, bytes);
        }
        if let Stream::Pipe(inode) | Stream::Socket(inode) = stream {
            self.learn_stdout(inode, read, bytes);
        }
        if let Stream::Pipe(inode) | Stream::Socket(inode) = stream
            && let Some(dir) = self.stdio.direction_of(inode, read)
        {
            if gap.bytes > 0 {
                self.stdio.lost(dir, gap);
                if dir == Direction::ServerToClient {
                    let key = self.stdio.key().clone();
                    if let Some(s) = self.sessions.get_mut(&key) {
                        s.response_lost();
                    }
                }
            }
            let oversized = self.stdio.oversized();
            let framed = self.stdio.push(dir, bytes, ts_ns, gap.transfer_rest);
            let (outputs, errors) = self.feed(framed);
            return Received {
                outputs,
                errors,
                oversized: self.stdio.oversized() - oversized,
                ..Received::default()
            };
        }
        let mut received = Received::default();
        let Some(conn) = self.connection(stream, read, bytes, tls, peer_of, &mut received) else {
            return received;
        };
        let dir = if read {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let Some(c) = self.http.get_mut(&conn) else {
            return received;
        };
        let before = c.stats;
        if gap.bytes > 0 {
            c.lost(dir, gap.bytes);
            if dir == Direction::ServerToClient {
                // Which session's answer it was is not known: every call open now may
                // have lost its response.
                self.sessions.values_mut().for_each(Session::response_lost);
            }
        }
        let pushed = c.push(dir, bytes, ts_ns);
        received.http = c.stats.since(before);
        let (peer, addr, tls) = (c.peer.clone(), c.peer_addr.clone(), c.tls);
        for (from, to) in pushed.aliases {
            self.alias(&from, to);
        }
        // Who is calling is a fact of the session, from the connection it came on.
        let overflow = self.sessions_full;
        for f in &pushed.framed {
            let Some(s) = self.session(&f.session) else {
                continue;
            };
            // From its first connection; a session whose client process was not found
            // there (a short connection gone before it was looked up) takes it from
            // the first of its connections where it was.
            if s.peer.is_none() && (s.peer_addr.is_none() || peer.is_some()) {
                s.peer = peer.clone();
                s.peer_addr = addr.clone();
            }
            s.tls = tls;
        }
        let (outputs, errors) = self.feed(pushed.framed);
        received.outputs = outputs;
        received.errors = errors;
        received.sessions_full = self.sessions_full - overflow;
        received
    }

    /// A server whose stdin was not a pipe or socket when it was found (one running
    /// before the daemon, that moved its stdin and put /dev/null in its place, as
    /// Python's SDK does): its stdin is the pipe it first reads a JSON-RPC request on.
    fn learn_stdin(&mut self, inode: u64, read: bool, bytes: &[u8]) {
        let stdio = &mut self.stdio.stdio;
        if read && stdio.stdin.is_none() && crate::mcp::detect::stdio(bytes).is_some() {
            stdio.stdin = Some(inode);
            // Its fd 1 then was no more its stdout than fd 0 its stdin (a stderr pipe
            // passed down, say): learnt from its first response too.
            stdio.stdout = None;
        }
    }

    /// A server found reading its stdin on a moved fd: its stdout is the pipe or socket
    /// it first writes a JSON-RPC response to.
    fn learn_stdout(&mut self, inode: u64, read: bool, bytes: &[u8]) {
        let stdio = &mut self.stdio.stdio;
        if !read
            && stdio.stdout.is_none()
            && stdio.stdin.is_some_and(|i| i != inode)
            && crate::mcp::detect::response(bytes)
        {
            stdio.stdout = Some(inode);
        }
    }

    /// The HTTP connection `stream` is, found or started: a connection is the
    /// server's when the first thing it reads on it is a request.
    fn connection(
        &mut self,
        stream: Stream,
        read: bool,
        bytes: &[u8],
        tls: bool,
        peer_of: impl FnOnce(u64) -> (Option<ClientProcess>, Option<String>),
        received: &mut Received,
    ) -> Option<u64> {
        match stream {
            Stream::Pipe(_) => return None,
            Stream::Accepted(conn) if self.http.contains_key(&conn) => return Some(conn),
            // Found not to be HTTP, or not tracked: its later bytes are not read either.
            Stream::Accepted(conn) if !self.accepted.contains_key(&conn) => return None,
            Stream::Accepted(_) => {}
            Stream::Socket(inode) => {
                if let Some(&conn) = self.socket_conns.get(&inode) {
                    return Some(conn);
                }
                if self.not_http.contains(&inode) {
                    return None;
                }
            }
        }
        let request = read && http::looks_like_request(bytes);
        let full = self.http.len() >= MAX_CONNECTIONS;
        if !request || full {
            // Counted once: the connection is not looked at again.
            received.untracked = request && full;
            match stream {
                Stream::Accepted(conn) => {
                    self.accepted.remove(&conn);
                }
                Stream::Socket(inode) => {
                    if self.not_http.len() >= MAX_NOT_HTTP {
                        self.not_http.clear();
                    }
                    self.not_http.insert(inode);
                }
                Stream::Pipe(_) => {}
            }
            return None;
        }
        let (conn, peer) = match stream {
            Stream::Accepted(conn) => {
                let a = self.accepted.remove(&conn)?;
                (conn, (a.peer, a.peer_addr))
            }
            Stream::Socket(inode) => {
                let conn = self.next_conn();
                self.socket_conns.insert(inode, conn);
                (conn, peer_of(inode))
            }
            Stream::Pipe(_) => return None,
        };
        let mut c = HttpConnection::new(self.pid, conn, self.max_message);
        (c.peer, c.peer_addr) = peer;
        c.tls = tls;
        self.http.insert(conn, c);
        Some(conn)
    }

    /// `stream` was closed: a response that ran until then ends, and a session that
    /// was the connection itself (no session id) is over.
    pub fn close_connection(&mut self, stream: Stream, ts_ns: u64) -> Vec<(SessionKey, Output)> {
        let conn = match stream {
            Stream::Pipe(_) => return Vec::new(),
            Stream::Socket(inode) => {
                self.not_http.remove(&inode);
                match self.socket_conns.remove(&inode) {
                    Some(conn) => conn,
                    None => return Vec::new(),
                }
            }
            Stream::Accepted(conn) => {
                self.accepted.remove(&conn);
                conn
            }
        };
        let Some(mut c) = self.http.remove(&conn) else {
            return Vec::new();
        };
        let pushed = c.close(ts_ns);
        let mut out = self.feed(pushed.framed).0;
        let key = SessionKey::Http {
            pid: self.pid,
            id: http::HttpSession::Connection(conn),
        };
        // Closed in place: its last calls are reported with it (the caller forgets it
        // after, `forget_closed_sessions`).
        if let Some(s) = self.sessions.get_mut(&key) {
            out.extend(s.close(ts_ns).into_iter().map(|o| (key.clone(), o)));
            self.closed_sessions.push(key);
        }
        out
    }

    /// Forgets the sessions `close_connection` ended, once their outputs are reported.
    pub fn forget_closed_sessions(&mut self) {
        for key in std::mem::take(&mut self.closed_sessions) {
            self.sessions.remove(&key);
        }
    }

    /// The session `from` is now called `to` (the server handed out a session id).
    fn alias(&mut self, from: &SessionKey, to: SessionKey) {
        if self.sessions.contains_key(&to) {
            return;
        }
        if let Some(s) = self.sessions.remove(from) {
            self.sessions.insert(to, s);
        }
    }

    /// Feeds framed messages to their sessions; returns completed calls (with their
    /// session) and the parse errors met.
    pub fn feed(&mut self, framed: Vec<Framed>) -> (Vec<(SessionKey, Output)>, Vec<ParseError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for f in framed {
            let dir = f.direction;
            let Some(session) = open_session(
                &mut self.sessions,
                self.stdio.key(),
                self.epoch,
                &mut self.sessions_full,
                &f.session,
            ) else {
                continue;
            };
            // A call's credential is its own request's, never an earlier one's.
            if dir == Direction::ClientToServer {
                session.bearer = f.bearer;
            }
            let evicted = session.stats.evicted;
            for msg in jsonrpc::parse_line(&f.body) {
                match msg {
                    Ok(m) => {
                        if let jsonrpc::Message::Request { method, .. } = &m {
                            self.seen.push((dir, methods::label(method)));
                        }
                        self.messages[dir as usize] += 1;
                        let done = session.on_message(dir, m, f.ts_ns, f.body.len());
                        out.extend(done.into_iter().map(|o| (f.session.clone(), o)));
                    }
                    Err(e) => errors.push(e),
                }
            }
            self.requests_evicted += session.stats.evicted - evicted;
        }
        self.parse_errors += errors.len() as u64;
        (out, errors)
    }

    /// The session `key`, opened if new: when the server has `MAX_SESSIONS`, idle ones
    /// are forgotten first; None (counted) when all are busy. Borrows only the
    /// sessions (and their counter), so the caller keeps using its other fields.
    fn session<'s>(&'s mut self, key: &SessionKey) -> Option<&'s mut Session> {
        open_session(
            &mut self.sessions,
            self.stdio.key(),
            self.epoch,
            &mut self.sessions_full,
            key,
        )
    }

    /// Requests fed since the last call: who sent them and their method.
    pub fn take_requests(&mut self) -> Vec<(Direction, &'static str)> {
        std::mem::take(&mut self.seen)
    }

    /// A new policy epoch: calls that start from now on are judged by it.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        for s in self.sessions.values_mut() {
            s.epoch = epoch;
        }
    }

    /// The epoch of the oldest call in flight in any session.
    pub fn oldest_epoch(&self) -> Option<u64> {
        self.sessions.values().filter_map(Session::oldest_epoch).min()
    }

    /// Gives an effect of the server's process tree to every tool call in flight, in
    /// every session: ambiguous when there are several. Returns how many got it.
    pub fn attach(&mut self, effect: &Effect) -> usize {
        let in_flight: usize = self.sessions.values().map(Session::tool_calls_in_flight).sum();
        let ambiguous = in_flight > 1;
        self.sessions
            .values_mut()
            .map(|s| s.attach(effect, ambiguous))
            .sum()
    }

    /// Counts a runtime-noise open for every tool call in flight.
    pub fn attach_noise(&mut self) {
        for s in self.sessions.values_mut() {
            s.attach_noise();
        }
    }

    /// The server ended: every open call of every session is incomplete.
    pub fn close(&mut self, ts_ns: u64) -> Vec<(SessionKey, Output)> {
        let mut out = Vec::new();
        for (key, s) in &mut self.sessions {
            out.extend(s.close(ts_ns).into_iter().map(|o| (key.clone(), o)));
        }
        out
    }

    /// Requests by method over all its sessions, in method order (events stay the same
    /// from run to run).
    pub fn request_stats(&self) -> std::collections::BTreeMap<String, u64> {
        let mut all = std::collections::BTreeMap::<String, u64>::new();
        for SessionStats { requests, .. } in self.sessions.values().map(|s| &s.stats) {
            for (m, n) in requests {
                *all.entry(m.clone()).or_default() += n;
            }
        }
        all
    }

    /// The session its stdio carries: who started it, for what happens outside calls.
    pub fn stdio_session(&self) -> Option<&Session> {
        self.sessions.get(self.stdio.key())
    }

    /// serverInfo, as any session learnt it.
    pub fn info(&self) -> Option<&PeerInfo> {
        self.sessions.values().find_map(|s| s.server.as_ref())
    }

    /// The server's name in events and its `server` label in metrics: its policy entry,
    /// or `unregistered`.
    pub fn label(&self) -> &str {
        self.rule.as_deref().unwrap_or(UNREGISTERED)
    }
}

/// The HOME a process was started with.
fn env_home(pid: u32) -> Option<String> {
    let (environ, _) = crate::host::environ::read(std::path::Path::new("/proc"), pid)?;
    crate::host::environ::value_of(&environ, "HOME").map(|h| String::from_utf8_lossy(h).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::http::HttpSession;

    fn server() -> Server {
        let p = Process {
            pid: 4_000_000,
            ppid: 1,
            uid: 0,
            exe: "/usr/bin/node".into(),
            cmdline: vec!["node".into(), "server.js".into()],
            start_ns: 0,
            predates: false,
            tree_root: None,
            watched: true,
            server_pattern: None,
        };
        Server::new(&p, Stdio::default(), None, ServerHost::default(), 1 << 20, 0)
    }

    fn request(session: &str, id: u64, method: &str) -> Framed {
        Framed {
            session: SessionKey::Http {
                pid: 4_000_000,
                id: HttpSession::Id(session.into()),
            },
            direction: Direction::ClientToServer,
            ts_ns: id,
            body: format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{"name":"t"}}}}"#)
                .into_bytes(),
            bearer: None,
        }
    }

    #[test]
    fn sessions_a_client_makes_up_are_bounded_and_busy_ones_kept() {
        let mut s = server();
        // Sessions with a call in flight are kept: past the bound, new ones are dropped.
        // The stdio session is one of them.
        let busy: Vec<Framed> = (1..MAX_SESSIONS)
            .map(|i| request(&format!("busy-{i}"), 1, "tools/call"))
            .collect();
        s.feed(busy);
        assert_eq!((s.sessions.len(), s.sessions_full), (MAX_SESSIONS, 0));
        s.feed(vec![request("one-too-many", 1, "tools/call")]);
        assert_eq!(s.sessions_full, 1);
        assert!(!s.sessions.keys().any(|k| k.to_string() == "one-too-many"));
        // Idle sessions are forgotten to make room.
        let mut s = server();
        let idle: Vec<Framed> = (1..MAX_SESSIONS)
            .map(|i| request(&format!("idle-{i}"), 1, "ping"))
            .collect();
        s.feed(idle.clone());
        for f in idle {
            let answer = Framed {
                direction: Direction::ServerToClient,
                body: br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec(),
                ..f
            };
            s.feed(vec![answer]);
        }
        s.feed(vec![request("new", 2, "tools/call")]);
        assert_eq!(s.sessions_full, 0);
        assert!(s.sessions.len() < MAX_SESSIONS);
        assert!(s.sessions.keys().any(|k| k.to_string() == "new"));
        assert!(s.sessions.contains_key(s.stdio.key()), "the stdio session stays");
    }

    #[test]
    fn a_call_open_when_its_connection_closes_is_reported_with_its_session() {
        let mut s = server();
        let none = |_| (None, None);
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#;
        let post = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.receive(
            Stream::Socket(7),
            true,
            post.as_bytes(),
            1,
            Gap::none(),
            false,
            none,
        );
        let out = s.close_connection(Stream::Socket(7), 5);
        let keys: Vec<&SessionKey> = out
            .iter()
            .filter(|(_, o)| matches!(o, Output::Completed(c) if c.outcome.as_str() == "incomplete"))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys.len(), 1, "{out:?}");
        assert!(s.sessions.contains_key(keys[0]), "its session, for the event");
        s.forget_closed_sessions();
        assert!(!s.sessions.contains_key(keys[0]));
    }

    #[test]
    fn a_server_found_with_its_stdin_moved_learns_it_from_its_first_request() {
        // Found running: fd 0 was /dev/null, fd 1 a stderr pipe passed down.
        let mut s = server();
        s.stdio.stdio = Stdio {
            stdin: None,
            stdout: Some(99),
        };
        let none = |_| (None, None);
        // JSON-RPC read on a socket (an HTTP body, say) does not make it stdin.
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t"}}"#;
        s.receive(Stream::Socket(7), true, body, 1, Gap::none(), false, none);
        assert_eq!(s.stdio.stdio.stdin, None);
        let req = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}}\n";
        s.receive(Stream::Pipe(5), true, req, 2, Gap::none(), false, none);
        assert_eq!((s.stdio.stdio.stdin, s.stdio.stdio.stdout), (Some(5), None));
        let answer = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n";
        let r = s.receive(Stream::Pipe(6), false, answer, 3, Gap::none(), false, none);
        assert_eq!(s.stdio.stdio.stdout, Some(6));
        assert_eq!(r.outputs.len(), 1, "the call, answered");
    }
}
