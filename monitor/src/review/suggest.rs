//! `mcp-monitor suggest-policy`: a least-privilege policy from what the event logs show,
//! as YAML text to review: per server the tools each agent called, the files (folded
//! into `folder/*` where a folder had many), the secrets it read (each marked REVIEW),
//! the programs it started and the addresses it reached; every entry with a comment
//! saying where it came from (how often, first and last seen). With the policy in
//! force, a diff at the top, as comments: declared but never used, used but undeclared.
//!
//! Deterministic: the same events give the same text (everything sorted, no clock).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Context as _;

use super::{
    generalise::{self, FOLD_AT},
    log::{EventLog, Window},
    observed::{AgentId, AgentSeen, EffectSeen, Observed, Seen, ServerKey, ServerSeen},
    policy_diff::{self, Diff},
    yaml_text::{comment_text, quote},
};
use crate::policy::{Policy, RUNTIME_NOISE, UNREGISTERED, secret_class};

/// What `suggest-policy` was asked.
pub struct Args {
    pub events: Vec<PathBuf>,
    pub policy: Option<PathBuf>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub out: Option<PathBuf>,
}

/// Reads the logs, writes the suggested policy (to `out` or stdout), and says on stderr
/// what it was made from and how it differs from `policy`.
pub fn main(args: Args) -> anyhow::Result<()> {
    let window = Window::parse(args.since.as_deref(), args.until.as_deref(), SystemTime::now())?;
    let log = EventLog::read(&args.events, window)?;
    let current = match &args.policy {
        Some(p) => Some(Policy::load_file(p).map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?),
        None => None,
    };
    let mut observed = Observed::from_events(&log.events);
    if let Some(p) = &current {
        observed = observed.keyed_by(p);
    }
    let suggestion = suggest(&observed, current.as_ref(), &sources(&log));
    // A suggestion that does not load is a bug here, never something to hand over.
    if let Err(e) = Policy::parse("suggested policy", &suggestion.yaml) {
        anyhow::bail!("the suggested policy does not load (a bug):\n{e}");
    }
    match &args.out {
        Some(path) => write_file(path, &suggestion.yaml)?,
        None => std::io::stdout().write_all(suggestion.yaml.as_bytes())?,
    }
    for skip in &log.skips {
        eprintln!("mcp-monitor: skipped {skip}");
    }
    eprintln!(
        "mcp-monitor: suggested {} server entr{} from {} event(s) ({} used, {} line(s) skipped){}",
        suggestion.servers,
        if suggestion.servers == 1 { "y" } else { "ies" },
        log.events.len(),
        observed.used,
        log.skipped,
        match &suggestion.diff {
            Some(d) => format!(
                "; against {}: {} declared but never used, {} used but undeclared (listed at the top)",
                current.as_ref().map_or("", |p| p.source.as_str()),
                d.unused.len(),
                d.undeclared.len()
            ),
            None => String::new(),
        }
    );
    Ok(())
}

/// Written whole, readable by all and writable by the owner only: `run` and
/// `check-policy` refuse a policy others can write.
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The header lines naming what was read.
fn sources(log: &EventLog) -> Vec<String> {
    log.files
        .iter()
        .map(|f| {
            format!(
                "{}: {} event(s), {} outside the window, {} line(s) skipped",
                f.path.display(),
                f.events,
                f.outside,
                f.skipped
            )
        })
        .collect()
}

pub struct Suggestion {
    pub yaml: String,
    pub servers: usize,
    pub diff: Option<Diff>,
}

/// The suggested policy for `observed`; `current` is the policy in force (its secret
/// patterns, noise and `arguments:` are kept, its matches reused, and the diff made
/// against it). `sources` name what was read, for the header.
pub fn suggest(observed: &Observed, current: Option<&Policy>, sources: &[String]) -> Suggestion {
    let diff = current.map(|p| policy_diff::diff(observed, p));
    let mut y = String::new();
    header(&mut y, sources, current, diff.as_ref());
    secrets_section(&mut y, current);
    // A server known by name alone (no command line in its events) cannot be matched.
    let (names, left_out): (Vec<_>, Vec<_>) = entry_names(observed, current)
        .into_iter()
        .partition(|(key, _)| !observed.servers[key].cmdlines.is_empty());
    for (_, name) in &left_out {
        let _ = writeln!(
            y,
            "# Server {}: left out, no command line in the events to match it by.",
            comment_text(name)
        );
    }
    y.push_str("servers:");
    if names.is_empty() {
        y.push_str(" {}\n");
    } else {
        y.push('\n');
    }
    for (key, name) in &names {
        server_entry(&mut y, name, key, &observed.servers[key], current);
    }
    y.push_str(
        "\n# Servers no entry above matches are violations: what was observed is all declared.\nunregistered_servers: violation\n",
    );
    let arguments = current.map_or("redact", |p| p.arguments.as_str());
    let _ = writeln!(y, "arguments: {arguments}");
    Suggestion {
        yaml: y,
        servers: names.len(),
        diff,
    }
}

