//! What was observed, held against the policy in force: what it declares that nothing
//! used (narrow it), and what was used that it does not declare (each a violation under
//! it: review them). The observed calls and effects go through the policy's own checks
//! (`check_call`, `secret`, the entries' globs), so "undeclared" means exactly what the
//! daemon would report under that policy.

use std::collections::{BTreeSet, HashSet};

use super::observed::{AgentId, Observed, ServerKey, ServerSeen};
use crate::{
    policy::{CallFacts, Homes, Policy, ServerRule},
    transport::bearer::Claims,
};

/// One line of the diff: the policy rule concerned and what about it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// `servers.filesystem.tools`, `unregistered_servers`, `secrets[3] ~/.ssh/**`...
    pub rule: String,
    pub what: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Declared but never used.
    pub unused: BTreeSet<Finding>,
    /// Used but undeclared.
    pub undeclared: BTreeSet<Finding>,
}

/// Items of the policy that something observed matched: `(rule, item)`.
#[derive(Default)]
struct Used(HashSet<(String, String)>);

impl Used {
    fn mark(&mut self, rule: &str, item: &str) {
        self.0.insert((rule.to_string(), item.to_string()));
    }

    fn has(&self, rule: &str, item: &str) -> bool {
        self.0.contains(&(rule.to_string(), item.to_string()))
    }
}

/// How a server shows in the diff: its name in the events, or its command line.
fn label(key: &ServerKey) -> String {
    match key {
        ServerKey::Entry(n) => format!("server {n:?}"),
        ServerKey::Unregistered(glob) => format!("unregistered server {glob:?}"),
    }
}

/// How an agent shows in the diff.
pub fn agent_label(a: &AgentId) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &a.client {
        parts.push(format!("client {c:?}"));
    }
    if let Some(u) = a.uid {
        parts.push(format!("uid {u}"));
    }
    if let Some(e) = &a.exe {
        parts.push(format!("exe {e:?}"));
    }
    if let Some(s) = &a.sub {
        parts.push(format!("sub {s:?}"));
    }
    if parts.is_empty() {
        "an unidentified caller".to_string()
    } else {
        parts.join(", ")
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        "1 time".into()
    } else {
        format!("{n} times")
    }
}

pub fn diff(observed: &Observed, policy: &Policy) -> Diff {
    let mut d = Diff::default();
    let mut used = Used::default();
    let mut servers_used = HashSet::new();
    for (key, seen) in &observed.servers {
        let exe = seen.exes.iter().next().map_or("", String::as_str);
        let index = seen
            .cmdlines
            .keys()
            .find_map(|c| policy.match_server(c, exe, None));
        let Some(i) = index else {
            let cmdline = seen.cmdlines.keys().next().map_or("?", String::as_str);
            d.undeclared.insert(Finding {
                rule: "unregistered_servers".into(),
                what: format!(
                    "{} ({cmdline:?}) matches no server entry: {} call(s) (unregistered_server)",
                    label(key),
                    seen.calls.count
                ),
            });
            continue;
        };
        servers_used.insert(i);
        let homes = match seen.uids.iter().next() {
            Some(&uid) => Homes::new(uid, None),
            None => Homes::default(),
        };
        calls(policy, i, seen, &homes, &mut used, &mut d);
        effects(policy, i, seen, &homes, &mut used, &mut d);
    }
    for (i, s) in policy.servers.iter().enumerate() {
        if servers_used.contains(&i) {
            unused_items(s, &used, &mut d);
        } else {
            d.unused.insert(Finding {
                rule: format!("servers.{}", s.name),
                what: "no server observed matched it".into(),
            });
        }
    }
    d
}

