//! Rendering: the JSON fields of events about servers and their calls.
use serde_json::{Value, json};

use crate::{
    mcp::session::{Completed, Session},
    policy::verdict::Verdict,
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
        "cmdline": server.cmdline,
        "info": server.info().map(|s| json!({"name": s.name, "version": s.version})),
    })
}

/// The fields of a `tool_call` (or `resource_read`, `prompt_get`) event of a call in
/// `session`. `entry` is the server's name under the policy the call was judged by.
pub fn call_fields(
    server: &Server,
    (key, session): (&SessionKey, &Session),
    c: &Completed,
    entry: &str,
    max_field_bytes: usize,
    verdict: Option<&Verdict>,
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
    let (arguments, arguments_truncated) = bounded(&c.arguments, max_field_bytes);
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
