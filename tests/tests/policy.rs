//! Declared scopes, checked by the real daemon as root against real servers: the
//! effects and violations of every call are exactly the expected ones, with the rule
//! that decided them; a call within scope has none.
mod common;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration_tests::{
    Daemon,
    mcp::{
        Client, assert_all_ok, drive, filesystem_server, python_server, python_server_glob, server_events,
    },
    unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A temporary HOME with an SSH key and an ordinary file, and two loopback listeners:
/// one the policy allows, one it does not.
struct World {
    tag: String,
    home: PathBuf,
    allowed: TcpListener,
    denied: TcpListener,
}

impl World {
    fn new(name: &str) -> Self {
        let tag = unique_tag(name);
        let home = std::env::temp_dir().join(&tag).join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
        std::fs::write(home.join("notes.txt"), "nothing secret\n").unwrap();
        let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
        let denied = TcpListener::bind("127.0.0.1:0").unwrap();
        Self {
            tag,
            home,
            allowed,
            denied,
        }
    }

    fn port(l: &TcpListener) -> u16 {
        l.local_addr().unwrap().port()
    }

    fn policy(&self, alice_tools: &str) -> String {
        format!(
            r#"secrets: ["~/.ssh/**", "**/.env"]
servers:
  pytools:
    match: {{ cmdline: "{glob}" }}
    tools: [echo, add, read_secret, run, connect]
    files: ["{home}/*.txt"]
    exec: ["/bin/true"]
    connect: ["127.0.0.1:{allowed}"]
    agents:
      alice: {{ client: "alice-*", tools: {alice_tools} }}
      bob: {{ client: "bob-*", tools: [echo] }}
unregistered_servers: ignore
"#,
            glob = python_server_glob(&self.tag),
            home = self.home.display(),
            allowed = Self::port(&self.allowed),
        )
    }

    fn write_policy(&self, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(&self.tag).join("policy.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The daemon with this policy; `--watch` names nothing so only the policy's
    /// server entry is watched (the built-in patterns would match the test clients).
    fn daemon(&self, policy: &Path) -> Daemon {
        let nothing = format!("/nothing/{}", self.tag);
        Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &nothing]).expect("daemon starts")
    }

    /// One client session with the Python server in this HOME; its tool_call events.
    fn session(&self, d: &Daemon, client: &str, calls: Value) -> (Value, Vec<Value>) {
        let server = python_server(&self.tag);
        let env = [format!("HOME={}", self.home.display())];
        let report = drive(Client::Python, client, &server, &calls, &env);
        let events = server_events(d, "tool_call", &report["server_pid"]);
        assert_eq!(
            events.len(),
            calls.as_array().unwrap().len(),
            "one event per call: {events:#?}"
        );
        (report, events)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&self.tag));
    }
}

/// (kind, rule) of every violation of a call.
fn violations(e: &Value) -> Vec<(String, String)> {
    e["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations array: {e:#}"))
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn v(kind: &str, rule: &str) -> (String, String) {
    (kind.to_string(), rule.to_string())
}

