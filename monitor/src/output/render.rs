//! Rendering: the JSON fields of events about servers and their calls.
//!
//! A call event is serialised straight into the event line (`CallEvent`), without a
//! `Value` tree in between: at hundreds of thousands of calls a second, building and
//! dropping that tree was most of the pipeline's time.
use std::borrow::Cow;

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Value, json, value::RawValue};

use super::redact::{redact_argv, redact_json, redact_text};
use crate::{
    mcp::{
        long_strings::LongStrings,
        session::{Completed, PeerInfo, Session},
    },
    policy::{
        ArgumentsMode, Homes, Lifetime, Policy, lifetime,
        verdict::{Effects, Verdict},
    },
    servers::{Server, ShownServer},
    transport::SessionKey,
};

/// A server as events name it: its policy entry (or `unregistered`), process, serverInfo.
pub fn server_json(server: &Server) -> Value {
    serde_json::to_value(ServerFields {
        server,
        name: server.label(),
    })
    .unwrap_or(Value::Null)
}

/// A server under a given entry name (a call judged under an older policy).
struct ServerFields<'a> {
    server: &'a Server,
    name: &'a str,
}

impl Serialize for ServerFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let server = self.server;
        let info = server.info();
        let mut shown = server.shown.borrow_mut();
        let kept = shown
            .take()
            .filter(|c| c.entry == self.name && c.info.as_ref() == info && c.workload == server.workload);
        let current = match kept {
            Some(c) => c,
            None => ShownServer {
                entry: self.name.to_string(),
                info: info.cloned(),
                workload: server.workload.clone(),
                json: serde_json::value::to_raw_value(&Written(self)).map_err(serde::ser::Error::custom)?,
            },
        };
        shown.insert(current).json.serialize(s)
    }
}

/// `ServerFields` written out (what `Server::shown` keeps).
struct Written<'a, 'b>(&'b ServerFields<'a>);

impl Serialize for Written<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (server, name) = (self.0.server, self.0.name);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", name)?;
        m.serialize_entry("pid", &server.pid)?;
        m.serialize_entry("exe", &server.exe)?;
        // Redacted once per server, not once per event.
        m.serialize_entry(
            "cmdline",
            server.shown_cmdline.get_or_init(|| cmdline(&server.cmdline)),
        )?;
        m.serialize_entry("info", &server.info().map(Info))?;
        if let Some(w) = &server.workload {
            m.serialize_entry("workload", w)?;
        }
        m.end()
    }
}

/// serverInfo or clientInfo as events show it.
struct Info<'a>(&'a PeerInfo);

impl Serialize for Info<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", &self.0.name)?;
        m.serialize_entry("version", &self.0.version)?;
        m.end()
    }
}

/// A process's command line as events show it: credentials in it (`--api-key=...`,
/// `--password VALUE`, a token) replaced by `[redacted:KIND]`.
pub fn cmdline(s: &str) -> String {
    redact_text(s).0.into_owned()
}

/// The fields of a `tool_call` (or `resource_read`, `prompt_get`) event of a call in a
/// session, ready to be serialised into the event line (see `call_fields`).
pub struct CallEvent<'a> {
    server: ServerFields<'a>,
    key: &'a SessionKey,
    session: &'a Session,
    c: &'a Completed,
    client: Option<&'a PeerInfo>,
    verdict: Option<&'a Verdict>,
    target_key: &'static str,
    target: Option<Cow<'a, str>>,
    arguments: Arguments,
    redacted: usize,
    error: Option<(String, usize)>,
    /// The verdict's effects, with credentials in started programs' argv redacted.
    effects: Option<Cow<'a, Effects>>,
    /// The lifetime of the caller's bearer JWT, at the call's time.
    token_lifetime: Option<Lifetime>,
}

/// What an event carries of a call's arguments.
enum Arguments {
    /// Their JSON text, within the bound.
    Whole(Box<RawValue>),
    /// The start of their JSON text, cut at the bound (`arguments_truncated`).
    Cut(String),
    /// Their size only (`arguments: drop`).
    Bytes(usize),
}

