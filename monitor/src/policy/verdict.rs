//! The policy decision for a completed tool call: which agent entry it ran under, what
//! it touched (grouped as the event shows it), and every violation with its rule.
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    host::{effects::Effect, identity::ClientProcess},
    mcp::session::{Completed, PeerInfo},
    policy::{CallFacts, Homes, Policy, SecretHit, Violation},
};

/// Who made the call: the client's clientInfo and the process on the other end.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub client: Option<&'a PeerInfo>,
    pub process: Option<&'a ClientProcess>,
}

pub struct Verdict {
    pub agent: Option<String>,
    pub violations: Vec<Violation>,
    pub effects: Effects,
}

/// What a call touched, grouped as the event shows it: `{"files": [...], "secrets":
/// [...], "exec": [...], "connect": [...], "noise": N}`, and `"dropped": N` when some
/// were not kept. A struct, not a `Value`: most calls touch nothing, and building the
/// object was most of a verdict's time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Effects {
    pub files: Vec<Value>,
    pub secrets: Vec<Value>,
    pub exec: Vec<Value>,
    pub connect: Vec<Value>,
    /// Runtime-noise opens (counted, not listed).
    pub noise: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Verdict {
    pub fn decision(&self) -> &'static str {
        if self.violations.is_empty() {
            "allow"
        } else {
            "violation"
        }
    }
}

/// Judges `c` under `policy`, the one in force when it started, where `index` is the
/// server's entry (None: unregistered). Secrets are classified here, under that policy.
pub fn judge(policy: &Policy, index: Option<usize>, homes: &Homes, caller: Caller, c: &Completed) -> Verdict {
    let (mut files, mut secrets, mut exec, mut connect) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut file_paths, mut exec_paths, mut addresses) = (Vec::new(), Vec::new(), Vec::new());
    let mut violations = Vec::new();
    for (effect, ambiguous) in &c.effects {
        let mut shown = effect.to_json(*ambiguous);
        match effect {
            Effect::File {
                path,
                write,
                ok,
                other,
            } => {
                match policy.secret_named(index, other.with(path), homes) {
                    Some((hit, name)) => {
                        if hit.allowed_by.is_none() {
                            let verb = if *write { "wrote" } else { "read" };
                            let attempt = if *ok { "" } else { " (attempt failed)" };
                            violations.push(Violation {
                                kind: "secret_access",
                                detail: format!(
                                    "{verb} {} ({}){attempt}",
                                    other.describe(path, name),
                                    hit.class
                                ),
                                rule: hit.rule.clone(),
                            });
                        }
                        annotate_secret(&mut shown, &hit);
                        secrets.push(shown);
                    }
                    // A failed open matters only when it was for a secret.
                    None if !ok => {}
                    None => {
                        file_paths.push(path.clone());
                        files.push(shown);
                    }
                }
            }
            Effect::Exec { path, .. } => {
                exec_paths.push(path.clone());
                exec.push(shown);
            }
            Effect::Connect { address, .. } => {
                addresses.push(address.clone());
                connect.push(shown);
            }
        }
    }
    let client = c.client.as_deref().or(caller.client);
    let facts = CallFacts {
        tool: c.target.as_deref().unwrap_or(""),
        client_name: client.map(|i| i.name.as_str()),
        client_uid: caller.process.map(|p| p.uid),
        client_exe: caller.process.map(|p| p.exe.as_str()),
        client_workload: caller.process.and_then(|p| p.workload.as_ref()),
        token: c.bearer.as_ref().and_then(|b| b.claims.as_ref()),
        homes,
        files: &file_paths,
        exec: &exec_paths,
        connect: &addresses,
    };
    let (agent, scope) = policy.check_call(index, &facts);
    // Scope violations first, in the order the policy checks them; secrets after.
    let mut all = scope;
    all.append(&mut violations);
    Verdict {
        agent,
        violations: all,
        effects: Effects {
            files,
            secrets,
            exec,
            connect,
            noise: c.noise,
            dropped: c.effects_dropped,
        },
    }
}

/// A secret's class, the rule that found it and what allows it, on its effect.
pub fn annotate_secret(v: &mut Value, hit: &SecretHit) {
    v["class"] = json!(hit.class);
    v["rule"] = json!(hit.rule);
    if let Some(a) = &hit.allowed_by {
        v["allowed_by"] = json!(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_are_written_as_the_event_shows_them() {
        let none = Effects::default();
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"files":[],"secrets":[],"exec":[],"connect":[],"noise":0}"#
        );
        let some = Effects {
            files: vec![json!({"path": "/srv/a"})],
            exec: vec![json!({"path": "/bin/true"})],
            noise: 3,
            dropped: 2,
            ..Effects::default()
        };
        assert_eq!(
            serde_json::to_string(&some).unwrap(),
            r#"{"files":[{"path":"/srv/a"}],"secrets":[],"exec":[{"path":"/bin/true"}],"connect":[],"noise":3,"dropped":2}"#
        );
    }
}
