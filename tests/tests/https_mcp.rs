//! MCP over HTTPS, as root with the real daemon and real peers on loopback: the monitor
//! reads TLS as plaintext from OpenSSL uprobes (`SSL_read`/`SSL_write`) in the server,
//! and drops the ciphertext the same connection carries on its socket. A Python SDK
//! server on uvicorn (Python's `ssl`: the shared libssl, a memory BIO on asyncio) driven
//! by the Python client, and a TypeScript SDK server on node:https (node's own OpenSSL)
//! driven by the TypeScript client: each call is one `tool_call` event with
//! `"transport": "http"` and `"tls": true`, nothing fails to parse. A TLS server that
//! maps no OpenSSL (pure-Python tlslite-ng) is reported once as `tls_unreadable`.
mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Daemon,
    http::{reported_calls, start_server},
    mcp::{
        Client, drive_https_url, free_port, make_cert, python_https_server, python_server_glob,
        tls_unreadable_server, tls_unreadable_server_glob, ts_https_server, ts_https_server_glob,
    },
    metrics::{metric, wait_metric},
    unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The `monitor_status` event saying the OpenSSL uprobes are on `pid`; the test fails
/// with the daemon's events when it does not come (no plaintext could be seen without).
fn wait_tls_probed(d: &Daemon, pid: u32) -> Value {
    let e = d
        .wait_for(WAIT, |e| {
            e["type"] == "monitor_status" && e["status"] == "tls_probed" && e["pid"] == pid
        })
        .unwrap_or_else(|e| {
            panic!(
                "no tls_probed for server {pid}: {e:#}\nevents: {:#?}\nstderr: {}",
                d.events(),
                d.stderr()
            )
        });
    assert!(e["library"].as_str().is_some_and(|l| !l.is_empty()), "{e:#}");
    let functions = &e["functions"];
    assert!(
        functions.as_array().is_some_and(|f| !f.is_empty()) || functions.as_u64().is_some_and(|n| n > 0),
        "{e:#}"
    );
    e
}

