//! The report as sections of text and tables, the same for Markdown and HTML: what is
//! shown, and in which order, is decided here once; `report_md` and `report_html` only
//! write it out (and escape it, each in its own way). Cells are plain, unescaped text.

use serde_json::Value;

use super::access::{Call, Instance, Report, ServerReview};

/// Calls listed one by one in Markdown and HTML (all of them are in the JSON form).
pub const MAX_CALL_ROWS: usize = 10_000;
/// Call ids listed in one cell.
const MAX_IDS: usize = 12;

pub struct Section {
    /// 1 for the title, 2 for a part, 3 within a server.
    pub level: u8,
    pub title: String,
    pub notes: Vec<String>,
    pub tables: Vec<Table>,
}

pub struct Table {
    /// Unique in the page (HTML ids, the `#sort=` hook).
    pub id: String,
    pub caption: Option<String>,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// Said instead of an empty table.
    pub empty: &'static str,
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

/// Ids of calls (and locations of events outside calls), shortened past `MAX_IDS`.
fn ids(calls: &[String], outside: &[String]) -> String {
    let all: Vec<&String> = calls.iter().chain(outside).collect();
    let mut s = all
        .iter()
        .take(MAX_IDS)
        .map(|x| x.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > MAX_IDS {
        s.push_str(&format!(" (+{} more)", all.len() - MAX_IDS));
    }
    s
}

/// A JSON value (an id, serverInfo, a workload) in one line.
fn compact(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn info(i: &Instance) -> String {
    match &i.info {
        Some(v) => format!(
            "{} {}",
            v.get("name").map(compact).unwrap_or_default(),
            v.get("version").map(compact).unwrap_or_default()
        )
        .trim()
        .to_string(),
        None => String::new(),
    }
}

pub fn sections(r: &Report) -> Vec<Section> {
    let mut out = vec![Section {
        level: 1,
        title: "MCP access review".into(),
        notes: summary_notes(r),
        tables: vec![sources(r)],
    }];
    out.push(Section {
        level: 2,
        title: "Policy epochs".into(),
        notes: vec![
            "Calls are judged by the policy in force when they started: a new epoch begins when the daemon starts (ready) or a policy takes effect (policy_loaded), in the same log file, else in the files before it.".into(),
        ],
        tables: vec![Table {
            id: "epochs".into(),
            caption: None,
            headers: vec!["epoch", "began by", "time", "policy", "summary", "calls", "event"],
            rows: r
                .epochs
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        e.began_by.clone(),
                        opt(&e.ts),
                        opt(&e.policy),
                        opt(&e.summary),
                        e.calls.to_string(),
                        opt(&e.location),
                    ]
                })
                .collect(),
            empty: "No policy events in the window.",
        }],
    });
    for (i, s) in r.servers.iter().enumerate() {
        out.extend(server_sections(i, s));
    }
    out.push(consistency(r));
    out.push(calls(r));
    out
}

fn summary_notes(r: &Report) -> Vec<String> {
    let t = &r.totals;
    let mut notes = vec![
        format!(
            "Window: {} to {}.",
            r.window.since.as_deref().unwrap_or("the start of the logs"),
            r.window.until.as_deref().unwrap_or("their end")
        ),
        format!(
            "{} events: {} servers, {} agents, {} calls ({} errors), {} violations, {} secret reads, {} consistency differences.",
            t.events, t.servers, t.agents, t.calls, t.errors, t.violations, t.secret_reads, t.differences
        ),
    ];
    if r.sources.skipped > 0 {
        notes.push(format!(
            "{} line(s) skipped (not events); first: {}",
            r.sources.skipped,
            r.sources.skips.join("; ")
        ));
    }
    notes
}

fn sources(r: &Report) -> Table {
    Table {
        id: "sources".into(),
        caption: Some("Event logs read".into()),
        headers: vec!["file", "gzip", "lines", "events", "outside window", "skipped"],
        rows: r
            .sources
            .files
            .iter()
            .map(|f| {
                vec![
                    f.path.clone(),
                    if f.gzip { "yes" } else { "no" }.into(),
                    f.lines.to_string(),
                    f.events.to_string(),
                    f.outside_window.to_string(),
                    f.skipped.to_string(),
                ]
            })
            .collect(),
        empty: "No files.",
    }
}