fn header(y: &mut String, sources: &[String], current: Option<&Policy>, diff: Option<&Diff>) {
    y.push_str("# Suggested by `mcp-monitor suggest-policy`: least privilege from what was observed.\n");
    y.push_str("# Every list holds only what the events show; review it before use, above all\n");
    y.push_str("# the server `secrets` marked REVIEW. Read from:\n");
    for s in sources {
        let _ = writeln!(y, "#   {}", comment_text(s));
    }
    if sources.is_empty() {
        y.push_str("#   (no event logs)\n");
    }
    let (Some(p), Some(d)) = (current, diff) else {
        y.push('\n');
        return;
    };
    let _ = writeln!(
        y,
        "#\n# Compared with the policy in force, {}:",
        comment_text(&p.source)
    );
    let _ = writeln!(y, "# Declared but never used ({}): narrow these.", d.unused.len());
    for f in &d.unused {
        let _ = writeln!(y, "#   {}: {}", comment_text(&f.rule), comment_text(&f.what));
    }
    let _ = writeln!(
        y,
        "# Used but undeclared ({}): each is a violation under it; review them (the entries",
        d.undeclared.len()
    );
    y.push_str("# below allow them all).\n");
    for f in &d.undeclared {
        let _ = writeln!(y, "#   {}: {}", comment_text(&f.rule), comment_text(&f.what));
    }
    y.push('\n');
}

/// The secret patterns: the current policy's, else the built-in ones. They detect; the
/// servers' own `secrets` lists allow.
fn secrets_section(y: &mut String, current: Option<&Policy>) {
    let builtin;
    let p = match current {
        Some(p) => p,
        None => {
            builtin = Policy::builtin();
            &builtin
        }
    };
    let _ = writeln!(y, "# Where secrets live (from {}).", comment_text(&p.source));
    if p.secrets.is_empty() {
        y.push_str("secrets: []\n");
    } else {
        y.push_str("secrets:\n");
        for s in &p.secrets {
            if s.class == secret_class(&s.glob) {
                let _ = writeln!(y, "  - {}", quote(&s.glob));
            } else {
                let _ = writeln!(y, "  - {{path: {}, class: {}}}", quote(&s.glob), quote(&s.class));
            }
        }
    }
    let noise = p.noise_globs();
    if noise.iter().map(String::as_str).ne(RUNTIME_NOISE.iter().copied()) {
        let _ = writeln!(y, "# Runtime noise (from {}).", comment_text(&p.source));
        list(y, 0, "noise", noise.iter().map(|n| (quote(n), String::new())));
    }
    y.push('\n');
}

/// Entry names: a server's policy entry keeps its name; an unregistered one is named
/// after its program (`program_name`), made unique. In the order they are tried: those
/// of the policy in force in its order (a match kept from it may be broader than one
/// after it), then the others by name.
fn entry_names(observed: &Observed, current: Option<&Policy>) -> Vec<(ServerKey, String)> {
    let mut taken: BTreeSet<String> = observed
        .servers
        .keys()
        .filter_map(|k| match k {
            ServerKey::Entry(n) => Some(n.clone()),
            ServerKey::Unregistered(_) => None,
        })
        .collect();
    let mut out = Vec::new();
    for (key, seen) in &observed.servers {
        let name = match key {
            ServerKey::Entry(n) => n.clone(),
            ServerKey::Unregistered(_) => {
                let base = program_name(seen);
                let mut name = base.clone();
                let mut n = 2;
                while taken.contains(&name) || name == UNREGISTERED {
                    name = format!("{base}-{n}");
                    n += 1;
                }
                taken.insert(name.clone());
                name
            }
        };
        out.push((key.clone(), name));
    }
    let rank = |name: &str| {
        current
            .and_then(|p| p.servers.iter().position(|s| s.name == name))
            .unwrap_or(usize::MAX)
    };
    out.sort_by(|a, b| rank(&a.1).cmp(&rank(&b.1)).then_with(|| a.1.cmp(&b.1)));
    out
}

