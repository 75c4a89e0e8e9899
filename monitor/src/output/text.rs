//! Events for a person at a terminal (`--format text`): one JSON event line in, one
//! readable line out. Only what the event already holds is shown (it is redacted
//! already), and every string from a watched process is escaped: a tool name or a
//! command line cannot move the cursor, clear the screen or start a new line.
//!
//! ```text
//! 16:14:49.428  tool_call       filesystem[14751]  ts-replay[14739]  read_text_file  ok 1.4ms  allow
//! 16:14:49.436  tool_call       filesystem[14751]  ts-replay[14739]  run  error 0.4ms  violation  [secret_read]  error: ...
//! ```
use std::{fmt::Write as _, io::IsTerminal, str::FromStr};

use base64::Engine as _;
use serde_json::{Map, Value};

/// `--format`: how events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Text when the events go to stdout and stdout is a terminal, else JSON.
    #[default]
    Auto,
    Text,
    Json,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown format {s:?} (auto, text or json)")),
        }
    }
}

/// How text lines are written: with ANSI colours or without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Format {
    /// Text (with its style) or JSON (None) for events going to stdout or to a file,
    /// which is a terminal or not. A file is JSON unless text is asked for.
    pub fn resolve(self, to_stdout: bool, is_tty: bool) -> Option<Style> {
        let text = match self {
            Self::Auto => to_stdout && is_tty,
            Self::Text => true,
            Self::Json => false,
        };
        text.then(|| Style {
            color: is_tty && no_color_unset(),
        })
    }

    /// As `resolve`, for a writer that may be a terminal.
    pub fn resolve_for(self, to_stdout: bool, out: &impl IsTerminal) -> Option<Style> {
        self.resolve(to_stdout, out.is_terminal())
    }
}

/// NO_COLOR (no-color.org): colours are off when it is set to anything but "".
fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// Width of the type column (`monitor_status`, the longest).
const TYPE_WIDTH: usize = 14;

