//! `suggest-policy` on any event log: every log gives a policy that loads (the YAML it
//! writes by hand quotes and escapes whatever the log held), compares with the policy
//! in force without a panic, and names again the servers it saw by their command line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use monitor::{
    policy::Policy,
    review::{
        log::{EventLog, Window},
        observed::{Observed, ServerKey},
        suggest::suggest,
    },
};

/// A policy in force to compare with and re-key by.
const CURRENT: &str = r#"
secrets: ["~/.ssh/**", "/etc/shadow"]
servers:
  fs:
    match: { cmdline: "*server-filesystem*" }
    tools: [read_text_file]
    files: ["/tmp/**"]
    agents:
      a: { client: "ts-*", tools: [list_directory] }
"#;

fuzz_target!(|data: &[u8]| {
    let mut log = EventLog::default();
    if log
        .read_from(Path::new("fuzz.jsonl"), data, Window::default())
        .is_err()
    {
        return;
    }
    let current = Policy::parse("current", CURRENT).expect("the fixed policy loads");
    for policy in [None, Some(&current)] {
        let mut observed = Observed::from_events(&log.events);
        if let Some(p) = policy {
            observed = observed.keyed_by(p);
        }
        let s = suggest(&observed, policy, &["fuzz.jsonl".to_string()]);
        let loaded = Policy::parse("suggested", &s.yaml)
            .unwrap_or_else(|e| panic!("a suggestion that does not load: {e}\n{}", s.yaml));
        // Each server with a command line, unregistered when seen, has an entry that
        // matches that command line again.
        for (key, seen) in &observed.servers {
            if !matches!(key, ServerKey::Unregistered(_)) {
                continue;
            }
            for c in seen.cmdlines.keys() {
                assert!(
                    loaded.match_server(c, "", None).is_some() || policy.is_some(),
                    "{c:?} matches no entry of\n{}",
                    s.yaml
                );
            }
        }
    }
});