/// A name for an unregistered server from its command line: the npm package it runs
/// (`node_modules/@scope/NAME/...`), else its script (`py_server.py`, or the folder of
/// an `index.js`), else its program; letters, digits, `-` and `_` only.
fn program_name(seen: &ServerSeen) -> String {
    let cmdline = seen.cmdlines.keys().next().map_or("", String::as_str);
    let args: Vec<&str> = cmdline.split(' ').collect();
    let package = args.iter().find_map(|a| {
        let after = a.split("node_modules/").nth(1)?;
        let mut parts = after.split('/');
        let first = parts.next()?;
        if first.starts_with('@') {
            parts.next()
        } else {
            Some(first)
        }
    });
    let script = || {
        args.iter().skip(1).find_map(|a| {
            let file = a.rsplit('/').next()?;
            let (stem, ext) = file.rsplit_once('.')?;
            if !matches!(ext, "py" | "js" | "mjs" | "cjs" | "ts") {
                return None;
            }
            if matches!(stem, "index" | "main" | "__main__" | "server") {
                let folders: Vec<&str> = a.rsplit('/').skip(1).collect();
                return folders
                    .into_iter()
                    .find(|f| !matches!(*f, "dist" | "build" | "src" | "lib" | "bin" | ""));
            }
            Some(stem)
        })
    };
    let program = || args.first().and_then(|p| p.rsplit('/').next());
    let raw = package.or_else(script).or_else(program).unwrap_or("server");
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() { "server".into() } else { name }
}

fn seen_text(s: &Seen) -> String {
    let mut t = if s.count == 1 {
        "1 time".to_string()
    } else {
        format!("{} times", s.count)
    };
    match (&s.first, &s.last) {
        (Some(f), Some(l)) if f == l => {
            let _ = write!(t, ", {f}");
        }
        (Some(f), Some(l)) => {
            let _ = write!(t, ", first {f}, last {l}");
        }
        _ => {}
    }
    t
}

/// `key: []`, or a block list of `(value, comment)` at `indent`.
fn list(y: &mut String, indent: usize, key: &str, items: impl IntoIterator<Item = (String, String)>) {
    let pad = " ".repeat(indent);
    let items: Vec<(String, String)> = items.into_iter().collect();
    if items.is_empty() {
        let _ = writeln!(y, "{pad}{key}: []");
        return;
    }
    let _ = writeln!(y, "{pad}{key}:");
    for (value, comment) in items {
        if comment.is_empty() {
            let _ = writeln!(y, "{pad}  - {value}");
        } else {
            let _ = writeln!(y, "{pad}  - {value}  # {}", comment_text(&comment));
        }
    }
}

fn server_entry(y: &mut String, name: &str, key: &ServerKey, seen: &ServerSeen, current: Option<&Policy>) {
    let _ = writeln!(y, "  {}:", quote(name));
    let info: Vec<&str> = seen.info_names.iter().map(String::as_str).collect();
    let _ = writeln!(
        y,
        "    # {} call(s){}; pids {}{}",
        seen.calls.count,
        match (&seen.calls.first, &seen.calls.last) {
            (Some(f), Some(l)) => format!(", first {f}, last {l}"),
            _ => String::new(),
        },
        comment_text(
            &seen
                .pids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        if info.is_empty() {
            String::new()
        } else {
            comment_text(&format!("; serverInfo {}", info.join(", ")))
        }
    );
    match_section(y, key, seen, current);
    agents_and_tools(y, seen);
    files_section(y, seen);
    secrets_allowed(y, seen);
    list(
        y,
        4,
        "exec",
        seen.exec
            .iter()
            .map(|(p, e)| (quote(&generalise::path_glob(p)), effect_comment("started", p, e))),
    );
    list(
        y,
        4,
        "connect",
        seen.connect
            .iter()
            .map(|(a, e)| (quote(&generalise::literal(a)), effect_comment("connected", a, e))),
    );
}

fn effect_comment(verb: &str, raw: &str, e: &EffectSeen) -> String {
    let mut c = format!("{verb} {}", seen_text(&e.seen));
    if e.outside_calls > 0 {
        let _ = write!(c, " ({} outside any call)", e.outside_calls);
    }
    if generalise::path_glob(raw) != generalise::literal(raw) {
        let _ = write!(c, "; seen as {raw}");
    }
    c
}

/// The current policy's entry for a server, when it is the one the server's command
/// line matches there (then its `match` is kept).
fn existing_entry<'p>(
    key: &ServerKey,
    seen: &ServerSeen,
    current: Option<&'p Policy>,
) -> Option<&'p crate::policy::ServerRule> {
    let (ServerKey::Entry(name), Some(p)) = (key, current) else {
        return None;
    };
    let exe = seen.exes.iter().next().map_or("", String::as_str);
    let i = seen.cmdlines.keys().find_map(|c| p.match_server(c, exe, None))?;
    (&p.servers[i].name == name).then(|| &p.servers[i])
}

