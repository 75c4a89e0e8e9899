//! A daemon started while a server runs picks it up: the calls made after its start are
//! reported, the ones before it are not invented. As root, with the real daemon, the
//! Python SDK server and client: the client holds its session open between two calls
//! while the test stops one daemon and starts another.
mod common;

use std::{path::Path, time::Duration};

use integration_tests::{
    Daemon,
    mcp::{Client, assert_all_ok, drive, python_server, python_server_glob},
    unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn wait_file(path: &Path) {
    let deadline = std::time::Instant::now() + WAIT;
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn calls(events: &[Value], server_pid: &Value) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "tool_call" && e["server"]["pid"] == *server_pid)
        .cloned()
        .collect()
}

#[test]
fn a_daemon_restarted_while_a_server_runs_reports_its_later_calls() {
    let tag = unique_tag("restart");
    let dir = common::TempDir::new(&tag);
    let go = dir.path().join("go");
    let glob = python_server_glob(&tag);
    let first = Daemon::start(&["--watch", &glob]).unwrap();
    let calls_json = json!([
        {"tool": "echo", "arguments": {"text": "before the restart"}},
        {"tool": "echo", "arguments": {"text": "after the restart"}, "wait_for": go},
    ]);
    let server = python_server(&tag);
    let client =
        std::thread::spawn(move || drive(Client::Python, "restart-agent", &server, &calls_json, &[]));
    // The first call is the first daemon's.
    let before = first
        .wait_for(WAIT, |e| {
            e["type"] == "tool_call" && e["arguments"]["text"] == "before the restart"
        })
        .unwrap_or_else(|e| panic!("{e:#}: {:#?}", first.events()));
    let server_pid = before["server"]["pid"].clone();
    wait_file(&dir.path().join("go.waiting"));
    let (status, _, _) = first.stop(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    // A new daemon finds the running server by its command line.
    let second = Daemon::start(&["--watch", &glob]).unwrap();
    assert!(
        second.ready["watched_pids"]
            .as_array()
            .unwrap()
            .contains(&server_pid),
        "{:#}",
        second.ready
    );
    std::fs::write(&go, b"").unwrap();
    let report = client.join().unwrap();
    assert_all_ok(&report);
    assert_eq!(report["server_pid"], server_pid);
    let after = second
        .wait_for(WAIT, |e| {
            e["type"] == "tool_call" && e["server"]["pid"] == server_pid
        })
        .unwrap_or_else(|e| panic!("{e:#}: {:#?}\n{}", second.events(), second.stderr()));
    let ids = report["calls"].as_array().unwrap();
    assert_eq!(
        after["arguments"],
        json!({"text": "after the restart"}),
        "{after:#}"
    );
    assert_eq!(after["request_id"], ids[1]["request_id"], "{after:#}");
    assert_eq!(after["outcome"], "ok", "{after:#}\n{:#?}", second.events());
    assert_eq!(after["tool"], "echo");
    // Nothing of before its start is reported, and the later call once.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        calls(&second.events(), &server_pid).len(),
        1,
        "{:#?}",
        second.events()
    );
}
