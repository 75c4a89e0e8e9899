//! Finding MCP servers by what they speak, as root with the real daemon in its default
//! mode (no policy, no `--watch`): real servers behind wrappers and under neutral names
//! are found and their calls reported; real processes that speak other things (a shell
//! in a folder named `mcp-test`, a language server, JSON lines, a cargo build) are not
//! servers. The daemon sees every MCP server on the host, the other tests' too, so each
//! test picks its own processes out of the events.
mod common;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Daemon,
    mcp::{Client, assert_all_ok, drive, filesystem_server, mcp_dir, npm_entry, python_server, venv_python},
    unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The `server_started` event of the server whose client is `client_pid`.
fn started_for(d: &Daemon, client_pid: &Value) -> Value {
    d.wait_for(WAIT, |e| {
        e["type"] == "server_started" && e["client"]["pid"] == *client_pid
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:#?}\nstderr: {}", d.events(), d.stderr()))
}

/// The `tool_call` events of one client process, once there are `n`.
fn calls_of(d: &Daemon, client_pid: &Value, n: usize) -> Vec<Value> {
    let of_client = |e: &Value| e["type"] == "tool_call" && e["agent"]["pid"] == *client_pid;
    d.wait_until(WAIT, |events| events.iter().filter(|e| of_client(e)).count() >= n)
        .unwrap_or_else(|e| panic!("{e:#}: {:#?}", d.events()));
    d.events().into_iter().filter(of_client).collect()
}

#[test]
fn a_python_sdk_server_under_a_neutral_name_is_found_and_flagged_as_undeclared() {
    let tag = unique_tag("neutral");
    let dir = common::TempDir::new(&tag);
    // A script copied to a name that says nothing about MCP.
    let tool = dir.path().join("tool.py");
    std::fs::copy(mcp_dir().join("py_server.py"), &tool).unwrap();
    let d = Daemon::start_discovering(&[]).unwrap();
    assert_eq!(
        d.ready["watch_patterns"],
        json!([]),
        "no name heuristics by default"
    );
    let server = vec![
        venv_python().display().to_string(),
        tool.display().to_string(),
        "--name".into(),
        tag.clone(),
    ];
    let calls = json!([{"tool": "echo", "arguments": {"text": "found by protocol"}}]);
    let report = drive(Client::Python, "neutral-agent", &server, &calls, &[]);
    assert_all_ok(&report);
    let started = started_for(&d, &report["client_pid"]);
    assert_eq!(started["detected_by"], "protocol", "{started:#}");
    assert_eq!(started["transport"], "stdio");
    assert_eq!(started["server"]["pid"], report["server_pid"]);
    assert_eq!(started["server"]["name"], "unregistered");
    assert!(started.get("matched").is_none_or(Value::is_null), "{started:#}");
    // The first message it read is where it was found, and it was not lost: the whole
    // session is there, so the call has its client and server.
    let e = calls_of(&d, &report["client_pid"], 1);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0]["tool"], "echo");
    assert_eq!(e[0]["arguments"], json!({"text": "found by protocol"}));
    assert_eq!(e[0]["agent"]["client"]["name"], "neutral-agent");
    assert_eq!(e[0]["server"]["info"]["name"], tag.as_str());
    assert_eq!(e[0]["outcome"], "ok");
    // An MCP server nobody declared: the built-in policy says so, once at its start.
    let v = d
        .wait_for(WAIT, |e| {
            e["type"] == "violation"
                && e["kind"] == "unregistered_server"
                && e["server"]["pid"] == report["server_pid"]
        })
        .unwrap();
    assert!(
        v["detail"].as_str().unwrap().contains("found as an MCP server"),
        "{v:#}"
    );
    assert_eq!(e[0]["decision"], "violation");
}