/// The paths of the files a call's effects list.
fn files_of<'a>(e: &'a Value, kind: &str) -> Vec<&'a str> {
    e["effects"][kind]
        .as_array()
        .unwrap_or_else(|| panic!("no effects.{kind}: {e:#}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

/// What the monitor read is all it should have: every HTTP message parsed, and the
/// ciphertext on the sockets of the probed server seen and dropped.
fn assert_tls_metrics(d: &Daemon) {
    wait_metric(
        d,
        WAIT,
        "mcp_monitor_tls_ciphertext_dropped_total",
        |_| true,
        |v| v > 0.0,
    );
    let errors = metric(d, "mcp_monitor_parse_errors_total", |_| true);
    assert_eq!(
        errors,
        0.0,
        "parse errors: {:#?}\nstderr: {}",
        d.events(),
        d.stderr()
    );
}

/// The secret read by the second call is that call's, and its content is in no event.
fn assert_secret_in_call(e: &[Value], file: &Path) {
    assert_eq!(files_of(&e[1], "secrets"), [file.to_str().unwrap()], "{:#}", e[1]);
    assert_eq!(e[1]["effects"]["secrets"][0]["class"], "env_file", "{:#}", e[1]);
    assert_eq!(e[1]["decision"], "violation", "{:#}", e[1]);
    assert_eq!(files_of(&e[0], "secrets"), Vec::<&str>::new(), "{:#}", e[0]);
    assert_eq!(files_of(&e[0], "files"), Vec::<&str>::new(), "{:#}", e[0]);
    assert!(!e[1].to_string().contains("do-not-leak"), "secret content leaked");
}

/// A `.env` file (a secret to the built-in policy) for read_secret to read.
fn env_file(dir: &Path) -> PathBuf {
    let file = dir.join(".env");
    std::fs::write(&file, "API_TOKEN=do-not-leak\n").unwrap();
    file
}

/// The echo + read_secret calls, and the file read_secret reads.
fn echo_and_read(file: &Path) -> Value {
    json!([
        {"tool": "echo", "arguments": {"text": "over https"}},
        {"tool": "read_secret", "arguments": {"path": file}},
    ])
}

/// What both SDK servers must do over HTTPS: the server `server(port, cert, key)`,
/// watched by `glob` and probed before any call, driven by `client` as `agent` with the
/// echo + read_secret calls, each one `tool_call` event with TLS in a session, the secret
/// read the second call's, every HTTP message parsed. `check(events, report)` asserts
/// what differs between the SDKs (era, session), before the secret and the metrics.
fn echo_and_read_over_https(
    tag: &str,
    glob: &str,
    server: impl Fn(u16, &Path, &Path) -> Vec<String>,
    client: Client,
    agent: &str,
    check: impl FnOnce(&[Value], &Value),
) {
    let dir = common::TempDir::new(tag);
    let (cert, key) = make_cert(dir.path());
    let file = env_file(dir.path());
    let port = free_port();
    let d = Daemon::start(&["--watch", glob]).unwrap();
    let server = start_server(&server(port, &cert, &key), port);
    wait_tls_probed(&d, server.pid());
    let url = format!("https://127.0.0.1:{port}/mcp");
    let report = drive_https_url(client, agent, &url, &cert, &echo_and_read(&file), &[]);
    let e = reported_calls(&d, &report, &["echo", "read_secret"], agent, true);
    for call in &e {
        assert!(
            call["session"].as_str().is_some_and(|s| !s.is_empty()),
            "{call:#}"
        );
    }
    assert_eq!(e[0]["arguments"], json!({"text": "over https"}));
    assert_eq!(e[0]["server"]["pid"], server.pid());
    check(&e, &report);
    // The server's secret read belongs to the call that caused it.
    assert_secret_in_call(&e, &file);
    assert_tls_metrics(&d);
}

#[test]
fn python_sdk_server_over_https_with_uvicorn() {
    let tag = unique_tag("pyhttps");
    echo_and_read_over_https(
        &tag,
        &format!("{} --http *", python_server_glob(&tag)),
        |port, cert, key| python_https_server(&tag, port, cert, key),
        Client::Python,
        "https-py-agent",
        |e, _| {
            assert_eq!(e[0]["protocol"]["era"], "stateless", "{:#}", e[0]);
            // One keep-alive connection, so one session for both calls.
            assert_eq!(e[0]["session"], e[1]["session"], "{e:#?}");
        },
    );
}

#[test]
fn typescript_sdk_server_over_https_with_node() {
    let tag = unique_tag("tshttps");
    echo_and_read_over_https(
        &tag,
        &ts_https_server_glob(&tag),
        |port, cert, key| ts_https_server(&tag, port, cert, key),
        Client::TypeScript,
        "https-ts-agent",
        |e, report| {
            assert_eq!(e[0]["protocol"]["era"], "initialize", "{:#}", e[0]);
            assert_eq!(e[0]["server"]["info"]["name"], tag.as_str(), "{:#}", e[0]);
            // The session is the Mcp-Session-Id the server handed out, the same for both calls.
            let session = report["session_id"].as_str().expect("a stateful server");
            assert_eq!(e[0]["session"], session, "{:#}", e[0]);
            assert_eq!(e[1]["session"], session, "{:#}", e[1]);
        },
    );
}

/// `curl --cacert CERT https://127.0.0.1:PORT/`: the body.
fn curl(cert: &Path, port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(cert)
        .arg(format!("https://127.0.0.1:{port}/"))
        .stdin(Stdio::null())
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server's one `tls_unreadable` report, with `reason`, once `curl` reached it: a
/// further connection makes no second one, and the metric for `reason` is 1.
fn reported_once(d: &Daemon, cert: &Path, port: u16, pid: u32, reason: &str) -> Value {
    let unreadable =
        |e: &Value| e["type"] == "monitor_status" && e["status"] == "tls_unreadable" && e["pid"] == pid;
    let e = d.wait_for(WAIT, unreadable).unwrap_or_else(|e| {
        panic!(
            "no tls_unreadable for server {pid}: {e:#}\nevents: {:#?}\nstderr: {}",
            d.events(),
            d.stderr()
        )
    });
    assert_eq!(e["reason"], reason, "{e:#}");
    // Another connection is the same process: no second report.
    assert!(curl(cert, port).contains("without OpenSSL"));
    std::thread::sleep(Duration::from_secs(1));
    let reports: Vec<Value> = d.events().into_iter().filter(|e| unreadable(e)).collect();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let of_reason = |s: &common::Sample| s.labels.get("reason").is_some_and(|r| r == reason);
    wait_metric(d, WAIT, "mcp_monitor_tls_unreadable_total", of_reason, |v| {
        v >= 1.0
    });
    assert_eq!(metric(d, "mcp_monitor_tls_unreadable_total", of_reason), 1.0);
    e
}

#[test]
fn tls_the_monitor_cannot_read_is_reported() {
    let tag = unique_tag("tlsunreadable");
    let dir = common::TempDir::new(&tag);
    let (cert, key) = make_cert(dir.path());
    let port = free_port();
    let d = Daemon::start(&["--watch", &tls_unreadable_server_glob(&tag)]).unwrap();
    let server = start_server(&tls_unreadable_server(&tag, port, &cert, &key), port);
    let pid = server.pid();
    assert!(curl(&cert, port).contains("without OpenSSL"));
    let e = reported_once(&d, &cert, port, pid, "no_openssl");
    assert!(e["exe"].as_str().is_some_and(|x| !x.is_empty()), "{e:#}");
    assert!(
        !d.events()
            .iter()
            .any(|e| e["status"] == "tls_probed" && e["pid"] == pid),
        "nothing to probe in a process without OpenSSL"
    );
}

#[test]
fn tls_beside_a_probed_openssl_is_reported_once_its_connections_give_no_plaintext() {
    let tag = unique_tag("tlsbeside");
    let dir = common::TempDir::new(&tag);
    let (cert, key) = make_cert(dir.path());
    let port = free_port();
    let d = Daemon::start(&["--watch", &tls_unreadable_server_glob(&tag)]).unwrap();
    // The same pure-Python TLS server, with libssl.so.3 loaded and unused: it is probed.
    let mut cmd = vec!["env".to_string(), "LOAD_LIBSSL=1".into()];
    cmd.extend(tls_unreadable_server(&tag, port, &cert, &key));
    let server = start_server(&cmd, port);
    let pid = server.pid();
    wait_tls_probed(&d, pid);
    // Connections that only shook hands give no plaintext either: a few are needed.
    for _ in 0..3 {
        assert!(curl(&cert, port).contains("without OpenSSL"));
    }
    reported_once(&d, &cert, port, pid, "no_plaintext");
}
