//! `mcp-monitor report` on event logs of real sessions: the committed recordings
//! (monitor/tests/fixtures) are replayed by the real binary into event logs, and the
//! review of those logs is compared, field by field, with what the sessions did (the
//! TypeScript client on the npm filesystem server: 4 calls, 2 of them errors; the
//! Python client on a Python SDK server the built-in policy does not name: 4 calls,
//! one reading /etc/shadow, one failing). Crafted logs check what real sessions do not
//! show: hostile names, a consistency difference, static secrets, bad lines.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-monitor");

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A folder for one test, emptied first.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("report-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replays recording `name` with the real binary into an event log in `dir`.
fn replay_log(dir: &Path, name: &str) -> PathBuf {
    let events = dir.join(format!("{name}.jsonl"));
    let out = Command::new(BIN)
        .arg("replay")
        .arg(fixture(&format!("{name}.mcprec")))
        .arg("--events")
        .arg(&events)
        .arg("--format")
        .arg("json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
}

fn gzip(path: &Path) -> PathBuf {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&std::fs::read(path).unwrap()).unwrap();
    let out = path.with_extension("jsonl.1.gz");
    std::fs::write(&out, gz.finish().unwrap()).unwrap();
    out
}

fn report(args: &[&str], logs: &[&Path]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("report").args(args).arg("--events").args(logs);
    cmd.output().unwrap()
}

fn report_json(args: &[&str], logs: &[&Path]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    let out = report(&all, logs);
    assert!(
        out.status.success(),
        "report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn server<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no server {name}: {r:#}"))
}

