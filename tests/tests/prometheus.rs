//! The shipped Prometheus rules and Grafana dashboard (deploy/), checked with promtool
//! and against a real Prometheus (Debian's `prometheus` package, which `cargo xtask
//! test` installs) scraping the real daemon as root, on loopback.
mod common;

use std::{
    collections::BTreeSet,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{TempDir, http_get, urlencode};
use integration_tests::{
    Daemon,
    mcp::{Client, drive, python_server, python_server_glob, server_events},
    unique_tag,
};
use serde_json::{Value, json};

/// Longest wait for anything Prometheus should do (start, scrape, evaluate).
const WAIT: Duration = Duration::from_secs(60);

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(rel)
}

/// Runs a Debian prometheus-package tool, failing with its output.
fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("starting {tool}: {e} (install Debian's prometheus package; `cargo xtask test` does)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
fn alert_rules_pass_promtool_checks_and_unit_tests() {
    let out = run_tool("promtool", &["check", "rules", "alerts.yml"]);
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
    let out = run_tool("promtool", &["test", "rules", "alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    // The example scrape config, with the rules it loads.
    run_tool("promtool", &["check", "config", "scrape-config.example.yml"]);
    // Every alert the issue names is there and has its unit tests.
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/alerts.test.yml")).unwrap();
    for alert in [
        "MCPScopeViolation",
        "MCPSecretAccess",
        "MCPUnknownAgent",
        "MCPUnregisteredServer",
        "MCPMonitorEventsLost",
        "MCPMonitorEventsDropped",
        "MCPMonitorDown",
    ] {
        assert!(rules.contains(&format!("- alert: {alert}\n")), "{alert} missing");
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no unit test"
        );
    }
}

/// The dashboard, parsed.
fn dashboard() -> Value {
    let path = deploy("grafana/mcp-monitor.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (panel title, expr) of every query of the dashboard.
fn dashboard_exprs(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// An expr with Grafana's variables replaced as Grafana would, for a query to Prometheus.
fn grafana_to_promql(expr: &str) -> String {
    let mut e = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
        .replace("$job", "mcp-monitor");
    // Multi-value variables left: "All" is `.*` (their allValue).
    for v in ["${instance}", "$instance", "${server}", "$server"] {
        e = e.replace(v, ".*");
    }
    e
}

#[test]
fn grafana_dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "mcp-monitor");
    assert!(d["title"].is_string() && d["schemaVersion"].as_u64().unwrap() >= 30);
    assert!(
        d["id"].is_null(),
        "an exported dashboard has no id, so it imports anywhere"
    );
    let vars = d["templating"]["list"].as_array().unwrap();
    let names: BTreeSet<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    let ds = vars
        .iter()
        .find(|v| v["name"] == "DS_PROMETHEUS")
        .expect("a DS_PROMETHEUS variable");
    assert_eq!(
        (&ds["type"], &ds["query"]),
        (&json!("datasource"), &json!("prometheus"))
    );
    let datasource = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], datasource, "variable {}", v["name"]);
        assert!(
            v["query"]
                .as_str()
                .is_some_and(|q| q.starts_with("label_values("))
        );
    }
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "panel id repeated: {title}"
        );
        assert!(
            ["timeseries", "stat", "table"].contains(&p["type"].as_str().unwrap()),
            "{title}: type {}",
            p["type"]
        );
        assert_eq!(p["datasource"], datasource, "{title}");
        let g = &p["gridPos"];
        let (x, w, h) = (
            g["x"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: gridPos {g}");
        assert!(g["y"].is_u64(), "{title}: gridPos {g}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId repeated"
            );
            assert_eq!(t["datasource"], datasource, "{title}");
            let expr = t["expr"].as_str().unwrap();
            assert!(!expr.trim().is_empty(), "{title}: empty expr");
            // Every variable used is one the dashboard defines (or Grafana's own).
            for part in expr.split('$').skip(1) {
                let name: String = part
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || names.contains(name.as_str()),
                    "{title}: ${name} is not defined"
                );
            }
            let substituted = grafana_to_promql(expr);
            assert!(!substituted.contains('$'), "{title}: {substituted}");
        }
    }
    // What the dashboard is for.
    let all: String = dashboard_exprs(&d).into_iter().map(|(_, e)| e + "\n").collect();
    for needle in [
        "sum by (server, tool, decision) (rate(mcp_tool_calls_total",
        "sum by (kind) (mcp_scope_violations_total",
        "mcp_secret_access_total",
        "histogram_quantile(0.5, sum by (le, server) (rate(mcp_tool_call_duration_seconds_bucket",
        "histogram_quantile(0.9,",
        "histogram_quantile(0.99,",
        "mcp_monitor_events_lost_total",
        "mcp_monitor_parse_errors_total",
        "mcp_servers_watched",
    ] {
        assert!(all.contains(needle), "no panel queries {needle:?}");
    }
}

