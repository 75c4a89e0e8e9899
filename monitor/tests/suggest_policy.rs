//! `mcp-monitor suggest-policy` on the recordings of real sessions (see
//! replay_fixtures.rs), through the binary as a user runs it: the events of a replay
//! give a policy that `check-policy` accepts, that says field by field what the session
//! did, and under which the same session replays with every call allowed and no
//! violation at all. With `--policy`, the differences from the policy in force.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use monitor::policy::Policy;
use serde_json::Value;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-monitor"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A folder of its own under the temporary directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("suggest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn join(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("mcp-monitor runs")
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Replays a fixture (under `policy`, if given) into `events`; returns the events.
fn replay(name: &str, policy: Option<&Path>, events: &Path) -> Vec<Value> {
    let rec = fixture(&format!("{name}.mcprec"));
    let mut args = vec![
        "replay",
        rec.to_str().unwrap(),
        "--format",
        "json",
        "--events",
        events.to_str().unwrap(),
    ];
    if let Some(p) = policy {
        args.extend(["--policy", p.to_str().unwrap()]);
    }
    let _ = std::fs::remove_file(events);
    ok(run(&args), "replay");
    std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `suggest-policy --events EVENTS [--policy P] --out OUT`: (the policy text, stderr).
fn suggest(events: &Path, policy: Option<&Path>, out: &Path) -> (String, String) {
    let mut args = vec![
        "suggest-policy",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(p) = policy {
        args.extend(["--policy", p.to_str().unwrap()]);
    }
    let o = ok(run(&args), "suggest-policy");
    (
        std::fs::read_to_string(out).unwrap(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// What the session did, from its own events: tools per client, files, secrets, programs.
fn tools_called(events: &[Value], client: &str) -> Vec<String> {
    sorted(
        of_type(events, "tool_call")
            .iter()
            .filter(|c| c["agent"]["client"]["name"] == client)
            .map(|c| c["tool"].as_str().unwrap().to_string())
            .collect(),
    )
}

fn effect_paths(events: &[Value], group: &str) -> Vec<String> {
    sorted(
        of_type(events, "tool_call")
            .iter()
            .flat_map(|c| c["effects"][group].as_array().unwrap().clone())
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect(),
    )
}

/// Suggests from the fixture's events, checks the policy with `check-policy`, replays
/// the same recording under it: every call allowed, no violation event. Returns
/// (the events the suggestion came from, the policy text, the parsed policy).
fn suggest_and_replay(name: &str, dir: &Dir) -> (Vec<Value>, String, Policy) {
    let events_path = dir.join(&format!("{name}.jsonl"));
    let events = replay(name, None, &events_path);
    assert!(!of_type(&events, "tool_call").is_empty(), "{name}: {events:#?}");
    let out = dir.join(&format!("{name}.policy.yaml"));
    let (text, stderr) = suggest(&events_path, None, &out);
    assert!(stderr.contains("suggested 1 server entry"), "{stderr}");
    let check = ok(run(&["check-policy", out.to_str().unwrap()]), "check-policy");
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(summary.contains("valid: 1 server(s), 1 agent(s)"), "{summary}");
    // Deterministic: the same events give the same bytes.
    let again = dir.join(&format!("{name}.again.yaml"));
    assert_eq!(suggest(&events_path, None, &again).0, text);

    let replayed = replay(name, Some(&out), &dir.join(&format!("{name}.replayed.jsonl")));
    let calls = of_type(&replayed, "tool_call");
    assert_eq!(calls.len(), of_type(&events, "tool_call").len(), "{replayed:#?}");
    for c in &calls {
        assert_eq!(c["decision"], "allow", "{name}: {c:#}\n{text}");
        assert_eq!(c["violations"], serde_json::json!([]), "{c:#}");
    }
    assert_eq!(
        of_type(&replayed, "violation"),
        Vec::<&Value>::new(),
        "{name}\n{text}"
    );
    let policy = Policy::parse("suggested", &text).unwrap();
    (events, text, policy)
}

#[test]
fn a_filesystem_session_gives_a_policy_it_replays_under_without_violations() {
    let dir = Dir::new("fs");
    let (events, text, p) = suggest_and_replay("filesystem_ts", &dir);
    assert_eq!(p.servers.len(), 1, "{text}");
    let s = &p.servers[0];
    assert_eq!(s.name, "filesystem", "the entry the recording named it by");
    let cmdline = of_type(&events, "server_started")[0]["server"]["cmdline"]
        .as_str()
        .unwrap()
        .to_string();
    // The per-run folder of the recording (/tmp/<tag>/root) is `*`, the rest literal.
    let tag = cmdline.rsplit('/').nth(1).unwrap();
    assert!(tag.starts_with("treplayfs"), "{cmdline}");
    assert_eq!(s.cmdline.as_deref(), Some(cmdline.replace(tag, "*").as_str()));
    assert_eq!(p.match_server(&cmdline, "/usr/bin/node", None), Some(0));
    assert_eq!(
        p.match_server(&cmdline.replace(tag, "tsuggestrerun"), "/usr/bin/node", None),
        Some(0),
        "a rerun in another temporary folder matches too"
    );
    assert_eq!(
        p.match_server("node /elsewhere/index.js /tmp/x/root", "/usr/bin/node", None),
        None
    );
    // Tools per agent: the one client, with exactly the tools it called.
    assert!(s.tools.is_none(), "tools are on the agents: {text}");
    assert_eq!(s.agents.len(), 1);
    let a = &s.agents[0];
    assert_eq!(
        (a.name.as_str(), a.client.as_deref(), a.uid, a.exe.as_deref()),
        ("ts-replay", Some("ts-replay"), Some(0), Some("/usr/bin/node"))
    );
    let called = tools_called(&events, "ts-replay");
    assert_eq!(called, ["list_directory", "no_such_tool", "read_text_file"]);
    assert_eq!(a.tools.as_ref().unwrap().items, called);
    // Files: the two opened, their per-run folder generalised; nothing else allowed.
    let opened = effect_paths(&events, "files");
    assert_eq!(opened.len(), 2, "{opened:?}");
    let files = s.files.as_ref().unwrap();
    assert_eq!(files.items, ["/tmp/*/root", "/tmp/*/root/notes.txt"]);
    let homes = monitor::policy::Homes::default();
    for f in &opened {
        assert!(files.allowing(f, &homes).is_some(), "{f}");
    }
    assert!(files.allowing("/tmp/x/root/other.txt", &homes).is_none());
    // /etc/shadow was asked for but the server refused before opening it: no secret.
    assert_eq!(effect_paths(&events, "secrets"), Vec::<String>::new());
    assert!(s.secrets.items.is_empty());
    assert_eq!(s.exec.as_ref().unwrap().items, Vec::<String>::new());
    assert_eq!(s.connect.as_ref().unwrap().items, Vec::<String>::new());
    // Where each came from.
    assert!(
        text.contains("- \"read_text_file\"  # called 2 times, first "),
        "{text}"
    );
    assert!(text.contains("# command line seen: node "), "{text}");
    assert!(text.contains("unregistered_servers: violation"), "{text}");
}

#[test]
fn a_python_session_gives_a_policy_that_allows_its_secret_for_review_only() {
    let dir = Dir::new("py");
    let (events, text, p) = suggest_and_replay("python_stateless", &dir);
    let s = &p.servers[0];
    // Unregistered when recorded: named after its script, matched by its command line.
    assert_eq!(s.name, "py_server");
    assert!(
        s.cmdline
            .as_deref()
            .unwrap()
            .ends_with("py_server.py --name treplaypyx*x*"),
        "{text}"
    );
    let a = &s.agents[0];
    assert_eq!(a.client.as_deref(), Some("py-replay"));
    assert_eq!(
        a.tools.as_ref().unwrap().items,
        tools_called(&events, "py-replay")
    );
    assert_eq!(
        a.tools.as_ref().unwrap().items,
        ["echo", "fail", "read_secret", "run"]
    );
    assert_eq!(s.files.as_ref().unwrap().items, Vec::<String>::new());
    assert_eq!(effect_paths(&events, "secrets"), ["/etc/shadow"]);
    assert_eq!(s.secrets.items, ["/etc/shadow"]);
    // The server's own allowance (the global list of patterns has it too, to detect).
    let line = text
        .lines()
        .find(|l| l.starts_with("      - \"/etc/shadow\""))
        .unwrap();
    assert!(line.contains("# REVIEW: system_password read 1 time"), "{line}");
    assert_eq!(effect_paths(&events, "exec"), ["/bin/true"]);
    assert_eq!(s.exec.as_ref().unwrap().items, ["/bin/true"]);
    // Replayed under it, the secret read is allowed by that entry, and still listed.
    let replayed = replay(
        "python_stateless",
        Some(&dir.join("python_stateless.policy.yaml")),
        &dir.join("again.jsonl"),
    );
    let read = of_type(&replayed, "tool_call")
        .into_iter()
        .find(|c| c["tool"] == "read_secret")
        .unwrap();
    assert_eq!(
        read["effects"]["secrets"][0]["allowed_by"],
        "servers.py_server.secrets /etc/shadow"
    );
}

#[test]
fn with_the_policy_in_force_the_diff_lists_unused_and_undeclared() {
    let dir = Dir::new("diff");
    let events_path = dir.join("fs.jsonl");
    let events = replay("filesystem_ts", None, &events_path);
    let cmdline = of_type(&events, "server_started")[0]["server"]["cmdline"]
        .as_str()
        .unwrap()
        .to_string();
    // In force: a tool never used (write_file), and one used missing (list_directory).
    let current = dir.join("current.yaml");
    std::fs::write(
        &current,
        format!(
            "secrets: [\"/etc/shadow\"]\nservers:\n  fs:\n    match: {{ cmdline: {cmdline:?} }}\n    tools: [read_text_file, write_file, no_such_tool]\n    files: [\"/tmp/**\"]\nunregistered_servers: violation\n"
        ),
    )
    .unwrap();
    let out = dir.join("suggested.yaml");
    let (text, stderr) = suggest(&events_path, Some(&current), &out);
    assert!(
        stderr.contains("1 declared but never used, 1 used but undeclared"),
        "{stderr}"
    );
    let top: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    let unused = top
        .iter()
        .position(|l| l.starts_with("# Declared but never used (1)"))
        .unwrap();
    let undeclared = top
        .iter()
        .position(|l| l.starts_with("# Used but undeclared (1)"))
        .unwrap();
    assert!(unused < undeclared, "{text}");
    assert_eq!(
        top[unused + 1],
        "#   servers.fs.tools: \"write_file\" never called"
    );
    assert_eq!(
        top[undeclared + 2],
        "#   servers.fs.tools: \"list_directory\" called 1 time by client \"ts-replay\", uid 0, exe \"/usr/bin/node\" (tool_out_of_scope)",
        "{text}"
    );
    // The suggestion is named and matched as the policy in force names it, and keeps
    // its secret patterns; it allows what was used, and no more.
    let p = Policy::parse("suggested", &text).unwrap();
    assert_eq!(p.servers[0].name, "fs");
    assert_eq!(p.servers[0].cmdline.as_deref(), Some(cmdline.as_str()));
    assert_eq!(
        p.secrets.iter().map(|s| s.glob.as_str()).collect::<Vec<_>>(),
        ["/etc/shadow"]
    );
    let tools = &p.servers[0].agents[0].tools.as_ref().unwrap().items;
    assert_eq!(tools, &["list_directory", "no_such_tool", "read_text_file"]);
    // Against itself, a suggestion has nothing to narrow and nothing undeclared.
    let (_, stderr) = suggest(&events_path, Some(&out), &dir.join("fixed-point.yaml"));
    assert!(
        stderr.contains("0 declared but never used, 0 used but undeclared"),
        "{stderr}"
    );
}
