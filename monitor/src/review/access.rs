//! The access review's model: what the event logs say about each server, the agents
//! that used it, their calls and what those did. Built once from an [`EventLog`]; the
//! Markdown, JSON and HTML forms render this one model (`--format json` is it,
//! serialised), so they cannot disagree. Everything here comes from watched processes:
//! kept as data, never trusted as structure (a field of the wrong type is absent).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::Serialize;
use serde_json::Value;

use super::{consistency, log::EventLog};
use crate::policy::Policy;

/// Bumped when a field changes meaning or goes away (new fields do not bump it).
pub const FORMAT_VERSION: u32 = 1;

/// Call event types and the field that names what was called.
const CALL_TYPES: [(&str, &str); 3] = [
    ("tool_call", "tool"),
    ("resource_read", "uri"),
    ("prompt_get", "prompt"),
];

#[derive(Debug, Serialize)]
pub struct Report {
    pub report: &'static str,
    pub format_version: u32,
    pub window: ReportWindow,
    pub sources: Sources,
    pub totals: Totals,
    pub epochs: Vec<Epoch>,
    pub servers: Vec<ServerReview>,
    pub consistency: Vec<consistency::Difference>,
    pub calls: Vec<Call>,
}

#[derive(Debug, Serialize)]
pub struct ReportWindow {
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Sources {
    pub files: Vec<FileRead>,
    /// Lines that were not events, all files together.
    pub skipped: usize,
    /// The first of them, `file:line: reason`.
    pub skips: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FileRead {
    pub path: String,
    pub gzip: bool,
    pub lines: usize,
    pub events: usize,
    pub outside_window: usize,
    pub skipped: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub events: usize,
    pub servers: usize,
    pub agents: usize,
    pub calls: usize,
    pub errors: usize,
    pub violations: usize,
    pub secret_reads: usize,
    pub differences: usize,
}

/// A stretch of the log under one policy: begun by the daemon starting (`ready`) or
/// a policy taking effect (`policy_loaded`); epoch 0 is what came before either.
#[derive(Debug, Serialize)]
pub struct Epoch {
    pub id: usize,
    pub began_by: String,
    pub ts: Option<String>,
    pub policy: Option<String>,
    pub summary: Option<String>,
    pub location: Option<String>,
    pub calls: usize,
}

#[derive(Debug, Serialize)]
pub struct ServerReview {
    /// The policy entry (`server.name`), or `unregistered`.
    pub name: String,
    pub instances: Vec<Instance>,
    pub declared: Declared,
    pub agents: Vec<AgentUse>,
    pub calls: usize,
    pub errors: usize,
    pub violations: Vec<ViolationSummary>,
    pub secrets: Vec<SecretRead>,
    pub out_of_scope: Vec<OutOfScope>,
}

/// One process that was this server: how it was found and what it said it was.
#[derive(Debug, Serialize)]
pub struct Instance {
    pub pid: Option<u64>,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    /// serverInfo {name, version}, from its first call that had it.
    pub info: Option<Value>,
    pub uid: Option<u64>,
    pub workload: Option<Value>,
    pub detected_by: Option<String>,
    pub matched: Option<String>,
    pub first_method: Option<String>,
    pub transport: Option<String>,
    /// The process on the other end of its stdin (`server_started.client`).
    pub client: Option<Value>,
    /// Secret-looking environment variables it started with (names and classes only).
    pub static_secrets: Vec<StaticSecret>,
    pub started: Option<String>,
    pub exited: Option<String>,
    /// Where its `server_started` is.
    pub location: Option<String>,
    pub calls: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StaticSecret {
    pub name: String,
    pub class: Option<String>,
}

/// The declared scope: the rules the events name, and with `--policy` the file's entry.
#[derive(Debug, Default, Serialize)]
pub struct Declared {
    pub rules: Vec<String>,
    pub policy: Option<DeclaredPolicy>,
}

#[derive(Debug, Serialize)]
pub struct DeclaredPolicy {
    /// Absent lists do not restrict (`null`); an empty list allows nothing.
    pub tools: Option<Vec<String>>,
    pub files: Option<Vec<String>>,
    pub secrets: Vec<String>,
    pub exec: Option<Vec<String>>,
    pub connect: Option<Vec<String>>,
    pub agents: Vec<DeclaredAgent>,
}

#[derive(Debug, Serialize)]
pub struct DeclaredAgent {
    pub name: String,
    pub tools: Option<Vec<String>>,
}

/// Who called, as the call events say: one row per distinct identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Identity {
    /// The policy's agent entry that matched.
    pub name: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub pid: Option<u64>,
    pub uid: Option<u64>,
    pub exe: Option<String>,
    /// Over HTTP: the bearer token's `sub` and `iss` (unverified) and the peer address.
    pub token_sub: Option<String>,
    pub token_iss: Option<String>,
    pub address: Option<String>,
    pub container: Option<String>,
    pub pod: Option<String>,
}

impl Identity {
    /// A short name for tables and the picture.
    pub fn label(&self) -> String {
        let mut label = match (&self.name, &self.client_name) {
            (Some(n), Some(c)) => format!("{n} ({c})"),
            (Some(n), None) => n.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => "unidentified".to_string(),
        };
        if let Some(v) = &self.client_version {
            label.push(' ');
            label.push_str(v);
        }
        if let Some(sub) = &self.token_sub {
            label.push_str(&format!(" sub={sub}"));
        }
        if let Some(pid) = self.pid {
            label.push_str(&format!(" pid {pid}"));
        }
        label
    }
}

#[derive(Debug, Serialize)]
pub struct AgentUse {
    /// `a1`, `a2`...: what calls and the consistency list refer to.
    pub id: String,
    pub label: String,
    #[serde(flatten)]
    pub identity: Identity,
    pub transports: Vec<String>,
    pub calls: usize,
    pub errors: usize,
    pub violations: usize,
    pub tools: Vec<ToolUse>,
}

#[derive(Debug, Serialize)]
pub struct ToolUse {
    pub tool: String,
    pub calls: usize,
    pub errors: usize,
    /// Calls with `decision: violation`.
    pub violations: usize,
    /// Violations by kind.
    pub kinds: BTreeMap<String, usize>,
}

/// Violations of one kind raised by one rule.
#[derive(Debug, Serialize)]
pub struct ViolationSummary {
    pub kind: String,
    pub rule: Option<String>,
    /// Where the kind sits in the frameworks (`policy/refs.rs`): taken from this build's
    /// table, so logs written before refs existed get them too.
    pub refs: &'static [&'static str],
    pub count: usize,
    /// The calls that carried it (ids in `calls`).
    pub calls: Vec<String>,
    /// `violation` events outside any call, by location.
    pub outside_calls: Vec<String>,
}

/// A secret opened: in calls' `effects.secrets`, or a `secret_access` event outside one.
#[derive(Debug, Serialize)]
pub struct SecretRead {
    pub path: String,
    pub class: Option<String>,
    pub rule: Option<String>,
    pub allowed_by: Option<String>,
    pub count: usize,
    pub calls: Vec<String>,
    pub outside_calls: Vec<String>,
}

/// A file, program or connection outside the declared scope.
#[derive(Debug, Serialize)]
pub struct OutOfScope {
    pub kind: String,
    pub detail: Option<String>,
    pub rule: Option<String>,
    pub count: usize,
    pub calls: Vec<String>,
    pub outside_calls: Vec<String>,
}

/// One call, enough to find it again: its session and request id, and its event.
#[derive(Debug, Serialize)]
pub struct Call {
    pub id: String,
    pub ts: Option<String>,
    /// `tool_call`, `resource_read` or `prompt_get`.
    pub kind: String,
    pub server: String,
    pub server_pid: Option<u64>,
    pub agent: String,
    pub tool: String,
    pub transport: Option<String>,
    pub session: Option<String>,
    pub request_id: Value,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub decision: Option<String>,
    pub violations: Vec<CallViolation>,
    pub secrets: Vec<CallSecret>,
    pub epoch: usize,
    /// `file:line` of the event.
    pub location: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallViolation {
    pub kind: String,
    pub detail: Option<String>,
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallSecret {
    pub path: String,
    pub class: Option<String>,
    pub rule: Option<String>,
}

/// The out-of-scope effect kinds listed on their own.
pub const OUT_OF_SCOPE_KINDS: [&str; 3] = ["file_out_of_scope", "exec_out_of_scope", "connect_out_of_scope"];

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::to_string)
}

fn number(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

fn array<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn identity_of(agent: &Value) -> Identity {
    Identity {
        name: text(agent, "/name"),
        client_name: text(agent, "/client/name"),
        client_version: text(agent, "/client/version"),
        pid: number(agent, "/pid"),
        uid: number(agent, "/uid"),
        exe: text(agent, "/exe"),
        token_sub: text(agent, "/token/sub"),
        token_iss: text(agent, "/token/iss"),
        address: text(agent, "/address"),
        container: text(agent, "/workload/container/id"),
        pod: text(agent, "/workload/pod/uid"),
    }
}

fn violations_of(v: &Value) -> Vec<CallViolation> {
    array(v, "/violations")
        .iter()
        .map(|x| CallViolation {
            kind: text(x, "/kind").unwrap_or_else(|| "unknown".into()),
            detail: text(x, "/detail"),
            rule: text(x, "/rule"),
        })
        .collect()
}

/// The server entry an event names (events without one are grouped apart).
fn server_name(v: &Value) -> String {
    text(v, "/server/name").unwrap_or_else(|| "(no server name)".into())
}

type InstanceKey = (Option<u64>, Option<String>, Option<String>);
/// A secret read: path, class, rule, allowed_by.
type SecretKey = (String, Option<String>, Option<String>, Option<String>);

fn instance_key(v: &Value) -> InstanceKey {
    (
        number(v, "/server/pid"),
        text(v, "/server/exe"),
        text(v, "/server/cmdline"),
    )
}

/// Per server, while the log is read.
#[derive(Default)]
struct ServerAcc {
    instances: BTreeMap<InstanceKey, Instance>,
    rules: BTreeSet<String>,
    agents: BTreeMap<Identity, AgentAcc>,
    calls: usize,
    errors: usize,
    violations: BTreeMap<(String, Option<String>), Refs>,
    secrets: BTreeMap<SecretKey, Refs>,
    out_of_scope: BTreeMap<(String, Option<String>, Option<String>), Refs>,
}

#[derive(Default)]
struct AgentAcc {
    id: String,
    transports: BTreeSet<String>,
    calls: usize,
    errors: usize,
    violations: usize,
    tools: BTreeMap<String, ToolAcc>,
}

#[derive(Default)]
struct ToolAcc {
    calls: usize,
    errors: usize,
    violations: usize,
    kinds: BTreeMap<String, usize>,
}

/// Where something was seen: calls by id, events outside calls by location.
#[derive(Default)]
struct Refs {
    count: usize,
    calls: Vec<String>,
    outside: Vec<String>,
}

impl Refs {
    fn call(&mut self, id: &str) {
        self.count += 1;
        if self.calls.last().map(String::as_str) != Some(id) {
            self.calls.push(id.to_string());
        }
    }
    fn outside(&mut self, location: String) {
        self.count += 1;
        self.outside.push(location);
    }
}

fn new_instance(v: &Value) -> Instance {
    Instance {
        pid: number(v, "/server/pid"),
        exe: text(v, "/server/exe"),
        cmdline: text(v, "/server/cmdline"),
        info: v.pointer("/server/info").filter(|i| i.is_object()).cloned(),
        uid: number(v, "/server/uid"),
        workload: v.pointer("/server/workload").filter(|w| w.is_object()).cloned(),
        detected_by: None,
        matched: None,
        first_method: None,
        transport: None,
        client: None,
        static_secrets: Vec::new(),
        started: None,
        exited: None,
        location: None,
        calls: 0,
    }
}

impl ServerAcc {
    fn instance(&mut self, v: &Value) -> &mut Instance {
        let inst = self
            .instances
            .entry(instance_key(v))
            .or_insert_with(|| new_instance(v));
        if inst.info.is_none() {
            inst.info = v.pointer("/server/info").filter(|i| i.is_object()).cloned();
        }
        inst
    }
}

/// The epochs of the log, and which one a time falls in.
struct Epochs {
    list: Vec<Epoch>,
    /// (time, epoch), all files together and per file.
    starts: Vec<(SystemTime, usize)>,
    by_file: BTreeMap<Arc<Path>, Vec<(SystemTime, usize)>>,
}

impl Epochs {
    fn of(log: &EventLog) -> Self {
        let mut list = vec![Epoch {
            id: 0,
            began_by: "log_start".into(),
            ts: None,
            policy: None,
            summary: None,
            location: None,
            calls: 0,
        }];
        let mut starts = Vec::new();
        let mut by_file: BTreeMap<Arc<Path>, Vec<(SystemTime, usize)>> = BTreeMap::new();
        for e in log.of_kind("monitor_status") {
            let status = e.value.get("status").and_then(Value::as_str);
            if !matches!(status, Some("ready" | "policy_loaded")) {
                continue;
            }
            let id = list.len();
            list.push(Epoch {
                id,
                began_by: status.unwrap_or_default().to_string(),
                ts: text(&e.value, "/ts"),
                policy: text(&e.value, "/policy"),
                summary: text(&e.value, "/summary"),
                location: Some(e.location()),
                calls: 0,
            });
            if let Some(ts) = e.ts {
                starts.push((ts, id));
                by_file.entry(e.file.clone()).or_default().push((ts, id));
            }
        }
        Epochs {
            list,
            starts,
            by_file,
        }
    }

    /// The epoch in force at `t` for an event of `file`: the last one begun at or
    /// before it in the same file (logs of several hosts given together keep their
    /// own epochs), else in any file (a rotated log continues the one before it).
    fn at(&self, file: &Path, t: Option<SystemTime>) -> usize {
        let Some(t) = t else { return 0 };
        let last = |starts: &[(SystemTime, usize)]| {
            let i = starts.partition_point(|(s, _)| *s <= t);
            (i > 0).then(|| starts[i - 1].1)
        };
        self.by_file
            .get(file)
            .and_then(|starts| last(starts))
            .or_else(|| last(&self.starts))
            .unwrap_or(0)
    }
}

/// Builds the review of `log` (read with `window`), with the declared scopes of
/// `policy` when one is given.
pub fn build(log: &EventLog, window: (Option<String>, Option<String>), policy: Option<&Policy>) -> Report {
    let mut epochs = Epochs::of(log);
    let mut servers: BTreeMap<String, ServerAcc> = BTreeMap::new();
    let mut calls: Vec<Call> = Vec::new();
    let mut next_agent = 0usize;
    for e in &log.events {
        let v = &e.value;
        let kind = e.kind.as_str();
        if let Some((_, target)) = CALL_TYPES.iter().find(|(t, _)| *t == kind) {
            let s = servers.entry(server_name(v)).or_default();
            s.instance(v).calls += 1;
            let identity = identity_of(v.get("agent").unwrap_or(&Value::Null));
            let agent = s.agents.entry(identity).or_insert_with(|| {
                next_agent += 1;
                AgentAcc {
                    id: format!("a{next_agent}"),
                    ..Default::default()
                }
            });
            // A call is judged by the policy in force when it started.
            let started = e.ts.map(|t| {
                let ms = v.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
                let back = Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).unwrap_or_default();
                t.checked_sub(back).unwrap_or(t)
            });
            let call = Call {
                id: format!("c{}", calls.len() + 1),
                ts: text(v, "/ts"),
                kind: kind.to_string(),
                server: server_name(v),
                server_pid: number(v, "/server/pid"),
                agent: agent.id.clone(),
                tool: text(v, &format!("/{target}")).unwrap_or_else(|| "(none)".into()),
                transport: text(v, "/transport"),
                session: text(v, "/session"),
                request_id: v.get("request_id").cloned().unwrap_or(Value::Null),
                outcome: text(v, "/outcome"),
                error: text(v, "/error"),
                decision: text(v, "/decision"),
                violations: violations_of(v),
                secrets: array(v, "/effects/secrets")
                    .iter()
                    .map(|x| CallSecret {
                        path: text(x, "/path").unwrap_or_default(),
                        class: text(x, "/class"),
                        rule: text(x, "/rule"),
                    })
                    .collect(),
                epoch: epochs.at(&e.file, started),
                location: e.location(),
            };
            epochs.list[call.epoch].calls += 1;
            let error = call.outcome.as_deref() == Some("error");
            let violation = call.decision.as_deref() == Some("violation");
            agent.calls += 1;
            agent.errors += usize::from(error);
            agent.violations += usize::from(violation);
            if let Some(t) = &call.transport {
                agent.transports.insert(t.clone());
            }
            let tool = agent.tools.entry(call.tool.clone()).or_default();
            tool.calls += 1;
            tool.errors += usize::from(error);
            tool.violations += usize::from(violation);
            for x in &call.violations {
                *tool.kinds.entry(x.kind.clone()).or_default() += 1;
            }
            s.calls += 1;
            s.errors += usize::from(error);
            for x in &call.violations {
                note_violation(s, x, Some(&call.id), None);
            }
            for x in array(v, "/effects/secrets") {
                s.secrets.entry(secret_key(x)).or_default().call(&call.id);
            }
            calls.push(call);
            continue;
        }
        match kind {
            "server_started" => {
                let s = servers.entry(server_name(v)).or_default();
                let inst = s.instance(v);
                inst.detected_by = text(v, "/detected_by");
                inst.matched = text(v, "/matched");
                inst.first_method = text(v, "/first_method");
                inst.transport = text(v, "/transport");
                inst.client = v.get("client").filter(|c| c.is_object()).map(client_summary);
                inst.started = text(v, "/ts");
                inst.location = Some(e.location());
                inst.uid = inst.uid.or(number(v, "/server/uid"));
                inst.static_secrets = static_secrets(v);
            }
            "server_exited" => {
                let s = servers.entry(server_name(v)).or_default();
                s.instance(v).exited = text(v, "/ts");
            }
            "violation" => {
                let s = servers.entry(server_name(v)).or_default();
                let x = CallViolation {
                    kind: text(v, "/kind").unwrap_or_else(|| "unknown".into()),
                    detail: text(v, "/detail"),
                    rule: text(v, "/rule"),
                };
                note_violation(s, &x, None, Some(e.location()));
            }
            "secret_access" => {
                let s = servers.entry(server_name(v)).or_default();
                s.secrets.entry(secret_key(v)).or_default().outside(e.location());
            }
            _ => {}
        }
    }
    let mut totals = Totals {
        events: log.events.len(),
        calls: calls.len(),
        ..Default::default()
    };
    let servers: Vec<ServerReview> = servers
        .into_iter()
        .map(|(name, s)| finish_server(name, s, policy, &mut totals))
        .collect();
    let consistency = consistency::differences(&calls, &servers);
    totals.differences = consistency.len();
    let epochs: Vec<Epoch> = epochs
        .list
        .into_iter()
        .filter(|ep| ep.id != 0 || ep.calls > 0)
        .collect();
    Report {
        report: "mcp-monitor access review",
        format_version: FORMAT_VERSION,
        window: ReportWindow {
            since: window.0,
            until: window.1,
        },
        sources: Sources {
            files: log
                .files
                .iter()
                .map(|f| FileRead {
                    path: f.path.display().to_string(),
                    gzip: f.gzip,
                    lines: f.lines,
                    events: f.events,
                    outside_window: f.outside,
                    skipped: f.skipped,
                })
                .collect(),
            skipped: log.skipped,
            skips: log.skips.clone(),
        },
        totals,
        epochs,
        servers,
        consistency,
        calls,
    }
}

fn note_violation(s: &mut ServerAcc, x: &CallViolation, call: Option<&str>, outside: Option<String>) {
    if let Some(rule) = &x.rule {
        s.rules.insert(rule.clone());
    }
    let mut refs: Vec<&mut Refs> = vec![s.violations.entry((x.kind.clone(), x.rule.clone())).or_default()];
    if OUT_OF_SCOPE_KINDS.contains(&x.kind.as_str()) {
        refs.push(
            s.out_of_scope
                .entry((x.kind.clone(), x.detail.clone(), x.rule.clone()))
                .or_default(),
        );
    }
    for r in refs {
        match (&call, &outside) {
            (Some(id), _) => r.call(id),
            (None, Some(loc)) => r.outside(loc.clone()),
            (None, None) => r.count += 1,
        }
    }
}

fn secret_key(x: &Value) -> SecretKey {
    (
        text(x, "/path").unwrap_or_default(),
        text(x, "/class"),
        text(x, "/rule"),
        text(x, "/allowed_by"),
    )
}

/// The client of `server_started` without its long parent chain (the log has it).
fn client_summary(c: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["pid", "uid", "exe", "cmdline", "workload"] {
        if let Some(x) = c.get(key) {
            out.insert(key.to_string(), x.clone());
        }
    }
    Value::Object(out)
}

/// `server_started.static_secrets` when the daemon wrote it: names and classes only
/// (a value, if a log ever held one, is not copied).
fn static_secrets(v: &Value) -> Vec<StaticSecret> {
    let mut out: Vec<StaticSecret> = array(v, "/static_secrets")
        .iter()
        .filter_map(|x| {
            Some(StaticSecret {
                name: text(x, "/name")?,
                class: text(x, "/class"),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn finish_server(name: String, s: ServerAcc, policy: Option<&Policy>, totals: &mut Totals) -> ServerReview {
    totals.servers += 1;
    totals.agents += s.agents.len();
    totals.errors += s.errors;
    let mut agents: Vec<AgentUse> = s
        .agents
        .into_iter()
        .map(|(identity, a)| AgentUse {
            id: a.id,
            label: identity.label(),
            identity,
            transports: a.transports.into_iter().collect(),
            calls: a.calls,
            errors: a.errors,
            violations: a.violations,
            tools: a
                .tools
                .into_iter()
                .map(|(tool, t)| ToolUse {
                    tool,
                    calls: t.calls,
                    errors: t.errors,
                    violations: t.violations,
                    kinds: t.kinds,
                })
                .collect(),
        })
        .collect();
    // First seen first: ids were given in log order.
    agents.sort_by_key(|a| {
        a.id.trim_start_matches('a')
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    let violations: Vec<ViolationSummary> = s
        .violations
        .into_iter()
        .map(|((kind, rule), r)| ViolationSummary {
            refs: crate::policy::refs::refs_of(&kind),
            kind,
            rule,
            count: r.count,
            calls: r.calls,
            outside_calls: r.outside,
        })
        .collect();
    totals.violations += violations.iter().map(|v| v.count).sum::<usize>();
    let secrets: Vec<SecretRead> = s
        .secrets
        .into_iter()
        .map(|((path, class, rule, allowed_by), r)| SecretRead {
            path,
            class,
            rule,
            allowed_by,
            count: r.count,
            calls: r.calls,
            outside_calls: r.outside,
        })
        .collect();
    totals.secret_reads += secrets.iter().map(|x| x.count).sum::<usize>();
    let out_of_scope = s
        .out_of_scope
        .into_iter()
        .map(|((kind, detail, rule), r)| OutOfScope {
            kind,
            detail,
            rule,
            count: r.count,
            calls: r.calls,
            outside_calls: r.outside,
        })
        .collect();
    ServerReview {
        declared: Declared {
            rules: s.rules.into_iter().collect(),
            policy: policy.and_then(|p| declared_in(p, &name)),
        },
        name,
        instances: s.instances.into_values().collect(),
        agents,
        calls: s.calls,
        errors: s.errors,
        violations,
        secrets,
        out_of_scope,
    }
}

/// The policy file's entry for server `name`, as declared.
fn declared_in(policy: &Policy, name: &str) -> Option<DeclaredPolicy> {
    let rule = policy.servers.iter().find(|r| r.name == name)?;
    Some(DeclaredPolicy {
        tools: rule.tools.as_ref().map(|l| l.items.clone()),
        files: rule.files.as_ref().map(|l| l.items.clone()),
        secrets: rule.secrets.items.clone(),
        exec: rule.exec.as_ref().map(|l| l.items.clone()),
        connect: rule.connect.as_ref().map(|l| l.items.clone()),
        agents: rule
            .agents
            .iter()
            .map(|a| DeclaredAgent {
                name: a.name.clone(),
                tools: a.tools.as_ref().map(|l| l.items.clone()),
            })
            .collect(),
    })
}

impl Report {
    /// The agent with id `id`, and the server it used.
    pub fn agent(&self, id: &str) -> Option<(&ServerReview, &AgentUse)> {
        self.servers
            .iter()
            .find_map(|s| s.agents.iter().find(|a| a.id == id).map(|a| (s, a)))
    }
}
