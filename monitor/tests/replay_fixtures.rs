//! Recordings of real sessions (made as root by tests/tests/replay.rs with
//! `MCP_MONITOR_UPDATE_FIXTURES=1`), replayed without root through the real pipeline:
//! the events are the ones the live daemon wrote, and another policy judges the same
//! calls its own way.
mod common;

use std::path::PathBuf;

use common::{Buffer, lines, metrics_text};
use monitor::{
    output::{events::EventWriter, metrics::Metrics},
    replay,
};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Replays a fixture; returns its events and the summary.
fn replay(name: &str, policy: Option<PathBuf>) -> (Vec<Value>, replay::Summary, String) {
    let out = Buffer::default();
    let metrics = Metrics::new(200).unwrap();
    let (pipeline, summary) = replay::run(replay::Options {
        recording: fixture(&format!("{name}.mcprec")),
        policy,
        events: EventWriter::from_writer(Box::new(out.clone())),
        metrics,
    })
    .unwrap();
    (out.events(), summary, metrics_text(&pipeline))
}

fn recorded_events(name: &str) -> Vec<Value> {
    lines(&std::fs::read(fixture(&format!("{name}.events.jsonl"))).unwrap())
}

#[test]
fn each_fixture_replays_to_the_events_recorded_with_it() {
    for name in ["filesystem_ts", "python_stateless"] {
        let (events, summary, _) = replay(name, None);
        let expected = recorded_events(name);
        assert!(expected.iter().any(|e| e["type"] == "tool_call"), "{name}");
        for (i, (got, want)) in events.iter().zip(&expected).enumerate() {
            assert_eq!(got, want, "{name}: event {i}");
        }
        assert_eq!(events.len(), expected.len(), "{name}: as many events");
        assert!(summary.ended && !summary.truncated, "{name}: {summary:?}");
        assert_eq!(
            summary.facts,
            Default::default(),
            "{name}: every recorded fact was asked for"
        );
    }
}

#[test]
fn another_policy_judges_the_recorded_calls_its_own_way() {
    let recorded = recorded_events("filesystem_ts");
    let started = recorded.iter().find(|e| e["type"] == "server_started").unwrap();
    let cmdline = started["server"]["cmdline"].as_str().unwrap();
    // Only list_directory may be called, and /etc/shadow is a secret.
    let policy = std::env::temp_dir().join(format!("replay-policy-{}.yaml", std::process::id()));
    std::fs::write(
        &policy,
        format!(
            "servers:\n  fs:\n    match: {{ cmdline: {:?} }}\n    tools: [list_directory]\nunregistered_servers: ignore\n",
            cmdline
        ),
    )
    .unwrap();
    let (events, _, metrics) = replay("filesystem_ts", Some(policy.clone()));
    let _ = std::fs::remove_file(&policy);
    let calls: Vec<&Value> = events.iter().filter(|e| e["type"] == "tool_call").collect();
    assert_eq!(calls.len(), 4, "{events:#?}");
    assert!(calls.iter().all(|c| c["server"]["name"] == "fs"), "{calls:#?}");
    let decisions: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c["tool"].as_str().unwrap(), c["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(decisions[0], ("list_directory", "allow"), "{calls:#?}");
    assert!(decisions[1..].iter().all(|(_, d)| *d != "allow"), "{decisions:?}");
    let text = metrics;
    assert!(
        text.contains("mcp_scope_violations_total{") && text.contains("tool_out_of_scope"),
        "{text}"
    );
}
