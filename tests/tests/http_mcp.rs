//! MCP over Streamable HTTP, as root with the real daemon and real peers on loopback:
//! the npm everything server (the legacy era: `initialize`, `Mcp-Session-Id`, SSE
//! answers, a standing GET stream) driven by the TypeScript and Python SDK clients, and
//! a Python SDK server in stateless mode (the 2026-07-28 era: plain JSON, `_meta`
//! identity) driven by the Python client. Every call is one `tool_call` event with
//! `"transport": "http"`, its session, clientInfo and client process; the metrics agree.
mod common;

use std::time::Duration;

use integration_tests::{
    Daemon,
    http::{calls_of, reported_calls, start_server},
    mcp::{Client, drive_url, everything_http_server, free_port, python_http_server, python_server_glob},
    metrics::wait_metric,
    unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until `mcp_tool_calls_total` for one server label, summed over the other labels,
/// is `want` (the daemon counts as it writes events; a scrape may come between).
fn wait_tool_calls_metric(d: &Daemon, server: &str, want: f64) {
    wait_metric(
        d,
        WAIT,
        "mcp_tool_calls_total",
        |s| s.labels["server"] == server,
        |got| got == want,
    );
}

#[test]
fn legacy_era_over_http_with_the_everything_server_and_both_sdk_clients() {
    let tag = unique_tag("everything");
    let d = Daemon::start(&["--watch", &format!("*server-everything*streamableHttp {tag}")]).unwrap();
    let port = free_port();
    let server = start_server(&everything_http_server(&tag), port);
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
        let e = reported_calls(&d, report, &["echo", "get-sum"], name, false);
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
    let server = start_server(&python_http_server(&tag, port), port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "hi"}},
        {"tool": "read_secret", "arguments": {"path": file}},
    ]);
    let report = drive_url(Client::Python, "stateless-agent", &url, &calls, &[]);
    let e = reported_calls(&d, &report, &["echo", "read_secret"], "stateless-agent", false);
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
short_lived_tokens: 20m
"#
        ),
    )
    .unwrap();
    let nothing = format!("/nothing/{tag}");
    let d = Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &nothing]).unwrap();
    let port = free_port();
    let _server = start_server(&python_http_server(&tag, port), port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let before = unix_now();
    // Alice's token lives for years (long-lived); bob's was issued a minute ago for
    // 15 minutes (short-lived: within the policy's 20m).
    let alice_token = jwt(&json!({
        "sub": "alice@example.com", "iss": "https://idp.example", "azp": "cursor",
        "aud": "mcp", "scope": "notes:read", "exp": 1_900_000_000, "iat": 1_800_000_000,
    }));
    let bob_token = jwt(&json!({
        "sub": "bob@example.com", "iss": "https://idp.example",
        "iat": before - 60, "exp": before + 840,
    }));
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
    let after = unix_now();
    assert_eq!((a.len(), b.len()), (2, 1), "{a:#?} {b:#?}");
    // Lifetimes: iat to exp, and what was left of it at the call's time.
    let within = |v: &Value, lo: i64, hi: i64| v.as_i64().is_some_and(|x| (lo..=hi).contains(&x));
    let t = &a[0]["agent"]["token"];
    assert_eq!(
        (&t["lifetime_s"], &t["lifetime"]),
        (&json!(100_000_000), &json!("long_lived")),
        "{t:#}"
    );
    assert!(
        within(&t["expires_in_s"], 1_900_000_000 - after, 1_900_000_000 - before),
        "{t:#}"
    );
    let t = &b[0]["agent"]["token"];
    assert_eq!(
        (&t["lifetime_s"], &t["lifetime"]),
        (&json!(900), &json!("short_lived")),
        "{t:#}"
    );
    assert!(within(&t["expires_in_s"], before + 840 - after, 840), "{t:#}");
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
