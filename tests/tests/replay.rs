//! `run --record` then `replay`: a session with real servers and clients, recorded by
//! the real daemon as root, replayed without the kernel or the processes, gives the
//! very same events. With `MCP_MONITOR_UPDATE_FIXTURES=1`, each recording and its live
//! events are kept as fixtures under monitor/tests/fixtures (replayed root-free by
//! monitor/tests/replay_fixtures.rs).
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration_tests::{
    Daemon, daemon_binary,
    mcp::{Client, drive, filesystem_server, python_server, python_server_glob},
    read_events, unique_tag,
};
use serde_json::{Value, json};

/// Runs the daemon with `--record` around `session`, then replays the recording;
/// returns (live events, replayed events, recording).
fn record_and_replay(tag: &str, args: &[&str], session: impl FnOnce()) -> (Vec<Value>, Vec<Value>, PathBuf) {
    let dir = std::env::temp_dir().join(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("session.mcprec");
    let live_path = dir.join("live.jsonl");
    let mut full: Vec<&str> = args.to_vec();
    let rec = recording.display().to_string();
    full.extend(["--record", &rec]);
    let d = Daemon::start_with_events(&full, &live_path).expect("daemon starts");
    session();
    let (status, _, live) = d.stop(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    let replayed_path = dir.join("replayed.jsonl");
    let out = Command::new(daemon_binary())
        .arg("replay")
        .arg(&recording)
        .arg("--events")
        .arg(&replayed_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("replayed") && !stderr.contains("unused") && !stderr.contains("did not stop cleanly"),
        "{stderr}"
    );
    (live, read_events(&replayed_path).unwrap(), recording)
}

/// Live and replayed events are equal, line for line, but for what depends on the
/// run: nothing. (The recording holds the clock and the boot time too.)
fn assert_same(live: &[Value], replayed: &[Value]) {
    assert!(live.iter().any(|e| e["type"] == "tool_call"), "{live:#?}");
    for (i, (l, r)) in live.iter().zip(replayed).enumerate() {
        assert_eq!(l, r, "event {i} differs");
    }
    assert_eq!(live.len(), replayed.len(), "as many events");
}

fn keep_fixture(name: &str, recording: &Path, live: &[Value]) {
    if std::env::var_os("MCP_MONITOR_UPDATE_FIXTURES").is_none() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../monitor/tests/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(recording, dir.join(format!("{name}.mcprec"))).unwrap();
    let lines: Vec<String> = live.iter().map(|e| e.to_string()).collect();
    std::fs::write(dir.join(format!("{name}.events.jsonl")), lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_filesystem_session_replays_to_the_same_events() {
    let tag = unique_tag("replayfs");
    let root = std::env::temp_dir().join(&tag).join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("notes.txt"), "hello\n").unwrap();
    let calls = json!([
        {"tool": "list_directory", "arguments": {"path": root}},
        {"tool": "read_text_file", "arguments": {"path": root.join("notes.txt")}},
        {"tool": "read_text_file", "arguments": {"path": "/etc/shadow"}},
        {"tool": "no_such_tool", "arguments": {}},
    ]);
    let glob = format!("node *server-filesystem* {}", root.display());
    let server = filesystem_server(&root);
    let (live, replayed, recording) = record_and_replay(&tag, &["--watch", &glob], || {
        drive(Client::TypeScript, "ts-replay", &server, &calls, &[]);
    });
    assert_eq!(
        live.iter().filter(|e| e["type"] == "tool_call").count(),
        4,
        "{live:#?}"
    );
    assert_same(&live, &replayed);
    keep_fixture("filesystem_ts", &recording, &live);
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&tag));
}

#[test]
fn a_python_stateless_session_replays_to_the_same_events() {
    let tag = unique_tag("replaypy");
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "first"}},
        {"tool": "read_secret", "arguments": {"path": "/etc/ssl/private/../../shadow"}},
        {"tool": "run", "arguments": {"cmd": "/bin/true"}},
        {"tool": "fail", "arguments": {}},
    ]);
    let server = python_server(&tag);
    let glob = python_server_glob(&tag);
    let (live, replayed, recording) = record_and_replay(&tag, &["--watch", &glob], || {
        drive(Client::Python, "py-replay", &server, &calls, &[]);
    });
    assert!(
        live.iter().filter(|e| e["type"] == "tool_call").count() >= 3,
        "{live:#?}"
    );
    assert_same(&live, &replayed);
    keep_fixture("python_stateless", &recording, &live);
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&tag));
}