#[test]
fn the_server_behind_a_shell_or_npx_is_the_process_that_speaks() {
    let tag = unique_tag("wrapped");
    let dir = common::TempDir::new(&tag);
    let d = Daemon::start_discovering(&[]).unwrap();
    // `sh -c` (dash forks, it does not exec): the node grandchild of the client is the server.
    let everything = npm_entry("@modelcontextprotocol/server-everything");
    let sh = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        format!("node {everything} stdio; true"),
    ];
    let calls = json!([{"tool": "echo", "arguments": {"message": "through sh"}}]);
    let report = drive(Client::TypeScript, "sh-agent", &sh, &calls, &[]);
    assert_all_ok(&report);
    let started = started_for(&d, &report["client_pid"]);
    assert_eq!(started["detected_by"], "protocol");
    assert_ne!(
        started["server"]["pid"], report["server_pid"],
        "not the shell: {started:#}"
    );
    assert_eq!(
        started["server"]["ppid"], report["server_pid"],
        "the shell's child: {started:#}"
    );
    assert!(
        started["server"]["exe"].as_str().unwrap().ends_with("/node"),
        "{started:#}"
    );
    assert_eq!(
        started["server"]["name"], "everything",
        "named by the built-in policy"
    );
    let e = calls_of(&d, &report["client_pid"], 1);
    assert_eq!(
        (e.len(), &e[0]["tool"], &e[0]["outcome"]),
        (1, &json!("echo"), &json!("ok")),
        "{e:#?}"
    );
    assert_eq!(e[0]["server"]["pid"], started["server"]["pid"]);
    assert_eq!(e[0]["decision"], "allow");

    // npx resolving the package installed in tests/mcp (no network).
    let npx = vec![
        "env".to_string(),
        "-C".into(),
        mcp_dir().display().to_string(),
        "npx".into(),
        "--no-install".into(),
        "@modelcontextprotocol/server-filesystem".into(),
        dir.path().display().to_string(),
    ];
    let calls = json!([{"tool": "list_allowed_directories", "arguments": {}}]);
    let report = drive(Client::Python, "npx-agent", &npx, &calls, &[]);
    assert_all_ok(&report);
    let started = started_for(&d, &report["client_pid"]);
    assert_eq!(started["detected_by"], "protocol");
    assert!(
        started["server"]["exe"].as_str().unwrap().ends_with("/node"),
        "{started:#}"
    );
    assert!(
        started["server"]["cmdline"]
            .as_str()
            .unwrap()
            .contains("server-filesystem"),
        "the server, not npx: {started:#}"
    );
    assert_eq!(started["server"]["name"], "filesystem");
    let e = calls_of(&d, &report["client_pid"], 1);
    assert_eq!(e[0]["tool"], "list_allowed_directories", "{e:#?}");
    assert_eq!(e[0]["agent"]["client"]["name"], "npx-agent");
    assert_eq!(e[0]["server"]["info"]["name"], "secure-filesystem-server");
    // Nothing else of that tree was taken for a server.
    let tree_servers: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["type"] == "server_started" && e["client"]["pid"] == report["client_pid"])
        .collect();
    assert_eq!(tree_servers.len(), 1, "{tree_servers:#?}");
}

#[test]
fn a_server_running_before_the_daemon_is_found_by_its_next_message() {
    let tag = unique_tag("late");
    let mut server = Command::new(&python_server(&tag)[0])
        .args(&python_server(&tag)[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut to_server = server.stdin.take().unwrap();
    let mut from_server = BufReader::new(server.stdout.take().unwrap());
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "late-agent", "version": "1.0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut call = |id: u64, text: &str| -> Value {
        let req = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}, "_meta": meta}});
        // One write per message, as SDK clients do (a message dribbled out in pieces
        // opens no read with a request the kernel can see).
        to_server.write_all(format!("{req}\n").as_bytes()).unwrap();
        let mut line = String::new();
        from_server.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    // A session under way before the daemon starts.
    assert_eq!(call(1, "before")["id"], 1);
    let d = Daemon::start_discovering(&[]).unwrap();
    let answer = call(2, "after");
    assert!(answer["result"].is_object(), "{answer:#}");
    let me = json!(std::process::id());
    let started = started_for(&d, &me);
    assert_eq!(started["server"]["pid"], server.id());
    assert_eq!(started["first_method"], "tools/call");
    let e = calls_of(&d, &me, 1);
    assert_eq!(e.len(), 1, "only the call made after the daemon started: {e:#?}");
    assert_eq!(e[0]["request_id"], 2);
    assert_eq!(e[0]["arguments"], json!({"text": "after"}));
    assert_eq!(e[0]["agent"]["client"]["name"], "late-agent");
    assert_eq!(e[0]["protocol"]["era"], "stateless");
    drop(to_server);
    let _ = server.wait();
}