fn paths(e: &Value, group: &str, key: &str) -> Vec<String> {
    e["effects"][group]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[key].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn effects_and_violations_of_each_call_are_exactly_the_expected_ones() {
    let w = World::new("scopes");
    let policy = w.write_policy(&w.policy("[echo, read_secret, run, connect]"));
    let d = w.daemon(&policy);
    let key = w.home.join(".ssh/id_rsa").display().to_string();
    let notes = w.home.join("notes.txt").display().to_string();
    let (allowed, denied) = (World::port(&w.allowed), World::port(&w.denied));
    let (report, e) = w.session(
        &d,
        "alice-cli",
        json!([
            {"tool": "echo", "arguments": {"text": "hi"}},
            {"tool": "read_secret", "arguments": {"path": key}},
            {"tool": "read_secret", "arguments": {"path": notes}},
            {"tool": "read_secret", "arguments": {"path": "/etc/hostname"}},
            {"tool": "run", "arguments": {"cmd": "/bin/true"}},
            {"tool": "run", "arguments": {"cmd": "/bin/echo quiet"}},
            {"tool": "connect", "arguments": {"port": allowed}},
            {"tool": "connect", "arguments": {"port": denied}},
        ]),
    );
    assert_all_ok(&report);
    for call in &e {
        assert_eq!(call["agent"]["name"], "alice", "{call:#}");
        assert_eq!(call["server"]["name"], "pytools");
    }
    // echo: in scope, no effects worth listing.
    assert_eq!(e[0]["decision"], "allow", "{:#}", e[0]);
    assert_eq!(violations(&e[0]), []);
    for group in ["files", "secrets", "exec", "connect"] {
        assert_eq!(e[0]["effects"][group], json!([]), "{group}: {:#}", e[0]);
    }
    // The SSH key: a secret, reported with its class and rule, never its content.
    assert_eq!(e[1]["decision"], "violation");
    assert_eq!(violations(&e[1]), [v("secret_access", "secrets[0] ~/.ssh/**")]);
    let secret = &e[1]["effects"]["secrets"][0];
    assert_eq!(
        (secret["path"].as_str(), secret["class"].as_str()),
        (Some(key.as_str()), Some("ssh_key"))
    );
    assert!(!e[1].to_string().contains("PRIVATE KEY"), "secret content leaked");
    assert_eq!(paths(&e[1], "files", "path"), Vec::<String>::new());
    // An ordinary file inside `files`: listed, allowed.
    assert_eq!(violations(&e[2]), []);
    assert_eq!(paths(&e[2], "files", "path"), [notes]);
    // A file outside `files`.
    assert_eq!(
        violations(&e[3]),
        [v("file_out_of_scope", "servers.pytools.files")]
    );
    assert_eq!(paths(&e[3], "files", "path"), ["/etc/hostname"]);
    // Programs.
    assert_eq!(violations(&e[4]), []);
    assert_eq!(paths(&e[4], "exec", "path"), ["/bin/true"]);
    assert_eq!(
        violations(&e[5]),
        [v("exec_out_of_scope", "servers.pytools.exec")]
    );
    assert_eq!(paths(&e[5], "exec", "path"), ["/bin/echo"]);
    assert_eq!(e[5]["effects"]["exec"][0]["argv"], json!(["/bin/echo", "quiet"]));
    // Connections.
    assert_eq!(violations(&e[6]), []);
    assert_eq!(
        paths(&e[6], "connect", "address"),
        [format!("127.0.0.1:{allowed}")]
    );
    assert_eq!(
        violations(&e[7]),
        [v("connect_out_of_scope", "servers.pytools.connect")]
    );
    assert_eq!(
        paths(&e[7], "connect", "address"),
        [format!("127.0.0.1:{denied}")]
    );
    // Runtime noise (libraries, /proc...) is counted, not listed.
    assert!(e[4]["effects"]["noise"].as_u64().unwrap() > 0, "{:#}", e[4]);
}

#[test]
fn agents_are_told_apart_by_client_name_and_held_to_their_own_tools() {
    let w = World::new("agents");
    let policy = w.write_policy(&w.policy("[echo, read_secret, run, connect]"));
    let d = w.daemon(&policy);
    let key = w.home.join(".ssh/id_rsa").display().to_string();
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "hi"}},
        {"tool": "read_secret", "arguments": {"path": key}},
        {"tool": "add", "arguments": {"a": 1, "b": 2}},
    ]);
    let (_, alice) = w.session(&d, "alice-ide", calls.clone());
    let (_, bob) = w.session(&d, "bob-agent", calls.clone());
    let (_, carol) = w.session(&d, "carol", calls);
    let tools_of = |agent: &str| {
        v(
            "tool_out_of_scope",
            &format!("servers.pytools.agents.{agent}.tools"),
        )
    };
    assert_eq!(violations(&alice[0]), []);
    assert_eq!(
        violations(&alice[1]),
        [v("secret_access", "secrets[0] ~/.ssh/**")]
    );
    assert_eq!(
        violations(&alice[2]),
        [tools_of("alice")],
        "add is the server's, not alice's"
    );
    assert_eq!(violations(&bob[0]), []);
    assert_eq!(
        violations(&bob[1]),
        [tools_of("bob"), v("secret_access", "secrets[0] ~/.ssh/**")]
    );
    assert_eq!(violations(&bob[2]), [tools_of("bob")]);
    for e in &carol {
        assert_eq!(e["agent"]["name"], Value::Null);
        assert_eq!(
            violations(e)[0],
            v("unknown_agent", "servers.pytools.agents"),
            "{e:#}"
        );
    }
    assert_eq!(
        (
            alice[0]["agent"]["name"].as_str(),
            bob[0]["agent"]["name"].as_str()
        ),
        (Some("alice"), Some("bob"))
    );
}