/// The fields of a `tool_call` (or `resource_read`, `prompt_get`) event of a call in
/// `session`, with `arguments` (taken out of `c`: redacted in place, not copied).
/// `entry` is the server's name under `policy`, the policy the call was judged by,
/// whose `arguments:` says what the event carries of the arguments and how long a
/// short-lived bearer token lives. `call_unix_s` is when the call started (Unix
/// seconds), what a token's time to expiry is counted from.
#[allow(clippy::too_many_arguments)]
pub fn call_fields<'a>(
    server: &'a Server,
    (key, session): (&'a SessionKey, &'a Session),
    c: &'a Completed,
    mut arguments: Value,
    entry: &'a str,
    max_field_bytes: usize,
    verdict: Option<&'a Verdict>,
    policy: &Policy,
    call_unix_s: i64,
) -> CallEvent<'a> {
    let mode = policy.arguments;
    let target_key = match c.method.as_str() {
        "tools/call" => "tool",
        "resources/read" => "uri",
        _ => "prompt",
    };
    // Redacted first, cut second: a cut must not leave half a token unrecognised.
    let mut redacted = 0;
    let target = match (&c.target, target_key, mode) {
        (Some(uri), "uri", ArgumentsMode::Redact | ArgumentsMode::Drop) => {
            let (uri, n) = redact_text(uri);
            redacted += n;
            Some(uri)
        }
        (target, _, _) => target.as_deref().map(Cow::Borrowed),
    };
    let long = &c.long;
    let arguments = match mode {
        ArgumentsMode::Keep => bounded_text(&arguments, long, max_field_bytes),
        ArgumentsMode::Redact => {
            let is_secret = |s: &str| secret_path(policy, &server.homes, s);
            redacted += redact_json(&mut arguments, long, &is_secret);
            bounded_text(&arguments, long, max_field_bytes)
        }
        ArgumentsMode::Drop => Arguments::Bytes(match &arguments {
            Value::Null => 0,
            a => json_len(a, long),
        }),
    };
    let error = c.error.as_ref().map(|e| {
        let (text, n) = match mode {
            ArgumentsMode::Keep => (Cow::Borrowed(e.as_str()), 0),
            _ => redact_text(e),
        };
        (truncate_str(&text, max_field_bytes), n)
    });
    let effects = verdict.map(|v| {
        if has_exec_argv(&v.effects.exec) {
            let mut effects = v.effects.clone();
            redact_exec_argv(&mut effects.exec);
            Cow::Owned(effects)
        } else {
            Cow::Borrowed(&v.effects)
        }
    });
    CallEvent {
        server: ServerFields { server, name: entry },
        key,
        session,
        c,
        client: c.client.as_deref().or(session.client.as_deref()),
        verdict,
        target_key,
        target,
        arguments,
        redacted,
        error,
        effects,
        token_lifetime: c
            .bearer
            .as_ref()
            .and_then(|b| b.claims.as_ref())
            .map(|claims| lifetime(claims, call_unix_s, policy.short_lived_tokens_s)),
    }
}

impl CallEvent<'_> {
    /// The tool or prompt name, or the resource URI (redacted as the event shows it).
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// Why the call failed, redacted and bounded as the event shows it.
    pub fn error(&self) -> Option<&str> {
        self.error.as_ref().map(|(text, _)| text.as_str())
    }

    /// The arguments' JSON text as the event carries it (whole or cut); None when the
    /// policy keeps only their size.
    pub fn arguments_text(&self) -> Option<&str> {
        match &self.arguments {
            Arguments::Whole(raw) => Some(raw.get()),
            Arguments::Cut(text) => Some(text),
            Arguments::Bytes(_) => None,
        }
    }
}