/// A Prometheus server on loopback in a temporary folder; killed (and the folder
/// removed) when dropped, a failing test included.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Self {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - "{rules}"
scrape_configs:
  - job_name: mcp-monitor
    static_configs:
      - targets: ["{target}"]
"#,
                rules = deploy("prometheus/alerts.yml").canonicalize().unwrap().display()
            ),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting prometheus (install Debian's prometheus package; `cargo xtask test` does)");
        let p = Self {
            child,
            dir: dir.to_path_buf(),
            addr,
        };
        p.wait("Prometheus ready", || match http_get(&p.addr, "/-/ready") {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{status} {body}")),
            Err(e) => Err(format!("{e:#}")),
        });
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `check` every 250 ms for up to WAIT; fails with its last complaint and
    /// Prometheus's log.
    fn wait(&self, what: &str, mut check: impl FnMut() -> Result<(), String>) {
        let start = Instant::now();
        loop {
            let last = match check() {
                Ok(()) => return,
                Err(e) => e,
            };
            assert!(
                start.elapsed() < WAIT,
                "{what}: not within {WAIT:?}; last: {last}\nprometheus log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// GET /api/v1/{path}: the `data` of a successful answer, else an error with
    /// Prometheus's message (a syntax error in a query, say).
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) =
            http_get(&self.addr, &format!("/api/v1/{path}")).map_err(|e| format!("{e:#}"))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("{status}: {} {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result (a vector, for the queries here).
    fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("query?query={}", urlencode(q)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// (labels without job and instance, value) of each series of a vector result.
fn series(result: &[Value]) -> Vec<(Value, f64)> {
    let mut out: Vec<(Value, f64)> = result
        .iter()
        .map(|s| {
            let mut m = s["metric"].clone();
            let obj = m.as_object_mut().unwrap();
            obj.remove("job");
            obj.remove("instance");
            (m, s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect();
    out.sort_by_key(|(m, _)| m.to_string());
    out
}

#[test]
fn prometheus_scrapes_the_daemon_and_the_scope_violation_alert_fires() {
    let started = Instant::now();
    let tag = unique_tag("prometheus");
    let tmp = TempDir::new(&tag);
    let dir = tmp.path();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"servers:
  pytools:
    match: {{ cmdline: "{glob}" }}
    tools: [echo, add]
    agents:
      alice: {{ client: "alice-*", tools: [echo] }}
unregistered_servers: ignore
"#,
            glob = python_server_glob(&tag)
        ),
    )
    .unwrap();
    // `--watch` names nothing: only the policy's server is watched.
    let nothing = format!("/nothing/{tag}");
    let d =
        Daemon::start(&["--policy", policy.to_str().unwrap(), "--watch", &nothing]).expect("daemon starts");
    let target = d.ready["metrics_addr"].as_str().unwrap().to_string();
    assert!(target.starts_with("127.0.0.1:"), "{target}");

    let prom = Prometheus::start(&dir.join("prometheus"), &target);
    prom.wait("first scrape of the daemon (up == 1)", || {
        let r = prom.query(r#"up{job="mcp-monitor"} == 1"#)?;
        if r.len() == 1 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    eprintln!("prometheus up and scraping after {:?}", started.elapsed());

    // One call in alice's scope, one of the server's tools that is not hers.
    let server = python_server(&tag);
    let calls = json!([
        {"tool": "echo", "arguments": {"text": "hi"}},
        {"tool": "add", "arguments": {"a": 1, "b": 2}},
    ]);
    let report = drive(Client::Python, "alice-cli", &server, &calls, &[]);
    let events = server_events(&d, "tool_call", &report["server_pid"]);
    let decisions: Vec<_> = events.iter().map(|e| (&e["tool"], &e["decision"])).collect();
    assert_eq!(
        decisions,
        [
            (&json!("echo"), &json!("allow")),
            (&json!("add"), &json!("violation"))
        ],
        "{events:#?}"
    );
    eprintln!("session done after {:?}", started.elapsed());

    // Prometheus's own view of the counters, once a scrape has them.
    let expect = |q: &str, want: Vec<(Value, f64)>| {
        prom.wait(&format!("{q} == {want:?}"), || {
            let got = series(&prom.query(q)?);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    };
    expect(
        r#"mcp_tool_calls_total{job="mcp-monitor",decision="violation"}"#,
        vec![(
            json!({"__name__": "mcp_tool_calls_total", "agent": "alice", "decision": "violation", "server": "pytools", "tool": "add"}),
            1.0,
        )],
    );
    expect(
        r#"mcp_tool_calls_total{job="mcp-monitor",decision="allow"}"#,
        vec![(
            json!({"__name__": "mcp_tool_calls_total", "agent": "alice", "decision": "allow", "server": "pytools", "tool": "echo"}),
            1.0,
        )],
    );
    expect(
        r#"mcp_scope_violations_total{job="mcp-monitor",kind="tool_out_of_scope"}"#,
        vec![(
            json!({"__name__": "mcp_scope_violations_total", "agent": "alice", "kind": "tool_out_of_scope", "server": "pytools"}),
            1.0,
        )],
    );
    expect(
        r#"sum(mcp_scope_violations_total{job="mcp-monitor"})"#,
        vec![(json!({}), 1.0)],
    );
    expect(
        r#"sum by (server) (mcp_tool_call_duration_seconds_count{job="mcp-monitor"})"#,
        vec![(json!({"server": "pytools"}), 2.0)],
    );
    eprintln!("counters seen in Prometheus after {:?}", started.elapsed());

    // The shipped rule, evaluated by Prometheus: pending or firing for this violation.
    let mut alerts = Vec::new();
    prom.wait("MCPScopeViolation pending or firing", || {
        alerts = prom.api("alerts")?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == "MCPScopeViolation")
        {
            Ok(())
        } else {
            Err(format!("{alerts:?}"))
        }
    });
    let scope: Vec<_> = alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "MCPScopeViolation")
        .collect();
    assert_eq!(scope.len(), 1, "{alerts:#?}");
    let a = scope[0];
    assert!(
        ["pending", "firing"].contains(&a["state"].as_str().unwrap()),
        "{a:#}"
    );
    for (k, v) in [
        ("server", "pytools"),
        ("agent", "alice"),
        ("kind", "tool_out_of_scope"),
        ("severity", "warning"),
        ("job", "mcp-monitor"),
        ("instance", target.as_str()),
    ] {
        assert_eq!(a["labels"][k], v, "{a:#}");
    }
    assert_eq!(
        a["annotations"]["summary"], "MCP scope violation (tool_out_of_scope) on server pytools",
        "{a:#}"
    );
    for other in [
        "MCPSecretAccess",
        "MCPUnknownAgent",
        "MCPUnregisteredServer",
        "MCPMonitorEventsLost",
        "MCPMonitorEventsDropped",
    ] {
        assert!(
            !alerts.iter().any(|a| a["labels"]["alertname"] == other),
            "{other} should not be active: {alerts:#?}"
        );
    }
    assert!(
        !alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == "MCPMonitorDown" && a["state"] == "firing"),
        "{alerts:#?}"
    );
    eprintln!("alert {} after {:?}", a["state"], started.elapsed());

    // Every query of the Grafana dashboard is valid PromQL for this Prometheus; the
    // panels about tool calls and violations show this session.
    let d_json = dashboard();
    for (title, expr) in dashboard_exprs(&d_json) {
        let q = grafana_to_promql(&expr);
        if let Err(e) = prom.query(&q) {
            panic!("dashboard panel {title:?}: Prometheus refuses {q}: {e}");
        }
    }
    let mentions = |word: &'static str| move |r: &[Value]| r.iter().any(|s| s.to_string().contains(word));
    // Every known label value exists from the start at 0, so the loss panel shows 0
    // for each of them rather than no data.
    let zero_for_each_where = |r: &[Value]| {
        let got = series(r);
        [
            "kernel_ringbuf_full_data",
            "kernel_ringbuf_full_lifecycle",
            "kernel_transfer_cut_ring",
            "kernel_read_failed",
            "kernel_watch_full",
            "userspace_stream_gap",
        ]
        .iter()
        .all(|w| got.contains(&(json!({ "where": w }), 0.0)))
    };
    // The server has exited: the stat shows 0, a number, not "no data".
    let no_server_left = |r: &[Value]| series(r) == [(json!({}), 0.0)];
    type Shows = Box<dyn Fn(&[Value]) -> bool>;
    let panels: [(&str, Shows); 5] = [
        (
            "Tool calls by server, tool and decision",
            Box::new(mentions("add")),
        ),
        (
            "Scope violations by kind",
            Box::new(mentions("tool_out_of_scope")),
        ),
        (
            "Violations by server, agent and kind",
            Box::new(mentions("alice")),
        ),
        ("Servers watched", Box::new(no_server_left)),
        (
            "Events lost, dropped and parse errors",
            Box::new(zero_for_each_where),
        ),
    ];
    for (title, shows) in panels {
        let (_, expr) = dashboard_exprs(&d_json)
            .into_iter()
            .find(|(t, _)| t == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        let q = grafana_to_promql(&expr);
        prom.wait(&format!("panel {title:?} shows the session ({q})"), || {
            let r = prom.query(&q)?;
            if shows(&r) { Ok(()) } else { Err(format!("{r:?}")) }
        });
    }
    drop(prom);
    eprintln!("done after {:?}", started.elapsed());
}
