//! Real MCP servers driven by real clients (the official SDKs, pinned in tests/mcp),
//! watched by the real daemon as root: every tool call a client makes appears as
//! exactly one `tool_call` event with the right tool, arguments, outcome, clientInfo
//! and client pid, and nothing else appears.
use std::path::{Path, PathBuf};

use integration_tests::{
    Daemon,
    mcp::{Client, filesystem_server, python_server, python_server_glob, server_events},
    unique_tag,
};
use serde_json::{Value, json};

fn drive(client: Client, name: &str, server: &[String], calls: &Value) -> Value {
    integration_tests::mcp::drive(client, name, server, calls, &[])
}

fn start(glob: &str) -> Daemon {
    Daemon::start(&["--watch", glob]).expect("daemon starts")
}

/// The tool_call events of one server, once the daemon has seen it exit.
fn calls_of(d: &Daemon, server_pid: u64) -> Vec<Value> {
    server_events(d, "tool_call", &json!(server_pid))
}

/// Each call the driver made is exactly one event, with what the driver saw.
fn assert_calls_match(events: &[Value], report: &Value, name: &str) {
    let made = report["calls"].as_array().expect("driver lists its calls");
    assert_eq!(
        events.len(),
        made.len(),
        "one tool_call event per call made\nevents: {events:#?}\nreport: {report:#}"
    );
    for (e, c) in events.iter().zip(made) {
        assert_eq!(e["request_id"], c["request_id"], "{e:#}");
        assert_eq!(e["tool"], c["tool"], "{e:#}");
        assert_eq!(e["arguments"], c["arguments"], "{e:#}");
        assert_eq!(e["outcome"], c["outcome"], "{e:#}");
        assert_eq!(
            e["agent"]["client"],
            json!({"name": name, "version": "9.8.7"}),
            "{e:#}"
        );
        assert_eq!(e["agent"]["pid"], report["client_pid"], "{e:#}");
        assert_eq!(e["transport"], "stdio");
        assert!(
            e["duration_ms"]
                .as_f64()
                .is_some_and(|d| (0.0..30_000.0).contains(&d)),
            "{e:#}"
        );
        if c["outcome"] == "error" {
            assert!(
                e["error"].as_str().is_some_and(|s| !s.is_empty()),
                "error reason reported: {e:#}"
            );
        }
    }
}

fn fs_root(tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(tag).join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("notes.txt"), "hello from the test\n").unwrap();
    root
}

fn filesystem_calls(root: &Path) -> Value {
    json!([
        {"tool": "list_directory", "arguments": {"path": root}},
        {"tool": "read_text_file", "arguments": {"path": root.join("notes.txt")}},
        {"tool": "read_text_file", "arguments": {"path": "/etc/hostname"}},
        {"tool": "no_such_tool", "arguments": {}},
    ])
}

fn check_filesystem_session(client: Client, name: &str) {
    let tag = unique_tag(name);
    let root = fs_root(&tag);
    // Anchored on the server's own command line: `node <entry> <root>`.
    let d = start(&format!("node *server-filesystem* {}", root.display()));
    let report = drive(client, name, &filesystem_server(&root), &filesystem_calls(&root));
    let outcomes: Vec<&Value> = report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["outcome"])
        .collect();
    assert_eq!(
        outcomes,
        ["ok", "ok", "error", "error"],
        "the real server behaves as expected: {report:#}"
    );
    let events = calls_of(&d, report["server_pid"].as_u64().unwrap());
    assert_calls_match(&events, &report, name);
    for e in &events {
        assert_eq!(e["server"]["info"]["name"], "secure-filesystem-server");
        assert_eq!(e["protocol"]["era"], "initialize");
        assert_eq!(e["server"]["pid"], report["server_pid"]);
    }
    // The client itself is not a server and reported nothing of its own.
    let all = d.events();
    assert!(
        !all.iter()
            .any(|e| e["type"] == "server_started" && e["server"]["pid"] == report["client_pid"])
    );
    assert_eq!(
        all.iter().filter(|e| e["type"] == "tool_call").count(),
        events.len(),
        "no other tool_call events"
    );
    // server_started names the client, and its parent chain starts at this test process.
    let started = all
        .iter()
        .find(|e| e["type"] == "server_started" && e["server"]["pid"] == report["server_pid"])
        .expect("server_started");
    assert_eq!(started["client"]["pid"], report["client_pid"], "{started:#}");
    assert_eq!(
        started["client"]["parents"][0]["pid"],
        std::process::id(),
        "{started:#}"
    );
    assert_eq!(started["server"]["name"], "filesystem");
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}

