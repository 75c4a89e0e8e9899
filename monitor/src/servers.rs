//! A watched stdio MCP server: its stdio streams, reassembled into JSON-RPC messages,
//! its MCP session, and the process on the other end of its pipes.
use serde_json::{Value, json};

use crate::{
    host::{identity::Stdio, procs::Process},
    mcp::{
        jsonrpc::{self, ParseError},
        session::{Completed, Direction, Output, Session},
    },
    policy::{Homes, UNREGISTERED, verdict::Verdict},
    transport::stdio::LineReassembler,
};

/// The process on the other end of the server's stdio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProcess {
    pub pid: u32,
    pub uid: u32,
    pub exe: String,
    pub cmdline: String,
}

impl ClientProcess {
    pub fn from_process(p: &Process) -> Self {
        Self {
            pid: p.pid,
            uid: p.uid,
            exe: p.exe.clone(),
            cmdline: p.cmdline_string(),
        }
    }
}

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

    pub fn server_json(&self) -> Value {
        self.server_json_named(self.label())
    }

    /// `server_json` under a given entry name (a call judged under an older policy).
    pub fn server_json_named(&self, name: &str) -> Value {
        json!({
            "name": name,
            "pid": self.pid,
            "exe": self.exe,
            "cmdline": self.cmdline,
            "info": self.session.server.as_ref().map(|s| json!({"name": s.name, "version": s.version})),
        })
    }

    /// The fields of a `tool_call` (or `resource_read`, `prompt_get`) event.
    /// `entry` is the server's name under the policy the call was judged by.
    pub fn call_fields(
        &self,
        c: &Completed,
        entry: &str,
        max_field_bytes: usize,
        verdict: Option<&Verdict>,
    ) -> Value {
        let client = c.client.as_ref().or(self.session.client.as_ref());
        let agent = json!({
            "name": verdict.and_then(|v| v.agent.clone()),
            "client": client.map(|i| json!({"name": i.name, "version": i.version})),
            "pid": self.client.as_ref().map(|p| p.pid),
            "uid": self.client.as_ref().map(|p| p.uid),
            "exe": self.client.as_ref().map(|p| p.exe.clone()),
        });
        let (arguments, arguments_truncated) = bounded(&c.arguments, max_field_bytes);
        let mut fields = json!({
            "server": self.server_json_named(entry),
            "agent": agent,
            "transport": "stdio",
            "session": self.session_id,
            "protocol": {
                "version": self.session.protocol_version,
                "era": self.session.era.map(|e| e.as_str()),
            },
            "request_id": c.id.to_value(),
        });
        let target_key = match c.method.as_str() {
            "tools/call" => "tool",
            "resources/read" => "uri",
            _ => "prompt",
        };
        fields[target_key] = json!(c.target);
        fields["arguments"] = arguments;
        if arguments_truncated {
            fields["arguments_truncated"] = json!(true);
        }
        fields["duration_ms"] = json!(c.end_ts_ns.saturating_sub(c.start_ts_ns) as f64 / 1e6);
        fields["outcome"] = json!(c.outcome.as_str());
        if let Some(e) = &c.error {
            fields["error"] = json!(truncate_str(e, max_field_bytes));
        }
        if let Some(v) = verdict {
            fields["effects"] = v.effects.clone();
            fields["decision"] = json!(v.decision());
            fields["violations"] = json!(v.violations);
        }
        fields
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

/// The event type for a completed request.
pub fn event_type(method: &str) -> &'static str {
    match method {
        "tools/call" => "tool_call",
        "resources/read" => "resource_read",
        _ => "prompt_get",
    }
}

/// `v` itself when its JSON is at most `max` bytes; otherwise the start of its JSON
/// text as a string, and `true`.
pub fn bounded(v: &Value, max: usize) -> (Value, bool) {
    let text = v.to_string();
    if text.len() <= max {
        return (v.clone(), false);
    }
    (Value::String(truncate_str(&text, max)), true)
}

/// At most `max` bytes of `s`, cut at a character boundary, with `…` when cut.
pub fn truncate_str(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_arguments_are_cut_to_a_string_and_flagged() {
        let small = json!({"path": "/a"});
        assert_eq!(bounded(&small, 100), (small.clone(), false));
        let big = json!({"content": "é".repeat(100)});
        let (v, cut) = bounded(&big, 20);
        assert!(cut);
        let s = v.as_str().unwrap();
        assert!(s.starts_with("{\"content\":\"é") && s.ends_with('…'), "{s}");
        assert!(s.len() <= 20 + '…'.len_utf8());
    }
}
