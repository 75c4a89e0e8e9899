//! One MCP session as seen on a server's stdio: which client and server (from
//! `initialize` or from each request's `_meta`), which requests are in flight, and the
//! tool calls (and resource reads, prompt gets) that completed. Pure state: the caller
//! feeds messages with kernel timestamps and turns the outputs into events.
use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    hash::BuildHasher as _,
    sync::Arc,
};

use serde_json::Value;

use crate::{
    host::{effects::Effect, identity::ClientProcess},
    mcp::{
        jsonrpc::{Id, Message},
        long_strings::LongStrings,
        trace_context::TraceParent,
    },
    transport::bearer::Bearer,
};

/// `_meta` keys of the stateless protocol revision (2026-07-28).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Requests that become events of their own when they complete.
const REPORTED_METHODS: &[&str] = &["tools/call", "resources/read", "prompts/get"];
/// Requests in flight per session, each way: a peer that never answers (or a client
/// that floods unanswered requests) makes the oldest ones forgotten, counted.
pub const MAX_PENDING: usize = 1024;
/// Bytes of the requests in flight a session keeps (their params), at most.
pub const MAX_PENDING_BYTES: usize = 128 * 1024 * 1024;
/// Distinct side effects kept per call (a repeated one is kept once); past this they
/// are counted (`Completed::effects_dropped`), not listed.
pub const MAX_EFFECTS_PER_CALL: usize = 4096;
/// Distinct method names counted per session; the rest are counted under `OTHER_METHODS`.
pub const MAX_METHODS: usize = 256;
pub const OTHER_METHODS: &str = "__other__";

pub use crate::transport::Direction;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerInfo {
    pub name: String,
    pub version: String,
}

impl PeerInfo {
    fn from_value(v: &Value) -> Option<Self> {
        let name = v.get("name")?.as_str()?.to_string();
        let version = v.get("version").and_then(Value::as_str).unwrap_or("").to_string();
        Some(Self { name, version })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    /// No response: the server exited, or the id was reused while the call was open.
    Incomplete,
    /// No response seen, and the capture lost bytes of the server's answers while the
    /// call was open: its response may have been among them.
    Lost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Incomplete => "incomplete",
            Self::Lost => "lost",
        }
    }
}

/// How the session identifies its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// `initialize` + `clientInfo` (revisions up to 2025-11-25).
    Initialize,
    /// No initialize; `_meta` on every request (2026-07-28).
    Stateless,
}

impl Era {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialize => "initialize",
            Self::Stateless => "stateless",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub method: String,
    pub id: Id,
    /// tools/call: the tool name; prompts/get: the prompt name; resources/read: the URI.
    pub target: Option<String>,
    /// tools/call and prompts/get: `params.arguments`.
    pub arguments: Value,
    /// The long strings in `arguments`, as sent (see `long_strings`).
    pub long: LongStrings,
    pub outcome: Outcome,
    /// Why it failed: the JSON-RPC error message or the text of an `isError` result.
    pub error: Option<String>,
    /// When the server had read the whole request.
    pub start_ts_ns: u64,
    /// When the server had written the whole response (or the session ended).
    pub end_ts_ns: u64,
    /// The client's identity for this request: its `_meta` or the session's (shared:
    /// every call of a session names the same one).
    pub client: Option<Arc<PeerInfo>>,
    /// The bearer credential its request carried.
    pub bearer: Option<Bearer>,
    /// Side effects while it ran, each once; `true` when other calls were in flight too.
    pub effects: Vec<(Effect, bool)>,
    /// Effects past `MAX_EFFECTS_PER_CALL` (a repeat of one of them counts again).
    pub effects_dropped: u64,
    /// Runtime-noise opens while it ran (counted, not listed).
    pub noise: u64,
    /// The policy epoch when the call started (a reload applies to later calls).
    pub epoch: u64,
    /// The JSON-RPC error code of an error response.
    pub error_code: Option<i64>,
    /// The client's trace context from the request's `_meta`.
    pub trace: Option<TraceParent>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A request that becomes an event of its own (`REPORTED_METHODS`).
    Completed(Completed),
    /// Any other request answered (or left open): only a span and a duration.
    Operation(Completed),
    /// The session ended (its server exited or its connection closed).
    Ended {
        start_ts_ns: u64,
        end_ts_ns: u64,
        protocol_version: Option<String>,
    },
}