/// Each agent's tools through `check_call`: its violations are undeclared uses.
fn calls(policy: &Policy, i: usize, seen: &ServerSeen, homes: &Homes, used: &mut Used, d: &mut Diff) {
    let entry = &policy.servers[i];
    let base = format!("servers.{}", entry.name);
    for (agent, a) in &seen.agents {
        let claims =
            (agent.sub.is_some() || agent.iss.is_some() || agent.client_id.is_some()).then(|| Claims {
                sub: agent.sub.clone(),
                iss: agent.iss.clone(),
                client_id: agent.client_id.clone(),
                ..Default::default()
            });
        for (tool, t) in &a.tools {
            let facts = CallFacts {
                tool,
                client_name: agent.client.as_deref(),
                client_uid: agent.uid,
                client_exe: agent.exe.as_deref(),
                client_workload: None,
                token: claims.as_ref(),
                homes,
                files: &[],
                exec: &[],
                connect: &[],
            };
            let (matched, violations) = policy.check_call(Some(i), &facts);
            if let Some(item) = entry.tools.as_ref().and_then(|l| l.matching(tool)) {
                used.mark(&format!("{base}.tools"), item);
            }
            if let Some(name) = &matched {
                used.mark(&format!("{base}.agents"), name);
                let rule = entry.agents.iter().find(|r| &r.name == name);
                if let Some(item) = rule.and_then(|r| r.tools.as_ref()).and_then(|l| l.matching(tool)) {
                    used.mark(&format!("{base}.agents.{name}.tools"), item);
                }
            }
            for v in violations {
                d.undeclared.insert(Finding {
                    rule: v.rule,
                    what: format!(
                        "{tool:?} called {} by {} ({})",
                        times(t.calls.count),
                        agent_label(agent),
                        v.kind
                    ),
                });
            }
        }
    }
}

/// Files, secrets, programs and connections against the entry's lists.
fn effects(policy: &Policy, i: usize, seen: &ServerSeen, homes: &Homes, used: &mut Used, d: &mut Diff) {
    let entry = &policy.servers[i];
    let base = format!("servers.{}", entry.name);
    let file = |path: &str, n: u64, used: &mut Used, d: &mut Diff| {
        if let Some(hit) = policy.secret(Some(i), path, homes) {
            match &hit.allowed_by {
                Some(by) => {
                    let glob = by.split_once(' ').map_or(by.as_str(), |(_, g)| g);
                    used.mark(&format!("{base}.secrets"), glob);
                }
                None => {
                    d.undeclared.insert(Finding {
                        rule: hit.rule.clone(),
                        what: format!("read {path} ({}) {} (secret_access)", hit.class, times(n)),
                    });
                }
            }
            return;
        }
        let Some(files) = &entry.files else { return };
        match files.allowing(path, homes) {
            Some(item) => used.mark(&format!("{base}.files"), item),
            None => {
                d.undeclared.insert(Finding {
                    rule: format!("{base}.files"),
                    what: format!("opened {path} {} (file_out_of_scope)", times(n)),
                });
            }
        }
    };
    for (path, f) in &seen.files {
        file(path, f.seen.count, used, d);
    }
    for (path, s) in &seen.secrets {
        file(path, s.seen.count, used, d);
    }
    if let Some(exec) = &entry.exec {
        for (path, e) in &seen.exec {
            match exec.allowing(path, homes) {
                Some(item) => used.mark(&format!("{base}.exec"), item),
                None => {
                    d.undeclared.insert(Finding {
                        rule: format!("{base}.exec"),
                        what: format!("executed {path} {} (exec_out_of_scope)", times(e.seen.count)),
                    });
                }
            }
        }
    }
    if let Some(connect) = &entry.connect {
        for (address, c) in &seen.connect {
            match connect.matching(address) {
                Some(item) => used.mark(&format!("{base}.connect"), item),
                None => {
                    d.undeclared.insert(Finding {
                        rule: format!("{base}.connect"),
                        what: format!(
                            "connected to {address} {} (connect_out_of_scope)",
                            times(c.seen.count)
                        ),
                    });
                }
            }
        }
    }
}

