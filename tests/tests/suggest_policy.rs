//! `suggest-policy` closing the loop with the real daemon as root: a real session (the
//! npm filesystem server driven by the TypeScript SDK client) is watched, a policy is
//! suggested from its events, and the same session, rerun in another temporary folder
//! under that policy, raises no violation; the same session with one more tool call,
//! not in the suggestion, raises exactly one (`tool_out_of_scope`).
mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::TempDir;
use integration_tests::{
    Daemon, daemon_binary,
    mcp::{Client, assert_all_ok, drive, filesystem_server, server_events},
    unique_tag,
};
use serde_json::{Value, json};

const CLIENT: &str = "ts-suggest";

/// A folder made for one run (`/tmp/<tag>/root`), with the files the session reads.
fn root_in(dir: &TempDir) -> PathBuf {
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("notes.txt"), "hello\n").unwrap();
    std::fs::write(root.join("todo.txt"), "nothing\n").unwrap();
    root
}

/// The session: list the folder, read two files.
fn calls(root: &Path) -> Value {
    json!([
        {"tool": "list_directory", "arguments": {"path": root}},
        {"tool": "read_text_file", "arguments": {"path": root.join("notes.txt")}},
        {"tool": "read_text_file", "arguments": {"path": root.join("todo.txt")}},
    ])
}

/// Drives one session against a fresh server in `root`; its tool_call events.
fn session(d: &Daemon, root: &Path, calls: &Value) -> Vec<Value> {
    let report = drive(Client::TypeScript, CLIENT, &filesystem_server(root), calls, &[]);
    assert_all_ok(&report);
    let events = server_events(d, "tool_call", &report["server_pid"]);
    assert_eq!(
        events.len(),
        calls.as_array().unwrap().len(),
        "one event per call: {events:#?}"
    );
    let violations: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["type"] == "violation" && e["server"]["pid"] == report["server_pid"])
        .collect();
    assert_eq!(violations, Vec::<Value>::new(), "no violation outside calls");
    events
}

fn mcp_monitor(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(daemon_binary()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_suggested_policy_allows_a_rerun_and_flags_exactly_one_extra_tool() {
    // Run 1: the built-in policy, the server watched by its command line.
    let first = TempDir::new(&unique_tag("suggesta"));
    let root = root_in(&first);
    let events = first.path().join("events.jsonl");
    let glob = format!("node *server-filesystem* {}", root.display());
    let d = Daemon::start_with_events(&["--watch", &glob], &events).expect("daemon starts");
    let observed = session(&d, &root, &calls(&root));
    assert!(
        observed.iter().all(|c| c["server"]["name"] == "filesystem"),
        "{observed:#?}"
    );
    let (status, _, _) = d.stop(Duration::from_secs(10)).unwrap();
    assert!(status.success());

    // The suggestion from its events.
    let policy = first.path().join("suggested.yaml");
    let (ok, _, stderr) = mcp_monitor(&[
        "suggest-policy",
        "--events",
        events.to_str().unwrap(),
        "--out",
        policy.to_str().unwrap(),
    ]);
    assert!(ok && stderr.contains("suggested 1 server entry"), "{stderr}");
    let text = std::fs::read_to_string(&policy).unwrap();
    let (ok, stdout, stderr) = mcp_monitor(&["check-policy", policy.to_str().unwrap()]);
    assert!(ok, "{stderr}\n{text}");
    assert!(stdout.contains("valid: 1 server(s), 1 agent(s)"), "{stdout}");
    assert!(
        text.contains("- \"list_directory\"") && text.contains("- \"read_text_file\"  # called 2 times"),
        "{text}"
    );
    assert!(
        text.contains("/tmp/*/root"),
        "the per-run folder generalised: {text}"
    );

    // Run 2, in another temporary folder, under the suggestion: nothing to report.
    let second = TempDir::new(&unique_tag("suggestb"));
    let root2 = root_in(&second);
    let events2 = second.path().join("events.jsonl");
    let nothing = format!("/nothing/{}", unique_tag("suggest"));
    let d = Daemon::start_with_events(
        &["--policy", policy.to_str().unwrap(), "--watch", &nothing],
        &events2,
    )
    .expect("daemon starts under the suggested policy");
    let rerun = session(&d, &root2, &calls(&root2));
    for c in &rerun {
        assert_eq!(
            (&c["server"]["name"], &c["agent"]["name"]),
            (&json!("filesystem"), &json!(CLIENT)),
            "{c:#}"
        );
        assert_eq!(c["decision"], "allow", "{c:#}\n{text}");
        assert_eq!(c["violations"], json!([]), "{c:#}");
    }
    assert!(!rerun[1]["effects"]["files"].as_array().unwrap().is_empty());

    // The same session and one more tool, never called before: exactly one violation.
    let mut more = calls(&root2);
    more.as_array_mut()
        .unwrap()
        .push(json!({"tool": "list_allowed_directories", "arguments": {}}));
    let extra = session(&d, &root2, &more);
    let violations: Vec<&Value> = extra
        .iter()
        .flat_map(|c| c["violations"].as_array().unwrap())
        .collect();
    assert_eq!(violations.len(), 1, "{extra:#?}");
    assert_eq!(violations[0]["kind"], "tool_out_of_scope");
    assert_eq!(
        violations[0]["rule"],
        format!("servers.filesystem.agents.{CLIENT}.tools")
    );
    assert_eq!(
        violations[0]["refs"],
        json!([
            "OWASP-ASI:ASI02",
            "MAESTRO:L3",
            "MAESTRO:L6",
            "NIST-AI-RMF:MEASURE-2.7"
        ])
    );
    assert_eq!(extra[3]["tool"], "list_allowed_directories");
    assert_eq!(extra[3]["decision"], "violation");
    let (status, _, _) = d.stop(Duration::from_secs(10)).unwrap();
    assert!(status.success());
}
