//! The policy decision for a completed tool call: which agent entry it ran under, what
//! it touched (grouped as the event shows it), and every violation with its rule.
use serde_json::{Value, json};

use crate::{
    host::effects::Effect,
    mcp::session::Completed,
    policy::{CallFacts, Policy, Violation},
    servers::Server,
};

pub struct Verdict {
    pub agent: Option<String>,
    pub violations: Vec<Violation>,
    /// `{"files": [...], "secrets": [...], "exec": [...], "connect": [...], "noise": N}`
    pub effects: Value,
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
/// server's entry (None: unregistered).
pub fn judge(policy: &Policy, index: Option<usize>, server: &Server, c: &Completed) -> Verdict {
    let (mut files, mut secrets, mut exec, mut connect) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut file_paths, mut exec_paths, mut addresses) = (Vec::new(), Vec::new(), Vec::new());
    let mut violations = Vec::new();
    for (effect, ambiguous) in &c.effects {
        // A secret found while the call ran is classified again under the call's own
        // policy (a reload in between may have changed the class or the allow-list);
        // where that policy does not know it, the later finding stands.
        let reclassified;
        let effect = match effect {
            Effect::File {
                path,
                write,
                ok,
                secret: Some(hit),
            } => {
                reclassified = Effect::File {
                    path: path.clone(),
                    write: *write,
                    ok: *ok,
                    secret: Some(
                        policy
                            .secret(index, path, &server.homes)
                            .unwrap_or_else(|| hit.clone()),
                    ),
                };
                &reclassified
            }
            other => other,
        };
        let shown = effect.to_json(*ambiguous);
        match effect {
            Effect::File {
                path,
                write,
                ok,
                secret: Some(hit),
            } => {
                if hit.allowed_by.is_none() {
                    let verb = if *write { "wrote" } else { "read" };
                    let attempt = if *ok { "" } else { " (attempt failed)" };
                    violations.push(Violation {
                        kind: "secret_access",
                        detail: format!("{verb} {path} ({}){attempt}", hit.class),
                        rule: hit.rule.clone(),
                    });
                }
                secrets.push(shown);
            }
            Effect::File { path, .. } => {
                file_paths.push(path.clone());
                files.push(shown);
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
    let client = c.client.as_ref().or(server.session.client.as_ref());
    let facts = CallFacts {
        tool: c.target.as_deref().unwrap_or(""),
        client_name: client.map(|i| i.name.as_str()),
        client_uid: server.client.as_ref().map(|p| p.uid),
        client_exe: server.client.as_ref().map(|p| p.exe.as_str()),
        homes: &server.homes,
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
        effects: json!({"files": files, "secrets": secrets, "exec": exec, "connect": connect, "noise": c.noise}),
    }
}
