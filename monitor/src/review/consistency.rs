//! Question 4 of the review: was the same tool, under the same policy, decided the
//! same way whoever called it and over whichever transport? Calls are grouped by
//! server, tool and policy epoch; a group whose calls got different decisions or
//! different violation kinds, from more than one caller or transport, is listed with
//! who got which. Kinds raised by what a call did (a secret read, a file outside the
//! scope) can differ with the arguments rather than the caller: `differing_kinds`
//! says which kinds make the difference, so a reviewer can tell the two apart.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::access::{Call, ServerReview};

/// Calls named as examples per variant.
const EXAMPLES: usize = 5;

#[derive(Debug, Serialize)]
pub struct Difference {
    pub server: String,
    pub tool: String,
    pub epoch: usize,
    pub decision_differs: bool,
    /// Kinds some variants have and others not.
    pub differing_kinds: Vec<String>,
    pub variants: Vec<Variant>,
}

/// The calls of a group that were decided one way.
#[derive(Debug, Serialize)]
pub struct Variant {
    pub decision: Option<String>,
    pub kinds: Vec<String>,
    pub calls: usize,
    /// Agent ids (see `servers[].agents`), client names, transports.
    pub agents: Vec<String>,
    pub clients: Vec<String>,
    pub transports: Vec<String>,
    pub examples: Vec<String>,
}

type Signature = (Option<String>, Vec<String>);

#[derive(Default)]
struct VariantAcc {
    calls: usize,
    agents: BTreeSet<String>,
    clients: BTreeSet<String>,
    transports: BTreeSet<String>,
    examples: Vec<String>,
}

pub fn differences(calls: &[Call], servers: &[ServerReview]) -> Vec<Difference> {
    let client_of: BTreeMap<&str, String> = servers
        .iter()
        .flat_map(|s| &s.agents)
        .map(|a| {
            let client = match (&a.identity.client_name, &a.identity.client_version) {
                (Some(n), Some(v)) => format!("{n} {v}"),
                (Some(n), None) => n.clone(),
                _ => "(no clientInfo)".to_string(),
            };
            (a.id.as_str(), client)
        })
        .collect();
    let mut groups: BTreeMap<(&str, &str, usize), BTreeMap<Signature, VariantAcc>> = BTreeMap::new();
    for c in calls {
        let kinds: BTreeSet<String> = c.violations.iter().map(|v| v.kind.clone()).collect();
        let sig = (c.decision.clone(), kinds.into_iter().collect());
        let v = groups
            .entry((c.server.as_str(), c.tool.as_str(), c.epoch))
            .or_default()
            .entry(sig)
            .or_default();
        v.calls += 1;
        v.agents.insert(c.agent.clone());
        if let Some(client) = client_of.get(c.agent.as_str()) {
            v.clients.insert(client.clone());
        }
        v.transports
            .insert(c.transport.clone().unwrap_or_else(|| "(unknown)".into()));
        if v.examples.len() < EXAMPLES {
            v.examples.push(c.id.clone());
        }
    }
    let mut out = Vec::new();
    for ((server, tool, epoch), variants) in groups {
        if variants.len() < 2 {
            continue;
        }
        // One caller over one transport decided two ways is the arguments, not the caller.
        let callers: BTreeSet<(&String, &String)> = variants
            .values()
            .flat_map(|v| {
                v.agents
                    .iter()
                    .flat_map(move |a| v.transports.iter().map(move |t| (a, t)))
            })
            .collect();
        if callers.len() < 2 {
            continue;
        }
        let decisions: BTreeSet<&Option<String>> = variants.keys().map(|(d, _)| d).collect();
        let all: BTreeSet<&String> = variants.keys().flat_map(|(_, k)| k).collect();
        let differing_kinds = all
            .into_iter()
            .filter(|k| !variants.keys().all(|(_, ks)| ks.contains(k)))
            .cloned()
            .collect();
        out.push(Difference {
            server: server.to_string(),
            tool: tool.to_string(),
            epoch,
            decision_differs: decisions.len() > 1,
            differing_kinds,
            variants: variants
                .into_iter()
                .map(|((decision, kinds), v)| Variant {
                    decision,
                    kinds,
                    calls: v.calls,
                    agents: v.agents.into_iter().collect(),
                    clients: v.clients.into_iter().collect(),
                    transports: v.transports.into_iter().collect(),
                    examples: v.examples,
                })
                .collect(),
        });
    }
    out
}