impl Serialize for CallEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (session, c) = (self.session, self.c);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("server", &self.server)?;
        m.serialize_entry("agent", &Agent(self))?;
        m.serialize_entry("transport", self.key.transport())?;
        m.serialize_entry("tls", &session.tls)?;
        // Formatted straight into the event: no String per call.
        m.serialize_entry("session", &format_args!("{}", self.key))?;
        m.serialize_entry("protocol", &Protocol(session))?;
        m.serialize_entry("request_id", c.id.raw())?;
        m.serialize_entry(self.target_key, &self.target)?;
        match &self.arguments {
            Arguments::Whole(raw) => m.serialize_entry("arguments", raw)?,
            Arguments::Cut(text) => {
                m.serialize_entry("arguments", text)?;
                m.serialize_entry("arguments_truncated", &true)?;
            }
            Arguments::Bytes(n) => m.serialize_entry("arguments_bytes", n)?,
        }
        if self.redacted > 0 {
            m.serialize_entry("arguments_redacted", &self.redacted)?;
        }
        let duration_ms = c.end_ts_ns.saturating_sub(c.start_ts_ns) as f64 / 1e6;
        m.serialize_entry("duration_ms", &duration_ms)?;
        m.serialize_entry("outcome", c.outcome.as_str())?;
        if let Some((text, n)) = &self.error {
            m.serialize_entry("error", text)?;
            if *n > 0 {
                m.serialize_entry("error_redacted", n)?;
            }
        }
        if let (Some(v), Some(effects)) = (self.verdict, &self.effects) {
            m.serialize_entry("effects", effects.as_ref())?;
            m.serialize_entry("decision", v.decision())?;
            m.serialize_entry("violations", &v.violations)?;
        }
        m.end()
    }
}

/// The `agent` of a call event: who called, as far as the call and its session say.
struct Agent<'a>(&'a CallEvent<'a>);

impl Serialize for Agent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (e, peer) = (self.0, self.0.session.peer.as_ref());
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &e.verdict.and_then(|v| v.agent.as_deref()))?;
        m.serialize_entry("client", &e.client.map(Info))?;
        m.serialize_entry("pid", &peer.map(|p| p.pid))?;
        m.serialize_entry("uid", &peer.map(|p| p.uid))?;
        m.serialize_entry("exe", &peer.map(|p| &p.exe))?;
        if let Some(w) = peer.and_then(|p| p.workload.as_ref()) {
            m.serialize_entry("workload", w)?;
        }
        if let Some(addr) = &e.session.peer_addr {
            m.serialize_entry("address", addr)?;
        }
        if let Some(b) = &e.c.bearer {
            let mut token = b.to_json();
            if let (Some(l), Value::Object(t)) = (&e.token_lifetime, &mut token)
                && let Ok(Value::Object(fields)) = serde_json::to_value(l)
            {
                t.extend(fields);
            }
            m.serialize_entry("token", &token)?;
        }
        m.end()
    }
}

/// The `protocol` of a call event: the version and era its session negotiated.
struct Protocol<'a>(&'a Session);

impl Serialize for Protocol<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("version", &self.0.protocol_version)?;
        m.serialize_entry("era", &self.0.era.map(|e| e.as_str()))?;
        m.end()
    }
}

/// `v`'s JSON text when it is at most `max` bytes; otherwise its start, cut there.
fn bounded_text(v: &Value, long: &LongStrings, max: usize) -> Arguments {
    let (text, whole) = capped_json(v, long, max);
    if whole {
        // serde_json wrote it: valid JSON, so this cannot fail.
        if let Ok(raw) = RawValue::from_string(text) {
            return Arguments::Whole(raw);
        }
        return Arguments::Cut(String::new());
    }
    Arguments::Cut(truncate_str(&text, max))
}

