//! The daemon's own security, checked on the real daemon as root with a real MCP server
//! and client: a credential typed into a tool call's arguments reaches no event, log
//! line or metric; `arguments: drop` leaves arguments out; the event file it creates is
//! its owner's only; a policy others can write is refused; once ready, every thread of
//! the daemon holds only the capabilities the README lists.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use integration_tests::{
    daemon_binary,
    mcp::{Client, assert_all_ok, drive, python_server, python_server_glob},
    metrics::http_get,
    read_events, require_root, unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The capabilities the README says the daemon keeps: CAP_SYS_PTRACE and
/// CAP_DAC_READ_SEARCH; CAP_SYS_ADMIN with the TLS uprobes (the default); without
/// them, CAP_BPF on a kernel before 6.5 that disables unprivileged bpf().
fn documented_caps(tls: bool) -> u64 {
    let mut caps = 1 << CAP_SYS_PTRACE | 1 << CAP_DAC_READ_SEARCH;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let kernel = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let bpf_disabled = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled").unwrap();
    if tls {
        caps |= 1 << CAP_SYS_ADMIN;
    } else if kernel < (6, 5) && bpf_disabled.trim() != "0" {
        caps |= 1 << CAP_BPF;
    }
    caps
}

/// A daemon started by this file (not the shared harness, which creates the event file
/// itself): `run ARGS --no-discovery --events PATH --metrics-addr 127.0.0.1:0`, logging
/// at debug level, its stderr kept.
struct Run {
    child: Child,
    events: PathBuf,
    stderr: Arc<Mutex<String>>,
    ready: Value,
}

impl Run {
    fn start(args: &[&str], events: &Path) -> Self {
        require_root();
        let mut child = Command::new(daemon_binary())
            .arg("run")
            .args(args)
            .arg("--no-discovery")
            .arg("--events")
            .arg(events)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the daemon");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let s = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = s.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut run = Self {
            child,
            events: events.to_path_buf(),
            stderr,
            ready: Value::Null,
        };
        run.ready = run.wait_for(|e| e["type"] == "monitor_status" && e["status"] == "ready");
        run
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<Value> {
        if !self.events.exists() {
            return Vec::new();
        }
        read_events(&self.events).unwrap()
    }

    fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "daemon exited ({status}) before the event; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no such event; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metrics(&self) -> String {
        let addr = self.ready["metrics_addr"].as_str().expect("metrics_addr");
        let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        body
    }

    fn hup(&self) {
        // Safety: signalling our own child.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, libc::SIGHUP) }, 0);
    }

    /// SIGTERM, and the exit.
    fn stop(mut self) {
        // Safety: signalling our own child.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder of its own for one test, only root can write to.
fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(tag);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn policy_text(tag: &str, extra: &str) -> String {
    format!(
        "secrets: [\"**/.env\"]\nservers:\n  pytools:\n    match: {{ cmdline: \"{}\" }}\nunregistered_servers: ignore\n{extra}",
        python_server_glob(tag)
    )
}

/// Values nothing else on the host holds: a GitHub-shaped token and a password.
fn fake_secrets() -> (String, String) {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mixed = format!("{:x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let token = format!(
        "ghp_{}",
        format!("{mixed}{mixed}Zk").chars().take(36).collect::<String>()
    );
    let password = format!("Pw{}Qx", &mixed[..12.min(mixed.len())]);
    (token, password)
}

/// The `tool_call` events of one server, once its exit is seen.
fn calls_of(run: &mut Run, server_pid: &Value) -> Vec<Value> {
    run.wait_for(|e| e["type"] == "server_exited" && e["server"]["pid"] == *server_pid);
    let mut calls: Vec<Value> = run
        .events()
        .into_iter()
        .filter(|e| e["type"] == "tool_call" && e["server"]["pid"] == *server_pid)
        .collect();
    calls.sort_by_key(|e| e["request_id"].as_i64());
    calls
}

#[test]
fn a_secret_in_tool_arguments_reaches_no_event_log_or_metric() {
    let tag = unique_tag("selfredact");
    let d = dir(&tag);
    let policy = write_policy(&d, &policy_text(&tag, ""));
    let events = d.join("events.jsonl");
    let mut run = Run::start(&["--policy", policy.to_str().unwrap()], &events);
    let (token, password) = fake_secrets();
    let calls = json!([
        {"tool": "echo", "arguments": {"text": format!("deploy with {token} please")}},
        {"tool": "echo", "arguments": {"text": "plain words", "password": password}},
        {"tool": "run", "arguments": {"cmd": format!("/bin/true --password {password} --token={token}")}},
        {"tool": "read_secret", "arguments": {"path": format!("{}/missing-{token}", d.display())}},
    ]);
    let report = drive(Client::Python, "redact-client", &python_server(&tag), &calls, &[]);
    let made = report["calls"].as_array().unwrap();
    assert_eq!(
        made.iter()
            .map(|c| c["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ok", "ok", "ok", "error"],
        "{report:#}"
    );
    let e = calls_of(&mut run, &report["server_pid"]);
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_eq!(
        e[0]["arguments"],
        json!({"text": "deploy with [redacted:github_token] please"})
    );
    assert_eq!(e[0]["arguments_redacted"], 1);
    assert_eq!(
        e[1]["arguments"],
        json!({"text": "plain words", "password": "[redacted]"})
    );
    assert_eq!(e[1]["arguments_redacted"], 1);
    assert_eq!(
        e[2]["arguments"],
        json!({"cmd": "/bin/true --password [redacted:credential] --token=[redacted:github_token]"}),
        "{:#}",
        e[2]
    );
    let exec = &e[2]["effects"]["exec"][0];
    assert_eq!(exec["path"], "/bin/true", "{:#}", e[2]);
    assert_eq!(
        exec["argv"],
        json!([
            "/bin/true",
            "--password",
            "[redacted:credential]",
            "--token=[redacted:github_token]"
        ]),
        "{exec:#}"
    );
    assert_eq!(exec["argv_redacted"], 2);
    assert_eq!(
        e[3]["arguments"]["path"],
        format!("{}/missing-[redacted:github_token]", d.display())
    );
    // The SDK's error text does not repeat the arguments: error redaction is unit-tested.
    assert!(
        e[3]["error"].as_str().is_some_and(|s| !s.is_empty()),
        "{:#}",
        e[3]
    );
    // Nowhere: the event file, the daemon's log (at debug level), /metrics.
    let metrics = run.metrics();
    assert!(
        metrics.contains("mcp_tool_calls_total{"),
        "the calls are counted: {metrics}"
    );
    let text = std::fs::read_to_string(&events).unwrap();
    let log = run.stderr();
    for secret in [&token, &password] {
        assert!(!text.contains(secret.as_str()), "{secret} in the events:\n{text}");
        assert!(!log.contains(secret.as_str()), "{secret} in the log:\n{log}");
        assert!(!metrics.contains(secret.as_str()), "{secret} in /metrics");
    }
    // The event file the daemon created is its owner's only.
    let mode = std::fs::metadata(&events).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "event file mode {mode:o}");
    run.stop();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn arguments_drop_leaves_every_argument_out_of_events() {
    let tag = unique_tag("selfdrop");
    let d = dir(&tag);
    let policy = write_policy(&d, &policy_text(&tag, "arguments: drop\n"));
    let events = d.join("events.jsonl");
    let mut run = Run::start(&["--policy", policy.to_str().unwrap()], &events);
    let marker = format!("nothing-secret-{}", fake_secrets().1);
    let calls = json!([
        {"tool": "echo", "arguments": {"text": marker}},
        {"tool": "add", "arguments": {"a": 40, "b": 2}},
    ]);
    let report = drive(Client::Python, "drop-client", &python_server(&tag), &calls, &[]);
    assert_all_ok(&report);
    let e = calls_of(&mut run, &report["server_pid"]);
    assert_eq!(e.len(), 2, "{e:#?}");
    for (event, call) in e.iter().zip(calls.as_array().unwrap()) {
        assert!(event.get("arguments").is_none(), "{event:#}");
        assert_eq!(
            event["arguments_bytes"],
            call["arguments"].to_string().len(),
            "{event:#}"
        );
        assert_eq!(event["tool"], call["tool"]);
    }
    // (The client driver's own command line carries the calls: a marker is no credential.)
    let text = serde_json::to_string(&e).unwrap();
    assert!(!text.contains(&marker), "{text}");
    assert!(!run.stderr().contains(&marker));
    run.stop();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_policy_file_others_can_write_is_refused_at_start_at_sighup_and_by_check_policy() {
    let tag = unique_tag("selfpolicy");
    let d = dir(&tag);
    let policy = write_policy(&d, &policy_text(&tag, ""));
    let shown = policy.display().to_string();
    let expected = format!(
        "{shown}: refused: mode 0666 lets group and others write it, and whoever writes the policy decides what the monitor reports (hint: chmod go-w {shown})"
    );
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new(daemon_binary())
        .args(["run", "--policy", &shown, "--metrics-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l == expected), "{stderr}");
    let check = Command::new(daemon_binary())
        .args(["check-policy", &shown])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&check.stderr)
            .lines()
            .any(|l| l == expected),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Running with a safe file, then made writable by others: SIGHUP keeps the old one.
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let events = d.join("events.jsonl");
    let mut run = Run::start(&["--policy", &shown], &events);
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o666)).unwrap();
    run.hup();
    let rejected = run.wait_for(|e| e["status"] == "policy_rejected");
    assert_eq!(rejected["errors"], json!([expected]), "{rejected:#}");
    assert!(run.stderr().contains(&expected), "{}", run.stderr());
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o600)).unwrap();
    run.hup();
    run.wait_for(|e| e["status"] == "policy_loaded");
    run.stop();
    let _ = std::fs::remove_dir_all(&d);
}

