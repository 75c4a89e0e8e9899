//! What each server and each of its agents did, gathered from an event log: the tools
//! each agent called, and the files, secrets, programs and connections of the server,
//! each with how often and when first and last. What `suggest-policy` turns into a
//! policy and compares with the one in force.
//!
//! A server is keyed by how it was matched: its policy entry (`server.name`), or, for
//! an `unregistered` one, the glob its command line generalises to (`generalise`).
//! Events are evidence, not trusted input: a field of the wrong type is skipped.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{generalise, log::LogEvent};
use crate::policy::{Policy, UNREGISTERED};

/// How often something was seen, and when first and last (the events' `ts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub count: u64,
    pub first: Option<String>,
    pub last: Option<String>,
}

impl Seen {
    fn add(&mut self, ts: Option<&str>) {
        self.count += 1;
        if let Some(ts) = ts {
            // Events come in time order; a log out of order still gets min and max.
            if self.first.as_deref().is_none_or(|f| ts < f) {
                self.first = Some(ts.to_string());
            }
            if self.last.as_deref().is_none_or(|l| ts > l) {
                self.last = Some(ts.to_string());
            }
        }
    }

    fn merge(&mut self, other: &Seen) {
        self.count += other.count;
        for ts in [&other.first, &other.last].into_iter().flatten() {
            let n = self.count;
            self.add(Some(ts));
            self.count = n;
        }
    }
}

/// Who called, as far as the policy's `agents:` can match it: clientInfo name, user,
/// client program, and (over HTTP) the bearer token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AgentId {
    pub client: Option<String>,
    pub uid: Option<u32>,
    pub exe: Option<String>,
    pub sub: Option<String>,
    pub iss: Option<String>,
    pub client_id: Option<String>,
}

impl AgentId {
    fn from_event(agent: &Value) -> Self {
        let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let token = &agent["token"];
        Self {
            client: s(&agent["client"]["name"]),
            uid: agent["uid"].as_u64().and_then(|u| u32::try_from(u).ok()),
            exe: s(&agent["exe"]),
            sub: s(&token["sub"]),
            iss: s(&token["iss"]),
            client_id: s(&token["client_id"]),
        }
    }

