//! MCP over Streamable HTTP, as root with the real daemon and real peers on loopback:
//! the npm everything server (the legacy era: `initialize`, `Mcp-Session-Id`, SSE
//! answers, a standing GET stream) driven by the TypeScript and Python SDK clients, and
//! a Python SDK server in stateless mode (the 2026-07-28 era: plain JSON, `_meta`
//! identity) driven by the Python client. Every call is one `tool_call` event with
//! `"transport": "http"`, its session, clientInfo and client process; the metrics agree.
mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Daemon,
    mcp::{
        Client, assert_all_ok, drive_url, everything_http_server, free_port, python_http_server,
        python_server_glob, wait_listening,
    },
    unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A server process, killed when dropped.
struct Server(Child);

impl Server {
    fn start(cmd: &[String], port: u16) -> Self {
        let child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the HTTP server");
        wait_listening(port);
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `tool_call` events of one client process, waiting until there are `n`.
fn calls_of(d: &Daemon, client_pid: &Value, n: usize) -> Vec<Value> {
    let of_client = |e: &Value| e["type"] == "tool_call" && e["agent"]["pid"] == *client_pid;
    d.wait_until(WAIT, |events| events.iter().filter(|e| of_client(e)).count() >= n)
        .unwrap_or_else(|e| panic!("{e:#}: {:#?}", d.events()));
    let mut calls: Vec<Value> = d.events().into_iter().filter(of_client).collect();
    calls.sort_by_key(|e| e["request_id"].as_i64());
    calls
}

/// `mcp_tool_calls_total` for one server label, summed over the other labels, once it
/// reaches `want` (the daemon counts as it writes events; a scrape may come between).
fn wait_tool_calls_metric(d: &Daemon, server: &str, want: f64) {
    let addr = d.ready["metrics_addr"].as_str().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, body) = common::http_get(addr, "/metrics").unwrap();
        let got: f64 = common::parse_exposition(&body)
            .unwrap()
            .iter()
            .filter(|s| s.name == "mcp_tool_calls_total" && s.labels["server"] == server)
            .map(|s| s.value)
            .sum();
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mcp_tool_calls_total{{server={server:?}}} is {got}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The JSON-RPC ids of the calls a driver reports, in order.
fn request_ids(report: &Value) -> Vec<i64> {
    report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["request_id"].as_i64().unwrap())
        .collect()
}

fn assert_call(e: &Value, tool: &str, id: i64, client: &str, report: &Value) {
    assert_eq!(e["transport"], "http", "{e:#}");
    assert_eq!(e["tls"], false, "plain HTTP: {e:#}");
    assert_eq!(e["tool"], tool, "{e:#}");
    assert_eq!(e["request_id"], id, "{e:#}");
    assert_eq!(e["outcome"], "ok", "{e:#}");
    assert_eq!(e["agent"]["client"]["name"], client, "{e:#}");
    assert_eq!(e["agent"]["pid"], report["client_pid"], "{e:#}");
    assert!(
        e["agent"]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{e:#}"
    );
}

#[test]
fn legacy_era_over_http_with_the_everything_server_and_both_sdk_clients() {
    let tag = unique_tag("everything");
    let d = Daemon::start(&["--watch", &format!("*server-everything*streamableHttp {tag}")]).unwrap();
    let port = free_port();
    let server = Server::start(&everything_http_server(&tag), port);
    d.wait_for(WAIT, |e| {
        e["type"] == "server_started" && e["server"]["pid"] == server.pid()
    })
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let calls = json!([
        {"tool": "echo", "arguments": {"message": "over http"}},
        {"tool": "get-sum", "arguments": {"a": 2, "b": 3}},
    ]);
    // Two clients with different identities, on the one server.
    let ts = drive_url(Client::TypeScript, "ts-agent", &url, &calls, &[]);
    let py = drive_url(Client::Python, "py-agent", &url, &calls, &[]);
    for (report, name) in [(&ts, "ts-agent"), (&py, "py-agent")] {
        assert_all_ok(report);
        let e = calls_of(&d, &report["client_pid"], 2);
        assert_eq!(e.len(), 2, "exactly one event per call: {e:#?}");
        let ids = request_ids(report);
        assert_call(&e[0], "echo", ids[0], name, report);
        assert_call(&e[1], "get-sum", ids[1], name, report);
        assert_eq!(e[0]["arguments"], json!({"message": "over http"}));
        assert_eq!(e[0]["protocol"]["era"], "initialize", "{:#}", e[0]);
        assert_eq!(e[0]["server"]["pid"], server.pid());
        assert_eq!(e[0]["server"]["info"]["name"], "mcp-servers/everything");
        // The session is the one the server handed out, the same for both calls.
        let session = e[0]["session"].as_str().unwrap();
        assert_eq!(e[1]["session"], session);
        assert!(
            !session.starts_with("http-"),
            "an Mcp-Session-Id, not a connection: {session}"
        );
        if let Some(sid) = report["session_id"].as_str() {
            assert_eq!(session, sid);
        }
    }
    let ts_session = calls_of(&d, &ts["client_pid"], 2)[0]["session"].clone();
    let py_session = calls_of(&d, &py["client_pid"], 2)[0]["session"].clone();
    assert_ne!(ts_session, py_session, "two clients, two sessions");
    // The metric counts what the events carry, under the name the events give.
    let name = calls_of(&d, &ts["client_pid"], 2)[0]["server"]["name"].clone();
    wait_tool_calls_metric(&d, name.as_str().unwrap(), 4.0);
}

#[test]
fn stateless_era_over_http_with_a_python_server_and_effects_in_the_call() {
    let tag = unique_tag("stateless");
    let dir = common::TempDir::new(&tag);
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "read over http\n").unwrap();
    let port = free_port();
    let glob = format!("{} --http *", python_server_glob(&tag));
    let d = Daemon::start(&["--watch", &glob]).unwrap();
    let server = Server::start(&python_http_server(&tag, port), port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "hi"}},
        {"tool": "read_secret", "arguments": {"path": file}},
    ]);
    let report = drive_url(Client::Python, "stateless-agent", &url, &calls, &[]);
    assert_all_ok(&report);
    let e = calls_of(&d, &report["client_pid"], 2);
    assert_eq!(e.len(), 2, "{e:#?}");
    let ids = request_ids(&report);
    assert_call(&e[0], "echo", ids[0], "stateless-agent", &report);
    assert_call(&e[1], "read_secret", ids[1], "stateless-agent", &report);
    assert_eq!(e[0]["protocol"]["era"], "stateless", "{:#}", e[0]);
    assert_eq!(e[0]["protocol"]["version"], "2026-07-28");
    assert_eq!(e[0]["server"]["pid"], server.pid());
    assert!(
        e[0]["session"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http-{}-conn-", server.pid())),
        "no session id in this era: the connection is the session: {:#}",
        e[0]
    );
    // The server's side effect belongs to the call that caused it.
    let files: Vec<&str> = e[1]["effects"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, [file.to_str().unwrap()], "{:#}", e[1]);
    assert_eq!(e[0]["effects"]["files"], json!([]));
    wait_tool_calls_metric(&d, e[0]["server"]["name"].as_str().unwrap(), 2.0);
}