/// Bytes of `v`'s JSON text, counted without keeping it.
fn json_len(v: &Value, long: &LongStrings) -> usize {
    let mut counter = Counter(0);
    let _ = long.write_json(&mut counter, v);
    counter.0
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether an argument string names a path the policy's `secrets` globs match (with
/// `~/` as the server owner's home).
fn secret_path(policy: &Policy, homes: &Homes, s: &str) -> bool {
    let expanded = match (s.strip_prefix("~/"), &homes.owner) {
        (Some(rest), Some(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => s.to_string(),
    };
    policy.secret(None, &expanded, homes).is_some()
}

/// Whether the effects list programs started with an argv (which may hold credentials).
fn has_exec_argv(exec: &[Value]) -> bool {
    exec.iter().any(|e| e.get("argv").is_some())
}

/// Credentials in the argv of the programs a call started: each `exec` effect whose
/// argv had some gets `argv_redacted`.
fn redact_exec_argv(exec: &mut [Value]) {
    for e in exec {
        let n = e
            .get_mut("argv")
            .and_then(Value::as_array_mut)
            .map_or(0, |argv| redact_argv(argv));
        if n > 0 {
            e["argv_redacted"] = json!(n);
        }
    }
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
    let (text, whole) = capped_json(v, &LongStrings::default(), max);
    if whole {
        return (v.clone(), false);
    }
    (Value::String(truncate_str(&text, max)), true)
}

/// `v`'s JSON text up to `max` bytes (lossy at a cut character), and whether that is
/// all of it. Serialised only as far as the bound: a 64 KiB argument is not written
/// out whole to learn that it is over 4 KiB.
fn capped_json(v: &Value, long: &LongStrings, max: usize) -> (String, bool) {
    let mut capped = Capped {
        bytes: Vec::with_capacity(max.min(4096) + 1),
        cap: max + 1,
    };
    let whole = long.write_json(&mut capped, v).is_ok() && capped.bytes.len() <= max;
    let text = match String::from_utf8(capped.bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    (text, whole)
}

/// Keeps the first `cap` bytes written, then refuses more (which ends serialisation).
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.cap - self.bytes.len();
        if room == 0 {
            return Err(std::io::Error::other("over the bound"));
        }
        let n = buf.len().min(room);
        self.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

    /// A call's arguments with long strings kept as sent (`long_strings`) come out of
    /// redaction and the bound exactly as they do decoded: the same text, the same
    /// "whole or cut", the same count of redactions, the same size when dropped.
    #[test]
    fn long_strings_kept_as_sent_give_the_same_arguments() {
        use crate::mcp::jsonrpc::{Message, parse_line, parse_line_cutting};
        let unit = r#"fn main() {\n    println!(\"hello, world\");\n}\n"#;
        let source = |len: usize| {
            unit.repeat(len / unit.len() + 1)[..len]
                .trim_end_matches('\\')
                .to_string()
        };
        let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
        let secret = |s: &str| s == "/home/u/.ssh/id_rsa";
        let cases = [
            format!(r#"{{"path":"/srv/a.rs","content":"{}"}}"#, source(70_000)),
            format!(r#"{{"content":"{}{token}{}"}}"#, source(10_000), source(9_000)),
            format!(
                r#"{{"content":"-----BEGIN RSA PRIVATE KEY-----\n{}"}}"#,
                "A".repeat(6000)
            ),
            format!(r#"{{"password":"{}","x":1}}"#, source(5000)),
            format!(r#"{{"path":"/home/u/.ssh/id_rsa","content":"{}"}}"#, source(8000)),
            format!(
                r#"{{"list":["{}",{{"deep":"{}"}}],"n":[1,2.5,null,true]}}"#,
                source(6000),
                source(5000)
            ),
            format!(r#"{{"env":"API_TOKEN={token}\n{}"}}"#, source(5000)),
        ];
        for args in &cases {
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{args}}}}}"#
            );
            let arguments = |long: usize| match parse_line_cutting(line.as_bytes(), long).remove(0) {
                Ok(Message::Request { mut params, long, .. }) => (params["arguments"].take(), long),
                other => panic!("{other:?}"),
            };
            let (mut decoded, none) = arguments(usize::MAX);
            let (mut kept, long) = arguments(crate::mcp::long_strings::LONG);
            assert!(none.is_empty() && !long.is_empty(), "{args:.60}");
            assert!(
                matches!(&parse_line(line.as_bytes())[0], Ok(Message::Request { long, .. }) if !long.is_empty())
            );
            for max in [4096, 100, 1 << 20] {
                let a = (capped_json(&decoded, &none, max), json_len(&decoded, &none));
                let b = (capped_json(&kept, &long, max), json_len(&kept, &long));
                assert!(a == b, "{args:.60} (max {max}): {:.200} | {:.200}", a.0.0, b.0.0);
            }
            let n = redact_json(&mut decoded, &none, &secret);
            let m = redact_json(&mut kept, &long, &secret);
            assert_eq!(n, m, "{args:.60}");
            for max in [4096, 1 << 20] {
                let (a, b) = (capped_json(&decoded, &none, max), capped_json(&kept, &long, max));
                assert!(a == b, "{args:.60} (max {max}): {:.200} | {:.200}", a.0, b.0);
            }
        }
    }

    /// The `server` object is written once and reused, and written again when what it
    /// shows changes: the entry name, the server's info, its workload.
    #[test]
    fn the_server_object_kept_between_events_follows_its_server() {
        use crate::{
            host::{identity::Stdio, procs::Process, workload::Workload},
            mcp::session::Session,
            servers::ServerHost,
            transport::SessionKey,
        };
        let p = Process {
            pid: 4_000_000,
            ppid: 1,
            uid: 0,
            exe: "/usr/bin/node".into(),
            cmdline: vec![
                "node".into(),
                "server.js".into(),
                "--api-key=abcdef0123456789abcdef".into(),
            ],
            start_ns: 0,
            predates: false,
            tree_root: None,
            watched: true,
            server_pattern: None,
        };
        let mut server = Server::new(&p, Stdio::default(), None, ServerHost::default(), 1 << 20, 0);
        let shown =
            |server: &Server, name: &str| serde_json::to_value(ServerFields { server, name }).unwrap();
        let first = shown(&server, "fs");
        assert_eq!(first["name"], "fs");
        assert_eq!(first["info"], Value::Null);
        assert_eq!(first["cmdline"], "node server.js --api-key=[redacted:credential]");
        assert_eq!(shown(&server, "fs"), first);
        let mut session = Session::new(None, 0);
        session.server = Some(PeerInfo {
            name: "files".into(),
            version: "1.0".into(),
        });
        server.sessions.insert(
            SessionKey::Stdio {
                pid: 4_000_000,
                stdin: 1,
            },
            session,
        );
        assert_eq!(
            shown(&server, "fs")["info"],
            json!({"name": "files", "version": "1.0"})
        );
        server.workload = Some(Workload {
            cgroup: "/a".into(),
            ..Workload::default()
        });
        assert_eq!(shown(&server, "fs")["workload"], json!({"cgroup": "/a"}));
        assert_eq!(shown(&server, "other")["name"], "other");
        assert_eq!(shown(&server, "fs")["name"], "fs");
    }

    /// Serialising only up to the bound gives what serialising all, then cutting, gave:
    /// at every bound, multibyte characters across it included.
    #[test]
    fn bounded_is_the_whole_text_cut_at_the_bound() {
        let v = json!({"a": "é€😀 text", "b": [1, 2, {"c": "ünïcødé"}], "d": null});
        let whole = v.to_string();
        for max in 0..whole.len() + 2 {
            let expected = if whole.len() <= max {
                (v.clone(), false)
            } else {
                (Value::String(truncate_str(&whole, max)), true)
            };
            assert_eq!(bounded(&v, max), expected, "max {max}");
        }
    }

    #[test]
    fn programs_started_show_their_argv_redacted_and_say_so() {
        let mut exec = vec![
            json!({"path": "/usr/bin/curl", "argv": ["curl", "-H", "Authorization: Bearer abcdefgh12345678ijkl", "https://x"]}),
            json!({"path": "/bin/true", "argv": ["true"]}),
        ];
        redact_exec_argv(&mut exec);
        assert_eq!(
            Value::Array(exec),
            json!([
                {"path": "/usr/bin/curl", "argv": ["curl", "-H", "Authorization: Bearer [redacted:bearer]", "https://x"], "argv_redacted": 1},
                {"path": "/bin/true", "argv": ["true"]},
            ])
        );
        assert_eq!(
            cmdline("node srv.js --api-key=abc123"),
            "node srv.js --api-key=[redacted:credential]"
        );
    }

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
