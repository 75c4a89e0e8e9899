//! Rendering: the JSON fields of events about servers and their calls.
use serde_json::{Value, json};

use super::redact::{redact_argv, redact_json, redact_text};
use crate::{
    mcp::session::{Completed, Session},
    policy::{ArgumentsMode, Homes, Policy, verdict::Verdict},
    servers::Server,
    transport::SessionKey,
};

/// A server as events name it: its policy entry (or `unregistered`), process, serverInfo.
pub fn server_json(server: &Server) -> Value {
    server_json_named(server, server.label())
}

/// `server_json` under a given entry name (a call judged under an older policy).
pub fn server_json_named(server: &Server, name: &str) -> Value {
    json!({
        "name": name,
        "pid": server.pid,
        "exe": server.exe,
        "cmdline": cmdline(&server.cmdline),
        "info": server.info().map(|s| json!({"name": s.name, "version": s.version})),
    })
}

/// A process's command line as events show it: credentials in it (`--api-key=...`,
/// `--password VALUE`, a token) replaced by `[redacted:KIND]`.
pub fn cmdline(s: &str) -> String {
    redact_text(s).0.into_owned()
}

/// The fields of a `tool_call` (or `resource_read`, `prompt_get`) event of a call in
/// `session`. `entry` is the server's name under `policy`, the policy the call was
/// judged by, whose `arguments:` says what the event carries of the arguments.
pub fn call_fields(
    server: &Server,
    (key, session): (&SessionKey, &Session),
    c: &Completed,
    entry: &str,
    max_field_bytes: usize,
    verdict: Option<&Verdict>,
    policy: &Policy,
) -> Value {
    let client = c.client.as_ref().or(session.client.as_ref());
    let mut agent = json!({
        "name": verdict.and_then(|v| v.agent.clone()),
        "client": client.map(|i| json!({"name": i.name, "version": i.version})),
        "pid": session.peer.as_ref().map(|p| p.pid),
        "uid": session.peer.as_ref().map(|p| p.uid),
        "exe": session.peer.as_ref().map(|p| p.exe.clone()),
    });
    if let Some(addr) = &session.peer_addr {
        agent["address"] = json!(addr);
    }
    if let Some(b) = &c.bearer {
        agent["token"] = b.to_json();
    }
    let mode = policy.arguments;
    let mut fields = json!({
        "server": server_json_named(server, entry),
        "agent": agent,
        "transport": key.transport(),
        "tls": session.tls,
        "session": key.to_string(),
        "protocol": {
            "version": session.protocol_version,
            "era": session.era.map(|e| e.as_str()),
        },
        "request_id": c.id.to_value(),
    });
    let target_key = match c.method.as_str() {
        "tools/call" => "tool",
        "resources/read" => "uri",
        _ => "prompt",
    };
    // Redacted first, cut second: a cut must not leave half a token unrecognised.
    let mut redacted = 0;
    fields[target_key] = match (&c.target, target_key, mode) {
        (Some(uri), "uri", ArgumentsMode::Redact | ArgumentsMode::Drop) => {
            let (uri, n) = redact_text(uri);
            redacted += n;
            json!(uri)
        }
        (target, _, _) => json!(target),
    };
    match mode {
        ArgumentsMode::Keep => set_arguments(&mut fields, c.arguments.clone(), max_field_bytes),
        ArgumentsMode::Redact => {
            let mut arguments = c.arguments.clone();
            let is_secret = |s: &str| secret_path(policy, &server.homes, s);
            redacted += redact_json(&mut arguments, &is_secret);
            set_arguments(&mut fields, arguments, max_field_bytes);
        }
        ArgumentsMode::Drop => {
            let bytes = match &c.arguments {
                Value::Null => 0,
                a => a.to_string().len(),
            };
            fields["arguments_bytes"] = json!(bytes);
        }
    }
    if redacted > 0 {
        fields["arguments_redacted"] = json!(redacted);
    }
    fields["duration_ms"] = json!(c.end_ts_ns.saturating_sub(c.start_ts_ns) as f64 / 1e6);
    fields["outcome"] = json!(c.outcome.as_str());
    if let Some(e) = &c.error {
        let (text, n) = match mode {
            ArgumentsMode::Keep => (std::borrow::Cow::Borrowed(e.as_str()), 0),
            _ => redact_text(e),
        };
        fields["error"] = json!(truncate_str(&text, max_field_bytes));
        if n > 0 {
            fields["error_redacted"] = json!(n);
        }
    }
    if let Some(v) = verdict {
        fields["effects"] = v.effects.clone();
        redact_exec_argv(&mut fields["effects"]);
        fields["decision"] = json!(v.decision());
        fields["violations"] = json!(v.violations);
    }
    fields
}

/// `arguments` (cut to `max` bytes of JSON, then a string, with `arguments_truncated`).
fn set_arguments(fields: &mut Value, arguments: Value, max: usize) {
    let (arguments, truncated) = bounded_owned(arguments, max);
    fields["arguments"] = arguments;
    if truncated {
        fields["arguments_truncated"] = json!(true);
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

/// Credentials in the argv of the programs a call started: each `exec` effect whose
/// argv had some gets `argv_redacted`.
fn redact_exec_argv(effects: &mut Value) {
    let Some(exec) = effects.get_mut("exec").and_then(Value::as_array_mut) else {
        return;
    };
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
    bounded_owned(v.clone(), max)
}

fn bounded_owned(v: Value, max: usize) -> (Value, bool) {
    // Serialised only as far as the bound: a 64 KiB argument is not written out whole
    // to learn that it is over 4 KiB.
    let mut capped = Capped {
        bytes: Vec::with_capacity(max.min(4096) + 1),
        cap: max + 1,
    };
    if serde_json::to_writer(&mut capped, &v).is_ok() && capped.bytes.len() <= max {
        return (v, false);
    }
    let text = String::from_utf8_lossy(&capped.bytes);
    (Value::String(truncate_str(&text, max)), true)
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
        let mut effects = json!({"files": [], "exec": [
            {"path": "/usr/bin/curl", "argv": ["curl", "-H", "Authorization: Bearer abcdefgh12345678ijkl", "https://x"]},
            {"path": "/bin/true", "argv": ["true"]},
        ]});
        redact_exec_argv(&mut effects);
        assert_eq!(
            effects["exec"],
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
