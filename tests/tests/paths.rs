//! A file is judged by what the kernel opened, not by the text the server asked for
//! (issue 13, class 4): a symlink inside the allowed tree that points at a secret, a
//! hard link to a secret under an innocent name, and a relative path opened by a
//! process that changed folder and exited before anything could look at /proc.
//! Real Python SDK server, as root with the real daemon.
mod common;

use std::path::Path;

use integration_tests::{
    Daemon,
    mcp::{Client, drive, python_server, python_server_glob, server_events},
    unique_tag,
};
use serde_json::{Value, json};

/// The secret effects of a call.
fn secrets_of(call: &Value) -> Vec<Value> {
    call["effects"]["secrets"].as_array().cloned().unwrap_or_default()
}

fn violation_kinds(call: &Value) -> Vec<&str> {
    call["violations"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["kind"].as_str()).collect())
        .unwrap_or_default()
}

/// A policy where `DIR/vault/*` is secret and the server may use `DIR/work/**`.
fn policy(dir: &Path, tag: &str) -> String {
    format!(
        r#"secrets: ["{dir}/vault/*"]
servers:
  pytools:
    match: {{ cmdline: "{glob}" }}
    files: ["{dir}/work/**"]
unregistered_servers: ignore
"#,
        dir = dir.display(),
        glob = python_server_glob(tag),
    )
}

#[test]
fn a_symlink_or_hard_link_to_a_secret_inside_the_allowed_tree_is_the_secret() {
    let tag = unique_tag("linkpaths");
    let dir = common::TempDir::new(&tag);
    let d = dir.path();
    std::fs::create_dir_all(d.join("vault")).unwrap();
    std::fs::create_dir_all(d.join("work")).unwrap();
    let key = d.join("vault/key");
    std::fs::write(&key, "secret key").unwrap();
    std::os::unix::fs::symlink(&key, d.join("work/notes.txt")).unwrap();
    std::fs::hard_link(&key, d.join("work/readme.txt")).unwrap();
    std::fs::write(d.join("work/plain.txt"), "plain").unwrap();
    let policy_path = d.join("policy.yaml");
    std::fs::write(&policy_path, policy(d, &tag)).unwrap();
    let nothing = format!("/nothing/{tag}");
    let daemon = Daemon::start(&["--policy", policy_path.to_str().unwrap(), "--watch", &nothing])
        .expect("daemon starts");

    let path = |p: &str| d.join(p).display().to_string();
    let calls = json!([
        {"tool": "read_secret", "arguments": {"path": path("work/notes.txt")}},
        {"tool": "read_secret", "arguments": {"path": path("work/readme.txt")}},
        {"tool": "read_secret", "arguments": {"path": path("work/plain.txt")}},
    ]);
    let report = drive(Client::Python, "linker", &python_server(&tag), &calls, &[]);
    let mut events = server_events(&daemon, "tool_call", &report["server_pid"]);
    assert_eq!(events.len(), 3, "{events:#?}");
    events.sort_by_key(|e| e["request_id"].as_i64());

    // Through the symlink: the file opened is the vault's key, asked for as the link.
    let symlinked = &events[0];
    let secrets = secrets_of(symlinked);
    assert_eq!(secrets.len(), 1, "{symlinked:#}");
    assert_eq!(secrets[0]["path"], path("vault/key"), "{symlinked:#}");
    assert_eq!(secrets[0]["asked_path"], path("work/notes.txt"), "{symlinked:#}");
    assert_eq!(violation_kinds(symlinked), ["secret_access"], "{symlinked:#}");

    // Through the hard link: the same inode as the key, under an allowed name.
    let linked = &events[1];
    let secrets = secrets_of(linked);
    assert_eq!(secrets.len(), 1, "{linked:#}");
    assert_eq!(secrets[0]["path"], path("work/readme.txt"), "{linked:#}");
    assert_eq!(secrets[0]["hard_link_of"], path("vault/key"), "{linked:#}");
    assert_eq!(violation_kinds(linked), ["secret_access"], "{linked:#}");
    let detail = linked["violations"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("a hard link of"), "{detail}");

    // A plain file in the allowed tree stays allowed.
    let plain = &events[2];
    assert!(secrets_of(plain).is_empty(), "{plain:#}");
    assert_eq!(plain["decision"], "allow", "{plain:#}");
    let files: Vec<&str> = plain["effects"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(files.contains(&path("work/plain.txt").as_str()), "{plain:#}");
}

#[test]
fn a_relative_path_opened_after_a_chdir_names_the_file_the_kernel_opened() {
    let tag = unique_tag("relpath");
    let daemon = Daemon::start(&["--watch", &python_server_glob(&tag)]).expect("daemon starts");
    // The child changes folder and reads `shadow` relative to it, then exits at once:
    // its working directory is gone from /proc before the record is handled.
    let calls = json!([
        {"tool": "run", "arguments": {"cmd": "/bin/sh -c 'cd /etc && exec head -c1 shadow'"}},
    ]);
    let report = drive(Client::Python, "chdirer", &python_server(&tag), &calls, &[]);
    let events = server_events(&daemon, "tool_call", &report["server_pid"]);
    assert_eq!(events.len(), 1, "{events:#?}");
    let paths: Vec<&str> = events[0]["effects"]["secrets"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["path"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(paths, ["/etc/shadow"], "{:#}", events[0]);
    assert!(
        violation_kinds(&events[0]).contains(&"secret_access"),
        "{:#}",
        events[0]
    );
}
