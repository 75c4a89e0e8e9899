//! One MCP operation as an OpenTelemetry span, following the semantic conventions for
//! MCP (`docs/gen-ai/mcp.md` of open-telemetry/semantic-conventions-genai, status
//! Development): kind SERVER, named `{mcp.method.name} {target}`, status ERROR with
//! `error.type` when it failed. The monitor's own facts go under `mcp_monitor.`.
//! Everything here came from a watched process: strings are bounded, and arguments are
//! only there when the user opted in, redacted as in events.

use std::{
    borrow::Cow,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    Array, InstrumentationScope, KeyValue, StringValue, Value,
    trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::trace::{IdGenerator, SpanData, SpanEvents, SpanLinks};

use crate::{
    mcp::session::{Completed, Outcome, Session},
    output::render::truncate_str,
    policy::{refs::refs_of, verdict::Verdict},
    transport::SessionKey,
};

/// Longest method name, tool name or other peer-given string put in a span name or an
/// attribute; longer ones are cut (a span name is meant to be low-cardinality).
const MAX_NAME_BYTES: usize = 256;
/// Secret reads listed as span events per call (the event has them all).
const MAX_SECRET_EVENTS: usize = 32;

/// What a span is made of: the completed request and where it happened, with the
/// strings that may hold credentials already redacted by the caller.
pub struct Operation<'a> {
    pub c: &'a Completed,
    pub key: &'a SessionKey,
    pub session: &'a Session,
    /// The server's policy entry (`server.name` in events).
    pub server: &'a str,
    pub server_pid: u32,
    pub server_exe: &'a str,
    /// The tool or prompt name, or the resource URI (redacted as in the event).
    pub target: Option<&'a str>,
    /// Why it failed (redacted and bounded as in the event).
    pub error: Option<&'a str>,
    pub verdict: Option<&'a Verdict>,
    /// The arguments' JSON text, when the user opted in (`--otlp-arguments`).
    pub arguments: Option<&'a str>,
}

/// The monitor's instrumentation scope on every span and metric.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("mcp-monitor")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Wall-clock time of a kernel timestamp (ns since boot).
pub fn wall_time(boot_epoch_ns: u64, ts_ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(boot_epoch_ns.saturating_add(ts_ns))
}

/// `error.type` of a failed operation: the JSON-RPC code, `tool_error` for an
/// `isError` result, or what the monitor saw (`incomplete`, `lost`); None when it
/// succeeded.
pub fn error_type(c: &Completed) -> Option<Cow<'static, str>> {
    match (c.outcome, c.error_code) {
        (Outcome::Ok, _) => None,
        (Outcome::Error, Some(code)) => Some(Cow::Owned(code.to_string())),
        (Outcome::Error, None) if c.method == "tools/call" => Some(Cow::Borrowed("tool_error")),
        (Outcome::Error, None) => Some(Cow::Borrowed("_OTHER")),
        (Outcome::Incomplete, _) => Some(Cow::Borrowed("incomplete")),
        (Outcome::Lost, _) => Some(Cow::Borrowed("lost")),
    }
}

/// `network.transport` per the conventions: `pipe` for stdio, `tcp` for HTTP.
pub fn network_transport(key: &SessionKey) -> &'static str {
    match key {
        SessionKey::Stdio { .. } => "pipe",
        SessionKey::Http { .. } => "tcp",
    }
}

fn bounded(s: &str) -> String {
    truncate_str(s, MAX_NAME_BYTES)
}

fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// The span of `op`: a child of the client's span when its request carried a valid
/// `traceparent` in `_meta`, else the root of a new trace.
pub fn span_data(op: &Operation, boot_epoch_ns: u64, ids: &dyn IdGenerator) -> SpanData {
    let c = op.c;
    let method = bounded(&c.method);
    let target = op.target.map(bounded);
    let name_target = match c.method.as_str() {
        // The conventions keep resource URIs out of span names (cardinality).
        "tools/call" | "prompts/get" => target.as_deref(),
        _ => None,
    };
    let name = match name_target {
        Some(t) => format!("{method} {t}"),
        None => method.clone(),
    };
    let mut a = vec![kv("mcp.method.name", method)];
    match (c.method.as_str(), target) {
        ("tools/call", Some(t)) => {
            a.push(kv("gen_ai.tool.name", t));
            a.push(kv("gen_ai.operation.name", "execute_tool"));
        }
        ("prompts/get", Some(t)) => a.push(kv("gen_ai.prompt.name", t)),
        ("resources/read", Some(t)) => a.push(kv("mcp.resource.uri", t)),
        _ => {}
    }
    if let Some(id) = request_id(c.id.text()) {
        a.push(kv("jsonrpc.request.id", id));
    }
    a.push(kv("mcp.session.id", bounded(&op.key.to_string())));
    if let Some(v) = &op.session.protocol_version {
        a.push(kv("mcp.protocol.version", bounded(v)));
    }
    a.push(kv("network.transport", network_transport(op.key)));
    if let SessionKey::Http { .. } = op.key {
        a.push(kv("network.protocol.name", "http"));
        if let Some(addr) = &op.session.peer_addr {
            match addr.parse::<SocketAddr>() {
                Ok(sa) => {
                    a.push(kv("client.address", sa.ip().to_string()));
                    a.push(kv("client.port", i64::from(sa.port())));
                }
                Err(_) => a.push(kv("client.address", bounded(addr))),
            }
        }
    }
    let error_type = error_type(c);
    if let Some(e) = &error_type {
        a.push(kv("error.type", e.to_string()));
    }
    if let Some(code) = c.error_code {
        a.push(kv("rpc.response.status_code", code.to_string()));
    }
    if let Some(args) = op.arguments {
        a.push(kv("gen_ai.tool.call.arguments", args.to_string()));
    }
    monitor_attributes(op, &mut a);

    let start = wall_time(boot_epoch_ns, c.start_ts_ns);
    let end = wall_time(boot_epoch_ns, c.end_ts_ns.max(c.start_ts_ns));
    let (trace_id, parent, state) = match &c.trace {
        Some(t) => (
            TraceId::from_bytes(t.trace_id),
            SpanId::from_bytes(t.span_id),
            t.state.as_deref().and_then(|s| s.parse::<TraceState>().ok()),
        ),
        None => (ids.new_trace_id(), SpanId::INVALID, None),
    };
    let context = SpanContext::new(
        trace_id,
        ids.new_span_id(),
        TraceFlags::SAMPLED,
        false,
        state.unwrap_or_default(),
    );
    let status = match (&error_type, op.error) {
        (None, _) => Status::Unset,
        (Some(_), Some(text)) => Status::error(text.to_string()),
        (Some(e), None) => Status::error(e.to_string()),
    };
    SpanData {
        span_context: context,
        parent_span_id: parent,
        parent_span_is_remote: c.trace.is_some(),
        span_kind: SpanKind::Server,
        name: Cow::Owned(name),
        start_time: start,
        end_time: end,
        attributes: a,
        dropped_attributes_count: 0,
        events: span_events(op.verdict, end),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope(),
    }
}

/// The monitor's own attributes: which server and agent, and the policy's decision.
fn monitor_attributes(op: &Operation, a: &mut Vec<KeyValue>) {
    a.push(kv("mcp_monitor.server.name", bounded(op.server)));
    a.push(kv("mcp_monitor.server.pid", i64::from(op.server_pid)));
    a.push(kv("mcp_monitor.server.exe", bounded(op.server_exe)));
    if let Some(info) = &op.session.server {
        a.push(kv("mcp_monitor.server.info.name", bounded(&info.name)));
    }
    a.push(kv("mcp_monitor.transport", op.key.transport()));
    a.push(kv("mcp_monitor.tls", op.session.tls));
    if let Some(client) = op.c.client.as_deref().or(op.session.client.as_deref()) {
        a.push(kv("mcp_monitor.client.name", bounded(&client.name)));
        a.push(kv("mcp_monitor.client.version", bounded(&client.version)));
    }
    if let Some(p) = &op.session.peer {
        a.push(kv("mcp_monitor.agent.pid", i64::from(p.pid)));
        a.push(kv("mcp_monitor.agent.uid", i64::from(p.uid)));
        a.push(kv("mcp_monitor.agent.exe", bounded(&p.exe)));
    }
    if let Some(b) = &op.c.bearer {
        a.push(kv("mcp_monitor.agent.token.fingerprint", b.fingerprint.clone()));
        if let Some(sub) = b.claims.as_ref().and_then(|c| c.sub.as_deref()) {
            a.push(kv("mcp_monitor.agent.token.sub", bounded(sub)));
        }
    }
    a.push(kv("mcp_monitor.outcome", op.c.outcome.as_str()));
    let Some(v) = op.verdict else {
        return;
    };
    if let Some(agent) = &v.agent {
        a.push(kv("mcp_monitor.agent.name", bounded(agent)));
    }
    a.push(kv("mcp_monitor.decision", v.decision()));
    if !v.violations.is_empty() {
        let mut kinds: Vec<&'static str> = v.violations.iter().map(|x| x.kind).collect();
        kinds.dedup();
        let kinds: Vec<StringValue> = kinds.into_iter().map(StringValue::from).collect();
        a.push(kv(
            "mcp_monitor.violation.kinds",
            Value::Array(Array::String(kinds)),
        ));
    }
}