    /// Whether nothing about the caller is known: no agent entry could match it.
    pub fn is_anonymous(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ToolSeen {
    pub calls: Seen,
    /// Calls whose outcome was not `ok` (an unknown tool is usually an error result).
    pub failed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct AgentSeen {
    pub calls: Seen,
    pub tools: BTreeMap<String, ToolSeen>,
}

#[derive(Debug, Clone, Default)]
pub struct SecretSeen {
    pub seen: Seen,
    pub classes: BTreeSet<String>,
    /// Opens that failed (still a violation unless allowed).
    pub failed: u64,
    /// Seen outside any tool call (a `secret_access` event).
    pub outside_calls: u64,
}

/// An effect (file, program, connection) of a server.
#[derive(Debug, Clone, Default)]
pub struct EffectSeen {
    pub seen: Seen,
    /// Seen outside any tool call (a `violation` event: allowed ones leave no trace).
    pub outside_calls: u64,
}

/// How the events named a server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerKey {
    /// Its policy entry.
    Entry(String),
    /// Unregistered: the glob its command line generalises to.
    Unregistered(String),
}

#[derive(Debug, Clone, Default)]
pub struct ServerSeen {
    /// The command lines its processes had, as events show them.
    pub cmdlines: BTreeMap<String, Seen>,
    pub exes: BTreeSet<String>,
    /// serverInfo names.
    pub info_names: BTreeSet<String>,
    pub pids: BTreeSet<u64>,
    /// The uid it ran as, when a `server_started` said.
    pub uids: BTreeSet<u32>,
    pub calls: Seen,
    pub agents: BTreeMap<AgentId, AgentSeen>,
    pub files: BTreeMap<String, EffectSeen>,
    pub secrets: BTreeMap<String, SecretSeen>,
    pub exec: BTreeMap<String, EffectSeen>,
    pub connect: BTreeMap<String, EffectSeen>,
}

impl ServerSeen {
    /// Every tool called, by any agent, with the calls merged.
    pub fn tools(&self) -> BTreeMap<&str, ToolSeen> {
        let mut out: BTreeMap<&str, ToolSeen> = BTreeMap::new();
        for a in self.agents.values() {
            for (t, s) in &a.tools {
                let e = out.entry(t.as_str()).or_default();
                e.calls.merge(&s.calls);
                e.failed += s.failed;
            }
        }
        out
    }
}

impl ServerSeen {
    /// Takes in what `other` saw: the same server seen under another name.
    fn absorb(&mut self, other: ServerSeen) {
        for (c, s) in other.cmdlines {
            self.cmdlines.entry(c).or_default().merge(&s);
        }
        self.exes.extend(other.exes);
        self.info_names.extend(other.info_names);
        self.pids.extend(other.pids);
        self.uids.extend(other.uids);
        self.calls.merge(&other.calls);
        for (id, a) in other.agents {
            let mine = self.agents.entry(id).or_default();
            mine.calls.merge(&a.calls);
            for (t, ts) in a.tools {
                let m = mine.tools.entry(t).or_default();
                m.calls.merge(&ts.calls);
                m.failed += ts.failed;
            }
        }
        for (mine, theirs) in [
            (&mut self.files, other.files),
            (&mut self.exec, other.exec),
            (&mut self.connect, other.connect),
        ] {
            for (k, e) in theirs {
                let m = mine.entry(k).or_default();
                m.seen.merge(&e.seen);
                m.outside_calls += e.outside_calls;
            }
        }
        for (k, e) in other.secrets {
            let m = self.secrets.entry(k).or_default();
            m.seen.merge(&e.seen);
            m.classes.extend(e.classes);
            m.failed += e.failed;
            m.outside_calls += e.outside_calls;
        }
    }
}

/// Everything seen, by server.
#[derive(Debug, Default)]
pub struct Observed {
    pub servers: BTreeMap<ServerKey, ServerSeen>,
    /// Events used (tool calls, server starts, secrets and violations outside calls).
    pub used: u64,
    /// Events about a server the log does not say enough about to match it again
    /// (unregistered, without a command line).
    pub unmatchable: u64,
}

impl Observed {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a LogEvent>) -> Self {
        let mut o = Observed::default();
        for e in events {
            o.add(e);
        }
        o
    }

    /// The servers keyed by the entry of `policy` their command line matches (what the
    /// daemon would name them under it), merged when several match one entry; those no
    /// entry matches keep their key.
    pub fn keyed_by(self, policy: &Policy) -> Self {
        let mut servers: BTreeMap<ServerKey, ServerSeen> = BTreeMap::new();
        for (key, seen) in self.servers {
            let exe = seen.exes.iter().next().map_or("", String::as_str);
            let entry = seen
                .cmdlines
                .keys()
                .find_map(|c| policy.match_server(c, exe, None))
                .map(|i| ServerKey::Entry(policy.servers[i].name.clone()));
            let key = entry.unwrap_or(key);
            match servers.get_mut(&key) {
                Some(s) => s.absorb(seen),
                None => {
                    servers.insert(key, seen);
                }
            }
        }
        Self { servers, ..self }
    }

    fn add(&mut self, e: &LogEvent) {
        let v = &e.value;
        let ts = v["ts"].as_str();
        let kind = e.kind.as_str();
        if !matches!(
            kind,
            "tool_call" | "server_started" | "secret_access" | "violation"
        ) {
            return;
        }
        let used = self.used + 1;
        let Some(server) = self.server(&v["server"], ts) else {
            return;
        };
        match kind {
            "tool_call" => add_call(server, v, ts),
            "server_started" => {
                if let Some(uid) = v["server"]["uid"].as_u64().and_then(|u| u32::try_from(u).ok()) {
                    server.uids.insert(uid);
                }
            }
            "secret_access" => {
                if let Some(path) = v["path"].as_str() {
                    let s = add_secret(server, path, &v["class"], v["ok"] != Value::Bool(false), ts);
                    s.outside_calls += 1;
                }
            }
            _ => add_outside_violation(server, v, ts),
        }
        self.used = used;
    }

    /// The server an event is about (recorded: command line, exe, pid, serverInfo).
    fn server(&mut self, s: &Value, ts: Option<&str>) -> Option<&mut ServerSeen> {
        let name = s["name"].as_str()?;
        let cmdline = s["cmdline"].as_str().filter(|c| !c.is_empty());
        let key = if name == UNREGISTERED {
            match cmdline {
                Some(c) => ServerKey::Unregistered(generalise::cmdline_glob(c)),
                None => {
                    self.unmatchable += 1;
                    return None;
                }
            }
        } else {
            ServerKey::Entry(name.to_string())
        };
        let seen = self.servers.entry(key).or_default();
        if let Some(c) = cmdline {
            seen.cmdlines.entry(c.to_string()).or_default().add(ts);
        }
        if let Some(exe) = s["exe"].as_str().filter(|x| !x.is_empty()) {
            seen.exes.insert(exe.to_string());
        }
        if let Some(pid) = s["pid"].as_u64() {
            seen.pids.insert(pid);
        }
        if let Some(n) = s["info"]["name"].as_str().filter(|x| !x.is_empty()) {
            seen.info_names.insert(n.to_string());
        }
        Some(seen)
    }
}

fn add_call(server: &mut ServerSeen, v: &Value, ts: Option<&str>) {
    server.calls.add(ts);
    let agent = server.agents.entry(AgentId::from_event(&v["agent"])).or_default();
    agent.calls.add(ts);
    if let Some(tool) = v["tool"].as_str() {
        let t = agent.tools.entry(tool.to_string()).or_default();
        t.calls.add(ts);
        if v["outcome"] != "ok" {
            t.failed += 1;
        }
    }
    let effects = &v["effects"];
    let list = |group: &str| effects[group].as_array().cloned().unwrap_or_default();
    for f in list("files") {
        // The judge lists only opens that worked (a failed one matters for secrets).
        if let Some(p) = f["path"].as_str() {
            server.files.entry(p.to_string()).or_default().seen.add(ts);
        }
    }
    for s in list("secrets") {
        if let Some(p) = s["path"].as_str() {
            add_secret(server, p, &s["class"], s["ok"] != Value::Bool(false), ts);
        }
    }
    for x in list("exec") {
        if let Some(p) = x["path"].as_str() {
            server.exec.entry(p.to_string()).or_default().seen.add(ts);
        }
    }
    for c in list("connect") {
        if let Some(a) = c["address"].as_str() {
            server.connect.entry(a.to_string()).or_default().seen.add(ts);
        }
    }
}

fn add_secret<'s>(
    server: &'s mut ServerSeen,
    path: &str,
    class: &Value,
    ok: bool,
    ts: Option<&str>,
) -> &'s mut SecretSeen {
    let s = server.secrets.entry(path.to_string()).or_default();
    s.seen.add(ts);
    if let Some(c) = class.as_str() {
        s.classes.insert(c.to_string());
    }
    if !ok {
        s.failed += 1;
    }
    s
}