/// The readable line of one JSON event line (without its newline). A line that is not
/// a JSON object is shown escaped, as it is.
pub fn line(json: &[u8], style: Style) -> String {
    let event: Map<String, Value> = match serde_json::from_slice(json) {
        Ok(Value::Object(m)) => m,
        _ => return clean(String::from_utf8_lossy(json).trim_end()),
    };
    let kind = clean(str_of(&event, "type").unwrap_or("?"));
    let ts = str_of(&event, "ts").unwrap_or("");
    let mut out = format!("{}  {kind:<TYPE_WIDTH$}", clock(ts));
    let paint = |text: &str, colour: &str| match style.color {
        true => format!("{colour}{text}{RESET}"),
        false => text.to_string(),
    };
    let mut cols: Vec<String> = Vec::new();
    match kind.as_str() {
        "tool_call" | "resource_read" | "prompt_get" => {
            cols.push(server(&event));
            cols.push(agent(event.get("agent")));
            let target = ["tool", "uri", "prompt"]
                .iter()
                .find_map(|k| event.get(*k).and_then(text_of))
                .unwrap_or_else(|| "-".into());
            cols.push(cut(&target, 80));
            let mut outcome = clean(str_of(&event, "outcome").unwrap_or("?"));
            if let Some(ms) = event.get("duration_ms").and_then(Value::as_f64) {
                let _ = write!(outcome, " {ms:.1}ms");
            }
            cols.push(outcome);
            match str_of(&event, "decision") {
                Some("allow") => cols.push(paint("allow", GREEN)),
                Some(d) => cols.push(paint(&clean(d), RED)),
                None => {}
            }
            let kinds: Vec<String> = event
                .get("violations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.get("kind").and_then(text_of))
                .collect();
            if !kinds.is_empty() {
                cols.push(paint(&format!("[{}]", kinds.join(", ")), RED));
            }
            if let Some(e) = event.get("error").and_then(text_of) {
                cols.push(format!("error: {}", cut(&e, 100)));
            }
        }
        "server_started" => {
            cols.push(server(&event));
            if let Some(c) = event.get("client").filter(|c| c.is_object()) {
                cols.push(format!("client {}", process(None, c)));
            }
            let mut how = format!("found by {}", clean(str_of(&event, "detected_by").unwrap_or("?")));
            if let Some(t) = str_of(&event, "transport") {
                let _ = write!(how, " ({}", clean(t));
                if let Some(m) = str_of(&event, "first_method") {
                    let _ = write!(how, ", {}", clean(m));
                }
                how.push(')');
            }
            cols.push(how);
            // Names from the server's environment (whoever started it chose them).
            let secrets: Vec<String> = event
                .get("static_secrets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|s| {
                    format!(
                        "{} ({})",
                        clean(s.get("name").and_then(Value::as_str).unwrap_or("?")),
                        clean(s.get("class").and_then(Value::as_str).unwrap_or("?"))
                    )
                })
                .collect();
            if !secrets.is_empty() {
                cols.push(paint(
                    &cut(&format!("static secrets: {}", secrets.join(", ")), 100),
                    RED,
                ));
            }
            if let Some(c) = event
                .get("server")
                .and_then(|s| s.get("cmdline"))
                .and_then(text_of)
            {
                cols.push(cut(&c, 100));
            }
        }
        "server_exited" => {
            cols.push(server(&event));
            let requests = event.get("requests").and_then(Value::as_object);
            let total: u64 = requests
                .into_iter()
                .flatten()
                .filter_map(|(_, n)| n.as_u64())
                .sum();
            let each: Vec<String> = requests
                .into_iter()
                .flatten()
                .map(|(m, n)| format!("{} {n}", clean(m)))
                .collect();
            let mut summary = format!("{total} requests");
            if !each.is_empty() {
                let _ = write!(summary, " ({})", each.join(", "));
            }
            for (key, what) in [
                ("parse_errors", "parse errors"),
                ("bytes_lost", "bytes lost"),
                ("bytes_discarded", "bytes discarded"),
            ] {
                if let Some(n) = event.get(key).and_then(Value::as_u64).filter(|&n| n > 0) {
                    let _ = write!(summary, ", {n} {what}");
                }
            }
            cols.push(summary);
        }
        "violation" => {
            cols.push(server(&event));
            if let Some(a) = event.get("agent").filter(|a| a.is_object()) {
                cols.push(agent(Some(a)));
            }
            cols.push(paint(
                &event.get("kind").and_then(text_of).unwrap_or_else(|| "?".into()),
                RED,
            ));
            if let Some(d) = event.get("detail").and_then(text_of) {
                cols.push(cut(&d, 120));
            }
        }
        "secret_access" => {
            cols.push(server(&event));
            cols.push(agent(event.get("agent")));
            let mut what = format!(
                "{} {}",
                clean(str_of(&event, "access").unwrap_or("open")),
                event.get("path").and_then(text_of).unwrap_or_else(|| "?".into())
            );
            if event.get("ok") == Some(&Value::Bool(false)) {
                what.push_str(" (failed)");
            }
            cols.push(what);
            if let Some(c) = event.get("class").and_then(text_of) {
                cols.push(c);
            }
            if let Some(a) = event.get("allowed_by").and_then(text_of) {
                cols.push(format!("allowed by {a}"));
            }
        }
        "capture" => {
            let mut what = format!("pid {}", num(&event, "pid"));
            if let Some(fd) = event.get("fd").and_then(Value::as_i64) {
                let _ = write!(what, " fd {fd}");
            }
            if let Some(k) = str_of(&event, "fd_kind") {
                let _ = write!(what, " ({})", clean(k));
            }
            cols.push(what);
            let mut io = format!(
                "{} {} bytes",
                clean(str_of(&event, "direction").unwrap_or("?")),
                num(&event, "length")
            );
            if let Some(t) = str_of(&event, "tls") {
                let _ = write!(io, " (TLS {})", clean(t));
            }
            cols.push(io);
            if let Some(data) =
                str_of(&event, "data").and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            {
                cols.push(cut(&clean(&String::from_utf8_lossy(&data)), 60));
            }
        }
        "monitor_status" => status(&event, &mut cols),
        _ => cols.push(rest(&event, &["type", "ts"])),
    }
    for c in cols.iter().filter(|c| !c.is_empty()) {
        out.push_str("  ");
        out.push_str(c);
    }
    out.truncate(out.trim_end().len());
    // One event, one line, whatever a branch above forgot to escape.
    if out.contains(['\n', '\r']) {
        out = out.replace('\n', "\\n").replace('\r', "\\r");
    }
    out
}

