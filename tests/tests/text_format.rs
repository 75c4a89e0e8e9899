//! `--format text`, as root with the real daemon and a real server: a person at a
//! terminal gets one readable line per event, a tool call's with its server, client,
//! tool, outcome and decision.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use integration_tests::{
    daemon_binary,
    mcp::{Client, filesystem_server},
    require_root, unique_tag,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// Waits until a line of `lines` has every one of `parts`; returns it.
fn wait_line(lines: &Mutex<Vec<String>>, parts: &[&str]) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if let Some(l) = lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return Some(l.clone());
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_tool_call_is_one_readable_line() {
    require_root();
    let tag = unique_tag("text-format");
    let root = std::env::temp_dir().join(&tag).join("root");
    std::fs::create_dir_all(&root).unwrap();
    let glob = format!("node *server-filesystem* {}", root.display());
    let mut child = Command::new(daemon_binary())
        .args(["run", "--no-discovery", "--watch", &glob, "--format", "text"])
        .args(["--events", "-", "--metrics-addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (out, l) = (child.stdout.take().unwrap(), lines.clone());
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    let ready = wait_line(&lines, &["  monitor_status  ready  pid "]);
    let ready = ready.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no ready line: {:#?}", lines.lock().unwrap())
    });
    assert!(!ready.starts_with('{'), "text, not JSON: {ready}");

    let calls = json!([{"tool": "list_directory", "arguments": {"path": root}}]);
    let report = integration_tests::mcp::drive(
        Client::TypeScript,
        "text-client",
        &filesystem_server(&root),
        &calls,
        &[],
    );
    let (server, client) = (&report["server_pid"], &report["client_pid"]);
    let call = wait_line(&lines, &["  tool_call  ", "list_directory"]);
    let exited = wait_line(&lines, &["  server_exited  "]);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let got = lines.lock().unwrap().clone();
    let call = call.unwrap_or_else(|| panic!("no tool_call line: {got:#?}"));
    // `HH:MM:SS.mmm  tool_call       filesystem[PID]  text-client[PID]  list_directory  ok 1.2ms  allow`
    let (time, rest) = call.split_once("  ").unwrap();
    assert_eq!(time.len(), 12, "{call}");
    assert_eq!(&time[2..3], ":", "{call}");
    let want = format!("tool_call       filesystem[{server}]  text-client[{client}]  list_directory  ok ");
    assert!(rest.starts_with(&want), "{call}\nwant: {want}");
    assert!(
        rest.ends_with("ms  allow"),
        "the built-in policy allows it: {call}"
    );
    assert!(!call.contains('\x1b'), "NO_COLOR: {call}");
    assert!(exited.is_some(), "server_exited line: {got:#?}");
    assert!(
        got.iter().all(|l| !l.starts_with('{')),
        "every line is text: {got:#?}"
    );
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&tag));
}