/// A file, program or connection outside any call that was a violation when recorded:
/// the only trace such effects leave (allowed ones are not in events).
fn add_outside_violation(server: &mut ServerSeen, v: &Value, ts: Option<&str>) {
    let effect = &v["effect"];
    let (map, what) = match v["kind"].as_str() {
        Some("file_out_of_scope") => (&mut server.files, effect["path"].as_str()),
        Some("exec_out_of_scope") => (&mut server.exec, effect["path"].as_str()),
        Some("connect_out_of_scope") => (&mut server.connect, effect["address"].as_str()),
        _ => return,
    };
    if let Some(what) = what {
        let e = map.entry(what.to_string()).or_default();
        e.seen.add(ts);
        e.outside_calls += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::Arc};

    use serde_json::json;

    use super::*;

    fn event(v: Value) -> LogEvent {
        LogEvent {
            file: Arc::from(Path::new("t.jsonl")),
            line: 1,
            ts: None,
            kind: v["type"].as_str().unwrap().to_string(),
            value: v,
        }
    }

    #[test]
    fn calls_effects_and_outside_events_are_gathered_by_server_and_agent() {
        let server =
            json!({"name": "fs", "pid": 7, "exe": "/usr/bin/node", "cmdline": "node fs.js /tmp/a1/root"});
        let agent = json!({"client": {"name": "ts"}, "uid": 0, "exe": "/usr/bin/node"});
        let events = [
            json!({"type": "tool_call", "ts": "2026-01-01T00:00:02Z", "server": server, "agent": agent, "tool": "read", "outcome": "ok",
                   "effects": {"files": [{"path": "/tmp/a1/root/x"}], "secrets": [{"path": "/etc/shadow", "class": "system_password", "ok": false}], "exec": [{"path": "/bin/true"}], "connect": [{"address": "127.0.0.1:80"}]}}),
            json!({"type": "tool_call", "ts": "2026-01-01T00:00:01Z", "server": server, "agent": agent, "tool": "read", "outcome": "error", "effects": {}}),
            json!({"type": "tool_call", "ts": "2026-01-01T00:00:03Z", "server": server, "agent": {"client": null}, "tool": 5}),
            json!({"type": "violation", "ts": "2026-01-01T00:00:04Z", "server": server, "kind": "exec_out_of_scope", "effect": {"path": "/bin/sh"}}),
            json!({"type": "secret_access", "server": server, "path": "/root/.ssh/id_rsa", "class": "ssh_key", "ok": true}),
            json!({"type": "tool_call", "server": {"name": "unregistered", "cmdline": null}, "tool": "x"}),
            json!({"type": "monitor_status", "status": "ready"}),
        ];
        let o = Observed::from_events(events.iter().map(|v| event(v.clone())).collect::<Vec<_>>().iter());
        assert_eq!((o.used, o.unmatchable), (5, 1));
        let s = &o.servers[&ServerKey::Entry("fs".into())];
        assert_eq!(s.calls.count, 3);
        assert_eq!(s.agents.len(), 2);
        let ts = &s.agents[&AgentId {
            client: Some("ts".into()),
            uid: Some(0),
            exe: Some("/usr/bin/node".into()),
            ..Default::default()
        }];
        let read = &ts.tools["read"];
        assert_eq!((read.calls.count, read.failed), (2, 1));
        assert_eq!(read.calls.first.as_deref(), Some("2026-01-01T00:00:01Z"));
        assert_eq!(read.calls.last.as_deref(), Some("2026-01-01T00:00:02Z"));
        assert!(s.agents.keys().any(AgentId::is_anonymous));
        assert_eq!(s.files.keys().collect::<Vec<_>>(), ["/tmp/a1/root/x"]);
        assert_eq!(s.exec.keys().collect::<Vec<_>>(), ["/bin/sh", "/bin/true"]);
        assert_eq!(s.exec["/bin/sh"].outside_calls, 1);
        assert_eq!(s.secrets["/etc/shadow"].failed, 1);
        assert_eq!(s.secrets["/root/.ssh/id_rsa"].outside_calls, 1);
        assert_eq!(s.connect.keys().collect::<Vec<_>>(), ["127.0.0.1:80"]);
    }
}