#[test]
fn python_sdk_client_with_the_filesystem_server() {
    check_filesystem_session(Client::Python, "py-alpha");
}

#[test]
fn typescript_sdk_client_with_the_filesystem_server() {
    check_filesystem_session(Client::TypeScript, "ts-gamma");
}

#[test]
fn python_sdk_client_with_a_python_mcpserver_speaks_the_stateless_era() {
    let tag = unique_tag("stateless");
    let server = python_server(&tag);
    let d = start(&python_server_glob(&tag));
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "héllo ✓"}},
        {"tool": "add", "arguments": {"a": 2, "b": 3}},
        {"tool": "fail", "arguments": {}},
        {"tool": "rpc_fail", "arguments": {}},
        {"tool": "no_such_tool", "arguments": {"x": [1, 2]}},
    ]);
    let report = drive(Client::Python, "py-beta", &server, &calls);
    assert_eq!(report["protocol"], "2026-07-28", "{report:#}");
    let events = calls_of(&d, report["server_pid"].as_u64().unwrap());
    assert_calls_match(&events, &report, "py-beta");
    for e in &events {
        assert_eq!(e["protocol"]["era"], "stateless", "{e:#}");
        assert_eq!(e["protocol"]["version"], "2026-07-28");
        assert_eq!(e["server"]["info"]["name"], report["server_info"]["name"]);
    }
    let outcomes: Vec<&Value> = events.iter().map(|e| &e["outcome"]).collect();
    assert_eq!(outcomes, ["ok", "ok", "error", "error", "error"]);
}

#[test]
fn two_clients_on_two_server_instances_are_told_apart() {
    let tag = unique_tag("twoclients");
    let (root_a, root_b) = (fs_root(&format!("{tag}a")), fs_root(&format!("{tag}b")));
    let d = start(&format!(
        "node *server-filesystem* {}*",
        std::env::temp_dir().join(&tag).display()
    ));
    let (server_a, server_b) = (filesystem_server(&root_a), filesystem_server(&root_b));
    let (calls_a, calls_b) = (filesystem_calls(&root_a), filesystem_calls(&root_b));
    let a = std::thread::spawn(move || drive(Client::Python, "agent-one", &server_a, &calls_a));
    let report_b = drive(Client::TypeScript, "agent-two", &server_b, &calls_b);
    let report_a = a.join().unwrap();
    assert_ne!(report_a["client_pid"], report_b["client_pid"]);
    let events_a = calls_of(&d, report_a["server_pid"].as_u64().unwrap());
    let events_b = calls_of(&d, report_b["server_pid"].as_u64().unwrap());
    assert_calls_match(&events_a, &report_a, "agent-one");
    assert_calls_match(&events_b, &report_b, "agent-two");
    assert_ne!(events_a[0]["session"], events_b[0]["session"]);
    for dir in [root_a, root_b] {
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}

/// A shell between client and server (`sh -c "node ...; true"`): the server's parent is
/// the shell, which also holds the server's stdin; the client is the process on the other
/// end: the writer of the pipe (Python SDK) or the peer of the socketpair (Node).
#[test]
fn client_behind_a_shell_is_the_other_end_of_the_stdio_not_the_parent() {
    for (client, name) in [
        (Client::Python, "py-behind-sh"),
        (Client::TypeScript, "ts-behind-sh"),
    ] {
        let tag = unique_tag(name);
        let root = fs_root(&tag);
        let d = start(&format!("node *server-filesystem* {}", root.display()));
        let node = filesystem_server(&root).join(" ");
        let shell = vec!["sh".to_string(), "-c".to_string(), format!("{node}; true")];
        let calls = json!([{"tool": "list_directory", "arguments": {"path": root}}]);
        let report = drive(client, name, &shell, &calls);
        let started = d
            .wait_for(std::time::Duration::from_secs(30), |e| {
                e["type"] == "server_started" && e["server"]["cmdline"] == node.as_str()
            })
            .expect("the node server behind the shell is watched");
        assert_ne!(
            started["server"]["pid"], report["server_pid"],
            "the driver's child is the shell"
        );
        assert_eq!(started["server"]["ppid"], report["server_pid"], "{started:#}");
        assert_eq!(
            started["client"]["pid"], report["client_pid"],
            "{name}: {started:#}"
        );
        let events = calls_of(&d, started["server"]["pid"].as_u64().unwrap());
        assert_calls_match(&events, &report, name);
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }
}
