//! OpenTelemetry export, as root, with real servers and clients and a real OTLP/HTTP
//! receiver (PyPI `oteltap`, which prints what it decodes as NDJSON): each MCP request
//! is a SERVER span named and attributed per the MCP semantic conventions, timed by
//! the kernel; a client that sends `traceparent` in `_meta` gets the server span as a
//! child of its own; the duration histograms arrive with the conventions' buckets; a
//! receiver stopped mid-run costs no event, and every span it missed is counted.
mod common;

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    Daemon, Killed,
    http::start_server,
    mcp::{
        Client, drive, drive_url, free_port, python_http_server, python_server, python_server_glob,
        server_events, venv_python,
    },
    metrics::wait_metric,
    unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// `python -m oteltap --port PORT`, its stdout in a file.
struct Receiver {
    _child: Killed,
    out: PathBuf,
}

impl Receiver {
    fn start(port: u16, out: &Path) -> Self {
        let file = File::create(out).unwrap();
        let child = Command::new(venv_python())
            .args(["-u", "-m", "oteltap", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting oteltap (tests/mcp/setup.sh installs it)");
        let r = Self {
            _child: Killed(child),
            out: out.to_path_buf(),
        };
        r.wait(
            |lines| lines.iter().any(|l| l.starts_with("Listening")),
            "to listen",
        );
        r
    }

    fn lines(&self) -> Vec<String> {
        BufReader::new(File::open(&self.out).unwrap())
            .lines()
            .map_while(Result::ok)
            .collect()
    }

    /// Waits until the lines printed so far pass `ok`.
    fn wait(&self, ok: impl Fn(&[String]) -> bool, what: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.lines();
            if ok(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver never got {what}: {lines:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Spans received (objects with a `traceId`).
    fn spans(&self) -> Vec<Value> {
        parse(&self.lines(), |v| v.get("traceId").is_some())
    }

    /// Waits until `n` spans of the MCP session `session` arrived, and returns them.
    fn spans_of(&self, session: &str, n: usize) -> Vec<Value> {
        let of = |s: &Value| attrs(s).get("mcp.session.id").map(String::as_str) == Some(session);
        self.wait(
            |lines| parse(lines, |v| v.get("traceId").is_some() && of(v)).len() >= n,
            &format!("{n} spans of {session}"),
        );
        self.spans().into_iter().filter(of).collect()
    }
}

fn parse(lines: &[String], keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| keep(v))
        .collect()
}

/// A span's (or data point's) attributes as strings (OTLP JSON gives ints as strings).
fn attrs(s: &Value) -> BTreeMap<String, String> {
    s["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let v = a["value"]
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (a["key"].as_str().unwrap().to_string(), text)
        })
        .collect()
}

fn nanos(s: &Value, key: &str) -> u64 {
    s[key].as_str().unwrap().parse().unwrap()
}

struct World {
    tag: String,
    dir: PathBuf,
    port: u16,
}

impl World {
    fn new(name: &str) -> Self {
        let tag = unique_tag(name);
        let dir = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(dir.join("home/.ssh")).unwrap();
        std::fs::write(
            dir.join("home/.ssh/id_rsa"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        Self {
            tag,
            dir,
            port: free_port(),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn receiver(&self, n: u32) -> Receiver {
        Receiver::start(self.port, &self.dir.join(format!("otlp-{n}.ndjson")))
    }

    fn daemon(&self, extra: &[&str]) -> Daemon {
        let policy = format!(
            r#"secrets: ["~/.ssh/**"]
servers:
  pytools:
    match: {{ cmdline: "{glob}*" }}
    tools: [echo, add, fail, rpc_fail]
    agents:
      tracer: {{ client: "otel-*" }}
unregistered_servers: ignore
"#,
            glob = python_server_glob(&self.tag),
        );
        let path = self.dir.join("policy.yaml");
        std::fs::write(&path, policy).unwrap();
        let nothing = format!("/nothing/{}", self.tag);
        let endpoint = self.endpoint();
        let mut args = vec![
            "--policy",
            path.to_str().unwrap(),
            "--watch",
            &nothing,
            "--otlp-endpoint",
            &endpoint,
            "--otlp-metrics-interval",
            "1",
        ];
        args.extend_from_slice(extra);
        Daemon::start(&args).expect("daemon starts")
    }

    /// A stdio session of the TypeScript client with the Python server; its report and
    /// its `tool_call` events, once the server exited.
    fn session(&self, d: &Daemon, client: &str, calls: &Value) -> (Value, Vec<Value>) {
        let env = [format!("HOME={}", self.dir.join("home").display())];
        let report = drive(Client::TypeScript, client, &python_server(&self.tag), calls, &env);
        let events = server_events(d, "tool_call", &report["server_pid"]);
        assert_eq!(events.len(), calls.as_array().unwrap().len(), "{events:#?}");
        (report, events)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn each_request_is_a_server_span_per_the_conventions_joined_to_the_agents_trace() {
    let w = World::new("otlpspans");
    let receiver = w.receiver(0);
    let d = w.daemon(&[]);
    let secret = w.dir.join("home/.ssh/id_rsa");
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "hi"},
         "meta": {"traceparent": format!("00-{TRACE_ID}-{PARENT_ID}-01"), "tracestate": "agent=abc"}},
        {"tool": "fail", "arguments": {}},
        {"tool": "rpc_fail", "arguments": {}},
        {"tool": "read_secret", "arguments": {"path": secret.to_str().unwrap()}},
    ]);
    let (report, events) = w.session(&d, "otel-agent", &calls);
    let session = events[0]["session"].as_str().unwrap().to_string();
    // initialize and the four calls.
    let spans = receiver.spans_of(&session, 5);
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let by_name: BTreeMap<&str, &Value> = spans.iter().map(|s| (s["name"].as_str().unwrap(), s)).collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        [
            "initialize",
            "tools/call echo",
            "tools/call fail",
            "tools/call read_secret",
            "tools/call rpc_fail"
        ]
    );
    for s in &spans {
        assert_eq!(s["kind"], 2, "SPAN_KIND_SERVER: {s:#}");
        let a = attrs(s);
        assert_eq!(a["network.transport"], "pipe");
        assert_eq!(a["mcp.session.id"], session);
        assert_eq!(a["mcp_monitor.server.name"], "pytools");
        assert_eq!(a["mcp_monitor.server.pid"], report["server_pid"].to_string());
        assert_eq!(a["mcp_monitor.client.name"], "otel-agent");
        assert_eq!(a["mcp_monitor.agent.pid"], report["client_pid"].to_string());
        assert!(a.contains_key("mcp.protocol.version"), "{a:#?}");
    }

    // The first call: a child of the client's span, timed as its event says.
    let echo = by_name["tools/call echo"];
    assert_eq!(echo["traceId"], TRACE_ID);
    assert_eq!(echo["parentSpanId"], PARENT_ID);
    assert_eq!(echo["traceState"], "agent=abc");
    let a = attrs(echo);
    for (k, v) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "echo"),
        ("gen_ai.operation.name", "execute_tool"),
        ("jsonrpc.request.id", "1"),
        ("mcp_monitor.decision", "allow"),
        ("mcp_monitor.agent.name", "tracer"),
    ] {
        assert_eq!(a.get(k).map(String::as_str), Some(v), "{k}: {a:#?}");
    }
    assert!(
        !a.contains_key("error.type") && !a.contains_key("gen_ai.tool.call.arguments"),
        "{a:#?}"
    );
    let event_ms = events[0]["duration_ms"].as_f64().unwrap();
    let span_ms = (nanos(echo, "endTimeUnixNano") - nanos(echo, "startTimeUnixNano")) as f64 / 1e6;
    assert!(
        (span_ms - event_ms).abs() < 0.001,
        "span {span_ms} ms, event {event_ms} ms"
    );

    // Without traceparent: a trace of its own, no parent.
    let initialize = by_name["initialize"];
    assert_ne!(initialize["traceId"], TRACE_ID);
    assert!(
        initialize.get("parentSpanId").is_none_or(|p| p == ""),
        "{initialize:#}"
    );

    // Failures: isError is tool_error, a JSON-RPC error its code; status ERROR (2).
    let fail = by_name["tools/call fail"];
    assert_eq!(attrs(fail)["error.type"], "tool_error");
    assert_eq!(fail["status"]["code"], 2);
    let rpc_fail = by_name["tools/call rpc_fail"];
    assert_eq!(attrs(rpc_fail)["error.type"], "-32000");
    assert_eq!(attrs(rpc_fail)["rpc.response.status_code"], "-32000");
    assert_eq!(rpc_fail["status"]["message"], "rpc_fail() was asked to fail");

    // Out of scope and a secret: the violations and the secret read are span events.
    let read = by_name["tools/call read_secret"];
    let a = attrs(read);
    assert_eq!(a["mcp_monitor.decision"], "violation");
    let kinds: Vec<&str> = events[3]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["tool_out_of_scope", "secret_access"], "{:#}", events[3]);
    let span_events: Vec<(String, BTreeMap<String, String>)> = read["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), attrs(e)))
        .collect();
    let names: Vec<&str> = span_events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "mcp_monitor.violation",
            "mcp_monitor.violation",
            "mcp_monitor.secret_access"
        ]
    );
    assert_eq!(
        span_events[0].1["mcp_monitor.violation.kind"],
        "tool_out_of_scope"
    );
    assert_eq!(span_events[2].1["file.path"], secret.to_str().unwrap());
    assert_eq!(span_events[2].1["mcp_monitor.secret.class"], "ssh_key");