#[derive(Debug)]
struct Pending {
    method: String,
    params: Value,
    /// The long strings in `params.arguments`.
    long: LongStrings,
    /// Size of the message it came in (a batch's whole line), for the byte bound.
    bytes: usize,
    ts_ns: u64,
    client: Option<Arc<PeerInfo>>,
    bearer: Option<Bearer>,
    effects: Vec<(Effect, bool)>,
    /// Hashes of `effects`, so that a repeated one is kept once.
    effects_seen: HashSet<u64>,
    /// Effects past `MAX_EFFECTS_PER_CALL`.
    effects_dropped: u64,
    noise: u64,
    epoch: u64,
    /// `Session::responses_lost` when it started.
    lost_mark: u64,
    trace: Option<TraceParent>,
}

/// Counters for what the session saw that is not a reported call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionStats {
    /// Requests by method, both directions (servers send requests too).
    pub requests: HashMap<String, u64>,
    pub notifications: u64,
    /// Responses whose id matched no request in flight.
    pub unmatched_responses: u64,
    /// Request ids reused while the first request was still open.
    pub reused_ids: u64,
    /// Requests in flight forgotten to keep the session within `MAX_PENDING` and
    /// `MAX_PENDING_BYTES` (the oldest first); their answers count as unmatched.
    pub evicted: u64,
}

#[derive(Debug, Default)]
pub struct Session {
    /// The client process, when the transport knows it (the other end of a stdio
    /// server's stdin).
    pub peer: Option<ClientProcess>,
    /// The client's address, for a network transport (`ip:port`).
    pub peer_addr: Option<String>,
    /// Its last message came over TLS (read as plaintext from OpenSSL).
    pub tls: bool,
    pub client: Option<Arc<PeerInfo>>,
    /// The bearer credential of the request being read (HTTP), given to its call.
    pub bearer: Option<Bearer>,
    pub server: Option<PeerInfo>,
    pub protocol_version: Option<String>,
    pub era: Option<Era>,
    /// Policy epoch stamped on calls as they start.
    pub epoch: u64,
    /// Client-to-server requests in flight.
    pending: HashMap<Id, Pending>,
    /// Bytes of the messages of `pending`.
    pending_bytes: usize,
    /// Keyed per session, so a peer cannot aim at its hashes.
    effect_hasher: std::hash::RandomState,
    /// Server-to-client requests in flight (sampling, roots, elicitation).
    pending_from_server: HashMap<Id, String>,
    pub stats: SessionStats,
    /// Losses in the server's answers so far (gaps in the stream carrying them).
    responses_lost: u64,
    /// Kernel time of its first message.
    first_ts_ns: Option<u64>,
}

impl Session {
    /// A session whose client process the transport knows (or not), starting at a
    /// policy epoch.
    pub fn new(peer: Option<ClientProcess>, epoch: u64) -> Self {
        Self {
            peer,
            epoch,
            ..Self::default()
        }
    }