/// Violations and secret reads as span events (at the span's end: the kernel times of
/// the effects are not kept per effect).
fn span_events(verdict: Option<&Verdict>, at: SystemTime) -> SpanEvents {
    let mut events = SpanEvents::default();
    let Some(v) = verdict else {
        return events;
    };
    for x in &v.violations {
        events.events.push(Event::new(
            "mcp_monitor.violation",
            at,
            vec![
                kv("mcp_monitor.violation.kind", x.kind),
                kv("mcp_monitor.violation.detail", truncate_str(&x.detail, 4096)),
                kv("mcp_monitor.violation.rule", bounded(&x.rule)),
                kv(
                    "mcp_monitor.violation.refs",
                    Value::Array(Array::String(
                        refs_of(x.kind).iter().map(|r| StringValue::from(*r)).collect(),
                    )),
                ),
            ],
            0,
        ));
    }
    let secrets = &v.effects.secrets;
    for (i, s) in secrets.iter().enumerate() {
        if i == MAX_SECRET_EVENTS {
            events.dropped_count = (secrets.len() - i) as u32;
            break;
        }
        let field = |k: &str| s.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        events.events.push(Event::new(
            "mcp_monitor.secret_access",
            at,
            vec![
                kv("file.path", truncate_str(field("path"), 4096)),
                kv("mcp_monitor.secret.class", bounded(field("class"))),
                kv("mcp_monitor.secret.rule", bounded(field("rule"))),
            ],
            0,
        ));
    }
    events
}