/// The entry's `match`: the current policy's entry of that name when there is one
/// (the reviewer's own), else the command lines seen, generalised (`generalise`).
fn match_section(y: &mut String, key: &ServerKey, seen: &ServerSeen, current: Option<&Policy>) {
    let existing = existing_entry(key, seen, current);
    if let Some(rule) = existing {
        y.push_str("    # match: kept from the policy in force\n");
        y.push_str("    match:\n");
        let w = &rule.workload;
        for (k, v) in [
            ("cmdline", rule.cmdline.as_ref()),
            ("exe", rule.exe.as_ref()),
            ("container", w.container.as_ref().map(|c| &c.0)),
            ("pod", w.pod.as_ref().map(|c| &c.0)),
            ("cgroup", w.cgroup.as_ref().map(|c| &c.0)),
        ] {
            if let Some(v) = v {
                let _ = writeln!(y, "      {k}: {}", quote(v));
            }
        }
        return;
    }
    let globs: BTreeSet<String> = seen
        .cmdlines
        .keys()
        .map(|c| generalise::cmdline_glob(c))
        .collect();
    for c in seen.cmdlines.keys() {
        let _ = writeln!(y, "    # command line seen: {}", comment_text(c));
    }
    y.push_str("    # match: that command line with per-run parts (a folder under /tmp, runs of 4+\n");
    y.push_str("    # digits: pids, ports, stamps) as `*`, so a rerun matches too\n");
    // Several command lines under one entry: a `{a,b}` alternation (commas in each
    // are escaped by `generalise`).
    let glob = match globs.len() {
        1 => globs.into_iter().next().unwrap_or_default(),
        _ => format!("{{{}}}", globs.into_iter().collect::<Vec<_>>().join(",")),
    };
    let _ = writeln!(y, "    match:\n      cmdline: {}", quote(&glob));
}

/// Per agent, the tools it called. An agent the events cannot identify (no client
/// name, user or program) could not be matched again: then the tools go on the server,
/// for every caller, and there is no `agents:` list.
fn agents_and_tools(y: &mut String, seen: &ServerSeen) {
    let anonymous = seen.agents.keys().any(AgentId::is_anonymous);
    if seen.agents.is_empty() || anonymous {
        if anonymous {
            y.push_str(
                "    # some calls came from a caller the events do not identify: tools for every caller\n",
            );
        }
        let tools = seen.tools();
        list(
            y,
            4,
            "tools",
            tools
                .iter()
                .map(|(t, s)| (quote(&generalise::literal(t)), tool_comment(&s.calls, s.failed))),
        );
        return;
    }
    y.push_str("    # tools: per agent below (a caller matching no agent is an unknown_agent)\n");
    y.push_str("    agents:\n");
    for (name, id, a) in agent_names(&seen.agents) {
        agent_entry(y, &name, id, a);
    }
}

/// Agents in the order they are tried: the most specific first (a caller matching
/// several entries gets the first), then by name; names unique.
fn agent_names(agents: &BTreeMap<AgentId, AgentSeen>) -> Vec<(String, &AgentId, &AgentSeen)> {
    let mut named: Vec<(String, &AgentId, &AgentSeen)> = Vec::new();
    let mut taken = BTreeSet::new();
    for (id, a) in agents {
        let base = agent_base_name(id);
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        taken.insert(name.clone());
        named.push((name, id, a));
    }
    named.sort_by(|a, b| matchers(b.1).cmp(&matchers(a.1)).then_with(|| a.0.cmp(&b.0)));
    named
}