    /// Feeds one message; `ts_ns` is when the server finished reading it
    /// (client to server) or writing it (server to client); `bytes` the size of the
    /// line it came in.
    pub fn on_message(&mut self, dir: Direction, msg: Message, ts_ns: u64, bytes: usize) -> Vec<Output> {
        self.first_ts_ns.get_or_insert(ts_ns);
        match (dir, msg) {
            (_, Message::Notification { .. }) => {
                self.stats.notifications += 1;
                Vec::new()
            }
            (
                Direction::ClientToServer,
                Message::Request {
                    id,
                    method,
                    params,
                    long,
                },
            ) => self.client_request(id, method, (params, long), ts_ns, bytes),
            (Direction::ServerToClient, Message::Request { id, method, .. }) => {
                self.count_request(&method);
                if self.pending_from_server.len() >= MAX_PENDING
                    && !self.pending_from_server.contains_key(&id)
                    && let Some(any) = self.pending_from_server.keys().next().cloned()
                {
                    self.pending_from_server.remove(&any);
                    self.stats.evicted += 1;
                }
                self.pending_from_server.insert(id, method);
                Vec::new()
            }
            (Direction::ServerToClient, Message::Response { id, result }) => {
                self.server_answer(&id, Ok(result), ts_ns)
            }
            (
                Direction::ServerToClient,
                Message::Error {
                    id: Some(id),
                    code,
                    message,
                    ..
                },
            ) => self.server_answer(&id, Err((code, message)), ts_ns),
            (Direction::ServerToClient, Message::Error { id: None, .. }) => {
                self.stats.unmatched_responses += 1;
                Vec::new()
            }
            (Direction::ClientToServer, Message::Response { id, .. })
            | (Direction::ClientToServer, Message::Error { id: Some(id), .. }) => {
                if self.pending_from_server.remove(&id).is_none() {
                    self.stats.unmatched_responses += 1;
                }
                Vec::new()
            }
            (Direction::ClientToServer, Message::Error { id: None, .. }) => {
                self.stats.unmatched_responses += 1;
                Vec::new()
            }
        }
    }

    /// Counts a request by method; names a peer sends are bounded (`MAX_METHODS`).
    fn count_request(&mut self, method: &str) {
        // A method seen before (nearly every request) is counted without a key built.
        if let Some(n) = self.stats.requests.get_mut(method) {
            *n += 1;
            return;
        }
        let key = if self.stats.requests.len() < MAX_METHODS {
            method
        } else {
            OTHER_METHODS
        };
        *self.stats.requests.entry(key.to_string()).or_default() += 1;
    }

    fn client_request(
        &mut self,
        id: Id,
        method: String,
        (params, long): (Value, LongStrings),
        ts_ns: u64,
        bytes: usize,
    ) -> Vec<Output> {
        self.count_request(&method);
        let meta = member(&params, "_meta");
        let trace = meta.and_then(TraceParent::from_meta);
        if let Some(info) = meta
            .and_then(|m| m.get(META_CLIENT_INFO))
            .and_then(PeerInfo::from_value)
        {
            self.client = Some(Arc::new(info));
            if self.era.is_none() {
                self.era = Some(Era::Stateless);
            }
        }
        if let Some(v) = meta
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
        {
            self.protocol_version = Some(v.to_string());
        }
        if method == "initialize" {
            self.era = Some(Era::Initialize);
            if let Some(info) = params.get("clientInfo").and_then(PeerInfo::from_value) {
                self.client = Some(Arc::new(info));
            }
            if let Some(v) = params.get("protocolVersion").and_then(Value::as_str) {
                self.protocol_version = Some(v.to_string());
            }
        }
        let mut out = Vec::new();
        if !self.pending.contains_key(&id) {
            self.make_room(bytes);
        }
        let pending = Pending {
            method,
            params,
            long,
            bytes,
            ts_ns,
            client: self.client.clone(),
            bearer: self.bearer.clone(),
            effects: Vec::new(),
            effects_seen: HashSet::new(),
            effects_dropped: 0,
            noise: 0,
            epoch: self.epoch,
            lost_mark: self.responses_lost,
            trace,
        };
        self.pending_bytes += bytes;
        // The id is cloned only when reused (rare), not for every call.
        let reused = match self.pending.entry(id) {
            Entry::Occupied(mut e) => Some((e.key().clone(), e.insert(pending))),
            Entry::Vacant(e) => {
                e.insert(pending);
                None
            }
        };
        if let Some((id, old)) = reused {
            self.pending_bytes -= old.bytes;
            self.stats.reused_ids += 1;
            out.push(self.complete(
                id,
                old,
                Outcome::Incomplete,
                Some("request id reused before a response".into()),
                ts_ns,
            ));
        }
        out
    }