    // The metrics: one operation per request with the conventions' buckets, and the
    // session's duration.
    let lines = receiver.wait(
        |lines| {
            parse(lines, |v| v["name"] == "mcp.server.session.duration")
                .iter()
                .any(|m| m.to_string().contains("\"pipe\""))
        },
        "mcp.server.session.duration",
    );
    let op = parse(&lines, |v| v["name"] == "mcp.server.operation.duration");
    let last = op.last().expect("mcp.server.operation.duration");
    assert_eq!(last["unit"], "s");
    let points = last["histogram"]["dataPoints"].as_array().unwrap();
    let bounds = &points[0]["explicitBounds"];
    assert_eq!(
        bounds,
        &json!([
            0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0
        ])
    );
    let count = |tool: &str, error: Option<&str>| -> u64 {
        points
            .iter()
            .filter(|p| {
                let a = attrs(p);
                a.get("gen_ai.tool.name").map(String::as_str) == Some(tool)
                    && a.get("error.type").map(String::as_str) == error
            })
            .map(|p| p["count"].as_str().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(count("echo", None), 1);
    assert_eq!(count("fail", Some("tool_error")), 1);
    assert_eq!(count("rpc_fail", Some("-32000")), 1);
    d.stop(WAIT).unwrap();
}

#[test]
fn http_spans_carry_the_client_address_and_arguments_only_when_asked() {
    let w = World::new("otlphttp");
    let receiver = w.receiver(0);
    let d = w.daemon(&["--otlp-arguments"]);
    let port = free_port();
    let _server = start_server(&python_http_server(&w.tag, port), port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let calls = json!([{"tool": "add", "arguments": {"a": 2, "b": 3}}]);
    let report = drive_url(Client::Python, "otel-http", &url, &calls, &[]);
    let call = d
        .wait_for(WAIT, |e| {
            e["type"] == "tool_call" && e["agent"]["pid"] == report["client_pid"]
        })
        .unwrap();
    let session = call["session"].as_str().unwrap();
    let spans = receiver.spans_of(session, 1);
    let add = spans
        .iter()
        .find(|s| s["name"] == "tools/call add")
        .expect("the add span");
    let a = attrs(add);
    assert_eq!(a["network.transport"], "tcp");
    assert_eq!(a["network.protocol.name"], "http");
    assert_eq!(a["client.address"], "127.0.0.1");
    let client_port: u16 = a["client.port"].parse().unwrap();
    assert_eq!(
        call["agent"]["address"].as_str(),
        Some(format!("127.0.0.1:{client_port}").as_str())
    );
    assert_eq!(a["gen_ai.tool.call.arguments"], r#"{"a":2,"b":3}"#);
    d.stop(WAIT).unwrap();
}

#[test]
fn a_receiver_gone_mid_run_costs_no_event_and_every_missed_span_is_counted() {
    let w = World::new("otlpgone");
    let receiver = w.receiver(0);
    let d = w.daemon(&[]);
    let calls =
        json!([{"tool": "echo", "arguments": {"text": "a"}}, {"tool": "add", "arguments": {"a": 1, "b": 2}}]);
    let (_, events) = w.session(&d, "otel-agent", &calls);
    receiver.spans_of(events[0]["session"].as_str().unwrap(), 3);
    drop(receiver);

    // Receiver gone: the events are all there, the 3 spans (initialize, 2 calls) counted.
    let (_, events) = w.session(&d, "otel-agent", &calls);
    assert!(events.iter().all(|e| e["outcome"] == "ok"), "{events:#?}");
    let failed = |s: &integration_tests::metrics::Sample| {
        s.labels.get("reason").map(String::as_str) == Some("export_failed")
    };
    let dropped = wait_metric(&d, WAIT, "mcp_monitor_otlp_spans_dropped_total", failed, |v| {
        v >= 3.0
    });
    assert_eq!(dropped, 3.0);
    let status = d
        .wait_for(WAIT, |e| {
            e["type"] == "monitor_status" && e["status"] == "otlp_dropped"
        })
        .unwrap();
    assert_eq!(status["spans_dropped"]["export_failed"], 3, "{status:#}");

    // Back: the next session's spans arrive again.
    let receiver = w.receiver(1);
    let (_, events) = w.session(&d, "otel-agent", &calls);
    let spans = receiver.spans_of(events[0]["session"].as_str().unwrap(), 3);
    assert_eq!(spans.len(), 3);
    let exported = wait_metric(
        &d,
        WAIT,
        "mcp_monitor_otlp_spans_exported_total",
        |_| true,
        |v| v >= 6.0,
    );
    assert_eq!(exported, 6.0);
    d.stop(WAIT).unwrap();
}
