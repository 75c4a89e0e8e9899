//! Static secrets, as root with the real daemon and the real Python SDK server: a
//! server started with secret-looking environment variables is reported by their
//! names and classes (`server_started.static_secrets`, `mcp_server_static_secrets`),
//! the policy's `static_secrets: violation` makes that one `static_secret` violation,
//! and the values appear in nothing the daemon writes: events, metrics, its log, a
//! `--record` recording, or the replay of that recording.
mod common;

use std::{
    io::Read as _,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Daemon, Killed, daemon_binary,
    mcp::{python_server, python_server_glob},
    read_events, unique_tag,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A value no one could guess, so finding it anywhere means it leaked from here.
fn random_value(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The Python SDK server named `name`, started here (not by a client, so that it
/// stays up while the test looks at the metrics) with exactly `env` and a PATH.
fn start_server(name: &str, env: &[(&str, &str)]) -> Killed {
    let argv = python_server(name);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Killed(cmd.spawn().expect("starting the Python server"))
}

/// `mcp_server_static_secrets` and `mcp_scope_violations_total` samples by labels.
fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    common::parse_exposition(body)
        .unwrap()
        .into_iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn scrape(d: &Daemon) -> String {
    let addr = d.ready["metrics_addr"].as_str().unwrap();
    common::http_get(addr, "/metrics").unwrap().1
}

fn started(d: &Daemon, pid: u32) -> Value {
    d.wait_for(WAIT, |e| {
        e["type"] == "server_started" && e["server"]["pid"] == pid
    })
    .unwrap_or_else(|e| panic!("server_started of {pid} not seen: {e:#}\n{}", d.stderr()))
}

#[test]
fn static_secrets_are_reported_by_name_and_class_never_by_value() {
    let tag = unique_tag("staticsecrets");
    let dir = common::TempDir::new(&tag);
    let (strict, lenient) = (format!("{tag}strict"), format!("{tag}lenient"));
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"secret_env: [{{name: "MY_DEPLOY_CRED", class: deploy_credential}}]
static_secrets: violation
servers:
  strict:
    match: {{ cmdline: "{strict_glob}" }}
  lenient:
    match: {{ cmdline: "{lenient_glob}" }}
    static_secrets: allow
unregistered_servers: ignore
"#,
            strict_glob = python_server_glob(&strict),
            lenient_glob = python_server_glob(&lenient),
        ),
    )
    .unwrap();
    let events_path = dir.path().join("events.jsonl");
    let recording = dir.path().join("session.mcprec");
    let nothing = format!("/nothing/{tag}");
    let d = Daemon::start_with_events(
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--watch",
            &nothing,
            "--record",
            recording.to_str().unwrap(),
        ],
        &events_path,
    )
    .expect("daemon starts");

    let values = [
        random_value("ghp_"),
        random_value("sk-"),
        random_value("deploy-"),
        random_value("lenient-"),
    ];
    let server = start_server(
        &strict,
        &[
            ("GITHUB_TOKEN", &values[0]),
            ("MY_SERVICE_API_KEY", &values[1]),
            ("MY_DEPLOY_CRED", &values[2]),
            ("NOT_SECRET_SETTING", "plain"),
        ],
    );
    let other = start_server(&lenient, &[("DB_PASSWORD", &values[3])]);
    // The values are really in the servers' environments (else the test proves nothing).
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    assert!(
        environ
            .windows(values[0].len())
            .any(|w| w == values[0].as_bytes())
    );

    let e = started(&d, server.pid());
    assert_eq!(e["server"]["name"], "strict", "{e:#}");
    assert_eq!(
        e["static_secrets"],
        json!([
            {"name": "GITHUB_TOKEN", "class": "vcs_token"},
            {"name": "MY_DEPLOY_CRED", "class": "deploy_credential"},
            {"name": "MY_SERVICE_API_KEY", "class": "api_key"},
        ]),
        "names and classes, in the environment's order (Command sorts it): {e:#}"
    );
    assert!(e.get("environ_problems").is_none(), "{e:#}");
    let o = started(&d, other.pid());
    assert_eq!(
        o["static_secrets"],
        json!([{"name": "DB_PASSWORD", "class": "password"}]),
        "{o:#}"
    );

    // One violation, for the strict server only, not tied to a call.
    d.wait_for(WAIT, |e| {
        e["type"] == "violation" && e["server"]["pid"] == server.pid()
    })
    .unwrap();
    let violations: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["type"] == "violation" && e["kind"] == "static_secret")
        .filter(|e| e["server"]["pid"] == server.pid() || e["server"]["pid"] == other.pid())
        .collect();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let v = &violations[0];
    assert_eq!(v["server"]["pid"], server.pid());
    assert_eq!(v["rule"], "static_secrets");
    assert_eq!(
        v["detail"],
        "started with 3 secret-looking environment variable(s): GITHUB_TOKEN (vcs_token), MY_DEPLOY_CRED (deploy_credential), MY_SERVICE_API_KEY (api_key)"
    );
    assert_eq!(v["static_secrets"], e["static_secrets"]);

    let body = scrape(&d);
    let gauge = |server: &str, class: &str| {
        metric(
            &body,
            "mcp_server_static_secrets",
            &[("server", server), ("class", class)],
        )
    };
    assert_eq!(gauge("strict", "vcs_token"), Some(1.0), "{body}");
    assert_eq!(gauge("strict", "api_key"), Some(1.0));
    assert_eq!(gauge("strict", "deploy_credential"), Some(1.0));
    assert_eq!(gauge("lenient", "password"), Some(1.0));
    assert_eq!(
        metric(
            &body,
            "mcp_scope_violations_total",
            &[("server", "strict"), ("kind", "static_secret")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &body,
            "mcp_scope_violations_total",
            &[("server", "lenient"), ("kind", "static_secret")]
        ),
        None,
        "`static_secrets: allow` in its entry"
    );

    // Gone with the servers.
    let (strict_pid, lenient_pid) = (server.pid(), other.pid());
    drop(server);
    drop(other);
    for pid in [strict_pid, lenient_pid] {
        d.wait_for(WAIT, |e| {
            e["type"] == "server_exited" && e["server"]["pid"] == pid
        })
        .unwrap();
    }
    let after = scrape(&d);
    let gauge_after = |server: &str, class: &str| {
        metric(
            &after,
            "mcp_server_static_secrets",
            &[("server", server), ("class", class)],
        )
    };
    assert_eq!(gauge_after("strict", "vcs_token"), Some(0.0), "{after}");
    assert_eq!(gauge_after("lenient", "password"), Some(0.0));

    let stderr = d.stderr();
    let (status, _, _) = d.stop(WAIT).unwrap();
    assert!(status.success());

    // Replayed without root, the recording gives the same static secrets.
    let replayed = dir.path().join("replayed.jsonl");
    let out = Command::new(daemon_binary())
        .arg("replay")
        .arg(&recording)
        .arg("--events")
        .arg(&replayed)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed_events = read_events(&replayed).unwrap();
    let again = replayed_events
        .iter()
        .find(|r| r["type"] == "server_started" && r["server"]["pid"] == strict_pid)
        .expect("replayed server_started");
    assert_eq!(again["static_secrets"], e["static_secrets"]);

    // No value anywhere: events, metrics, the daemon's log, the recording, the replay.
    let read = |p: &Path| std::fs::read(p).unwrap();
    let outputs: Vec<(&str, Vec<u8>)> = vec![
        ("events", read(&events_path)),
        ("metrics", body.into_bytes()),
        ("metrics after exit", after.into_bytes()),
        ("stderr", stderr.into_bytes()),
        ("recording", read(&recording)),
        ("replayed events", read(&replayed)),
        ("replay stderr", out.stderr.clone()),
    ];
    for (what, bytes) in &outputs {
        assert!(
            !bytes.is_empty() || what.starts_with("replay stderr"),
            "{what} is empty"
        );
        for v in &values {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                "a secret value is in the {what}"
            );
        }
    }
    // The names are (the search above looks at the right files).
    let events = String::from_utf8_lossy(&outputs[0].1).into_owned();
    assert!(events.contains("MY_SERVICE_API_KEY"));
}