    /// Forgets the oldest requests in flight until one of `bytes` fits the bounds.
    fn make_room(&mut self, bytes: usize) {
        while !self.pending.is_empty()
            && (self.pending.len() >= MAX_PENDING || self.pending_bytes + bytes > MAX_PENDING_BYTES)
        {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.ts_ns)
                .map(|(id, _)| id.clone());
            let Some(req) = oldest.and_then(|id| self.pending.remove(&id)) else {
                break;
            };
            self.pending_bytes -= req.bytes;
            self.stats.evicted += 1;
        }
    }

    fn server_answer(&mut self, id: &Id, answer: Result<Value, (i64, String)>, ts_ns: u64) -> Vec<Output> {
        let Some((id, req)) = self.pending.remove_entry(id) else {
            self.stats.unmatched_responses += 1;
            return Vec::new();
        };
        self.pending_bytes -= req.bytes;
        if let Ok(result) = &answer {
            let server = member(result, "serverInfo")
                .or_else(|| member(result, "_meta").and_then(|m| m.get(META_SERVER_INFO)))
                .and_then(PeerInfo::from_value);
            if server.is_some() {
                self.server = server;
            }
            if req.method == "initialize"
                && let Some(v) = result.get("protocolVersion").and_then(Value::as_str)
            {
                self.protocol_version = Some(v.to_string());
            }
        }
        let (outcome, error, code) = match answer {
            Err((code, message)) => (Outcome::Error, Some(message), Some(code)),
            Ok(result) if member(&result, "isError").and_then(Value::as_bool) == Some(true) => {
                (Outcome::Error, Some(error_text(&result)), None)
            }
            Ok(_) => (Outcome::Ok, None, None),
        };
        let mut out = self.complete(id, req, outcome, error, ts_ns);
        if let Output::Completed(c) | Output::Operation(c) = &mut out {
            c.error_code = code;
        }
        vec![out]
    }

    fn complete(
        &self,
        id: Id,
        mut req: Pending,
        outcome: Outcome,
        error: Option<String>,
        end_ts_ns: u64,
    ) -> Output {
        let reported = REPORTED_METHODS.contains(&req.method.as_str());
        // Effects and noise are only ever attached to tools/call: the rest carry none.
        let (target, arguments) = if reported {
            let field = |name: &str| {
                member(&req.params, name)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let target = match req.method.as_str() {
                "resources/read" => field("uri"),
                _ => field("name"),
            };
            // Moved, not copied: the request is done with (what is left in it is
            // dropped, so it is taken without the map's hashed remove).
            let arguments = req
                .params
                .as_object_mut()
                .and_then(|p| p.iter_mut().find(|(k, _)| *k == "arguments"))
                .map_or(Value::Null, |(_, v)| v.take());
            (target, arguments)
        } else {
            (None, Value::Null)
        };
        let long = if reported {
            req.long
        } else {
            LongStrings::default()
        };
        let c = Completed {
            method: req.method,
            id,
            target,
            arguments,
            long,
            outcome,
            error,
            start_ts_ns: req.ts_ns,
            end_ts_ns,
            client: req.client,
            bearer: req.bearer,
            effects: req.effects,
            effects_dropped: req.effects_dropped,
            noise: req.noise,
            epoch: req.epoch,
            error_code: None,
            trace: req.trace,
        };
        if reported {
            Output::Completed(c)
        } else {
            Output::Operation(c)
        }
    }

    /// The capture lost bytes of the server's answers: the calls open now may have
    /// lost their response.
    pub fn response_lost(&mut self) {
        self.responses_lost += 1;
    }

    /// The session ended (the server exited): every open call is incomplete, or lost
    /// when the capture lost answers while it was open.
    pub fn close(&mut self, ts_ns: u64) -> Vec<Output> {
        let mut open: Vec<(Id, Pending)> = self.pending.drain().collect();
        self.pending_bytes = 0;
        open.sort_by_key(|(_, p)| p.ts_ns);
        let lost = self.responses_lost;
        let mut out: Vec<Output> = open
            .into_iter()
            .map(|(id, p)| {
                let (outcome, why) = if lost > p.lost_mark {
                    (
                        Outcome::Lost,
                        "the capture lost bytes of the server's answers while it was open",
                    )
                } else {
                    (Outcome::Incomplete, "no response before the server exited")
                };
                self.complete(id, p, outcome, Some(why.into()), ts_ns)
            })
            .collect();
        if let Some(start_ts_ns) = self.first_ts_ns.take() {
            out.push(Output::Ended {
                start_ts_ns,
                end_ts_ns: ts_ns,
                protocol_version: self.protocol_version.clone(),
            });
        }
        out
    }

    /// The policy epoch of the oldest call in flight.
    pub fn oldest_epoch(&self) -> Option<u64> {
        self.pending.values().map(|p| p.epoch).min()
    }

    /// Requests still waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Tool calls waiting for their answer.
    pub fn tool_calls_in_flight(&self) -> usize {
        self.pending.values().filter(|p| p.method == "tools/call").count()
    }

    /// Gives a side effect to every tool call in flight; `ambiguous` when the server
    /// has several in flight (the kernel cannot say which one caused it). Returns how
    /// many got it.
    pub fn attach(&mut self, effect: &Effect, ambiguous: bool) -> usize {
        let hash = self.effect_hasher.hash_one((effect, ambiguous));
        let mut n = 0;
        for p in self.pending.values_mut().filter(|p| p.method == "tools/call") {
            n += 1;
            if p.effects.len() >= MAX_EFFECTS_PER_CALL {
                // Full: not remembered either (that would grow without bound), so a
                // repeat past the bound counts again.
                if !p.effects_seen.contains(&hash) {
                    p.effects_dropped += 1;
                }
                continue;
            }
            if !p.effects_seen.insert(hash) {
                continue;
            }
            p.effects.push((effect.clone(), ambiguous));
        }
        n
    }

    /// Counts a runtime-noise open for every tool call in flight.
    pub fn attach_noise(&mut self) {
        for p in self.pending.values_mut().filter(|p| p.method == "tools/call") {
            p.noise += 1;
        }
    }
}