#[test]
fn filesystem_server_reading_a_dot_env_in_its_root_is_secret_access() {
    let tag = unique_tag("dotenv");
    let root = std::env::temp_dir().join(&tag).join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(".env"), "API_TOKEN=do-not-leak\n").unwrap();
    std::fs::write(root.join("readme.md"), "hello\n").unwrap();
    // The built-in policy: `**/.env` is a secret, the filesystem server is registered.
    let d = Daemon::start(&["--watch", &format!("node *server-filesystem* {}", root.display())]).unwrap();
    let calls = json!([
        {"tool": "read_text_file", "arguments": {"path": root.join("readme.md")}},
        {"tool": "read_text_file", "arguments": {"path": root.join(".env")}},
    ]);
    let report = drive(
        Client::Python,
        "dotenv-reader",
        &filesystem_server(&root),
        &calls,
        &[],
    );
    assert_all_ok(&report);
    let e = server_events(&d, "tool_call", &report["server_pid"]);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["server"]["name"], "filesystem");
    assert_eq!(violations(&e[0]), [], "{:#}", e[0]);
    assert_eq!(
        paths(&e[0], "files", "path"),
        [root.join("readme.md").display().to_string()]
    );
    assert_eq!(e[1]["decision"], "violation");
    let env_path = root.join(".env").display().to_string();
    assert_eq!(violations(&e[1]).len(), 1, "{:#}", e[1]);
    assert_eq!(violations(&e[1])[0].0, "secret_access");
    assert!(
        violations(&e[1])[0].1.ends_with("**/.env"),
        "{:?}",
        violations(&e[1])
    );
    assert_eq!(paths(&e[1], "secrets", "path"), [env_path]);
    assert_eq!(e[1]["effects"]["secrets"][0]["class"], "env_file");
    assert!(!e[1].to_string().contains("do-not-leak"), "secret content leaked");
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}