fn server_sections(i: usize, s: &ServerReview) -> Vec<Section> {
    let id = |t: &str| format!("s{}-{t}", i + 1);
    let mut notes = vec![format!(
        "{} instance(s), {} agent(s), {} call(s), {} error(s).",
        s.instances.len(),
        s.agents.len(),
        s.calls,
        s.errors
    )];
    notes.push(if s.declared.rules.is_empty() {
        "Declared scope: no rule of the policy was named by a violation.".into()
    } else {
        format!("Rules named by violations: {}.", s.declared.rules.join(", "))
    });
    if let Some(p) = &s.declared.policy {
        let list = |l: &Option<Vec<String>>| match l {
            Some(v) if v.is_empty() => "none".to_string(),
            Some(v) => v.join(", "),
            None => "any (not restricted)".to_string(),
        };
        notes.push(format!(
            "Declared in the policy: tools {}; files {}; secrets {}; exec {}; connect {}; agents {}.",
            list(&p.tools),
            list(&p.files),
            list(&Some(p.secrets.clone())),
            list(&p.exec),
            list(&p.connect),
            if p.agents.is_empty() {
                "any".to_string()
            } else {
                p.agents
                    .iter()
                    .map(|a| format!("{} (tools {})", a.name, list(&a.tools)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    let instances = Table {
        id: id("instances"),
        caption: Some("How it was found and identified".into()),
        headers: vec![
            "pid",
            "exe",
            "cmdline",
            "serverInfo",
            "detected by",
            "matched",
            "uid",
            "workload",
            "client (stdin peer)",
            "static secrets",
            "started",
            "exited",
            "calls",
            "event",
        ],
        rows: s
            .instances
            .iter()
            .map(|inst| {
                vec![
                    opt(&inst.pid),
                    opt(&inst.exe),
                    opt(&inst.cmdline),
                    info(inst),
                    opt(&inst.detected_by),
                    opt(&inst.matched),
                    opt(&inst.uid),
                    inst.workload.as_ref().map(compact).unwrap_or_default(),
                    inst.client
                        .as_ref()
                        .map(|c| {
                            format!(
                                "pid {} {}",
                                c.get("pid").map(compact).unwrap_or_default(),
                                c.get("cmdline").or(c.get("exe")).map(compact).unwrap_or_default()
                            )
                        })
                        .unwrap_or_default(),
                    inst.static_secrets
                        .iter()
                        .map(|x| format!("{} ({})", x.name, x.class.as_deref().unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(", "),
                    opt(&inst.started),
                    opt(&inst.exited),
                    inst.calls.to_string(),
                    opt(&inst.location),
                ]
            })
            .collect(),
        empty: "No instance seen.",
    };
    let agents = Table {
        id: id("agents"),
        caption: Some("Agents that used it".into()),
        headers: vec![
            "agent",
            "policy agent",
            "client",
            "version",
            "pid",
            "uid",
            "exe",
            "token sub",
            "address",
            "container",
            "transports",
            "calls",
            "errors",
            "violations",
        ],
        rows: s
            .agents
            .iter()
            .map(|a| {
                let i = &a.identity;
                vec![
                    a.id.clone(),
                    opt(&i.name),
                    opt(&i.client_name),
                    opt(&i.client_version),
                    opt(&i.pid),
                    opt(&i.uid),
                    opt(&i.exe),
                    opt(&i.token_sub),
                    opt(&i.address),
                    opt(&i.container),
                    a.transports.join(", "),
                    a.calls.to_string(),
                    a.errors.to_string(),
                    a.violations.to_string(),
                ]
            })
            .collect(),
        empty: "No calls.",
    };
    let tools = Table {
        id: id("tools"),
        caption: Some("Tools each agent called".into()),
        headers: vec![
            "agent",
            "client",
            "tool",
            "calls",
            "errors",
            "violations",
            "kinds",
        ],
        rows: s
            .agents
            .iter()
            .flat_map(|a| {
                a.tools.iter().map(move |t| {
                    vec![
                        a.id.clone(),
                        a.label.clone(),
                        t.tool.clone(),
                        t.calls.to_string(),
                        t.errors.to_string(),
                        t.violations.to_string(),
                        t.kinds
                            .iter()
                            .map(|(k, n)| format!("{k} x{n}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
            })
            .collect(),
        empty: "No calls.",
    };
    let violations = Table {
        id: id("violations"),
        caption: Some("Violations by kind, and the rule behind each".into()),
        headers: vec!["kind", "rule", "frameworks", "count", "calls / events"],
        rows: s
            .violations
            .iter()
            .map(|v| {
                vec![
                    v.kind.clone(),
                    opt(&v.rule),
                    v.refs.join(", "),
                    v.count.to_string(),
                    ids(&v.calls, &v.outside_calls),
                ]
            })
            .collect(),
        empty: "No violations.",
    };
    let secrets = Table {
        id: id("secrets"),
        caption: Some("Secrets read".into()),
        headers: vec!["path", "class", "rule", "allowed by", "count", "calls / events"],
        rows: s
            .secrets
            .iter()
            .map(|x| {
                vec![
                    x.path.clone(),
                    opt(&x.class),
                    opt(&x.rule),
                    opt(&x.allowed_by),
                    x.count.to_string(),
                    ids(&x.calls, &x.outside_calls),
                ]
            })
            .collect(),
        empty: "No secret read.",
    };
    let scope = Table {
        id: id("out-of-scope"),
        caption: Some("Files, programs and connections outside the declared scope".into()),
        headers: vec!["kind", "detail", "rule", "count", "calls / events"],
        rows: s
            .out_of_scope
            .iter()
            .map(|x| {
                vec![
                    x.kind.clone(),
                    opt(&x.detail),
                    opt(&x.rule),
                    x.count.to_string(),
                    ids(&x.calls, &x.outside_calls),
                ]
            })
            .collect(),
        empty: "Nothing outside the declared scope.",
    };
    vec![Section {
        level: 2,
        title: format!("Server {}", s.name),
        notes,
        tables: vec![instances, agents, tools, violations, secrets, scope],
    }]
}

fn consistency(r: &Report) -> Section {
    let rows = r
        .consistency
        .iter()
        .flat_map(|d| {
            d.variants.iter().map(move |v| {
                vec![
                    d.server.clone(),
                    d.tool.clone(),
                    d.epoch.to_string(),
                    opt(&v.decision),
                    v.kinds.join(", "),
                    d.differing_kinds.join(", "),
                    v.calls.to_string(),
                    v.agents.join(", "),
                    v.clients.join(", "),
                    v.transports.join(", "),
                    v.examples.join(", "),
                ]
            })
        })
        .collect();
    Section {
        level: 2,
        title: "Consistency: the same tool decided the same way for every caller".into(),
        notes: vec![format!(
            "{} tool(s) under one policy epoch were decided more than one way for different agents, clients or transports; one row per way.",
            r.consistency.len()
        )],
        tables: vec![Table {
            id: "consistency".into(),
            caption: None,
            headers: vec![
                "server",
                "tool",
                "epoch",
                "decision",
                "kinds",
                "differing kinds",
                "calls",
                "agents",
                "clients",
                "transports",
                "examples",
            ],
            rows,
            empty: "No differences: every tool was decided the same way for every caller and transport.",
        }],
    }
}

fn call_row(c: &Call) -> Vec<String> {
    vec![
        c.id.clone(),
        opt(&c.ts),
        c.server.clone(),
        c.agent.clone(),
        c.tool.clone(),
        opt(&c.transport),
        opt(&c.session),
        compact(&c.request_id),
        opt(&c.outcome),
        opt(&c.decision),
        c.violations
            .iter()
            .map(|v| format!("{} ({})", v.kind, v.rule.as_deref().unwrap_or("no rule")))
            .collect::<Vec<_>>()
            .join(", "),
        c.secrets
            .iter()
            .map(|x| format!("{} ({})", x.path, x.class.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", "),
        c.epoch.to_string(),
        c.location.clone(),
    ]
}

fn calls(r: &Report) -> Section {
    let mut notes =
        vec!["Every call with its session and request id, and where its event is (file:line).".to_string()];
    if r.calls.len() > MAX_CALL_ROWS {
        notes.push(format!(
            "The first {MAX_CALL_ROWS} of {} calls; all of them are in the JSON form (--format json).",
            r.calls.len()
        ));
    }
    Section {
        level: 2,
        title: "Calls".into(),
        notes,
        tables: vec![Table {
            id: "calls".into(),
            caption: None,
            headers: vec![
                "call",
                "time",
                "server",
                "agent",
                "tool",
                "transport",
                "session",
                "request id",
                "outcome",
                "decision",
                "violations (rule)",
                "secrets",
                "epoch",
                "event",
            ],
            rows: r.calls.iter().take(MAX_CALL_ROWS).map(call_row).collect(),
            empty: "No calls in the window.",
        }],
    }
}
