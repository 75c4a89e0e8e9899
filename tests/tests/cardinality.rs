//! A server that invents tool names cannot blow up the metric set: with
//! `--max-label-values 100`, 10,000 calls to 10,000 distinct tools leave 100 tool
//! labels plus `__other__`, every call still counted, and the overflow counted.
mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, BufReader, BufWriter, Write as _},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{Sample, TempDir, http_get, parse_exposition};
use integration_tests::{Daemon, unique_tag};
use serde_json::Value;

const CALLS: usize = 10_000;
const CAP: usize = 100;

#[test]
fn ten_thousand_tool_names_leave_the_exposition_bounded_and_the_overflow_counted() {
    let started = Instant::now();
    let tag = unique_tag("cardinality");
    let tmp = TempDir::new(&tag);
    let dir = tmp.path();
    let policy = dir.join("policy.yaml");
    // A server entry with no tool list: every call is allowed, and counted under `flood`.
    std::fs::write(
        &policy,
        format!("servers:\n  flood:\n    match: {{ cmdline: \"*--tag {tag} jsonrpc\" }}\nunregistered_servers: ignore\n"),
    )
    .unwrap();
    let nothing = format!("/nothing/{tag}");
    let cap = CAP.to_string();
    let d = Daemon::start(&[
        "--policy",
        policy.to_str().unwrap(),
        "--watch",
        &nothing,
        "--max-label-values",
        &cap,
    ])
    .expect("daemon starts");
    let metrics_addr = d.ready["metrics_addr"].as_str().unwrap().to_string();

    // pipe-peer's jsonrpc mode answers every request line with a result.
    let mut server = Command::new(env!("CARGO_BIN_EXE_pipe-peer"))
        .args(["--tag", &tag, "jsonrpc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting pipe-peer");
    let pid = server.id();
    d.wait_for(Duration::from_secs(30), |e| {
        e["type"] == "server_started" && e["server"]["pid"] == pid
    })
    .unwrap_or_else(|e| panic!("pipe-peer {pid} not watched: {e:#}\n{}", d.stderr()));

    let stdout = server.stdout.take().unwrap();
    let reader = thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).count());
    {
        // Without initialize or clientInfo: the agent label stays `unknown`, so only the
        // tool label can overflow.
        let mut w = BufWriter::with_capacity(64 * 1024, server.stdin.take().unwrap());
        for i in 0..CALLS {
            writeln!(
                w,
                r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"tool-{i:05}","arguments":{{}}}}}}"#
            )
            .unwrap();
        }
        w.flush().unwrap();
    } // EOF: pipe-peer exits after its last answer.
    let answers = reader.join().unwrap();
    assert_eq!(answers, CALLS, "pipe-peer answered every request");
    assert!(server.wait().unwrap().success());
    eprintln!("{CALLS} calls answered after {:?}", started.elapsed());

    // The daemon has judged them all once it reports the server's exit.
    d.wait_for(Duration::from_secs(60), |e| {
        e["type"] == "server_exited" && e["server"]["pid"] == pid
    })
    .unwrap_or_else(|e| panic!("exit of {pid} not seen: {e:#}\n{}", d.stderr()));
    let events = d.events();
    let calls = events
        .iter()
        .filter(|e| e["type"] == "tool_call" && e["server"]["pid"] == pid)
        .count();
    let loss: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "monitor_status" && e["status"] == "loss")
        .collect();
    assert_eq!(calls, CALLS, "one tool_call event per call; loss: {loss:#?}");
    eprintln!("{calls} tool_call events after {:?}", started.elapsed());

    let (status, body) = http_get(&metrics_addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    let samples = parse_exposition(&body).unwrap();
    let of = |name: &str| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.name == name && s.labels.get("server").map(String::as_str) == Some("flood"))
            .collect()
    };

    // The server has exited: no server left watched (the gauge counts servers, not
    // their processes).
    let gauge = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    assert_eq!(gauge("mcp_servers_watched"), Some(0.0));
    assert_eq!(gauge("mcp_monitor_processes_watched"), Some(0.0));

    // mcp_tool_calls_total: 100 tools by name, the rest as __other__, every call counted.
    let calls_total = of("mcp_tool_calls_total");
    let tools: BTreeSet<&str> = calls_total.iter().map(|s| s.labels["tool"].as_str()).collect();
    assert_eq!(tools.len(), CAP + 1, "{tools:?}");
    assert!(
        tools.contains("__other__") && tools.contains("tool-00000"),
        "{tools:?}"
    );
    let sum: f64 = calls_total.iter().map(|s| s.value).sum();
    assert_eq!(sum, CALLS as f64);
    let by_tool = |series: &[&Sample], tool: &str| -> f64 {
        series
            .iter()
            .filter(|s| s.labels["tool"] == tool)
            .map(|s| s.value)
            .sum()
    };
    assert_eq!(by_tool(&calls_total, "__other__"), (CALLS - CAP) as f64);
    assert!(
        calls_total
            .iter()
            .all(|s| s.labels["decision"] == "allow" && s.labels["agent"] == "unknown"),
        "{calls_total:?}"
    );

    // The duration histogram shares the capped tool label (one fold per call: the label
    // is bounded once and used for both metrics).
    let durations = of("mcp_tool_call_duration_seconds_count");
    let hist_tools: BTreeSet<&str> = durations.iter().map(|s| s.labels["tool"].as_str()).collect();
    assert_eq!(hist_tools, tools);
    assert_eq!(by_tool(&durations, "__other__"), (CALLS - CAP) as f64);
    let buckets = of("mcp_tool_call_duration_seconds_bucket");
    assert_eq!(
        buckets
            .iter()
            .map(|s| s.labels["tool"].as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        CAP + 1
    );

    // The overflow, counted per folded call; nothing else overflowed.
    let overflow: BTreeMap<&str, f64> = of("mcp_monitor_label_overflow_total")
        .iter()
        .map(|s| (s.labels["label"].as_str(), s.value))
        .collect();
    assert_eq!(overflow, BTreeMap::from([("tool", (CALLS - CAP) as f64)]));

    // The exposition stays small: about 101 x (1 counter + 20 histogram lines), where
    // 10,000 tools would make over 200,000 lines (about 18 MB).
    let lines = body.lines().filter(|l| !l.starts_with('#')).count();
    assert!(lines < 2_500, "{lines} sample lines");
    assert!(body.len() < 200 * 1024, "{} bytes of exposition", body.len());
    eprintln!(
        "exposition: {} bytes, {lines} samples; done after {:?}",
        body.len(),
        started.elapsed()
    );
}