/// The columns of a `monitor_status` event: its status, then what it says.
fn status(event: &Map<String, Value>, cols: &mut Vec<String>) {
    let status = str_of(event, "status").unwrap_or("?");
    cols.push(clean(status));
    let proc_col = || process(None, &Value::Object(event.clone()));
    match status {
        "ready" => {
            let programs = event
                .get("programs")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            cols.push(format!(
                "pid {}, {programs} programs attached, metrics on {}, version {}",
                num(event, "pid"),
                event
                    .get("metrics_addr")
                    .and_then(text_of)
                    .unwrap_or_else(|| "?".into()),
                event
                    .get("version")
                    .and_then(text_of)
                    .unwrap_or_else(|| "?".into()),
            ));
        }
        "stopped" => {}
        "loss" => {
            let mut counts = Vec::new();
            for (k, v) in event {
                match v {
                    Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => {
                        counts.push(format!("{} {n}", clean(k)))
                    }
                    Value::Object(inner) => counts.extend(
                        inner
                            .iter()
                            .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                            .map(|(k2, n)| format!("{}.{} {n}", clean(k), clean(k2))),
                    ),
                    _ => {}
                }
            }
            cols.push(format!("since start: {}", counts.join(", ")));
        }
        "events_dropped" => {
            let by: Vec<String> = event
                .get("by_reason")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(r, n)| format!("{} {n}", clean(r)))
                .collect();
            cols.push(format!(
                "{} events dropped ({}), {} since start",
                num(event, "dropped"),
                by.join(", "),
                num(event, "dropped_since_start")
            ));
        }
        "tls_probed" => {
            cols.push(proc_col());
            if let Some(l) = event.get("library").and_then(text_of) {
                cols.push(format!("OpenSSL in {l}"));
            }
        }
        "tls_unreadable" => {
            cols.push(proc_col());
            cols.push(event.get("reason").and_then(text_of).unwrap_or_default());
        }
        "compat_syscall" | "io_uring" => {
            cols.push(proc_col());
            if let Some(nr) = event.get("syscall_nr").and_then(Value::as_i64) {
                cols.push(format!("syscall {nr}"));
            }
            if let Some(s) = event.get("server").filter(|s| s.is_object()) {
                cols.push(format!("server {}", server_of(s)));
            }
        }
        "stdin_forged_unmatched" => {
            match event.get("server").filter(|s| s.is_object()) {
                Some(s) => cols.push(format!("server {}", server_of(s))),
                None => cols.push(format!("server pid {}", num(event, "server_pid"))),
            }
            cols.push(format!(
                "{} forged stdin bytes not found in its reads",
                num(event, "bytes")
            ));
        }
        "policy_loaded" => {
            cols.push(event.get("policy").and_then(text_of).unwrap_or_default());
            cols.push(format!("epoch {}", num(event, "epoch")));
            if let Some(s) = event.get("summary").and_then(text_of) {
                cols.push(cut(&s, 120));
            }
        }
        "policy_rejected" => {
            cols.push(event.get("policy").and_then(text_of).unwrap_or_default());
            let errors = event.get("errors").and_then(Value::as_array);
            let first = errors
                .and_then(|e| e.iter().find_map(text_of))
                .unwrap_or_default();
            cols.push(format!(
                "{} error lines: {}",
                errors.map_or(0, Vec::len),
                cut(&first, 100)
            ));
        }
        _ => cols.push(rest(event, &["type", "ts", "status"])),
    }
}

/// `name[pid]` of the event's `server`.
fn server(event: &Map<String, Value>) -> String {
    event
        .get("server")
        .filter(|s| s.is_object())
        .map_or_else(|| "-".into(), server_of)
}

fn server_of(s: &Value) -> String {
    let name = s.get("name").and_then(text_of).unwrap_or_else(|| "?".into());
    match s.get("pid").and_then(Value::as_u64) {
        Some(pid) => format!("{name}[{pid}]"),
        None => name,
    }
}

/// Who called: the policy's agent name, else the client's clientInfo name, else its
/// program; with its pid.
fn agent(a: Option<&Value>) -> String {
    match a.filter(|a| a.is_object()) {
        None => "-".into(),
        Some(a) => {
            let name = a
                .get("name")
                .and_then(text_of)
                .or_else(|| a.get("client").and_then(|c| c.get("name")).and_then(text_of));
            process(name, a)
        }
    }
}

