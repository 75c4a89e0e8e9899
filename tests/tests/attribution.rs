//! What a watched server's processes do stays the server's, however they hide it: a
//! grandchild that double-forks (its parent exits, it is reparented to init) and the
//! server process exec'ing itself into another program, both while a call is in flight;
//! a secret read through `/proc/self/root`.
//! Real Python SDK server, as root with the real daemon.
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use integration_tests::{
    Daemon,
    mcp::{Client, drive, python_server, python_server_glob, server_events},
    unique_tag,
};
use serde_json::{Value, json};

fn secrets_of(call: &Value) -> Vec<&str> {
    call["effects"]["secrets"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["path"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn a_double_forked_grandchild_still_belongs_to_the_call() {
    let tag = unique_tag("doublefork");
    let d = Daemon::start(&["--watch", &python_server_glob(&tag)]).expect("daemon starts");
    // The outer subshell exits at once; the inner one, reparented to init, reads the
    // secret 0.3 s later while the tool (sleep 1) is still running.
    let cmd = "/bin/sh -c '( (sleep 0.3; exec head -c1 /etc/shadow) & ); sleep 1'";
    let calls = json!([{"tool": "run", "arguments": {"cmd": cmd}}]);
    let report = drive(Client::Python, "forker", &python_server(&tag), &calls, &[]);
    let events = server_events(&d, "tool_call", &report["server_pid"]);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(
        secrets_of(&events[0]).contains(&"/etc/shadow"),
        "the grandchild's read is the call's: {:#}",
        events[0]
    );
    assert!(
        events[0]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["kind"] == "secret_access"),
        "{:#}",
        events[0]
    );
}

#[test]
fn a_server_that_execs_itself_mid_call_reports_the_exec_as_the_calls() {
    let tag = unique_tag("becomes");
    let d = Daemon::start(&["--watch", &python_server_glob(&tag)]).expect("daemon starts");
    let argv = python_server(&tag);
    let mut server = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut stdin = server.stdin.take().unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let send = |stdin: &mut std::process::ChildStdin, v: Value| {
        stdin.write_all(format!("{v}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "exec-agent", "version": "1.0"}}}),
    );
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"id\":1"), "{line}");
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    // The server process becomes a shell that reads a secret: never an answer.
    let cmd = "/bin/sh -c 'head -c1 /etc/shadow >/dev/null; sleep 0.3'";
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "become", "arguments": {"cmd": cmd}}}),
    );
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
    drop(stdin);
    let events = server_events(&d, "tool_call", &json!(pid));
    assert_eq!(events.len(), 1, "{events:#?}");
    let call = &events[0];
    assert_eq!(call["tool"], "become");
    assert_eq!(call["outcome"], "incomplete", "{call:#}");
    let execs: Vec<&str> = call["effects"]["exec"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(execs.contains(&"/bin/sh"), "the server's own exec: {call:#}");
    assert!(secrets_of(call).contains(&"/etc/shadow"), "{call:#}");
}

#[test]
fn a_secret_read_through_proc_self_root_is_the_secret_not_noise() {
    let tag = unique_tag("procroot");
    let d = Daemon::start(&["--watch", &python_server_glob(&tag)]).expect("daemon starts");
    let calls = json!([
        {"tool": "read_secret", "arguments": {"path": "/proc/self/root/etc/shadow"}},
    ]);
    let report = drive(Client::Python, "procroot", &python_server(&tag), &calls, &[]);
    let events = server_events(&d, "tool_call", &report["server_pid"]);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(
        secrets_of(&events[0]).contains(&"/etc/shadow"),
        "judged as the file it names: {:#}",
        events[0]
    );
    assert_eq!(events[0]["effects"]["noise"], 0, "{:#}", events[0]);
}