/// An unsigned-looking JWT (`header.payload.signature`, base64url) with these claims.
fn jwt(claims: &Value) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = json!({"alg": "RS256", "typ": "JWT"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode("not-a-real-signature-but-secret-enough")
    )
}

#[test]
fn bearer_token_claims_name_http_callers_and_policy_agents_match_them() {
    let tag = unique_tag("bearer");
    let dir = common::TempDir::new(&tag);
    let glob = format!("{} --http *", python_server_glob(&tag));
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"servers:
  notes:
    match: {{ cmdline: "{glob}" }}
    agents:
      alice: {{ sub: "alice@*", iss: "https://idp.example", tools: [echo] }}
unregistered_servers: ignore
"#
        ),
    )
    .unwrap();
    let nothing = format!("/nothing/{tag}");
    let d = Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &nothing]).unwrap();
    let port = free_port();
    let _server = Server::start(&python_http_server(&tag, port), port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let alice_token = jwt(&json!({
        "sub": "alice@example.com", "iss": "https://idp.example", "azp": "cursor",
        "aud": "mcp", "scope": "notes:read", "exp": 1_900_000_000, "iat": 1_800_000_000,
    }));
    let bob_token = jwt(&json!({"sub": "bob@example.com", "iss": "https://idp.example"}));
    // Two callers with different tokens on the one server at once.
    let (alice, bob) = std::thread::scope(|s| {
        let alice = s.spawn(|| {
            let calls = json!([
                {"tool": "echo", "arguments": {"text": "from alice"}},
                {"tool": "add", "arguments": {"a": 1, "b": 2}},
            ]);
            let auth = format!("Authorization=Bearer {alice_token}");
            drive_url(Client::Python, "shared-agent", &url, &calls, &[auth])
        });
        let bob = s.spawn(|| {
            let calls = json!([{"tool": "echo", "arguments": {"text": "from bob"}}]);
            let auth = format!("Authorization=Bearer {bob_token}");
            drive_url(Client::Python, "shared-agent", &url, &calls, &[auth])
        });
        (alice.join().unwrap(), bob.join().unwrap())
    });
    let a = calls_of(&d, &alice["client_pid"], 2);
    let b = calls_of(&d, &bob["client_pid"], 1);
    assert_eq!((a.len(), b.len()), (2, 1), "{a:#?} {b:#?}");
    let token = &a[0]["agent"]["token"];
    assert_eq!(token["kind"], "jwt", "{:#}", a[0]);
    assert_eq!(token["verified"], false);
    assert_eq!(token["sub"], "alice@example.com");
    assert_eq!(token["iss"], "https://idp.example");
    assert_eq!(token["client_id"], "cursor", "azp stands for the client id");
    assert_eq!(token["aud"], json!(["mcp"]));
    assert_eq!(token["scope"], "notes:read");
    assert!(token["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    // Matched by its claims, and held to that agent's tools.
    assert_eq!(a[0]["agent"]["name"], "alice", "{:#}", a[0]);
    assert_eq!(a[0]["violations"], json!([]), "{:#}", a[0]);
    assert_eq!(a[1]["tool"], "add");
    let kinds = |e: &Value| -> Vec<(String, String)> {
        e["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["kind"].as_str().unwrap().into(),
                    v["rule"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(
        kinds(&a[1]),
        [(
            "tool_out_of_scope".to_string(),
            "servers.notes.agents.alice.tools".to_string()
        )]
    );
    // Same clientInfo, another token: not alice.
    assert_eq!(b[0]["agent"]["token"]["sub"], "bob@example.com");
    assert_eq!(b[0]["agent"]["name"], Value::Null);
    assert_eq!(
        kinds(&b[0]),
        [("unknown_agent".to_string(), "servers.notes.agents".to_string())]
    );
    assert_ne!(b[0]["agent"]["token"]["fingerprint"], token["fingerprint"]);
    // The tokens themselves appear nowhere in what the daemon wrote.
    let written = serde_json::to_string(&d.events()).unwrap() + &d.stderr();
    for t in [&alice_token, &bob_token] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!written.contains(signature), "a token's signature leaked");
    }
}
