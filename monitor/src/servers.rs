//! A watched MCP server: who it is (process, policy entry, homes, its own program
//! files), the transports that carry its messages, and its MCP sessions by key.
use std::collections::HashMap;

use crate::{
    host::{
        effects::Effect,
        identity::{ClientProcess, Stdio},
        procs::Process,
    },
    mcp::{
        jsonrpc::{self, ParseError},
        session::{Direction, Output, PeerInfo, Session, SessionStats},
    },
    policy::{Homes, UNREGISTERED},
    transport::{Framed, SessionKey, stdio::StdioTransport},
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
    pub stdio: StdioTransport,
    /// Its MCP sessions, whatever transport carries them.
    pub sessions: HashMap<SessionKey, Session>,
    /// Policy epoch stamped on calls as they start (a reload applies to later calls).
    epoch: u64,
    pub parse_errors: u64,
    /// Messages by direction (client to server, server to client), for metrics.
    pub messages: [u64; 2],
    /// Requests seen since the last `take_requests`: (who sent it, method).
    seen: Vec<(Direction, String)>,
}

impl Server {
    /// A server found on stdio, with `client` on the other end of its stdin.
    pub fn new(
        p: &Process,
        stdio: Stdio,
        client: Option<ClientProcess>,
        max_message: usize,
        epoch: u64,
    ) -> Self {
        let stdio = StdioTransport::new(p.pid, stdio, max_message);
        let session = Session::new(client, epoch);
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
            sessions: HashMap::from([(stdio.key().clone(), session)]),
            stdio,
            epoch,
            parse_errors: 0,
            messages: [0; 2],
            seen: Vec::new(),
        }
    }

    /// Feeds framed messages to their sessions; returns completed calls (with their
    /// session) and the parse errors met.
    pub fn feed(&mut self, framed: Vec<Framed>) -> (Vec<(SessionKey, Output)>, Vec<ParseError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for f in framed {
            let dir = f.direction;
            let epoch = self.epoch;
            let session = self
                .sessions
                .entry(f.session.clone())
                .or_insert_with(|| Session::new(None, epoch));
            for msg in jsonrpc::parse_line(&f.body) {
                match msg {
                    Ok(m) => {
                        if let jsonrpc::Message::Request { method, .. } = &m {
                            self.seen.push((dir, method.clone()));
                        }
                        self.messages[dir as usize] += 1;
                        let done = session.on_message(dir, m, f.ts_ns);
                        out.extend(done.into_iter().map(|o| (f.session.clone(), o)));
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

    /// Requests by method over all sessions.
    pub fn request_stats(&self) -> HashMap<String, u64> {
        let mut all: HashMap<String, u64> = HashMap::new();
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
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"HOME="))
        .map(|h| String::from_utf8_lossy(h).into_owned())
}