/// The text of an `isError` tool result: its text content, joined.
/// Objects up to this many members are searched in order rather than through the
/// map's SipHash: a call's params and result have a handful.
const LINEAR_MEMBERS: usize = 8;

/// `v`'s member `name` (None when `v` is not an object or has none).
fn member<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Object(m) = v else {
        return None;
    };
    if m.len() > LINEAR_MEMBERS {
        return m.get(name);
    }
    m.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
}

fn error_text(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if texts.is_empty() {
        "isError result".to_string()
    } else {
        texts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mcp::jsonrpc::parse_value;

    #[test]
    fn a_member_is_found_the_same_in_small_and_large_objects() {
        let small = json!({"name": "t", "arguments": {"a": 1}, "_meta": {}});
        let large: Value = (0..20)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        assert_eq!(member(&small, "arguments"), Some(&json!({"a": 1})));
        assert_eq!(member(&small, "argument"), None);
        assert_eq!(member(&large, "k17"), Some(&json!(17)));
        assert_eq!(member(&large, "k20"), None);
        assert_eq!(member(&json!([1]), "k1"), None);
    }

    fn msg(v: Value) -> Message {
        parse_value(v).unwrap()
    }

    /// The reported calls among `out` (operations and session ends have tests of
    /// their own).
    fn reported(out: Vec<Output>) -> Vec<Output> {
        out.into_iter()
            .filter(|o| matches!(o, Output::Completed(_)))
            .collect()
    }

    fn c2s(s: &mut Session, v: Value, ts: u64) -> Vec<Output> {
        reported(s.on_message(Direction::ClientToServer, msg(v), ts, 100))
    }

    fn s2c(s: &mut Session, v: Value, ts: u64) -> Vec<Output> {
        reported(s.on_message(Direction::ServerToClient, msg(v), ts, 100))
    }

    fn completed_all(out: Vec<Output>) -> Vec<Completed> {
        out.into_iter()
            .filter_map(|o| match o {
                Output::Completed(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn completed(out: Vec<Output>) -> Completed {
        let mut all = completed_all(out);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn initialize_era_identifies_client_and_server_and_pairs_a_call() {
        let mut s = Session::default();
        assert!(c2s(&mut s, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","clientInfo":{"name":"claude-code","version":"2.1"},"capabilities":{}}}), 1).is_empty());
        assert!(s2c(&mut s, json!({"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","serverInfo":{"name":"secure-filesystem-server","version":"0.2"},"capabilities":{}}}), 2).is_empty());
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            3,
        );
        assert!(c2s(&mut s, json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"/srv/a"}}}), 1_000_000).is_empty());
        assert_eq!(s.in_flight(), 1);
        let c = completed(s2c(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}),
            4_000_000,
        ));
        assert_eq!(c.target.as_deref(), Some("read_text_file"));
        assert_eq!(c.arguments, json!({"path":"/srv/a"}));
        assert_eq!(c.outcome, Outcome::Ok);
        assert_eq!(c.end_ts_ns - c.start_ts_ns, 3_000_000);
        assert_eq!(
            c.client.as_deref(),
            Some(&PeerInfo {
                name: "claude-code".into(),
                version: "2.1".into()
            })
        );
        assert_eq!(s.server.as_ref().unwrap().name, "secure-filesystem-server");
        assert_eq!(s.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(s.era, Some(Era::Initialize));
        assert_eq!(s.stats.notifications, 1);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn stateless_era_takes_identity_from_each_request() {
        let mut s = Session::default();
        let meta = |name: &str| json!({META_CLIENT_INFO: {"name": name, "version": "2.3"}, META_PROTOCOL_VERSION: "2026-07-28"});
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta": meta("agent-a")}}),
            1,
        );
        s2c(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"result":{"_meta":{META_SERVER_INFO:{"name":"demo","version":"1"}}}}),
            2,
        );
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2},"_meta": meta("agent-b")}}),
            3,
        );
        let c = completed(s2c(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"result":{"content":[]}}),
            5,
        ));
        assert_eq!(c.client.unwrap().name, "agent-b");
        assert_eq!(s.era, Some(Era::Stateless));
        assert_eq!(s.server.unwrap().name, "demo");
        assert_eq!(s.protocol_version.as_deref(), Some("2026-07-28"));
    }

    #[test]
    fn is_error_results_and_jsonrpc_errors_are_errors() {
        let mut s = Session::default();
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}),
            1,
        );
        let c = completed(s2c(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"result":{"isError":true,"content":[{"type":"text","text":"Unknown tool: nope"}]}}),
            2,
        ));
        assert_eq!(
            (c.outcome, c.error.as_deref()),
            (Outcome::Error, Some("Unknown tool: nope"))
        );
        assert_eq!(c.arguments, Value::Null);
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}),
            3,
        );
        let c = completed(s2c(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad params"}}),
            4,
        ));
        assert_eq!(
            (c.outcome, c.error.as_deref()),
            (Outcome::Error, Some("bad params"))
        );
    }

    #[test]
    fn open_calls_are_incomplete_when_the_session_closes() {
        let mut s = Session::default();
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}),
            1,
        );
        c2s(&mut s, json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}), 2);
        let out = s.close(9);
        let c = completed(out);
        assert_eq!(c.outcome, Outcome::Incomplete);
        assert_eq!(c.end_ts_ns, 9);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn every_request_is_an_operation_with_its_error_code_and_trace_and_the_session_ends() {
        let mut s = Session::default();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let all = |s: &mut Session, dir, v: Value, ts| s.on_message(dir, msg(v), ts, 100);
        all(
            &mut s,
            Direction::ClientToServer,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"traceparent": tp}}}),
            10,
        );
        let out = all(
            &mut s,
            Direction::ServerToClient,
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}),
            20,
        );
        let [Output::Operation(op)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (op.method.as_str(), op.outcome, op.error_code),
            ("tools/list", Outcome::Error, Some(-32601))
        );
        assert_eq!((op.start_ts_ns, op.end_ts_ns), (10, 20));
        assert_eq!(op.trace.as_ref().map(|t| t.span_id[1]), Some(0xf0));
        all(
            &mut s,
            Direction::ClientToServer,
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}}),
            30,
        );
        let out = all(
            &mut s,
            Direction::ServerToClient,
            json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"bad"}}),
            40,
        );
        assert_eq!(completed(out).error_code, Some(-32602));
        assert_eq!(
            s.close(50),
            [Output::Ended {
                start_ts_ns: 10,
                end_ts_ns: 50,
                protocol_version: None,
            }]
        );
        assert!(s.close(60).is_empty(), "ended once");
    }

    #[test]
    fn an_open_call_whose_answers_lost_bytes_is_lost_not_incomplete() {
        let mut s = Session::default();
        let call = |id: u64| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"t","arguments":{}}});
        c2s(&mut s, call(1), 1);
        s.response_lost();
        c2s(&mut s, call(2), 2);
        let out = completed_all(s.close(3));
        let outcomes: Vec<&str> = out.iter().map(|c| c.outcome.as_str()).collect();
        assert_eq!(outcomes, ["lost", "incomplete"], "2 started after the loss");
    }

    #[test]
    fn reused_id_closes_the_first_call_as_incomplete() {
        let mut s = Session::default();
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"first"}}),
            1,
        );
        let c = completed(c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"second"}}),
            2,
        ));
        assert_eq!(
            (c.target.as_deref(), c.outcome),
            (Some("first"), Outcome::Incomplete)
        );
        assert_eq!(s.stats.reused_ids, 1);
        let c = completed(s2c(&mut s, json!({"jsonrpc":"2.0","id":5,"result":{}}), 3));
        assert_eq!(c.target.as_deref(), Some("second"));
    }

    #[test]
    fn server_requests_and_their_answers_are_counted_not_reported() {
        let mut s = Session::default();
        assert!(
            s2c(
                &mut s,
                json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}),
                1
            )
            .is_empty()
        );
        assert!(
            c2s(
                &mut s,
                json!({"jsonrpc":"2.0","id":"s1","result":{"content":{}}}),
                2
            )
            .is_empty()
        );
        assert!(s2c(&mut s, json!({"jsonrpc":"2.0","id":99,"result":{}}), 3).is_empty());
        assert_eq!(s.stats.requests.get("sampling/createMessage"), Some(&1));
        assert_eq!(s.stats.unmatched_responses, 1);
    }

    #[test]
    fn effects_go_to_the_calls_in_flight_and_are_ambiguous_when_several_are() {
        let mut s = Session::default();
        let file = |p: &str| Effect::file(p, false, true);
        // As the server does it: ambiguous when several calls are in flight.
        let attach = |s: &mut Session, e: Effect| {
            let ambiguous = s.tool_calls_in_flight() > 1;
            s.attach(&e, ambiguous)
        };
        assert_eq!(attach(&mut s, file("/before")), 0, "no call in flight");
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}),
            1,
        );
        c2s(&mut s, json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}), 1);
        assert_eq!(attach(&mut s, file("/one")), 1, "tools/list is not a call");
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}),
            2,
        );
        assert_eq!(attach(&mut s, file("/both")), 2);
        let a = completed(s2c(&mut s, json!({"jsonrpc":"2.0","id":1,"result":{}}), 3));
        assert_eq!(a.effects, vec![(file("/one"), false), (file("/both"), true)]);
        attach(&mut s, file("/b-only"));
        let b = completed(s2c(&mut s, json!({"jsonrpc":"2.0","id":2,"result":{}}), 4));
        assert_eq!(b.effects, vec![(file("/both"), true), (file("/b-only"), false)]);
    }

    #[test]
    fn resources_and_prompts_are_reported_with_their_target() {
        let mut s = Session::default();
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}),
            1,
        );
        let c = completed(s2c(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"result":{"contents":[]}}),
            2,
        ));
        assert_eq!(
            (c.method.as_str(), c.target.as_deref()),
            ("resources/read", Some("file:///a"))
        );
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"review","arguments":{"x":"1"}}}),
            3,
        );
        let c = completed(s2c(
            &mut s,
            json!({"jsonrpc":"2.0","id":2,"result":{"messages":[]}}),
            4,
        ));
        assert_eq!(
            (c.method.as_str(), c.target.as_deref()),
            ("prompts/get", Some("review"))
        );
        c2s(&mut s, json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}), 5);
        assert!(s2c(&mut s, json!({"jsonrpc":"2.0","id":3,"result":{"tools":[]}}), 6).is_empty());
        assert_eq!(s.stats.requests.get("tools/list"), Some(&1));
    }

    #[test]
    fn unanswered_requests_are_bounded_oldest_forgotten_and_counted() {
        let mut s = Session::default();
        let call = |id: usize| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"t"}});
        for id in 0..MAX_PENDING + 5 {
            c2s(&mut s, call(id), id as u64);
        }
        assert_eq!((s.in_flight(), s.stats.evicted), (MAX_PENDING, 5));
        // The forgotten ones' answers match nothing; a kept one is still a call.
        assert!(s2c(&mut s, json!({"jsonrpc":"2.0","id":0,"result":{}}), 9_000).is_empty());
        assert_eq!(s.stats.unmatched_responses, 1);
        let last = MAX_PENDING + 4;
        assert_eq!(
            completed(s2c(&mut s, json!({"jsonrpc":"2.0","id":last,"result":{}}), 9_001))
                .target
                .as_deref(),
            Some("t")
        );
        // The server's own requests to the client are bounded the same way.
        for id in 0..MAX_PENDING + 3 {
            s2c(
                &mut s,
                json!({"jsonrpc":"2.0","id":format!("s{id}"),"method":"roots/list"}),
                10_000,
            );
        }
        assert_eq!(s.pending_from_server.len(), MAX_PENDING);
        assert_eq!(s.stats.evicted, 5 + 3);
    }

    #[test]
    fn requests_in_flight_are_bounded_in_bytes_too() {
        let mut s = Session::default();
        let big = MAX_PENDING_BYTES / 2 + 1;
        let call =
            |id: u64| msg(json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"t"}}));
        s.on_message(Direction::ClientToServer, call(1), 1, big);
        s.on_message(Direction::ClientToServer, call(2), 2, big);
        assert_eq!((s.in_flight(), s.stats.evicted), (1, 1));
        assert_eq!(s.pending_bytes, big);
        completed(s2c(&mut s, json!({"jsonrpc":"2.0","id":2,"result":{}}), 3));
        assert_eq!((s.in_flight(), s.pending_bytes), (0, 0));
    }

    #[test]
    fn method_names_a_peer_sends_are_counted_within_a_bound() {
        let mut s = Session::default();
        for i in 0..MAX_METHODS + 44 {
            c2s(&mut s, json!({"jsonrpc":"2.0","method":format!("m/{i}")}), 1);
            c2s(
                &mut s,
                json!({"jsonrpc":"2.0","id":i,"method":format!("m/{i}")}),
                1,
            );
        }
        assert_eq!(s.stats.requests.len(), MAX_METHODS + 1);
        assert_eq!(s.stats.requests.get(OTHER_METHODS), Some(&44));
        assert_eq!(s.stats.requests.get("m/0"), Some(&1));
    }

    #[test]
    fn a_call_keeps_each_effect_once_and_counts_past_its_bound() {
        let file = |p: &str| Effect::file(p, false, true);
        let mut s = Session::default();
        c2s(
            &mut s,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}),
            1,
        );
        for _ in 0..3 {
            s.attach(&file("/same"), false);
        }
        for i in 0..MAX_EFFECTS_PER_CALL + 10 {
            s.attach(&file(&format!("/f{i}")), false);
        }
        let c = completed(s2c(&mut s, json!({"jsonrpc":"2.0","id":1,"result":{}}), 2));
        assert_eq!(c.effects.len(), MAX_EFFECTS_PER_CALL);
        assert_eq!(c.effects[0], (file("/same"), false));
        assert_eq!(c.effects_dropped, 11);
    }
}