#[test]
fn invalid_policy_at_start_up_exits_non_zero_with_the_place_of_the_mistake() {
    let dir = std::env::temp_dir().join(unique_tag("badpolicy"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "servers:\n  x:\n    match: {cmdline: \"*x*\"}\n    tols: [a]\n",
    )
    .unwrap();
    let out = Command::new(integration_tests::daemon_binary())
        .args([
            "run",
            "--policy",
            path.to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:4:5: servers.x.tols: unknown key (hint: did you mean `tools`?)",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let check = Command::new(integration_tests::daemon_binary())
        .args(["check-policy", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stderr).contains(&expected));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sighup_keeps_the_old_policy_when_the_new_one_is_invalid_and_applies_a_valid_one() {
    let w = World::new("sighup");
    let policy = w.write_policy(&w.policy("[echo]"));
    let d = w.daemon(&policy);
    let hup = || {
        // Safety: signalling our own child.
        assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) }, 0);
    };
    let echo = json!([{"tool": "echo", "arguments": {"text": "hi"}}]);
    std::fs::write(&policy, "servers: [not, a, mapping]\n").unwrap();
    hup();
    let rejected = d
        .wait_for(WAIT, |e| e["status"] == "policy_rejected")
        .expect("rejection reported");
    assert!(
        rejected["errors"][0]
            .as_str()
            .unwrap()
            .contains("servers: must be a mapping"),
        "{rejected:#}"
    );
    let (_, e) = w.session(&d, "alice-1", echo.clone());
    assert_eq!(
        violations(&e[0]),
        [],
        "the old policy still allows echo: {:#}",
        e[0]
    );
    std::fs::write(&policy, w.policy("[add]")).unwrap();
    hup();
    d.wait_for(WAIT, |e| e["status"] == "policy_loaded")
        .expect("new policy loaded");
    let (_, e) = w.session(&d, "alice-2", echo);
    assert_eq!(
        violations(&e[0]),
        [v("tool_out_of_scope", "servers.pytools.agents.alice.tools")]
    );
}

/// (server name, kind) of every violation in the events: each `violation` event once,
/// each violation inside a call event once.
fn violation_counts(events: &[Value]) -> std::collections::BTreeMap<(String, String), f64> {
    let mut out = std::collections::BTreeMap::new();
    for e in events {
        let server = e["server"]["name"].as_str().unwrap_or("<null>").to_string();
        let kinds: Vec<String> = match e["type"].as_str() {
            Some("violation") => vec![e["kind"].as_str().unwrap().to_string()],
            Some("tool_call") => violations(e).into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        };
        for k in kinds {
            *out.entry((server.clone(), k)).or_default() += 1.0;
        }
    }
    out
}

/// `mcp_scope_violations_total` summed over agents, per (server, kind).
fn violation_metrics(d: &Daemon) -> std::collections::BTreeMap<(String, String), f64> {
    let addr = d.ready["metrics_addr"].as_str().unwrap();
    let (_, body) = common::http_get(addr, "/metrics").unwrap();
    let mut out = std::collections::BTreeMap::new();
    for s in common::parse_exposition(&body).unwrap() {
        if s.name == "mcp_scope_violations_total" {
            *out.entry((s.labels["server"].clone(), s.labels["kind"].clone()))
                .or_default() += s.value;
        }
    }
    out
}

#[test]
fn every_call_on_an_unregistered_server_is_a_violation_and_events_match_metrics() {
    let w = World::new("unregistered");
    // An entry that matches nothing; the Python server is found by `--watch`.
    let policy = w.write_policy(&format!(
        "servers:\n  other:\n    match: {{ cmdline: \"/nothing/{}\" }}\nunregistered_servers: violation\n",
        w.tag
    ));
    let glob = python_server_glob(&w.tag);
    let d = Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &glob]).unwrap();
    let (report, e) = w.session(
        &d,
        "alice-cli",
        json!([
            {"tool": "echo", "arguments": {"text": "hi"}},
            {"tool": "add", "arguments": {"a": 1, "b": 2}},
        ]),
    );
    assert_all_ok(&report);
    for call in &e {
        assert_eq!(call["decision"], "violation", "{call:#}");
        assert_eq!(
            violations(call),
            [v("unregistered_server", "unregistered_servers")]
        );
        assert_eq!(call["server"]["name"], "unregistered", "{call:#}");
    }
    let events = d.events();
    let pid = &report["server_pid"];
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["server"]["pid"] == *pid && e["type"] != "tool_call")
        .collect();
    assert!(
        started.iter().all(|e| e["server"]["name"] == "unregistered"),
        "{started:#?}"
    );
    // The metrics count exactly what the events carry, per (server, kind).
    let counted = violation_counts(&events);
    assert_eq!(
        counted.get(&("unregistered".to_string(), "unregistered_server".to_string())),
        Some(&3.0),
        "the start and both calls: {counted:?}"
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = violation_metrics(&d);
        if metrics == counted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics {metrics:?} != events {counted:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn real_servers_started_with_a_narrow_files_list_raise_no_violation() {
    let tag = unique_tag("narrow");
    let root = std::env::temp_dir().join(&tag).join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "in scope\n").unwrap();
    let files = format!("[\"{}/**\"]", root.display());
    let policy = std::env::temp_dir().join(&tag).join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"servers:
  filesystem:
    match: {{ cmdline: "node *server-filesystem* {root}" }}
    files: {files}
  pytools:
    match: {{ cmdline: "{py}" }}
    files: {files}
  time:
    match: {{ cmdline: "*mcp-server-time --local-timezone Europe/Paris" }}
    files: {files}
unregistered_servers: ignore
"#,
            root = root.display(),
            py = python_server_glob(&tag),
        ),
    )
    .unwrap();
    let nothing = format!("/nothing/{tag}");
    let d = Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &nothing]).unwrap();
    let time_server = vec![
        integration_tests::mcp::mcp_dir()
            .join(".venv/bin/mcp-server-time")
            .display()
            .to_string(),
        "--local-timezone".into(),
        "Europe/Paris".into(),
    ];
    let a_txt = root.join("a.txt").display().to_string();
    let runs = [
        (
            "filesystem",
            filesystem_server(&root),
            json!([{"tool": "list_directory", "arguments": {"path": root}},
                   {"tool": "read_text_file", "arguments": {"path": a_txt}}]),
        ),
        (
            "pytools",
            python_server(&tag),
            json!([{"tool": "read_secret", "arguments": {"path": a_txt}}]),
        ),
        (
            "time",
            time_server,
            json!([{"tool": "get_current_time", "arguments": {"timezone": "Europe/Paris"}}]),
        ),
    ];
    for (name, server, calls) in runs {
        let report = drive(Client::Python, "narrow", &server, &calls, &[]);
        assert_all_ok(&report);
        let pid = &report["server_pid"];
        let e = server_events(&d, "tool_call", pid);
        assert_eq!(e.len(), calls.as_array().unwrap().len(), "{name}: {e:#?}");
        for call in &e {
            assert_eq!(call["server"]["name"], name);
            assert_eq!(violations(call), [], "{name}: {call:#}");
        }
        let outside: Vec<Value> = d
            .events()
            .into_iter()
            .filter(|e| e["type"] == "violation" && e["server"]["pid"] == *pid)
            .collect();
        assert_eq!(outside, Vec::<Value>::new(), "{name} started with violations");
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&tag));
}