/// The items of a matched entry that nothing observed used.
fn unused_items(s: &ServerRule, used: &Used, d: &mut Diff) {
    let base = format!("servers.{}", s.name);
    let report = |rule: String, items: &[String], what: &str, d: &mut Diff| {
        for item in items {
            if !used.has(&rule, item) {
                d.unused.insert(Finding {
                    rule: rule.clone(),
                    what: format!("{item:?} {what}"),
                });
            }
        }
    };
    if let Some(t) = &s.tools {
        report(format!("{base}.tools"), &t.items, "never called", d);
    }
    if let Some(f) = &s.files {
        report(format!("{base}.files"), &f.items, "matched no file opened", d);
    }
    report(
        format!("{base}.secrets"),
        &s.secrets.items,
        "matched no secret read",
        d,
    );
    if let Some(e) = &s.exec {
        report(format!("{base}.exec"), &e.items, "matched no program started", d);
    }
    if let Some(c) = &s.connect {
        report(format!("{base}.connect"), &c.items, "matched no connection", d);
    }
    for a in &s.agents {
        if !used.has(&format!("{base}.agents"), &a.name) {
            d.unused.insert(Finding {
                rule: format!("{base}.agents.{}", a.name),
                what: "no call matched it".into(),
            });
            continue;
        }
        if let Some(t) = &a.tools {
            report(
                format!("{base}.agents.{}.tools", a.name),
                &t.items,
                "never called",
                d,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::review::log::LogEvent;

    fn observed(events: &[Value]) -> Observed {
        Observed::from_events(&LogEvent::from_values(events))
    }

    #[test]
    fn unused_and_undeclared_are_what_the_policy_would_say() {
        let policy = Policy::parse(
            "p.yaml",
            r#"
secrets: ["/etc/shadow", "/srv/a/.env"]
servers:
  fs:
    match: { cmdline: "fs *" }
    files: ["/srv/a/*", "/srv/b/**"]
    secrets: ["/srv/a/.env"]
    exec: ["/bin/true", "/bin/sh"]
    connect: ["127.0.0.1:*"]
    agents:
      alice: { client: "alice", tools: [read, write] }
      bob: { client: "bob" }
  idle:
    match: { cmdline: "idle *" }
"#,
        )
        .unwrap();
        let server = json!({"name": "fs", "cmdline": "fs /srv", "pid": 1});
        let o = observed(&[
            json!({"type": "tool_call", "server": server, "agent": {"client": {"name": "alice"}}, "tool": "read",
                   "effects": {"files": [{"path": "/srv/a/x"}, {"path": "/etc/hostname"}],
                               "secrets": [{"path": "/etc/shadow", "class": "system_password"}],
                               "exec": [{"path": "/bin/true"}], "connect": [{"address": "10.0.0.1:443"}]}}),
            json!({"type": "tool_call", "server": server, "agent": {"client": {"name": "mallory"}}, "tool": "read"}),
            json!({"type": "tool_call", "server": {"name": "unregistered", "cmdline": "other"}, "tool": "x"}),
        ]);
        let d = diff(&o, &policy);
        let show = |s: &BTreeSet<Finding>| {
            s.iter()
                .map(|f| format!("{}: {}", f.rule, f.what))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            show(&d.undeclared),
            [
                "secrets[0] /etc/shadow: read /etc/shadow (system_password) 1 time (secret_access)",
                "servers.fs.agents: \"read\" called 1 time by client \"mallory\" (unknown_agent)",
                "servers.fs.connect: connected to 10.0.0.1:443 1 time (connect_out_of_scope)",
                "servers.fs.files: opened /etc/hostname 1 time (file_out_of_scope)",
                "unregistered_servers: unregistered server \"other\" (\"other\") matches no server entry: 1 call(s) (unregistered_server)",
            ]
        );
        assert_eq!(
            show(&d.unused),
            [
                "servers.fs.agents.alice.tools: \"write\" never called",
                "servers.fs.agents.bob: no call matched it",
                "servers.fs.connect: \"127.0.0.1:*\" matched no connection",
                "servers.fs.exec: \"/bin/sh\" matched no program started",
                "servers.fs.files: \"/srv/b/**\" matched no file opened",
                "servers.fs.secrets: \"/srv/a/.env\" matched no secret read",
                "servers.idle: no server observed matched it",
            ]
        );
    }
}