/// (tool, calls, errors, violations) per tool of an agent.
fn tools(agent: &Value) -> Vec<(String, u64, u64, u64)> {
    agent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tool"].as_str().unwrap().to_string(),
                t["calls"].as_u64().unwrap(),
                t["errors"].as_u64().unwrap(),
                t["violations"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// (session, request_id, tool, outcome, file:line) of every call event in `log`.
fn calls_in(log: &Path, shown_as: &Path) -> Vec<(Value, Value, Value, Value, String)> {
    lines(&std::fs::read(log).unwrap())
        .iter()
        .enumerate()
        .filter(|(_, e)| e["type"] == "tool_call")
        .map(|(i, e)| {
            (
                e["session"].clone(),
                e["request_id"].clone(),
                e["tool"].clone(),
                e["outcome"].clone(),
                format!("{}:{}", shown_as.display(), i + 1),
            )
        })
        .collect()
}

/// JSON lines, empty ones skipped.
fn lines(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn t(tool: &str, calls: u64, errors: u64, violations: u64) -> (String, u64, u64, u64) {
    (tool.to_string(), calls, errors, violations)
}

#[test]
fn the_review_of_recorded_sessions_says_what_they_did() {
    let dir = scratch("sessions");
    let fs_log = replay_log(&dir, "filesystem_ts");
    let py_plain = replay_log(&dir, "python_stateless");
    // The replayed logs are the events the live daemon wrote.
    assert_eq!(
        lines(&std::fs::read(&fs_log).unwrap()),
        lines(&std::fs::read(fixture("filesystem_ts.events.jsonl")).unwrap())
    );
    let py_log = gzip(&py_plain);
    let r = report_json(&[], &[&fs_log, &py_log]);

    assert_eq!(r["format_version"], 1);
    let files = r["sources"]["files"].as_array().unwrap();
    assert_eq!(
        (files[0]["gzip"].clone(), files[1]["gzip"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(
        (files[0]["events"].clone(), files[1]["events"].clone()),
        (json!(9), json!(10))
    );
    assert_eq!(r["sources"]["skipped"], 0);
    let names: Vec<&str> = r["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["filesystem", "unregistered"]);
    assert_eq!(r["totals"]["calls"], 8);
    assert_eq!(r["totals"]["errors"], 3);

    // The npm filesystem server, found by the watch pattern, with the TS client.
    let fs = server(&r, "filesystem");
    let inst = &fs["instances"].as_array().unwrap()[0];
    assert_eq!(fs["instances"].as_array().unwrap().len(), 1);
    assert_eq!(inst["pid"], 14751);
    assert_eq!(inst["exe"], "/usr/bin/node");
    assert_eq!(inst["detected_by"], "watch_pattern");
    assert!(inst["matched"].as_str().unwrap().contains("server-filesystem"));
    assert_eq!(
        inst["info"],
        json!({"name": "secure-filesystem-server", "version": "0.2.0"})
    );
    assert_eq!(inst["client"]["pid"], 14739);
    assert_eq!(inst["location"], format!("{}:2", fs_log.display()));
    assert!(inst["exited"].is_string());
    assert_eq!(inst["static_secrets"], json!([]));
    let agents = fs["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{agents:#?}");
    let a = &agents[0];
    assert_eq!(
        (
            &a["client_name"],
            &a["client_version"],
            &a["pid"],
            &a["uid"],
            &a["exe"]
        ),
        (
            &json!("ts-replay"),
            &json!("9.8.7"),
            &json!(14739),
            &json!(0),
            &json!("/usr/bin/node")
        )
    );
    assert_eq!(a["name"], Value::Null, "no policy agent entry");
    assert_eq!(a["transports"], json!(["stdio"]));
    assert_eq!(
        (a["calls"].clone(), a["errors"].clone(), a["violations"].clone()),
        (json!(4), json!(2), json!(0))
    );
    assert_eq!(
        tools(a),
        [
            t("list_directory", 1, 0, 0),
            t("no_such_tool", 1, 1, 0),
            t("read_text_file", 2, 1, 0)
        ]
    );
    assert_eq!(fs["violations"], json!([]));
    assert_eq!(
        fs["secrets"],
        json!([]),
        "the server refused /etc/shadow: nothing was opened"
    );

    // The Python server: unregistered, every call a violation, one secret read.
    let py = server(&r, "unregistered");
    let inst = &py["instances"][0];
    assert_eq!(
        (inst["pid"].clone(), inst["detected_by"].clone()),
        (json!(14762), json!("watch_pattern"))
    );
    assert_eq!(inst["info"]["name"], "treplaypyx14726x886521751");
    let a = &py["agents"][0];
    assert_eq!(py["agents"].as_array().unwrap().len(), 1);
    assert_eq!(
        (a["client_name"].clone(), a["pid"].clone()),
        (json!("py-replay"), json!(14740))
    );
    assert_eq!(
        tools(a),
        [
            t("echo", 1, 0, 1),
            t("fail", 1, 1, 1),
            t("read_secret", 1, 0, 1),
            t("run", 1, 0, 1)
        ]
    );
    let kinds = &a["tools"].as_array().unwrap()[2]["kinds"];
    assert_eq!(kinds, &json!({"secret_access": 1, "unregistered_server": 1}));
    let violations: Vec<(Value, Value, Value)> = py["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["kind"].clone(), v["rule"].clone(), v["count"].clone()))
        .collect();
    assert_eq!(
        violations,
        [
            (json!("secret_access"), json!("secrets[30] /etc/shadow"), json!(1)),
            // 4 calls, and the violation event when the server started.
            (
                json!("unregistered_server"),
                json!("unregistered_servers"),
                json!(5)
            ),
        ]
    );
    let unregistered = &py["violations"][1];
    assert_eq!(
        py["violations"][0]["refs"],
        json!([
            "OWASP-ASI:ASI03",
            "MAESTRO:L4",
            "MAESTRO:L6",
            "NIST-AI-RMF:MEASURE-2.7"
        ])
    );
    assert_eq!(unregistered["calls"].as_array().unwrap().len(), 4);
    assert_eq!(
        unregistered["outside_calls"],
        json!([format!("{}:3", py_log.display())])
    );
    let secret = &py["secrets"][0];
    assert_eq!(py["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            &secret["path"],
            &secret["class"],
            &secret["rule"],
            &secret["count"]
        ),
        (
            &json!("/etc/shadow"),
            &json!("system_password"),
            &json!("secrets[30] /etc/shadow"),
            &json!(1)
        )
    );
    assert_eq!(
        py["declared"]["rules"],
        json!(["secrets[30] /etc/shadow", "unregistered_servers"])
    );
    assert_eq!(py["out_of_scope"], json!([]));

    // Every call, found again by its session, request id and event.
    let mut want = calls_in(&fs_log, &fs_log);
    want.extend(calls_in(&py_plain, &py_log));
    let got: Vec<(Value, Value, Value, Value, String)> = r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["session"].clone(),
                c["request_id"].clone(),
                c["tool"].clone(),
                c["outcome"].clone(),
                c["location"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let shadow = r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tool"] == "read_secret")
        .unwrap();
    assert_eq!(
        shadow["secrets"],
        json!([{"path": "/etc/shadow", "class": "system_password", "rule": "secrets[30] /etc/shadow"}])
    );
    assert_eq!(shadow["agent"], a["id"]);
    assert_eq!(shadow["session"], "stdio-14762-453112");
    assert_eq!(shadow["request_id"], 4);
    let refused = r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["request_id"] == 3 && c["server"] == "filesystem")
        .unwrap();
    assert!(
        refused["error"].as_str().unwrap().contains("Access denied"),
        "{refused:#}"
    );
    assert_eq!(r["consistency"], json!([]));
    // Each log's calls are under the policy its own daemon started with.
    let epochs = r["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2, "{epochs:#?}");
    for c in r["calls"].as_array().unwrap() {
        let epoch = epochs.iter().find(|e| e["id"] == c["epoch"]).unwrap();
        assert_eq!(epoch["began_by"], "ready");
        let (file, _) = c["location"].as_str().unwrap().rsplit_once(':').unwrap();
        assert_eq!(epoch["location"], format!("{file}:1"), "{c:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn since_leaves_out_what_came_before() {
    let dir = scratch("since");
    let fs_log = replay_log(&dir, "filesystem_ts");
    let py_log = replay_log(&dir, "python_stateless");
    // After the filesystem session and the Python client's first call.
    let r = report_json(&["--since", "2026-12-02T16:14:50.06Z"], &[&fs_log, &py_log]);
    assert_eq!(r["window"]["since"], "2026-12-02T16:14:50.060000000Z");
    let names: Vec<&Value> = r["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["name"])
        .collect();
    assert_eq!(names, [&json!("unregistered")]);
    let tools: Vec<&Value> = r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["tool"])
        .collect();
    assert_eq!(tools, [&json!("read_secret"), &json!("run"), &json!("fail")]);
    assert_eq!(r["sources"]["files"][0]["outside_window"], 9);
    assert_eq!(
        r["sources"]["files"][1]["events"], 5,
        "3 calls, the exit and the stop"
    );
    // Its server_started was before the window: the instance is known from its calls only.
    assert_eq!(r["servers"][0]["instances"][0]["detected_by"], Value::Null);
    assert_eq!(r["servers"][0]["instances"][0]["calls"], 3);

    let out = report(&["--since", "2030-01-01T00:00:00Z"], &[&fs_log]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no events in the window") && stderr.contains("9 event(s) outside"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn markdown_has_the_key_rows_and_out_writes_a_file() {
    let dir = scratch("md");
    let py_log = replay_log(&dir, "python_stateless");
    let out = report(&[], &[&py_log]);
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# MCP access review\n"), "{md}");
    for row in [
        "## Server unregistered",
        "| a1 | py-replay 9.8.7 pid 14740 | read_secret | 1 | 0 | 1 | secret_access x1, unregistered_server x1 |",
        "| /etc/shadow | system_password | secrets\\[30\\] /etc/shadow |  | 1 | c2 |",
        "| unregistered_server | unregistered_servers | OWASP-ASI:ASI04, MAESTRO:L7, NIST-AI-RMF:GOVERN-1.6, NIST-AI-RMF:MANAGE-3.1 | 5 |",
        "| c4 | 2026-12-02T16:14:50.089889886Z | unregistered | a1 | fail | stdio | stdio-14762-453112 | 6 | error | violation |",
        "No differences",
    ] {
        assert!(md.contains(row), "missing {row:?} in\n{md}");
    }
    let file = dir.join("review.html");
    let out = report(&["--format", "html", "--out", file.to_str().unwrap()], &[&py_log]);
    assert!(out.status.success() && out.stdout.is_empty());
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("<td>read_secret</td>") && html.contains("data-kind=\"secret\""));
    assert!(String::from_utf8_lossy(&out.stderr).contains("written to"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `tool_call` event as the daemon writes it, with what a test varies.
fn call(ts: &str, server: &str, tool: &str, client: &str, transport: &str, violations: Value) -> Value {
    let decision = if violations.as_array().unwrap().is_empty() {
        "allow"
    } else {
        "violation"
    };
    json!({"type": "tool_call", "ts": ts,
        "server": {"name": server, "pid": 10, "exe": "/usr/bin/srv", "cmdline": "srv", "info": null},
        "agent": {"name": null, "client": {"name": client, "version": "1"}, "pid": 20, "uid": 1000, "exe": "/usr/bin/cli"},
        "transport": transport, "tls": false, "session": format!("{transport}-10-1"), "request_id": "r-1",
        "tool": tool, "arguments": {}, "duration_ms": 1.0, "outcome": "ok",
        "effects": {"files": [], "secrets": [], "exec": [], "connect": [], "noise": 0},
        "decision": decision, "violations": violations})
}

/// A call from a caller in a container with a bearer token, as over HTTP.
fn over_http(mut call: Value) -> Value {
    let agent = &mut call["agent"];
    agent["address"] = json!("10.0.0.7:41234");
    agent["token"] =
        json!({"kind": "jwt", "verified": false, "sub": "svc-deploy", "iss": "https://idp.example"});
    agent["workload"] = json!({"cgroup": "/docker/x", "container": {"runtime": "docker", "id": "3f2a"}});
    call
}

fn write_log(path: &Path, events: &[Value], extra: &str) {
    let mut text: String = events.iter().map(|e| format!("{e}\n")).collect();
    text.push_str(extra);
    std::fs::write(path, text).unwrap();
}

#[test]
fn hostile_names_are_escaped_in_markdown_and_html() {
    let dir = scratch("hostile");
    let log = dir.join("events.jsonl");
    let tool = "<script>alert(1)</script>|x\n| forged | row |";
    let server = "srv|<img src=x onerror=alert(2)>";
    write_log(
        &log,
        &[call(
            "2026-12-01T10:00:00Z",
            server,
            tool,
            "c<b>",
            "stdio",
            json!([]),
        )],
        "",
    );
    let md = String::from_utf8(report(&[], &[&log]).stdout).unwrap();
    assert!(
        md.contains("\\<script\\>alert(1)\\</script\\>\\|x \\| forged \\| row \\|"),
        "{md}"
    );
    // Every `<` of the page is escaped, and no row starts inside a value.
    assert!(
        md.match_indices('<').all(|(i, _)| md[..i].ends_with('\\')),
        "{md}"
    );
    assert!(!md.contains("\n| forged"), "{md}");
    let html = String::from_utf8(report(&["--format", "html"], &[&log]).stdout).unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;|x"), "{html}");
    assert!(!html.contains("<script>alert") && !html.contains("<img") && !html.contains("<b>"));
    // The only script is the page's own.
    assert_eq!(html.matches("<script").count(), 1);
    let r = report_json(&[], &[&log]);
    assert_eq!(r["calls"][0]["tool"], tool, "JSON keeps the value as it was");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn different_decisions_for_one_tool_are_listed_per_policy_epoch() {
    let dir = scratch("consistency");
    let log = dir.join("events.jsonl");
    let out_of_scope =
        json!([{"kind": "tool_out_of_scope", "detail": "not declared", "rule": "servers.srv.tools"}]);
    let started = json!({"type": "server_started", "ts": "2026-12-01T09:59:00Z",
        "server": {"name": "srv", "pid": 10, "exe": "/usr/bin/srv", "cmdline": "srv", "info": null, "uid": 1000, "ppid": 1},
        "detected_by": "policy_match", "matched": "srv*",
        "static_secrets": [{"name": "GITHUB_TOKEN", "class": "package_token"}, {"name": 7}]});
    let reload = json!({"type": "monitor_status", "ts": "2026-12-01T11:00:00Z", "status": "policy_loaded",
        "policy": "/etc/mcp-monitor/policy.yaml", "epoch": 1, "summary": "1 server"});
    write_log(
        &log,
        &[
            started,
            // Epoch 0: desktop over stdio allowed, a service over HTTP refused.
            call(
                "2026-12-01T10:00:00Z",
                "srv",
                "deploy",
                "desktop",
                "stdio",
                json!([]),
            ),
            over_http(call(
                "2026-12-01T10:00:01Z",
                "srv",
                "deploy",
                "service",
                "http",
                out_of_scope.clone(),
            )),
            // Epoch 1: refused for one caller after the reload, allowed for it before.
            reload,
            call(
                "2026-12-01T11:00:01Z",
                "srv",
                "status",
                "desktop",
                "stdio",
                out_of_scope,
            ),
        ],
        "not json at all\n",
    );
    let out = report(&["--format", "json"], &[&log]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:6", log.display())), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sources"]["skipped"], 1);
    assert!(
        r["sources"]["skips"][0]
            .as_str()
            .unwrap()
            .contains(":6: not JSON")
    );
    let diffs = r["consistency"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    let d = &diffs[0];
    assert_eq!(
        (&d["server"], &d["tool"], &d["epoch"]),
        (&json!("srv"), &json!("deploy"), &json!(0))
    );
    assert_eq!(d["decision_differs"], true);
    assert_eq!(d["differing_kinds"], json!(["tool_out_of_scope"]));
    let variants: Vec<(Value, Value, Value)> = d["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["decision"].clone(),
                v["clients"].clone(),
                v["transports"].clone(),
            )
        })
        .collect();
    assert_eq!(
        variants,
        [
            (json!("allow"), json!(["desktop 1"]), json!(["stdio"])),
            (json!("violation"), json!(["service 1"]), json!(["http"])),
        ]
    );
    let epochs: Vec<(Value, Value)> = r["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["began_by"].clone(), e["calls"].clone()))
        .collect();
    assert_eq!(
        epochs,
        [(json!("log_start"), json!(2)), (json!("policy_loaded"), json!(1))]
    );
    assert_eq!(
        r["servers"][0]["instances"][0]["static_secrets"],
        json!([{"name": "GITHUB_TOKEN", "class": "package_token"}])
    );
    let service = &r["servers"][0]["agents"][1];
    assert_eq!(
        (
            &service["client_name"],
            &service["token_sub"],
            &service["token_iss"]
        ),
        (
            &json!("service"),
            &json!("svc-deploy"),
            &json!("https://idp.example")
        )
    );
    assert_eq!(
        (&service["address"], &service["container"]),
        (&json!("10.0.0.7:41234"), &json!("3f2a"))
    );
    assert_eq!(service["transports"], json!(["http"]));
    assert_eq!(service["label"], "service 1 sub=svc-deploy pid 20");
    // With the policy file, each server's declared scope is shown as declared.
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "servers:\n  srv:\n    match: { cmdline: \"srv*\" }\n    tools: [deploy]\n    files: [\"/srv/**\"]\n    agents:\n      desktop: { client: \"desktop*\", tools: [deploy] }\n",
    )
    .unwrap();
    let with_policy = report_json(&["--policy", policy.to_str().unwrap()], &[&log]);
    assert_eq!(
        with_policy["servers"][0]["declared"]["policy"],
        json!({"tools": ["deploy"], "files": ["/srv/**"], "secrets": [], "exec": null, "connect": null,
               "agents": [{"name": "desktop", "tools": ["deploy"]}]})
    );
    assert_eq!(r["servers"][0]["declared"]["policy"], Value::Null);
    assert_eq!(r["servers"][0]["declared"]["rules"], json!(["servers.srv.tools"]));
    let md = String::from_utf8(report(&[], &[&log]).stdout).unwrap();
    assert!(
        md.contains("GITHUB_TOKEN (package_token)") && md.contains("| srv | deploy | 0 | violation |"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_is_named() {
    let out = report(&[], &[Path::new("/nonexistent/events.jsonl")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/events.jsonl"), "{stderr}");
}