#[test]
fn processes_that_speak_something_else_are_not_servers() {
    let tag = unique_tag("notmcp");
    let dir = common::TempDir::new(&tag);
    let d = Daemon::start_discovering(&[]).unwrap();
    let sh = |script: &str, stdin: &[u8]| {
        let mut child = Command::new("/bin/sh")
            .args(["-c", script])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        assert!(child.wait().unwrap().success(), "{script}");
    };
    // A shell session's commands on paths under a folder named mcp-test.
    let mcp_test = dir.path().join("mcp-test");
    std::fs::create_dir_all(mcp_test.join("bin")).unwrap();
    std::fs::write(
        mcp_test.join("notes.json"),
        "{\"jsonrpc\": \"2.0\", \"note\": \"a file\"}\n",
    )
    .unwrap();
    sh(
        &format!(
            "ls {m}/bin; cp {m}/notes.json {m}/copy.json; cat {m}/copy.json; timeout 3 cat {m}/notes.json; cat < {m}/notes.json",
            m = mcp_test.display()
        ),
        b"",
    );
    // JSON lines that are not JSON-RPC, and JSON-RPC that is not MCP, on a stdin.
    let lines = b"{\"level\":\"info\",\"msg\":\"tools/call done\",\"ts\":1}\n\
        {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"textDocument/hover\",\"params\":{}}\n\
        {\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"processId\":1,\"rootUri\":null,\"capabilities\":{}}}\n";
    sh(
        &format!("cat > {}/mcp-test/lines.json", dir.path().display()),
        lines,
    );
    let jq_like = format!(
        "{} -c 'import sys; [print(len(l)) for l in sys.stdin]' {tag}",
        venv_python().display()
    );
    sh(&jq_like, lines);
    // A real language server: JSON-RPC with Content-Length framing over stdio.
    let lsp = Command::new("node")
        .arg(mcp_dir().join("lsp_client.mjs"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(lsp.status.success(), "lsp_client failed");
    let lsp: Value = serde_json::from_slice(&lsp.stdout).unwrap();
    assert!(lsp["responses"].as_u64().unwrap() >= 2, "{lsp:#}");
    // cargo building a small crate in a folder named mcp-x.
    let krate = dir.path().join("mcp-x");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"mcp-x\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        krate.join("src/main.rs"),
        "fn main() { println!(\"{}\", 1 + 1); }\n",
    )
    .unwrap();
    let cargo = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", krate.join("target"))
        .status()
        .unwrap();
    assert!(cargo.success());
    // A real server afterwards: once it is found, everything above has been looked at.
    let calls = json!([{"tool": "echo", "arguments": {"text": "barrier"}}]);
    let report = drive(Client::Python, "barrier-agent", &python_server(&tag), &calls, &[]);
    started_for(&d, &report["client_pid"]);
    let ours = |e: &Value| {
        let cmdline = e["server"]["cmdline"].as_str().unwrap_or("");
        (cmdline.contains(&tag) && !cmdline.contains("py_server.py"))
            || e["server"]["pid"] == lsp["server_pid"]
    };
    let wrong: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| {
            ["server_started", "violation", "tool_call", "secret_access"]
                .contains(&e["type"].as_str().unwrap_or(""))
        })
        .filter(ours)
        .collect();
    assert!(wrong.is_empty(), "not MCP servers: {wrong:#?}");
    // They were looked at: what opened with JSON was checked and let go.
    let addr = d.ready["metrics_addr"].as_str().unwrap();
    let (_, body) = common::http_get(addr, "/metrics").unwrap();
    let not_mcp: f64 = common::parse_exposition(&body)
        .unwrap()
        .iter()
        .filter(|s| s.name == "mcp_monitor_discovery_total" && s.labels["result"] == "not_mcp")
        .map(|s| s.value)
        .sum();
    assert!(not_mcp >= 2.0, "the JSON readers were candidates: {not_mcp}");
}

#[test]
fn filesystem_server_found_without_a_policy_reports_its_calls_with_the_client() {
    let tag = unique_tag("fsfound");
    let dir = common::TempDir::new(&tag);
    std::fs::write(dir.path().join("readme.txt"), "hello\n").unwrap();
    let d = Daemon::start_discovering(&[]).unwrap();
    let calls = json!([{"tool": "read_text_file", "arguments": {"path": dir.path().join("readme.txt")}}]);
    let report = drive(
        Client::TypeScript,
        "fs-agent",
        &filesystem_server(dir.path()),
        &calls,
        &[],
    );
    assert_all_ok(&report);
    let e = calls_of(&d, &report["client_pid"], 1);
    assert_eq!(e[0]["tool"], "read_text_file", "{e:#?}");
    assert_eq!(e[0]["server"]["name"], "filesystem");
    let files: Vec<&str> = e[0]["effects"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&dir.path().join("readme.txt").to_str().unwrap()),
        "{:#}",
        e[0]
    );
}

#[test]
fn an_http_server_is_found_by_its_first_mcp_request() {
    let tag = unique_tag("httpfound");
    let port = integration_tests::mcp::free_port();
    let d = Daemon::start_discovering(&[]).unwrap();
    let cmd = integration_tests::mcp::python_http_server(&tag, port);
    let mut server = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    integration_tests::mcp::wait_listening(port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "one"}},
        {"tool": "add", "arguments": {"a": 1, "b": 2}},
    ]);
    let report = integration_tests::mcp::drive_url(Client::Python, "http-found-agent", &url, &calls, &[]);
    assert_all_ok(&report);
    let started = d
        .wait_for(WAIT, |e| {
            e["type"] == "server_started" && e["server"]["pid"] == server.id()
        })
        .unwrap_or_else(|e| panic!("{e:#}: {:#?}", d.events()));
    assert_eq!(started["detected_by"], "protocol", "{started:#}");
    assert_eq!(started["transport"], "http");
    // Every call, the first included: the request it was found by is the first of its
    // session.
    let e = calls_of(&d, &report["client_pid"], 2);
    let tools: Vec<&str> = e.iter().map(|e| e["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, ["echo", "add"], "{e:#?}");
    assert!(
        e.iter().all(|e| e["transport"] == "http" && e["outcome"] == "ok"),
        "{e:#?}"
    );
    assert_eq!(e[0]["agent"]["client"]["name"], "http-found-agent");
    let _ = server.kill();
    let _ = server.wait();
}
