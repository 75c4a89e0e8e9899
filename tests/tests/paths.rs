//! A file is judged by what the kernel opened, not by the text the server asked for
//! (issue 13, class 4): a symlink inside the allowed tree that points at a secret, a
//! hard link to a secret under an innocent name, and a relative path opened by a
//! process that changed folder and exited before anything could look at /proc.
//! Real Python SDK server, as root with the real daemon.
mod common;

use std::{os::unix::process::CommandExt as _, path::Path};

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

/// Every program is pending from its exec until the daemon has looked at its exec
/// record, and a pending process's opens are walked in the kernel like a watched
/// one's: a server by its command line that opens a secret through a symlink at once
/// (cat, right after its loader) is reported reading the secret, named by the secret's
/// own path, the link as the path asked for.
#[test]
fn a_secret_opened_through_a_symlink_right_after_exec_is_the_secret() {
    let tag = unique_tag("pendinglink");
    let dir = common::TempDir::new(&tag);
    let d = dir.path();
    std::fs::create_dir_all(d.join("vault")).unwrap();
    std::fs::create_dir_all(d.join("work")).unwrap();
    let key = d.join("vault/key");
    std::fs::write(&key, "secret key\n").unwrap();
    let link = d.join("work/notes.txt");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    let policy_path = d.join("policy.yaml");
    std::fs::write(
        &policy_path,
        format!(
            r#"secrets: ["{dir}/vault/*"]
servers:
  starter:
    match: {{ cmdline: "*{tag}-starter*" }}
unregistered_servers: ignore
"#,
            dir = d.display(),
        ),
    )
    .unwrap();
    let nothing = format!("/nothing/{tag}");
    let daemon = Daemon::start(&["--policy", policy_path.to_str().unwrap(), "--watch", &nothing])
        .expect("daemon starts");
    // The tag is its argv[0]; cat opens the link OPENS times as soon as its loader is
    // done, then waits on its stdin. The daemon is stopped meanwhile, so that it cannot
    // have looked at cat's exec before these opens: cat is pending for all of them.
    const OPENS: usize = 20;
    // Safety: signals to the daemon this test started.
    assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGSTOP) }, 0);
    let mut child = std::process::Command::new("/bin/cat")
        .arg0(format!("{tag}-starter"))
        .args(std::iter::repeat_n(link.as_os_str(), OPENS))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Safety: as above.
    assert_eq!(unsafe { libc::kill(daemon.pid() as i32, libc::SIGCONT) }, 0);
    let pid = child.id();
    let accesses = |events: &[serde_json::Value]| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["type"] == "secret_access" && e["server"]["pid"] == pid)
            .cloned()
            .collect()
    };
    let found = daemon.wait_until(std::time::Duration::from_secs(10), |events| {
        accesses(events).len() >= OPENS
    });
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let events = daemon.events();
    let accesses = accesses(&events);
    assert!(
        found.is_ok(),
        "{} of {OPENS} opens of the link reported as the secret: {accesses:#?}\nall events: {events:#?}",
        accesses.len()
    );
    for access in &accesses {
        assert_eq!(access["path"], key.display().to_string(), "{access:#}");
        assert_eq!(access["asked_path"], link.display().to_string(), "{access:#}");
        assert_eq!(access["ok"], true, "{access:#}");
    }
}