/// `jsonrpc.request.id`: the id as a string (a string id without its quotes); none
/// for a null id.
fn request_id(raw: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Null) => None,
        Ok(serde_json::Value::String(s)) => Some(bounded(&s)),
        _ => Some(bounded(raw)),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::trace::RandomIdGenerator;
    use serde_json::json;

    use super::*;
    use crate::{
        mcp::{jsonrpc::Id, session::PeerInfo, trace_context::TraceParent},
        policy::{Violation, verdict::Effects},
    };

    fn call(method: &str, outcome: Outcome, code: Option<i64>) -> Completed {
        Completed {
            method: method.into(),
            id: Id::from_json("\"req-7\"").unwrap(),
            target: None,
            arguments: serde_json::Value::Null,
            long: Default::default(),
            outcome,
            error: None,
            start_ts_ns: 1_000_000_000,
            end_ts_ns: 1_250_000_000,
            client: Some(std::sync::Arc::new(PeerInfo {
                name: "claude-code".into(),
                version: "2.1".into(),
            })),
            bearer: None,
            effects: Vec::new(),
            effects_dropped: 0,
            noise: 0,
            epoch: 0,
            error_code: code,
            trace: None,
        }
    }

    fn attr<'a>(s: &'a SpanData, key: &str) -> Option<&'a Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    fn op<'a>(c: &'a Completed, key: &'a SessionKey, session: &'a Session) -> Operation<'a> {
        Operation {
            c,
            key,
            session,
            server: "filesystem",
            server_pid: 42,
            server_exe: "/usr/bin/node",
            target: Some("read_text_file"),
            error: None,
            verdict: None,
            arguments: None,
        }
    }

    #[test]
    fn a_tool_call_is_a_server_span_named_by_method_and_tool_with_kernel_times() {
        let c = call("tools/call", Outcome::Ok, None);
        let key = SessionKey::Stdio { pid: 42, stdin: 7 };
        let mut session = Session::default();
        session.protocol_version = Some("2025-11-25".into());
        let verdict = Verdict {
            agent: Some("desktop".into()),
            violations: vec![Violation {
                kind: "secret_access",
                detail: "/root/.ssh/id_rsa".into(),
                rule: "secrets[0] ~/.ssh/**".into(),
            }],
            effects: Effects {
                secrets: vec![
                    json!({"path": "/root/.ssh/id_rsa", "class": "ssh_key", "rule": "secrets[0] ~/.ssh/**"}),
                ],
                ..Effects::default()
            },
        };
        let mut o = op(&c, &key, &session);
        o.verdict = Some(&verdict);
        let s = span_data(&o, 1_700_000_000_000_000_000, &RandomIdGenerator::default());
        assert_eq!(s.name, "tools/call read_text_file");
        assert_eq!(s.span_kind, SpanKind::Server);
        assert_eq!(s.status, Status::Unset);
        assert_eq!(s.parent_span_id, SpanId::INVALID);
        assert_eq!(
            s.end_time.duration_since(s.start_time).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            s.start_time,
            SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_001_000_000_000)
        );
        for (k, v) in [
            ("mcp.method.name", "tools/call"),
            ("gen_ai.tool.name", "read_text_file"),
            ("gen_ai.operation.name", "execute_tool"),
            ("jsonrpc.request.id", "req-7"),
            ("mcp.session.id", "stdio-42-7"),
            ("mcp.protocol.version", "2025-11-25"),
            ("network.transport", "pipe"),
            ("mcp_monitor.agent.name", "desktop"),
            ("mcp_monitor.decision", "violation"),
            ("mcp_monitor.client.name", "claude-code"),
        ] {
            assert_eq!(attr(&s, k), Some(&Value::from(v)), "{k}");
        }
        assert_eq!(attr(&s, "error.type"), None);
        assert_eq!(attr(&s, "gen_ai.tool.call.arguments"), None, "opt-in only");
        let names: Vec<&str> = s.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(names, ["mcp_monitor.violation", "mcp_monitor.secret_access"]);
    }

    #[test]
    fn failures_set_error_type_and_status() {
        let key = SessionKey::Stdio { pid: 1, stdin: 1 };
        let session = Session::default();
        let cases = [
            (call("tools/call", Outcome::Error, None), Some("tool_error")),
            (call("tools/call", Outcome::Error, Some(-32602)), Some("-32602")),
            (call("tools/list", Outcome::Error, Some(-32601)), Some("-32601")),
            (call("tools/call", Outcome::Incomplete, None), Some("incomplete")),
            (call("initialize", Outcome::Ok, None), None),
        ];
        for (c, want) in &cases {
            let mut o = op(c, &key, &session);
            o.error = Some("boom");
            let s = span_data(&o, 0, &RandomIdGenerator::default());
            assert_eq!(attr(&s, "error.type").map(|v| v.to_string()).as_deref(), *want);
            let want_status = if want.is_some() {
                Status::error("boom")
            } else {
                Status::Unset
            };
            assert_eq!(s.status, want_status);
        }
        let s = span_data(&op(&cases[2].0, &key, &session), 0, &RandomIdGenerator::default());
        assert_eq!(s.name, "tools/list", "only tools and prompts name the span");
        assert_eq!(attr(&s, "rpc.response.status_code"), Some(&Value::from("-32601")));
    }

    #[test]
    fn a_traceparent_makes_the_span_a_child_in_the_agents_trace() {
        let mut c = call("tools/call", Outcome::Ok, None);
        c.trace = TraceParent::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("congo=t61rcWkgMzE"),
        );
        let key = SessionKey::Stdio { pid: 1, stdin: 1 };
        let session = Session::default();
        let s = span_data(&op(&c, &key, &session), 0, &RandomIdGenerator::default());
        assert_eq!(
            s.span_context.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(s.parent_span_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert!(s.parent_span_is_remote);
        assert_ne!(s.span_context.span_id(), s.parent_span_id);
        assert_eq!(s.span_context.trace_state().header(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn http_spans_carry_the_client_address_and_hostile_names_are_bounded() {
        let mut c = call("tools/call", Outcome::Ok, None);
        c.method = "tools/call".into();
        let key = SessionKey::Http {
            pid: 1,
            id: crate::transport::http::HttpSession::Connection(3),
        };
        let mut session = Session::default();
        session.peer_addr = Some("127.0.0.1:40522".into());
        let long = "x".repeat(10_000);
        let mut o = op(&c, &key, &session);
        o.target = Some(&long);
        let s = span_data(&o, 0, &RandomIdGenerator::default());
        assert_eq!(attr(&s, "network.transport"), Some(&Value::from("tcp")));
        assert_eq!(attr(&s, "client.address"), Some(&Value::from("127.0.0.1")));
        assert_eq!(attr(&s, "client.port"), Some(&Value::from(40522i64)));
        assert!(
            s.name.len() <= "tools/call ".len() + MAX_NAME_BYTES + 3,
            "{}",
            s.name.len()
        );
    }
}