#[test]
fn the_home_a_server_is_started_with_does_not_widen_its_allow_lists() {
    let w = World::new("homebypass");
    std::fs::create_dir_all(w.home.join(".aws")).unwrap();
    let creds = w.home.join(".aws/credentials");
    std::fs::write(&creds, "[default]\naws_secret_access_key=do-not-leak\n").unwrap();
    let policy = w.write_policy(&format!(
        r#"secrets: ["~/.aws/credentials"]
servers:
  pytools:
    match: {{ cmdline: "{glob}" }}
    files: ["~/**"]
    secrets: ["~/.aws/credentials"]
unregistered_servers: ignore
"#,
        glob = python_server_glob(&w.tag)
    ));
    let d = w.daemon(&policy);
    let server = python_server(&w.tag);
    let read = |path: &str| json!([{"tool": "read_secret", "arguments": {"path": path}}]);
    // HOME=/ must not turn `~/**` into `/**`: the owner (root) has /root.
    let report = drive(
        Client::Python,
        "alice-x",
        &server,
        &read("/etc/hostname"),
        &["HOME=/".into()],
    );
    assert_all_ok(&report);
    let e = server_events(&d, "tool_call", &report["server_pid"]);
    assert_eq!(
        violations(&e[0]),
        [v("file_out_of_scope", "servers.pytools.files")],
        "{:#}",
        e[0]
    );
    // Credentials under the HOME it was started with: found (detection uses both
    // homes), but not allowed by the server's `secrets`, which means the owner's.
    let report = drive(
        Client::Python,
        "alice-y",
        &server,
        &read(creds.to_str().unwrap()),
        &[format!("HOME={}", w.home.display())],
    );
    assert_all_ok(&report);
    let e = server_events(&d, "tool_call", &report["server_pid"]);
    assert_eq!(
        violations(&e[0]),
        [v("secret_access", "secrets[0] ~/.aws/credentials")],
        "{:#}",
        e[0]
    );
    assert_eq!(e[0]["effects"]["secrets"][0]["allowed_by"], Value::Null);
    assert!(!e[0].to_string().contains("do-not-leak"));
}

#[test]
fn a_call_in_flight_across_a_reload_that_renames_its_entry_keeps_its_violations() {
    let w = World::new("reloadrename");
    let entry = |name: &str, tools: &str| {
        format!(
            "servers:\n  {name}:\n    match: {{ cmdline: \"{}\" }}\n    tools: {tools}\n    exec: []\nunregistered_servers: violation\n",
            python_server_glob(&w.tag)
        )
    };
    let policy = w.write_policy(&entry("pytools", "[echo]"));
    let d = w.daemon(&policy);
    // A sleep no other test runs, so this test can see when the call is under way.
    let sleep = format!("/bin/sleep 3.{}", std::process::id() % 1000);
    let slow = json!([{"tool": "run", "arguments": {"cmd": sleep}}]);
    let server = python_server(&w.tag);
    let session = std::thread::spawn(move || drive(Client::Python, "alice-slow", &server, &slow, &[]));
    let deadline = std::time::Instant::now() + WAIT;
    while !sleeping(&sleep) {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow call never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it runs: the entry is renamed and allows everything.
    std::fs::write(&policy, "servers:\n  renamed:\n    match: { cmdline: \"*\" }\n").unwrap();
    // Safety: signalling our own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) }, 0);
    d.wait_for(WAIT, |e| e["status"] == "policy_loaded").unwrap();
    let report = session.join().unwrap();
    assert_all_ok(&report);
    let e = server_events(&d, "tool_call", &report["server_pid"]);
    assert_eq!(e[0]["decision"], "violation", "{:#}", e[0]);
    assert_eq!(
        violations(&e[0]),
        [
            v("tool_out_of_scope", "servers.pytools.tools"),
            v("exec_out_of_scope", "servers.pytools.exec")
        ]
    );
    assert_eq!(e[0]["server"]["name"], "pytools", "named as its policy named it");
    // The next call is judged by the new policy.
    let (_, e) = w.session(
        &d,
        "alice-next",
        json!([{"tool": "run", "arguments": {"cmd": "/bin/true"}}]),
    );
    assert_eq!(e[0]["server"]["name"], "renamed");
    assert_eq!(violations(&e[0]), []);
}

/// Whether a process runs exactly this command line.
fn sleeping(cmdline: &str) -> bool {
    let want: Vec<u8> = cmdline
        .split(' ')
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c == want))
}
