//! A watched stdio MCP server: its stdio streams, reassembled into JSON-RPC messages,
//! its MCP session, and the process on the other end of its pipes.
use crate::{
    host::{
        identity::{ClientProcess, Stdio},
        procs::Process,
    },
    mcp::{
        jsonrpc::{self, ParseError},
        session::{Direction, Output, Session},
    },
    policy::{Homes, UNREGISTERED},
    transport::stdio::LineReassembler,
};

pub struct Server {
    /// The policy's server entry that matched, by name; None: unregistered.
    pub rule: Option<String>,
    /// What `~` stands for in the policy's path globs (see `Homes`).
    pub homes: Homes,
    /// Its executable, interpreter and script: opening them is runtime noise.
    pub program_files: Vec<String>,
    pub pid: u32,
    pub exe: String,
    pub cmdline: String,
    pub uid: u32,
    pub stdio: Stdio,
    pub client: Option<ClientProcess>,
    pub session: Session,
    /// `stdio-<pid>-<stdin inode>`: names the session in events (stdio has no session id).
    pub session_id: String,
    from_client: LineReassembler,
    to_client: LineReassembler,
    pub parse_errors: u64,
    /// Messages by direction (client to server, server to client), for metrics.
    pub messages: [u64; 2],
    /// Requests seen since the last `take_requests`: (who sent it, method).
    seen: Vec<(Direction, String)>,
}

impl Server {
    pub fn new(p: &Process, stdio: Stdio, client: Option<ClientProcess>, max_message: usize) -> Self {
        Self {
            rule: None,
            homes: Homes::new(p.uid, env_home(p.pid)),
            program_files: crate::host::program_files::program_files(
                std::path::Path::new("/proc"),
                p.pid,
                &p.exe,
                &p.cmdline,
            ),
            pid: p.pid,
            exe: p.exe.clone(),
            cmdline: p.cmdline_string(),
            uid: p.uid,
            stdio,
            client,
            session: Session::default(),
            session_id: format!("stdio-{}-{}", p.pid, stdio.stdin.unwrap_or(0)),
            from_client: LineReassembler::new(max_message),
            to_client: LineReassembler::new(max_message),
            parse_errors: 0,
            messages: [0; 2],
            seen: Vec::new(),
        }
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
    pub fn lost(&mut self, dir: Direction, n: u64) {
        self.stream(dir).lost(n);
    }

    /// Feeds captured bytes; returns completed calls and the parse errors met.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64) -> (Vec<Output>, Vec<ParseError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for line in self.stream(dir).push(bytes, ts_ns) {
            for msg in jsonrpc::parse_line(&line.bytes) {
                match msg {
                    Ok(m) => {
                        if let jsonrpc::Message::Request { method, .. } = &m {
                            self.seen.push((dir, method.clone()));
                        }
                        self.messages[dir as usize] += 1;
                        out.extend(self.session.on_message(dir, m, line.last_ts_ns))
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        self.parse_errors += errors.len() as u64;
        (out, errors)
    }

    /// Requests fed since the last call: who sent them and their method.
    pub fn take_requests(&mut self) -> Vec<(Direction, String)> {
        std::mem::take(&mut self.seen)
    }

    /// Lost and discarded bytes over both directions.
    pub fn stream_loss(&self) -> (u64, u64) {
        let (a, b) = (self.from_client.stats, self.to_client.stats);
        (a.bytes_lost + b.bytes_lost, a.bytes_discarded + b.bytes_discarded)
    }

    /// The server's name in events and its `server` label in metrics: its policy entry,
    /// or `unregistered`.
    pub fn label(&self) -> &str {
        self.rule.as_deref().unwrap_or(UNREGISTERED)
    }
}

/// The HOME a process was started with.
fn env_home(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"HOME="))
        .map(|h| String::from_utf8_lossy(h).into_owned())
}
