//! What the tests of MCP over Streamable HTTP and HTTPS share: a server process on a
//! loopback port, the `tool_call` events of one client, and the checks every call over
//! HTTP must pass whatever the server and the transport's TLS.
use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{Daemon, Killed, mcp::wait_listening};

const WAIT: Duration = Duration::from_secs(30);

/// Starts `cmd` (a server listening on `port`) and waits until it accepts connections.
/// The port is also in `PORT`, where the everything server takes it from.
pub fn start_server(cmd: &[String], port: u16) -> Killed {
    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the server {}: {e}", cmd[0]));
    let server = Killed(child);
    wait_listening(port);
    server
}

/// The `tool_call` events of one client process, in request id order, waiting until
/// there are `n`.
pub fn calls_of(d: &Daemon, client_pid: &Value, n: usize) -> Vec<Value> {
    let of_client = |e: &Value| e["type"] == "tool_call" && e["agent"]["pid"] == *client_pid;
    d.wait_until(WAIT, |events| events.iter().filter(|e| of_client(e)).count() >= n)
        .unwrap_or_else(|e| panic!("{e:#}: {:#?}\nstderr: {}", d.events(), d.stderr()));
    let mut calls: Vec<Value> = d.events().into_iter().filter(of_client).collect();
    calls.sort_by_key(|e| e["request_id"].as_i64());
    calls
}

/// The JSON-RPC ids of the calls a driver reports, in order.
pub fn request_ids(report: &Value) -> Vec<i64> {
    report["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["request_id"].as_i64().unwrap())
        .collect()
}

/// Asserts that `e` is the successful call of `tool` with JSON-RPC id `id` over HTTP
/// (over TLS when `tls`), from the loopback client process of the driver `report`
/// whose clientInfo name is `client`.
pub fn assert_http_call(e: &Value, tool: &str, id: i64, client: &str, report: &Value, tls: bool) {
    assert_eq!(e["transport"], "http", "{e:#}");
    assert_eq!(e["tls"], tls, "{e:#}");
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

/// The events of the calls of `tools` a driver `report` made as `client`, after checking
/// that the server did them all and that each is exactly one event passing
/// `assert_http_call`.
pub fn reported_calls(d: &Daemon, report: &Value, tools: &[&str], client: &str, tls: bool) -> Vec<Value> {
    crate::mcp::assert_all_ok(report);
    let e = calls_of(d, &report["client_pid"], tools.len());
    assert_eq!(e.len(), tools.len(), "exactly one event per call: {e:#?}");
    let ids = request_ids(report);
    assert_eq!(ids.len(), tools.len(), "{report:#}");
    for ((e, tool), id) in e.iter().zip(tools).zip(ids) {
        assert_http_call(e, tool, id, client, report, tls);
    }
    e
}