/// `name[pid]` of a process object (`exe`, `pid`): `name`, else the program's file name.
fn process(name: Option<String>, p: &Value) -> String {
    let name = name
        .or_else(|| {
            p.get("exe")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
                .map(|e| clean(e.rsplit('/').next().unwrap_or(e)))
        })
        .unwrap_or_else(|| "?".into());
    match p.get("pid").and_then(Value::as_u64) {
        Some(pid) => format!("{name}[{pid}]"),
        None => name,
    }
}

/// `HH:MM:SS.mmm` of an RFC 3339 time (UTC, as events have it); else the time as given.
fn clock(ts: &str) -> String {
    match (ts.get(11..23), ts.as_bytes().get(10)) {
        (Some(t), Some(b'T')) if t.as_bytes()[8] == b'.' => t.to_string(),
        _ => match ts.get(11..19) {
            Some(t) if ts.as_bytes().get(10) == Some(&b'T') => format!("{t}.000"),
            _ => clean(ts),
        },
    }
}

fn str_of<'a>(event: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

/// A string or a number as escaped text; None for null and the rest.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(clean(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn num(event: &Map<String, Value>, key: &str) -> String {
    event.get(key).and_then(text_of).unwrap_or_else(|| "?".into())
}

/// The members not shown otherwise, as compact JSON (for a type this module does not know).
fn rest(event: &Map<String, Value>, shown: &[&str]) -> String {
    let others: Map<String, Value> = event
        .iter()
        .filter(|(k, _)| !shown.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match others.is_empty() {
        true => String::new(),
        false => cut(&clean(&Value::Object(others).to_string()), 160),
    }
}

/// Escapes what a terminal would act on: control characters (ESC, newlines, ...) and
/// the invisible ones that reorder or hide text (bidirectional overrides, zero-width).
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let hidden = matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if c.is_control() || hidden {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `max` characters, `…` marking a cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PLAIN: Style = Style { color: false };
    const COLOR: Style = Style { color: true };
    const TS: &str = "2026-12-02T16:14:49.428038056Z";

    fn fmt(kind: &str, fields: Value, style: Style) -> String {
        let mut event = json!({"type": kind, "ts": TS});
        for (k, v) in fields.as_object().unwrap() {
            event[k] = v.clone();
        }
        line(event.to_string().as_bytes(), style)
    }

    fn server() -> Value {
        json!({"name": "filesystem", "pid": 14751, "exe": "/usr/bin/node", "cmdline": "node server.js /tmp/root", "info": {"name": "secure-filesystem-server", "version": "0.2.0"}})
    }

    fn agent() -> Value {
        json!({"name": null, "client": {"name": "ts-replay", "version": "9.8.7"}, "pid": 14739, "uid": 0, "exe": "/usr/bin/node"})
    }

    fn call(extra: Value) -> Value {
        let mut c = json!({
            "server": server(), "agent": agent(), "transport": "stdio", "tls": false,
            "session": "stdio-14751-1", "request_id": 1, "tool": "read_text_file",
            "arguments": {"path": "/tmp/root/notes.txt"}, "duration_ms": 1.440532,
            "outcome": "ok", "effects": {}, "decision": "allow", "violations": [],
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn a_tool_call_that_is_allowed() {
        let want = "16:14:49.428  tool_call       filesystem[14751]  ts-replay[14739]  read_text_file  ok 1.4ms  allow";
        assert_eq!(fmt("tool_call", call(json!({})), PLAIN), want);
        let want = "16:14:49.428  tool_call       filesystem[14751]  ts-replay[14739]  read_text_file  ok 1.4ms  \x1b[32mallow\x1b[0m";
        assert_eq!(fmt("tool_call", call(json!({})), COLOR), want);
    }

    #[test]
    fn a_tool_call_with_violations_and_an_error() {
        let c = call(json!({
            "agent": {"name": "claude", "client": {"name": "claude-code"}, "pid": 7, "exe": "/usr/bin/node"},
            "outcome": "error", "error": "Access denied: /root/.ssh/id_rsa",
            "decision": "violation",
            "violations": [{"kind": "secret_read", "detail": "d", "rule": "r", "refs": ["OWASP-ASI:ASI03"]}, {"kind": "out_of_scope_file", "detail": "d", "rule": null}],
        }));
        let want = "16:14:49.428  tool_call       filesystem[14751]  claude[7]  read_text_file  error 1.4ms  violation  [secret_read, out_of_scope_file]  error: Access denied: /root/.ssh/id_rsa";
        assert_eq!(fmt("tool_call", c.clone(), PLAIN), want);
        let want = "16:14:49.428  tool_call       filesystem[14751]  claude[7]  read_text_file  error 1.4ms  \x1b[31mviolation\x1b[0m  \x1b[31m[secret_read, out_of_scope_file]\x1b[0m  error: Access denied: /root/.ssh/id_rsa";
        assert_eq!(fmt("tool_call", c, COLOR), want);
    }

    #[test]
    fn resource_reads_and_prompt_gets_show_their_uri_or_prompt() {
        let mut r = call(json!({"uri": "file:///tmp/root/a.txt", "duration_ms": 12.25}));
        let m = r.as_object_mut().unwrap();
        for k in ["tool", "decision", "violations", "effects"] {
            m.remove(k);
        }
        let want = "16:14:49.428  resource_read   filesystem[14751]  ts-replay[14739]  file:///tmp/root/a.txt  ok 12.2ms";
        assert_eq!(fmt("resource_read", r.clone(), PLAIN), want);
        assert_eq!(fmt("resource_read", r.clone(), COLOR), want, "nothing to colour");
        let m = r.as_object_mut().unwrap();
        m.remove("uri");
        m.insert("prompt".into(), json!("summarise"));
        m.insert(
            "agent".into(),
            json!({"name": null, "client": null, "pid": 9, "exe": "/usr/bin/python3"}),
        );
        m.insert("outcome".into(), json!("incomplete"));
        let want =
            "16:14:49.428  prompt_get      filesystem[14751]  python3[9]  summarise  incomplete 12.2ms";
        assert_eq!(fmt("prompt_get", r, PLAIN), want);
    }

    #[test]
    fn what_a_watched_process_sent_cannot_drive_the_terminal() {
        let c = call(
            json!({"tool": "x\x1b[2J\ny\u{202E}z", "agent": {"name": null, "client": {"name": "a\rb"}, "pid": 1}}),
        );
        let got = fmt("tool_call", c, COLOR);
        assert_eq!(
            got,
            "16:14:49.428  tool_call       filesystem[14751]  a\\rb[1]  x\\u{1b}[2J\\ny\\u{202e}z  ok 1.4ms  \x1b[32mallow\x1b[0m"
        );
        // Cut at 80 characters.
        let long = "t".repeat(100);
        let got = fmt("tool_call", call(json!({"tool": long})), PLAIN);
        assert!(got.contains(&format!("  {}…  ok", "t".repeat(80))), "{got}");
    }

    #[test]
    fn server_started_and_exited() {
        let s = json!({
            "server": {"name": "unregistered", "pid": 42, "exe": "/usr/bin/python3", "cmdline": "python3 srv.py --api-key=[redacted:api_key]", "info": null, "uid": 0, "ppid": 41},
            "detected_by": "protocol", "first_method": "initialize", "transport": "stdio",
            "client": {"pid": 41, "uid": 0, "exe": "/usr/bin/node", "cmdline": "node agent.js", "parents": []},
        });
        let want = "16:14:49.428  server_started  unregistered[42]  client node[41]  found by protocol (stdio, initialize)  python3 srv.py --api-key=[redacted:api_key]";
        assert_eq!(fmt("server_started", s.clone(), PLAIN), want);
        assert_eq!(fmt("server_started", s, COLOR), want);
        let s =
            json!({"server": server(), "detected_by": "watch_pattern", "matched": "node *", "client": null});
        let want = "16:14:49.428  server_started  filesystem[14751]  found by watch_pattern  node server.js /tmp/root";
        assert_eq!(fmt("server_started", s, PLAIN), want);
        let s = json!({"server": server(), "detected_by": "policy_match", "client": null, "static_secrets": [
            {"name": "GITHUB_TOKEN", "class": "vcs_token"}, {"name": "EVIL\u{1b}[2J_TOKEN", "class": "token"}]});
        let want = "16:14:49.428  server_started  filesystem[14751]  found by policy_match  static secrets: GITHUB_TOKEN (vcs_token), EVIL\\u{1b}[2J_TOKEN (token)  node server.js /tmp/root";
        assert_eq!(fmt("server_started", s, PLAIN), want);
        let s =
            json!({"server": server(), "detected_by": "policy_match", "client": null, "static_secrets": []});
        let want = "16:14:49.428  server_started  filesystem[14751]  found by policy_match  node server.js /tmp/root";
        assert_eq!(fmt("server_started", s, PLAIN), want);

        let e = json!({"server": server(), "session": "stdio-14751-1", "requests": {"initialize": 1, "tools/call": 4}, "parse_errors": 0, "bytes_lost": 0, "bytes_discarded": 0});
        let want = "16:14:49.428  server_exited   filesystem[14751]  5 requests (initialize 1, tools/call 4)";
        assert_eq!(fmt("server_exited", e, PLAIN), want);
        let e = json!({"server": server(), "requests": {}, "parse_errors": 2, "bytes_lost": 10, "bytes_discarded": 3});
        let want = "16:14:49.428  server_exited   filesystem[14751]  0 requests, 2 parse errors, 10 bytes lost, 3 bytes discarded";
        assert_eq!(fmt("server_exited", e, PLAIN), want);
    }

    #[test]
    fn violations_outside_calls() {
        // `refs` (framework references) are for machines: the line leaves them out.
        let v = json!({"server": server(), "kind": "unregistered_server", "detail": "found as an MCP server (protocol) but no entry matches it", "rule": null, "refs": ["OWASP-ASI:ASI04", "MAESTRO:L7"]});
        let want = "16:14:49.428  violation       filesystem[14751]  unregistered_server  found as an MCP server (protocol) but no entry matches it";
        assert_eq!(fmt("violation", v.clone(), PLAIN), want);
        let want = "16:14:49.428  violation       filesystem[14751]  \x1b[31munregistered_server\x1b[0m  found as an MCP server (protocol) but no entry matches it";
        assert_eq!(fmt("violation", v, COLOR), want);
        let v = json!({"server": server(), "agent": {"pid": 14739, "uid": 0, "exe": "/usr/bin/node"}, "kind": "stdin_forged", "detail": "d", "rule": null, "writer": {"pid": 5, "exe": "/bin/sh", "fd": 3}});
        let want = "16:14:49.428  violation       filesystem[14751]  node[14739]  stdin_forged  d";
        assert_eq!(fmt("violation", v, PLAIN), want);
    }

    #[test]
    fn secret_access_outside_calls() {
        let s = json!({"server": server(), "agent": {"pid": 14739, "uid": 0, "exe": "/usr/bin/node"}, "path": "/root/.ssh/id_rsa", "access": "read", "ok": false, "class": "ssh_key", "rule": "ssh", "allowed_by": null});
        let want = "16:14:49.428  secret_access   filesystem[14751]  node[14739]  read /root/.ssh/id_rsa (failed)  ssh_key";
        assert_eq!(fmt("secret_access", s.clone(), PLAIN), want);
        assert_eq!(fmt("secret_access", s, COLOR), want);
        let s = json!({"server": server(), "agent": null, "path": "/etc/shadow", "access": "write", "ok": true, "class": "shadow", "allowed_by": "admin"});
        let want =
            "16:14:49.428  secret_access   filesystem[14751]  -  write /etc/shadow  shadow  allowed by admin";
        assert_eq!(fmt("secret_access", s, PLAIN), want);
    }

    #[test]
    fn captures() {
        let c = json!({"pid": 14751, "tid": 14751, "fd": 0, "fd_kind": "pipe", "inode": 5, "direction": "read", "syscall": "read", "offset": 0, "length": 17, "total": 17, "chunk_offset": 0, "truncated": false, "data": "eyJqc29ucnBjIjoiMi4wIn0K"});
        let want =
            "16:14:49.428  capture         pid 14751 fd 0 (pipe)  read 17 bytes  {\"jsonrpc\":\"2.0\"}\\n";
        assert_eq!(fmt("capture", c.clone(), PLAIN), want);
        assert_eq!(fmt("capture", c, COLOR), want);
        let c = json!({"pid": 3, "fd": 7, "fd_kind": "socket", "direction": "write", "length": 2, "tls": "plaintext", "ssl": "0x1", "data": "aGk="});
        let want = "16:14:49.428  capture         pid 3 fd 7 (socket)  write 2 bytes (TLS plaintext)  hi";
        assert_eq!(fmt("capture", c, PLAIN), want);
    }

    #[test]
    fn monitor_status_events() {
        let cases = [
            (
                json!({"status": "ready", "pid": 10, "programs": [{"name": "a", "id": 1}, {"name": "b", "id": 2}], "watch_patterns": [], "watched_pids": [], "metrics_addr": "127.0.0.1:9464", "version": "0.1.0"}),
                "ready  pid 10, 2 programs attached, metrics on 127.0.0.1:9464, version 0.1.0",
            ),
            (json!({"status": "stopped"}), "stopped"),
            (
                json!({"status": "loss", "kernel": {"ringbuf_full_data": 3, "read_failed": 0}, "parse_errors": 2, "stream_gaps": 0}),
                "loss  since start: kernel.ringbuf_full_data 3, parse_errors 2",
            ),
            (
                json!({"status": "events_dropped", "dropped": 3, "by_reason": {"no_space": 3}, "dropped_since_start": 5}),
                "events_dropped  3 events dropped (no_space 3), 5 since start",
            ),
            (
                json!({"status": "tls_probed", "pid": 14751, "exe": "/usr/bin/node", "library": "/usr/bin/node", "in_executable": true, "functions": ["SSL_read"]}),
                "tls_probed  node[14751]  OpenSSL in /usr/bin/node",
            ),
            (
                json!({"status": "tls_unreadable", "pid": 8, "exe": "/usr/local/bin/go-srv", "cmdline": "go-srv", "server_pid": 8, "reason": "no_openssl", "detail": "d"}),
                "tls_unreadable  go-srv[8]  no_openssl",
            ),
            (
                json!({"status": "compat_syscall", "pid": 9, "exe": "/opt/a32", "cmdline": "a32", "server_pid": 8, "server": {"name": "s", "pid": 8}, "syscall_nr": 4, "detail": "d"}),
                "compat_syscall  a32[9]  syscall 4  server s[8]",
            ),
            (
                json!({"status": "io_uring", "pid": 9, "exe": "/opt/u", "cmdline": "u", "server_pid": 8, "server": {"name": "s", "pid": 8}, "detail": "d"}),
                "io_uring  u[9]  server s[8]",
            ),
            (
                json!({"status": "stdin_forged_unmatched", "server_pid": 8, "server": {"name": "s", "pid": 8}, "bytes": 12, "detail": "d"}),
                "stdin_forged_unmatched  server s[8]  12 forged stdin bytes not found in its reads",
            ),
            (
                json!({"status": "policy_loaded", "policy": "/etc/mcp-monitor/policy.yaml", "epoch": 2, "summary": "policy /etc/mcp-monitor/policy.yaml: 3 servers", "policies_in_use": 1}),
                "policy_loaded  /etc/mcp-monitor/policy.yaml  epoch 2  policy /etc/mcp-monitor/policy.yaml: 3 servers",
            ),
            (
                json!({"status": "policy_rejected", "policy": "p.yaml", "errors": ["p.yaml:3:1: unknown key", "more"]}),
                "policy_rejected  p.yaml  2 error lines: p.yaml:3:1: unknown key",
            ),
            (json!({"status": "brand_new", "n": 1}), "brand_new  {\"n\":1}"),
        ];
        for (fields, want) in cases {
            let want = format!("16:14:49.428  monitor_status  {want}");
            assert_eq!(fmt("monitor_status", fields.clone(), PLAIN), want);
            assert_eq!(
                fmt("monitor_status", fields, COLOR),
                want,
                "no colour in status lines"
            );
        }
    }

    #[test]
    fn unknown_types_and_lines_that_are_not_json() {
        assert_eq!(
            fmt("something_new", json!({"a": [1]}), PLAIN),
            "16:14:49.428  something_new   {\"a\":[1]}"
        );
        assert_eq!(line(b"not json\x1b\n", PLAIN), "not json\\u{1b}");
        let no_fraction = line(
            br#"{"type":"monitor_status","ts":"2026-12-02T16:14:49Z","status":"stopped"}"#,
            PLAIN,
        );
        assert_eq!(no_fraction, "16:14:49.000  monitor_status  stopped");
    }

    #[test]
    fn auto_is_text_only_on_a_terminal_stdout_and_a_file_is_json_unless_asked() {
        assert!(Format::Auto.resolve(true, true).is_some());
        assert_eq!(Format::Auto.resolve(true, false), None);
        assert_eq!(Format::Auto.resolve(false, true), None);
        assert_eq!(Format::Json.resolve(true, true), None);
        assert_eq!(Format::Text.resolve(false, false), Some(Style { color: false }));
        assert_eq!("text".parse(), Ok(Format::Text));
        assert!("yaml".parse::<Format>().is_err());
    }
}