/// Each thread's capability sets: (tid, name, [inheritable, permitted, effective,
/// bounding, ambient]).
fn thread_caps(pid: u32) -> Vec<(String, String, [u64; 5])> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue;
        };
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        let name = status.lines().next().unwrap_or("").to_string();
        out.push((
            task.file_name().unwrap().to_string_lossy().into_owned(),
            name,
            [
                field("CapInh:"),
                field("CapPrm:"),
                field("CapEff:"),
                field("CapBnd:"),
                field("CapAmb:"),
            ],
        ));
    }
    out
}

#[test]
fn once_ready_every_thread_holds_only_the_documented_capabilities() {
    for tls in [true, false] {
        let tag = unique_tag(if tls { "selfcaps" } else { "selfcapsnotls" });
        let d = dir(&tag);
        let events = d.join("events.jsonl");
        let glob = format!("*{tag}*");
        let mut args = vec!["--watch", glob.as_str()];
        if !tls {
            args.push("--no-tls");
        }
        let run = Run::start(&args, &events);
        let want = documented_caps(tls);
        let threads = thread_caps(run.pid());
        assert!(threads.len() >= 2, "the uprobe threads are there: {threads:?}");
        for (tid, name, [inh, prm, eff, bnd, amb]) in &threads {
            assert_eq!(
                (*inh, *prm, *eff, *bnd, *amb),
                (0, want, want, want, 0),
                "thread {tid} ({name}), tls {tls}: CapInh/CapPrm/CapEff/CapBnd/CapAmb"
            );
        }
        assert!(
            run.stderr().contains("capabilities: kept "),
            "the kept set is logged: {}",
            run.stderr()
        );
        run.stop();
        let _ = std::fs::remove_dir_all(&d);
    }
}