fn matchers(id: &AgentId) -> usize {
    [
        id.client.is_some(),
        id.uid.is_some(),
        id.exe.is_some(),
        id.sub.is_some(),
        id.iss.is_some(),
        id.client_id.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count()
}

fn agent_base_name(id: &AgentId) -> String {
    let raw = id
        .client
        .clone()
        .or_else(|| id.sub.clone())
        .or_else(|| {
            id.exe
                .as_ref()
                .and_then(|e| e.rsplit('/').next())
                .map(str::to_string)
        })
        .or_else(|| id.uid.map(|u| format!("uid-{u}")))
        .unwrap_or_else(|| "agent".into());
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() { "agent".into() } else { name }
}

fn agent_entry(y: &mut String, name: &str, id: &AgentId, a: &AgentSeen) {
    let _ = writeln!(y, "      {}:", quote(name));
    let _ = writeln!(
        y,
        "        # {}",
        comment_text(&format!("called {}", seen_text(&a.calls)))
    );
    if let Some(c) = &id.client {
        let _ = writeln!(y, "        client: {}", quote(&generalise::literal(c)));
    }
    if let Some(u) = id.uid {
        let _ = writeln!(y, "        uid: {u}");
    }
    if let Some(e) = &id.exe {
        let _ = writeln!(y, "        exe: {}", quote(&generalise::path_glob(e)));
    }
    for (k, v) in [("sub", &id.sub), ("iss", &id.iss), ("client_id", &id.client_id)] {
        if let Some(v) = v {
            let _ = writeln!(y, "        {k}: {}", quote(&generalise::literal(v)));
        }
    }
    list(
        y,
        8,
        "tools",
        a.tools
            .iter()
            .map(|(t, s)| (quote(&generalise::literal(t)), tool_comment(&s.calls, s.failed))),
    );
}

fn tool_comment(calls: &Seen, failed: u64) -> String {
    let mut c = format!("called {}", seen_text(calls));
    if failed == calls.count {
        c.push_str("; every call failed (an unknown tool fails too)");
    } else if failed > 0 {
        let _ = write!(c, "; {failed} failed");
    }
    c
}

/// Files opened, each a glob (`generalise::path_glob`), folded by folder.
fn files_section(y: &mut String, seen: &ServerSeen) {
    let mut seen_by_glob: BTreeMap<String, (Seen, Vec<&str>, u64)> = BTreeMap::new();
    for (path, e) in &seen.files {
        let entry = seen_by_glob.entry(generalise::path_glob(path)).or_default();
        merge(&mut entry.0, &e.seen);
        entry.1.push(path);
        entry.2 += e.outside_calls;
    }
    let folded = generalise::fold_folders(seen_by_glob.keys().cloned());
    if folded.values().any(|m| m.len() >= FOLD_AT) {
        let _ = writeln!(
            y,
            "    # files: a folder with {FOLD_AT} or more entries opened is allowed as folder/*"
        );
    }
    list(
        y,
        4,
        "files",
        folded.iter().map(|(glob, members)| {
            let mut s = Seen::default();
            let mut raw: Vec<&str> = Vec::new();
            let mut outside = 0;
            for m in members {
                if let Some((ms, paths, o)) = seen_by_glob.get(m) {
                    merge(&mut s, ms);
                    raw.extend(paths);
                    outside += o;
                }
            }
            let mut c = format!("opened {}", seen_text(&s));
            if outside > 0 {
                let _ = write!(c, " ({outside} outside any call)");
            }
            if let [one] = raw.as_slice() {
                if generalise::literal(one) != *glob {
                    let _ = write!(c, "; seen as {one}");
                }
            } else if raw.len() > 1 {
                let shown: Vec<&str> = raw.iter().take(3).copied().collect();
                let _ = write!(c, "; {} path(s): {}", raw.len(), shown.join(", "));
                if raw.len() > 3 {
                    c.push_str(", ...");
                }
            }
            (quote(glob), c)
        }),
    );
}

fn merge(into: &mut Seen, from: &Seen) {
    let count = into.count + from.count;
    let first = [into.first.clone(), from.first.clone()]
        .into_iter()
        .flatten()
        .min();
    let last = [into.last.clone(), from.last.clone()].into_iter().flatten().max();
    *into = Seen { count, first, last };
}

/// Secrets it read, allowed only because they were observed: each marked for review.
fn secrets_allowed(y: &mut String, seen: &ServerSeen) {
    if seen.secrets.is_empty() {
        y.push_str("    secrets: []\n");
        return;
    }
    y.push_str("    # REVIEW: secrets this server read. Allowed here only because it did; delete\n");
    y.push_str("    # each it should not read (each read is then a secret_access violation)\n");
    list(
        y,
        4,
        "secrets",
        seen.secrets.iter().map(|(path, s)| {
            let classes: Vec<&str> = s.classes.iter().map(String::as_str).collect();
            let mut c = format!("REVIEW: {} read {}", classes.join("/"), seen_text(&s.seen));
            if s.failed > 0 {
                let _ = write!(c, "; {} failed", s.failed);
            }
            if s.outside_calls > 0 {
                let _ = write!(c, "; {} outside any call", s.outside_calls);
            }
            if generalise::path_glob(path) != generalise::literal(path) {
                let _ = write!(c, "; seen as {path}");
            }
            (quote(&generalise::path_glob(path)), c)
        }),
    );
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
    fn hostile_names_and_paths_stay_literal_and_the_policy_loads() {
        let server =
            json!({"name": "unregistered", "cmdline": "srv --glob {a,b}* --x\nservers: {}", "pid": 1});
        let o = observed(&[
            json!({"type": "tool_call", "ts": "2026-01-01T00:00:00Z", "server": server, "tool": "*",
                   "agent": {"client": {"name": "evil\nunregistered_servers: ignore"}, "uid": 5},
                   "outcome": "ok", "effects": {"files": [{"path": "/srv/[x]/a"}], "connect": [{"address": "[::1]:80"}]}}),
            json!({"type": "tool_call", "server": {"name": "named\"key", "cmdline": "other", "pid": 2}, "tool": "t", "agent": null}),
        ]);
        let text = suggest(&o, None, &["t.jsonl".into()]).yaml;
        let p = Policy::parse("s", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            p.unregistered_servers,
            crate::policy::Unregistered::Violation,
            "{text}"
        );
        let srv = p
            .servers
            .iter()
            .find(|s| s.name == "srv")
            .expect("named after its program");
        assert_eq!(
            p.match_server("srv --glob {a,b}* --x\nservers: {}", "", None)
                .map(|i| &p.servers[i].name),
            Some(&srv.name)
        );
        assert_eq!(p.match_server("srv --glob a --x\nservers: {}", "", None), None);
        let tools = srv.agents[0].tools.as_ref().unwrap();
        assert!(tools.matching("*").is_some() && tools.matching("read_file").is_none());
        let homes = crate::policy::Homes::default();
        let files = srv.files.as_ref().unwrap();
        assert!(
            files.allowing("/srv/[x]/a", &homes).is_some() && files.allowing("/srv/x/a", &homes).is_none()
        );
        assert!(srv.connect.as_ref().unwrap().matching("[::1]:80").is_some());
        // A caller it cannot identify: the tools go on the server, no agents.
        let named = p.servers.iter().find(|s| s.name == "named\"key").unwrap();
        assert!(named.agents.is_empty());
        assert_eq!(named.tools.as_ref().unwrap().items, ["t"]);
    }

    #[test]
    fn no_events_give_a_policy_with_no_servers_that_loads() {
        let text = suggest(&Observed::default(), None, &[]).yaml;
        let p = Policy::parse("s", &text).unwrap();
        assert!(p.servers.is_empty());
        assert!(!p.secrets.is_empty(), "the built-in secret patterns");
    }

    #[test]
    fn unregistered_servers_are_named_after_their_program() {
        let named = |c: &str| {
            let mut s = ServerSeen::default();
            s.cmdlines.insert(c.to_string(), Seen::default());
            program_name(&s)
        };
        assert_eq!(
            named("node /x/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /tmp/r"),
            "server-filesystem"
        );
        assert_eq!(named("/v/bin/python /m/py_server.py --name x"), "py_server");
        assert_eq!(named("node /srv/weather/dist/index.js"), "weather");
        assert_eq!(
            named("/usr/local/bin/mcp-server-time --tz UTC"),
            "mcp-server-time"
        );
        assert_eq!(named("/usr/bin/\u{1}\n"), "server");
    }
}
