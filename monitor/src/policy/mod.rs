//! The policy: which servers exist, which tools each agent may call on them, and which
//! files, secrets, programs and addresses each server may touch.
//!
//! Parsed from YAML into a tree that keeps line and column of every node, and checked
//! by hand so that every mistake is reported at once, with its place, its field and a
//! hint, never as a serde dump or a panic.
use std::{cell::RefCell, collections::HashMap, fmt, path::Path};

pub mod verdict;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use marked_yaml::{LoaderOptions, Node, Span, loader::LoadError};

/// The server name in events and the `server` label in metrics of a server that no
/// policy entry matches; reserved, so no entry can take it.
pub const UNREGISTERED: &str = "unregistered";

/// The policy used when `--policy` is not given; `mcp-monitor default-policy` prints it.
pub const DEFAULT_POLICY: &str = include_str!("default-policy.yaml");

/// Files every runtime opens while it works (shared libraries, /proc, locale and time
/// zone data, its own packages). They are counted, not listed, and `files` scopes need
/// not repeat them. A policy's `noise:` replaces this list.
pub const RUNTIME_NOISE: &[&str] = &[
    "/proc/**",
    "/sys/**",
    "/dev/**",
    "/etc/ld.so.cache",
    "/etc/ld.so.preload",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssl/**",
    "/etc/pki/**",
    "/etc/ca-certificates/**",
    "/etc/mime.types",
    "/etc/os-release",
    "/usr/lib/os-release",
    "/lib/**",
    "/lib64/**",
    "/usr/lib/**",
    "/usr/lib64/**",
    "/usr/local/lib/**",
    "/usr/share/zoneinfo/**",
    "/usr/share/locale/**",
    "/usr/share/i18n/**",
    "**/*.so",
    "**/*.so.*",
    "**/node_modules/**",
    "**/site-packages/**",
    "**/dist-packages/**",
    "**/__pycache__/**",
    "**/*.pyc",
    "**/lib/python3*/**",
    "**/pyvenv.cfg",
    "**/.pyenv/versions/**",
    "**/.nvm/versions/**",
    "**/.npm/_npx/**",
    "**/.cache/uv/**",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregistered {
    Violation,
    Ignore,
}

#[derive(Debug)]
pub struct SecretRule {
    pub glob: String,
    pub class: String,
}

#[derive(Debug)]
pub struct AgentRule {
    pub name: String,
    pub client: Option<String>,
    client_glob: Option<globset::GlobMatcher>,
    pub uid: Option<u32>,
    pub exe: Option<String>,
    exe_glob: Option<globset::GlobMatcher>,
    pub tools: Option<NameList>,
}

#[derive(Debug)]
pub struct ServerRule {
    pub name: String,
    pub cmdline: Option<String>,
    cmdline_glob: Option<globset::GlobMatcher>,
    pub exe: Option<String>,
    exe_glob: Option<globset::GlobMatcher>,
    pub tools: Option<NameList>,
    pub files: Option<PathGlobs>,
    pub secrets: PathGlobs,
    pub exec: Option<PathGlobs>,
    pub connect: Option<NameList>,
    pub agents: Vec<AgentRule>,
}

/// Tool names or addresses: globs over plain strings (`*` matches anything).
#[derive(Debug)]
pub struct NameList {
    pub items: Vec<String>,
    set: GlobSet,
}

impl NameList {
    fn new(items: Vec<String>) -> Result<Self, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for i in &items {
            b.add(Glob::new(i)?);
        }
        Ok(Self {
            items,
            set: b.build()?,
        })
    }

    /// The first item that matches.
    pub fn matching(&self, s: &str) -> Option<&str> {
        self.set.matches(s).first().map(|&i| self.items[i].as_str())
    }
}

/// What `~` stands for in one server's path globs.
///
/// Allow-lists (`files`, `exec`, a server's `secrets`, `noise`) use only the owner's
/// home from the password database: whoever starts a server must not be able to
/// widen its scope by choosing its HOME. Detection lists (the global `secrets`) also
/// use the HOME the server was started with, since more matches can only find more.
/// A uid with no passwd entry has no home: `~` globs match nothing for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Homes {
    pub owner: Option<String>,
    /// The server's `HOME` when it is an absolute path other than the owner's.
    pub started_with: Option<String>,
}

impl Homes {
    /// The owner's home from the password database, and `env_home` if it differs.
    pub fn new(uid: u32, env_home: Option<String>) -> Self {
        let owner = home_of(uid);
        let started_with = env_home.filter(|h| h.starts_with('/') && owner.as_ref() != Some(h));
        Self { owner, started_with }
    }

    /// Both homes, for detection.
    fn detection(&self) -> impl Iterator<Item = Option<&str>> {
        std::iter::once(self.owner.as_deref()).chain(self.started_with.as_deref().map(Some))
    }
}

/// Path globs where `~` is a home folder, compiled once per home. `DIR/**` also
/// matches `DIR` itself: a scope over a folder's contents includes opening the folder.
#[derive(Debug, Default)]
pub struct PathGlobs {
    pub items: Vec<String>,
    /// Per home (None: no home, `~` globs left out).
    compiled: RefCell<HashMap<Option<String>, CompiledGlobs>>,
}

/// A compiled set, and for each of its globs the item it came from.
type CompiledGlobs = (GlobSet, Vec<usize>);

impl PathGlobs {
    fn new(items: Vec<String>) -> Result<Self, globset::Error> {
        let me = Self {
            items,
            compiled: RefCell::default(),
        };
        me.set_for(Some("/home/check"))?;
        Ok(me)
    }

    fn set_for(&self, home: Option<&str>) -> Result<CompiledGlobs, globset::Error> {
        let key = home.map(str::to_string);
        if let Some(s) = self.compiled.borrow().get(&key) {
            return Ok(s.clone());
        }
        let mut b = GlobSetBuilder::new();
        let mut origin = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            let expanded = match (is_home_glob(item), home) {
                (false, _) => item.clone(),
                (true, Some(h)) => expand_home(item, h),
                (true, None) => continue,
            };
            if let Some(dir) = expanded.strip_suffix("/**")
                && !dir.is_empty()
            {
                b.add(path_glob(dir)?);
                origin.push(i);
            }
            b.add(path_glob(&expanded)?);
            origin.push(i);
        }
        let set = (b.build()?, origin);
        self.compiled.borrow_mut().insert(key, set.clone());
        Ok(set)
    }

    /// The first glob matching `path`, `~` standing for `home`.
    fn matching_home(&self, path: &str, home: Option<&str>) -> Option<&str> {
        let (set, origin) = self.set_for(home).ok()?;
        let first = set.matches(path).into_iter().map(|g| origin[g]).min()?;
        Some(self.items[first].as_str())
    }

    /// For an allow-list: the first glob matching `path`, `~` being the owner's home.
    pub fn allowing(&self, path: &str, homes: &Homes) -> Option<&str> {
        self.matching_home(path, homes.owner.as_deref())
    }

    /// For a detection list: the first glob matching `path` with `~` as either home.
    pub fn detecting(&self, path: &str, homes: &Homes) -> Option<&str> {
        homes.detection().find_map(|h| self.matching_home(path, h))
    }
}

fn is_home_glob(glob: &str) -> bool {
    glob == "~" || glob.starts_with("~/")
}

/// `*` stays within one path component, `**` crosses them.
fn path_glob(s: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(s).literal_separator(true).build()
}

fn expand_home(glob: &str, home: &str) -> String {
    match glob.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", home.trim_end_matches('/'))
        }
        _ => glob.to_string(),
    }
}

#[derive(Debug)]
pub struct Policy {
    /// Where it came from: a file path or "built-in".
    pub source: String,
    pub secrets: Vec<SecretRule>,
    secret_globs: PathGlobs,
    noise: PathGlobs,
    pub unregistered_servers: Unregistered,
    pub servers: Vec<ServerRule>,
}

/// One mistake in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: usize,
    pub column: usize,
    /// Where in the document: `servers.filesystem.tools[1]`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

/// Every mistake found in one file.
#[derive(Debug)]
pub struct PolicyErrors {
    pub source: String,
    pub errors: Vec<PolicyError>,
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.source, e.line, e.column, e.field, e.message
            )?;
            if let Some(h) = &e.hint {
                write!(f, " (hint: {h})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// What a check concluded, with the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub kind: &'static str,
    pub detail: String,
    pub rule: String,
}

/// What the policy needs to know about a completed tool call.
pub struct CallFacts<'a> {
    pub tool: &'a str,
    pub client_name: Option<&'a str>,
    pub client_uid: Option<u32>,
    pub client_exe: Option<&'a str>,
    /// What `~` stands for in path globs.
    pub homes: &'a Homes,
    /// Files opened (resolved paths) other than runtime noise.
    pub files: &'a [String],
    pub exec: &'a [String],
    pub connect: &'a [String],
}

/// A path that matched a secret glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHit {
    pub class: String,
    /// `secrets[3] ~/.ssh/**`
    pub rule: String,
    /// The server's own `secrets` entry that allows it, if any.
    pub allowed_by: Option<String>,
}

impl Policy {
    pub fn load_file(path: &Path) -> Result<Self, PolicyErrors> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyErrors {
            source: source.clone(),
            errors: vec![PolicyError {
                line: 0,
                column: 0,
                field: "(file)".into(),
                message: format!("cannot read: {e}"),
                hint: None,
            }],
        })?;
        Self::parse(&source, &text)
    }

    pub fn builtin() -> Self {
        // The built-in policy is tested (`default_policy_is_valid`); failing here is a bug.
        Self::parse("built-in", DEFAULT_POLICY).unwrap_or_else(|e| panic!("built-in policy is invalid: {e}"))
    }

    pub fn parse(source: &str, text: &str) -> Result<Self, PolicyErrors> {
        let mut v = Validator { errors: Vec::new() };
        let policy = v.document(source, text);
        v.errors.sort_by_key(|e| (e.line, e.column));
        match policy {
            Some(p) if v.errors.is_empty() => Ok(p),
            _ => Err(PolicyErrors {
                source: source.to_string(),
                errors: v.errors,
            }),
        }
    }

    pub fn summary(&self) -> String {
        let agents: usize = self.servers.iter().map(|s| s.agents.len()).sum();
        format!(
            "{}: valid: {} server(s), {} agent(s), {} secret pattern(s), unregistered servers: {}",
            self.source,
            self.servers.len(),
            agents,
            self.secrets.len(),
            match self.unregistered_servers {
                Unregistered::Violation => "violation",
                Unregistered::Ignore => "ignore",
            }
        )
    }

    /// The server entry whose `match` fits this process, first in file order.
    pub fn match_server(&self, cmdline: &str, exe: &str) -> Option<usize> {
        self.servers.iter().position(|s| {
            s.cmdline_glob.as_ref().is_none_or(|g| g.is_match(cmdline))
                && s.exe_glob.as_ref().is_none_or(|g| g.is_match(exe))
        })
    }

    /// The name of the server entry that fits this process (what `Server::rule` holds).
    pub fn entry_name(&self, cmdline: &str, exe: &str) -> Option<String> {
        self.match_server(cmdline, exe)
            .map(|i| self.servers[i].name.clone())
    }

    /// The index of the server entry called `name`, in this policy.
    pub fn server_index(&self, name: Option<&str>) -> Option<usize> {
        self.servers.iter().position(|s| Some(s.name.as_str()) == name)
    }

    pub fn is_noise(&self, path: &str, homes: &Homes) -> bool {
        self.noise.allowing(path, homes).is_some()
    }

    /// The secret class of `path`, and whether the server's entry allows it.
    pub fn secret(&self, server: Option<usize>, path: &str, homes: &Homes) -> Option<SecretHit> {
        let glob = self.secret_globs.detecting(path, homes)?;
        let (i, rule) = self.secrets.iter().enumerate().find(|(_, r)| r.glob == glob)?;
        let allowed_by = server.and_then(|s| {
            let rule = &self.servers[s];
            rule.secrets
                .allowing(path, homes)
                .map(|g| format!("servers.{}.secrets {g}", rule.name))
        });
        Some(SecretHit {
            class: rule.class.clone(),
            rule: format!("secrets[{i}] {}", rule.glob),
            allowed_by,
        })
    }

    /// The violation every call on (and the start of) a server no entry matches gets,
    /// when the policy says `unregistered_servers: violation`.
    pub fn unregistered_violation(&self, detail: String) -> Option<Violation> {
        (self.unregistered_servers == Unregistered::Violation).then(|| Violation {
            kind: "unregistered_server",
            detail,
            rule: "unregistered_servers".to_string(),
        })
    }

    /// Checks one completed call against its server's entry. Secrets are checked by the
    /// caller (it has the hits); this covers tools, agents and the scopes.
    pub fn check_call(&self, server: Option<usize>, call: &CallFacts) -> (Option<String>, Vec<Violation>) {
        let Some(si) = server else {
            let detail = format!("no server entry of {} matches this server", self.source);
            return (None, self.unregistered_violation(detail).into_iter().collect());
        };
        let s = &self.servers[si];
        let mut out = Vec::new();
        let base = format!("servers.{}", s.name);
        if let Some(tools) = &s.tools
            && tools.matching(call.tool).is_none()
        {
            out.push(Violation {
                kind: "tool_out_of_scope",
                detail: format!("tool {:?} is not in the server's tools", call.tool),
                rule: format!("{base}.tools"),
            });
        }
        let agent = s.agents.iter().find(|a| {
            a.client_glob
                .as_ref()
                .is_none_or(|g| call.client_name.is_some_and(|n| g.is_match(n)))
                && a.uid.is_none_or(|u| call.client_uid == Some(u))
                && a.exe_glob
                    .as_ref()
                    .is_none_or(|g| call.client_exe.is_some_and(|e| g.is_match(e)))
        });
        if !s.agents.is_empty() && agent.is_none() {
            out.push(Violation {
                kind: "unknown_agent",
                detail: format!(
                    "no agent entry matches client {:?} (uid {}, exe {:?})",
                    call.client_name.unwrap_or("?"),
                    call.client_uid.map_or("?".to_string(), |u| u.to_string()),
                    call.client_exe.unwrap_or("?")
                ),
                rule: format!("{base}.agents"),
            });
        }
        if let Some(a) = agent
            && let Some(tools) = &a.tools
            && tools.matching(call.tool).is_none()
        {
            out.push(Violation {
                kind: "tool_out_of_scope",
                detail: format!("tool {:?} is not in agent {:?}'s tools", call.tool, a.name),
                rule: format!("{base}.agents.{}.tools", a.name),
            });
        }
        if let Some(files) = &s.files {
            for f in call.files {
                if files.allowing(f, call.homes).is_none() && self.secret(server, f, call.homes).is_none() {
                    out.push(Violation {
                        kind: "file_out_of_scope",
                        detail: format!("opened {f}"),
                        rule: format!("{base}.files"),
                    });
                }
            }
        }
        if let Some(exec) = &s.exec {
            for e in call.exec {
                if exec.allowing(e, call.homes).is_none() {
                    out.push(Violation {
                        kind: "exec_out_of_scope",
                        detail: format!("executed {e}"),
                        rule: format!("{base}.exec"),
                    });
                }
            }
        }
        if let Some(connect) = &s.connect {
            for c in call.connect {
                if connect.matching(c).is_none() {
                    out.push(Violation {
                        kind: "connect_out_of_scope",
                        detail: format!("connected to {c}"),
                        rule: format!("{base}.connect"),
                    });
                }
            }
        }
        (agent.map(|a| a.name.clone()), out)
    }

    /// Scope checks for effects outside any call: files, exec, connect.
    pub fn check_effect(
        &self,
        server: Option<usize>,
        kind: EffectKind,
        what: &str,
        homes: &Homes,
    ) -> Option<Violation> {
        let s = &self.servers[server?];
        let base = format!("servers.{}", s.name);
        match kind {
            EffectKind::File => {
                let files = s.files.as_ref()?;
                (files.allowing(what, homes).is_none() && self.secret(server, what, homes).is_none()).then(
                    || Violation {
                        kind: "file_out_of_scope",
                        detail: format!("opened {what} outside any tool call"),
                        rule: format!("{base}.files"),
                    },
                )
            }
            EffectKind::Exec => {
                let exec = s.exec.as_ref()?;
                exec.allowing(what, homes).is_none().then(|| Violation {
                    kind: "exec_out_of_scope",
                    detail: format!("executed {what} outside any tool call"),
                    rule: format!("{base}.exec"),
                })
            }
            EffectKind::Connect => {
                let connect = s.connect.as_ref()?;
                connect.matching(what).is_none().then(|| Violation {
                    kind: "connect_out_of_scope",
                    detail: format!("connected to {what} outside any tool call"),
                    rule: format!("{base}.connect"),
                })
            }
        }
    }

    /// Command-line globs of every server entry (entries matched on exe alone are found
    /// through the other watch patterns).
    pub fn cmdline_globs(&self) -> Vec<String> {
        self.servers.iter().filter_map(|s| s.cmdline.clone()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectKind {
    File,
    Exec,
    Connect,
}

const TOP_KEYS: &[&str] = &["secrets", "noise", "unregistered_servers", "servers"];
const SERVER_KEYS: &[&str] = &["match", "tools", "files", "secrets", "exec", "connect", "agents"];
const MATCH_KEYS: &[&str] = &["cmdline", "exe"];
const AGENT_KEYS: &[&str] = &["client", "uid", "exe", "tools"];
const SECRET_KEYS: &[&str] = &["path", "class"];

struct Validator {
    errors: Vec<PolicyError>,
}

fn start(span: &Span) -> (usize, usize) {
    span.start().map_or((0, 0), |m| (m.line(), m.column()))
}

/// The closest known key, for "did you mean" hints.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Validator {
    fn err(&mut self, span: &Span, field: &str, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = start(span);
        self.errors.push(PolicyError {
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            hint,
        });
    }

    fn document(&mut self, source: &str, text: &str) -> Option<Policy> {
        let options = LoaderOptions::default()
            .error_on_duplicate_keys(true)
            .prevent_coercion(true);
        let root = match marked_yaml::parse_yaml_with_options(0, text, options) {
            Ok(root) => root,
            Err(e) => {
                self.load_error(e);
                return None;
            }
        };
        let map = root.as_mapping()?;
        self.unknown_keys(map, "", TOP_KEYS);
        let secrets = match map.get_node("secrets") {
            Some(n) => self.secret_list(n, "secrets"),
            None => Vec::new(),
        };
        let secret_globs =
            PathGlobs::new(secrets.iter().map(|s| s.glob.clone()).collect()).unwrap_or_default();
        let noise = match map.get_node("noise") {
            Some(n) => self.path_list(n, "noise"),
            None => PathGlobs::new(RUNTIME_NOISE.iter().map(|s| s.to_string()).collect()).ok(),
        }
        .unwrap_or_default();
        let unregistered_servers = match map.get_node("unregistered_servers") {
            None => Unregistered::Violation,
            Some(n) => match n.as_scalar().map(|s| s.as_str()) {
                Some("violation") => Unregistered::Violation,
                Some("ignore") => Unregistered::Ignore,
                _ => {
                    self.err(
                        n.span(),
                        "unregistered_servers",
                        "must be `violation` or `ignore`",
                        Some("`violation` reports MCP servers no entry matches".into()),
                    );
                    Unregistered::Violation
                }
            },
        };
        let mut servers = Vec::new();
        if let Some(n) = map.get_node("servers") {
            match n.as_mapping() {
                Some(m) => {
                    for (name, node) in m.iter() {
                        if let Some(s) = self.server(name, node) {
                            servers.push(s);
                        }
                    }
                }
                None => self.err(
                    n.span(),
                    "servers",
                    "must be a mapping of server names to entries",
                    None,
                ),
            }
        }
        Some(Policy {
            source: source.to_string(),
            secrets,
            secret_globs,
            noise,
            unregistered_servers,
            servers,
        })
    }

    fn load_error(&mut self, e: LoadError) {
        let (marker, message) = match &e {
            LoadError::TopLevelMustBeMapping(m) => (
                *m,
                "the policy must be a mapping (keys like `secrets:` and `servers:`)".to_string(),
            ),
            LoadError::UnexpectedAnchor(m) => (*m, "YAML anchors are not supported".to_string()),
            LoadError::MappingKeyMustBeScalar(m) => (*m, "keys must be plain words".to_string()),
            LoadError::UnexpectedTag(m) => (*m, "YAML tags are not supported".to_string()),
            LoadError::ScanError(m, se) => (*m, format!("not valid YAML: {}", se.info())),
            LoadError::DuplicateKey(inner) => {
                let prev = start(inner.prev_key.span());
                let m = inner
                    .key
                    .span()
                    .start()
                    .copied()
                    .unwrap_or(marked_yaml::Marker::new(0, 0, 0, 0));
                (
                    m,
                    format!(
                        "duplicate key `{}` (first at line {})",
                        inner.key.as_str(),
                        prev.0
                    ),
                )
            }
            other => (marked_yaml::Marker::new(0, 0, 0, 0), other.to_string()),
        };
        self.errors.push(PolicyError {
            line: marker.line(),
            column: marker.column(),
            field: "(document)".into(),
            message,
            hint: None,
        });
    }

    fn unknown_keys(&mut self, map: &marked_yaml::types::MarkedMappingNode, prefix: &str, known: &[&str]) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let field = if prefix.is_empty() {
                    key.as_str().to_string()
                } else {
                    format!("{prefix}.{}", key.as_str())
                };
                let hint = match closest(key.as_str(), known) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!("known keys: {}", known.join(", ")),
                };
                self.err(key.span(), &field, "unknown key", Some(hint));
            }
        }
    }

    fn strings(&mut self, node: &Node, field: &str) -> Option<Vec<(String, Span)>> {
        let Some(seq) = node.as_sequence() else {
            self.err(
                node.span(),
                field,
                "must be a list",
                Some(format!(
                    "write `{}: [a, b]`",
                    field.rsplit('.').next().unwrap_or(field)
                )),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            match item.as_scalar() {
                Some(s) if !s.as_str().is_empty() => out.push((s.as_str().to_string(), *item.span())),
                _ => self.err(
                    item.span(),
                    &format!("{field}[{i}]"),
                    "must be a non-empty string",
                    None,
                ),
            }
        }
        Some(out)
    }

    fn check_globs(&mut self, items: &[(String, Span)], field: &str, path: bool) -> bool {
        let mut ok = true;
        for (i, (s, span)) in items.iter().enumerate() {
            let built = if path {
                path_glob(&expand_home(s, "/home/check")).map(|_| ())
            } else {
                Glob::new(s).map(|_| ())
            };
            if let Err(e) = built {
                ok = false;
                self.err(
                    span,
                    &format!("{field}[{i}]"),
                    format!("bad glob {s:?}: {}", e.kind()),
                    Some("`*` matches within a path component, `**` across them, `[ab]` a class".into()),
                );
            }
        }
        ok
    }

    fn path_list(&mut self, node: &Node, field: &str) -> Option<PathGlobs> {
        let items = self.strings(node, field)?;
        if !self.check_globs(&items, field, true) {
            return None;
        }
        PathGlobs::new(items.into_iter().map(|(s, _)| s).collect()).ok()
    }

    fn name_list(&mut self, node: &Node, field: &str) -> Option<NameList> {
        let items = self.strings(node, field)?;
        if !self.check_globs(&items, field, false) {
            return None;
        }
        NameList::new(items.into_iter().map(|(s, _)| s).collect()).ok()
    }

    /// `secrets:` items are globs, or `{path: GLOB, class: NAME}`.
    fn secret_list(&mut self, node: &Node, field: &str) -> Vec<SecretRule> {
        let Some(seq) = node.as_sequence() else {
            self.err(node.span(), field, "must be a list of path globs", None);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let (glob, class, span) = match item {
                Node::Scalar(s) => (s.as_str().to_string(), None, *s.span()),
                Node::Mapping(m) => {
                    self.unknown_keys(m, &f, SECRET_KEYS);
                    let Some(path) = m.get_scalar("path") else {
                        self.err(
                            m.span(),
                            &f,
                            "a secret entry needs `path`",
                            Some("write `{path: \"~/.ssh/**\", class: ssh_key}`".into()),
                        );
                        continue;
                    };
                    (
                        path.as_str().to_string(),
                        m.get_scalar("class").map(|c| c.as_str().to_string()),
                        *path.span(),
                    )
                }
                Node::Sequence(s) => {
                    self.err(s.span(), &f, "must be a glob or {path, class}", None);
                    continue;
                }
            };
            if self.check_globs(&[(glob.clone(), span)], field, true) {
                let class = class.unwrap_or_else(|| secret_class(&glob).to_string());
                out.push(SecretRule { glob, class });
            }
        }
        out
    }

    fn glob_matcher(&mut self, node: &Node, field: &str) -> Option<(String, globset::GlobMatcher)> {
        let Some(s) = node.as_scalar() else {
            self.err(node.span(), field, "must be a glob string", None);
            return None;
        };
        match Glob::new(s.as_str()) {
            Ok(g) => Some((s.as_str().to_string(), g.compile_matcher())),
            Err(e) => {
                self.err(
                    node.span(),
                    field,
                    format!("bad glob {:?}: {}", s.as_str(), e.kind()),
                    None,
                );
                None
            }
        }
    }

    fn server(&mut self, key: &marked_yaml::types::MarkedScalarNode, node: &Node) -> Option<ServerRule> {
        let name = key.as_str();
        let base = format!("servers.{name}");
        if name == UNREGISTERED {
            self.err(
                key.span(),
                &base,
                "`unregistered` is reserved",
                Some("events and metrics name servers that no entry matches `unregistered`: choose another name".into()),
            );
        }
        let Some(map) = node.as_mapping() else {
            self.err(
                node.span(),
                &base,
                "must be a mapping",
                Some("give it at least `match: {cmdline: \"*my-server*\"}`".into()),
            );
            return None;
        };
        self.unknown_keys(map, &base, SERVER_KEYS);
        let (mut cmdline, mut exe) = (None, None);
        match map.get_node("match") {
            None => self.err(
                map.span(),
                &base,
                "a server needs `match`",
                Some("add `match: {cmdline: \"*my-server*\"}`".into()),
            ),
            Some(m) => match m.as_mapping() {
                None => self.err(
                    m.span(),
                    &format!("{base}.match"),
                    "must be a mapping with `cmdline` and/or `exe`",
                    None,
                ),
                Some(mm) => {
                    self.unknown_keys(mm, &format!("{base}.match"), MATCH_KEYS);
                    if let Some(n) = mm.get_node("cmdline") {
                        cmdline = self.glob_matcher(n, &format!("{base}.match.cmdline"));
                    }
                    if let Some(n) = mm.get_node("exe") {
                        exe = self.glob_matcher(n, &format!("{base}.match.exe"));
                    }
                    if mm.get_node("cmdline").is_none() && mm.get_node("exe").is_none() {
                        self.err(
                            mm.span(),
                            &format!("{base}.match"),
                            "needs `cmdline` or `exe`",
                            None,
                        );
                    }
                }
            },
        }
        let tools = map
            .get_node("tools")
            .and_then(|n| self.name_list(n, &format!("{base}.tools")));
        let files = map
            .get_node("files")
            .and_then(|n| self.path_list(n, &format!("{base}.files")));
        let secrets = map
            .get_node("secrets")
            .and_then(|n| self.path_list(n, &format!("{base}.secrets")))
            .unwrap_or_default();
        let exec = map
            .get_node("exec")
            .and_then(|n| self.path_list(n, &format!("{base}.exec")));
        let connect = map
            .get_node("connect")
            .and_then(|n| self.name_list(n, &format!("{base}.connect")));
        let mut agents = Vec::new();
        if let Some(n) = map.get_node("agents") {
            match n.as_mapping() {
                None => self.err(
                    n.span(),
                    &format!("{base}.agents"),
                    "must be a mapping of agent names to matchers",
                    None,
                ),
                Some(am) => {
                    for (aname, anode) in am.iter() {
                        if let Some(a) = self.agent(&base, aname.as_str(), anode) {
                            agents.push(a);
                        }
                    }
                }
            }
        }
        Some(ServerRule {
            name: name.to_string(),
            cmdline: cmdline.as_ref().map(|c| c.0.clone()),
            cmdline_glob: cmdline.map(|c| c.1),
            exe: exe.as_ref().map(|c| c.0.clone()),
            exe_glob: exe.map(|c| c.1),
            tools,
            files,
            secrets,
            exec,
            connect,
            agents,
        })
    }

    fn agent(&mut self, base: &str, name: &str, node: &Node) -> Option<AgentRule> {
        let field = format!("{base}.agents.{name}");
        let Some(map) = node.as_mapping() else {
            self.err(
                node.span(),
                &field,
                "must be a mapping",
                Some("e.g. `{client: \"claude-code*\", uid: 1000, tools: [list_directory]}`".into()),
            );
            return None;
        };
        self.unknown_keys(map, &field, AGENT_KEYS);
        let client = map
            .get_node("client")
            .and_then(|n| self.glob_matcher(n, &format!("{field}.client")));
        let exe = map
            .get_node("exe")
            .and_then(|n| self.glob_matcher(n, &format!("{field}.exe")));
        let uid = match map.get_node("uid") {
            None => None,
            Some(n) => match n.as_scalar().and_then(|s| s.as_str().parse::<u32>().ok()) {
                Some(u) => Some(u),
                None => {
                    self.err(
                        n.span(),
                        &format!("{field}.uid"),
                        "must be a number (a user id)",
                        None,
                    );
                    None
                }
            },
        };
        if map.get_node("client").is_none() && map.get_node("uid").is_none() && map.get_node("exe").is_none()
        {
            self.err(
                map.span(),
                &field,
                "an agent needs a matcher",
                Some("give `client` (clientInfo name glob), `uid` or `exe`".into()),
            );
        }
        let tools = map
            .get_node("tools")
            .and_then(|n| self.name_list(n, &format!("{field}.tools")));
        Some(AgentRule {
            name: name.to_string(),
            client: client.as_ref().map(|c| c.0.clone()),
            client_glob: client.map(|c| c.1),
            uid,
            exe: exe.as_ref().map(|c| c.0.clone()),
            exe_glob: exe.map(|c| c.1),
            tools,
        })
    }
}

/// A class name for a secret glob the user did not classify.
pub fn secret_class(glob: &str) -> &'static str {
    let g = glob.to_ascii_lowercase();
    let has = |s: &str| g.contains(s);
    if has(".ssh") || has("id_rsa") || has("id_ed25519") {
        "ssh_key"
    } else if has(".aws") || has("gcloud") || has(".azure") || has("credentials.json") {
        "cloud_credentials"
    } else if has(".kube") || has("kubeconfig") {
        "kube_config"
    } else if has(".docker") || has("containers/auth") {
        "container_credentials"
    } else if has(".env") {
        "env_file"
    } else if has("netrc") {
        "netrc"
    } else if has(".npmrc") || has(".pypirc") || has(".cargo/credentials") || has(".gem/credentials") {
        "package_token"
    } else if has("shadow") || has("gshadow") {
        "system_password"
    } else if has("chrom") || has("firefox") || has("mozilla") || has("cookies") || has("login data") {
        "browser_store"
    } else if has("keyring") || has("keychain") || has("kwallet") || has(".password-store") || has(".gnupg") {
        "keychain"
    } else if has("git-credentials") || has(".config/gh") {
        "vcs_token"
    } else {
        "secret"
    }
}

/// The home folder of `uid`, from the password database; None when it has no entry
/// (or an empty or relative home).
pub fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd_home(&passwd, uid)
}

fn passwd_home(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid) && f[5].starts_with('/')).then(|| f[5].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static HOMES: std::sync::LazyLock<Homes> = std::sync::LazyLock::new(|| Homes {
        owner: Some("/home/u".to_string()),
        started_with: None,
    });

    fn homes() -> Homes {
        HOMES.clone()
    }

    fn errors(text: &str) -> Vec<PolicyError> {
        Policy::parse("p.yaml", text)
            .expect_err("policy should be invalid")
            .errors
    }

    #[test]
    fn default_policy_is_valid() {
        let p = Policy::builtin();
        assert!(p.secrets.len() >= 10);
        assert!(!p.servers.is_empty());
        assert!(p.summary().starts_with("built-in: valid:"), "{}", p.summary());
    }

    const EXAMPLE: &str = r#"
secrets: ["~/.ssh/**", "~/.aws/credentials", "**/.env", {path: "~/.kube/config", class: kube_config}]
servers:
  filesystem:
    match: { cmdline: "*server-filesystem*" }
    tools: [read_text_file, list_directory]
    files: ["/srv/docs/**"]
    secrets: ["/srv/docs/.env"]
    exec: []
    connect: ["127.0.0.1:*"]
    agents:
      claude-code: { client: "claude-code*", uid: 1000, tools: [list_directory] }
      ops: { exe: "/usr/bin/python3*" }
unregistered_servers: violation
"#;

    fn facts<'a>(tool: &'a str, client: &'a str, uid: u32) -> CallFacts<'a> {
        CallFacts {
            tool,
            client_name: Some(client),
            client_uid: Some(uid),
            client_exe: Some("/usr/bin/node"),
            homes: &HOMES,
            files: &[],
            exec: &[],
            connect: &[],
        }
    }

    #[test]
    fn example_policy_parses_and_checks_tools_and_agents() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        let s = p.match_server(
            "node /x/server-filesystem/dist/index.js /srv/docs",
            "/usr/bin/node",
        );
        assert_eq!(s, Some(0));
        assert_eq!(p.match_server("python3 other.py", "/usr/bin/python3"), None);
        let (agent, v) = p.check_call(s, &facts("list_directory", "claude-code", 1000));
        assert_eq!((agent.as_deref(), v.len()), (Some("claude-code"), 0));
        let (_, v) = p.check_call(s, &facts("read_text_file", "claude-code", 1000));
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].kind, v[0].rule.as_str()),
            ("tool_out_of_scope", "servers.filesystem.agents.claude-code.tools")
        );
        let (_, v) = p.check_call(s, &facts("write_file", "claude-code", 1000));
        let kinds: Vec<_> = v.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            ["tool_out_of_scope", "tool_out_of_scope"],
            "server list and agent list both refuse"
        );
        let (agent, v) = p.check_call(s, &facts("list_directory", "cursor", 1000));
        assert_eq!(agent, None);
        assert_eq!(
            (v[0].kind, v[0].rule.as_str()),
            ("unknown_agent", "servers.filesystem.agents")
        );
        let (_, v) = p.check_call(s, &facts("list_directory", "claude-code", 0));
        assert_eq!(v[0].kind, "unknown_agent", "uid must match too");
    }

    #[test]
    fn scopes_and_secrets() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        let files = vec![
            "/srv/docs/a.md".to_string(),
            "/etc/issue".to_string(),
            "/srv/docs/.env".to_string(),
        ];
        let exec = vec!["/bin/sh".to_string()];
        let connect = vec!["127.0.0.1:8080".to_string(), "[::1]:22".to_string()];
        let call = CallFacts {
            files: &files,
            exec: &exec,
            connect: &connect,
            ..facts("list_directory", "claude-code", 1000)
        };
        let (_, v) = p.check_call(Some(0), &call);
        let got: Vec<_> = v.iter().map(|v| (v.kind, v.detail.as_str())).collect();
        assert_eq!(
            got,
            [
                ("file_out_of_scope", "opened /etc/issue"),
                ("exec_out_of_scope", "executed /bin/sh"),
                ("connect_out_of_scope", "connected to [::1]:22")
            ]
        );
        let hit = p.secret(Some(0), "/home/u/.ssh/id_rsa", &homes()).unwrap();
        assert_eq!(
            (hit.class.as_str(), hit.rule.as_str(), hit.allowed_by),
            ("ssh_key", "secrets[0] ~/.ssh/**", None)
        );
        let hit = p.secret(Some(0), "/srv/docs/.env", &homes()).unwrap();
        assert_eq!(hit.class, "env_file");
        assert_eq!(
            hit.allowed_by.as_deref(),
            Some("servers.filesystem.secrets /srv/docs/.env")
        );
        assert_eq!(
            p.secret(Some(0), "/home/u/.kube/config", &homes()).unwrap().class,
            "kube_config"
        );
        assert!(p.secret(Some(0), "/home/u/notes.txt", &homes()).is_none());
        assert!(
            p.secret(Some(0), "/root/.ssh/id_rsa", &homes()).is_none(),
            "~ is the owner's home"
        );
    }

    #[test]
    fn runtime_noise_is_recognised() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        for path in [
            "/etc/localtime",
            "/sys/devices/system/cpu/online",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/app/node_modules/x/index.js",
            "/proc/self/maps",
        ] {
            assert!(p.is_noise(path, &homes()), "{path}");
        }
        assert!(!p.is_noise("/home/u/.ssh/id_rsa", &homes()));
        assert!(!p.is_noise("/srv/docs/a.md", &homes()));
    }

    #[test]
    fn every_mistake_is_reported_with_line_column_field_and_hint() {
        let text = "secrets: [\"~/.ssh/**\"]\nservers:\n  fs:\n    match: { cmdline: \"*fs*\" }\n    tols: [a]\n    tools: read_file\n    files: [\"/srv/[docs\"]\n    agents:\n      claude: {}\n      bob: { uid: alice }\nunregistered_servers: maybe\n";
        let e = errors(text);
        let got: Vec<(usize, usize, &str)> = e.iter().map(|e| (e.line, e.column, e.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (5, 5, "servers.fs.tols"),
                (6, 12, "servers.fs.tools"),
                (7, 13, "servers.fs.files[0]"),
                (9, 15, "servers.fs.agents.claude"),
                (10, 19, "servers.fs.agents.bob.uid"),
                (11, 23, "unregistered_servers"),
            ],
            "{e:#?}"
        );
        assert_eq!(e[0].hint.as_deref(), Some("did you mean `tools`?"));
        assert_eq!(e[1].message, "must be a list");
        assert!(
            e[2].message.starts_with("bad glob \"/srv/[docs\""),
            "{}",
            e[2].message
        );
        assert_eq!(e[3].message, "an agent needs a matcher");
        let shown = PolicyErrors {
            source: "p.yaml".into(),
            errors: e,
        }
        .to_string();
        assert!(
            shown.starts_with("p.yaml:5:5: servers.fs.tols: unknown key (hint: did you mean `tools`?)"),
            "{shown}"
        );
    }

    #[test]
    fn structural_mistakes() {
        let e = errors("servers:\n  x:\n    tools: [a]\n");
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            ("servers.x", "a server needs `match`")
        );
        let e = errors("servers:\n  x:\n    match: {command: \"*x*\"}\n");
        let fields: Vec<_> = e.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("servers.x.match", "needs `cmdline` or `exe`"),
                ("servers.x.match.command", "unknown key")
            ]
        );
        assert_eq!(e[1].hint.as_deref(), Some("known keys: cmdline, exe"));
        let e = errors("- a\n- b\n");
        assert_eq!(e[0].field, "(document)");
        let e = errors("servers: {a: {match: {cmdline: x}}}\nservers: {}\n");
        assert!(e[0].message.starts_with("duplicate key `servers`"), "{e:?}");
        let e = errors("secrets: [\"a\", [b]]\nservers: [1]\n");
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["secrets[1]", "servers"]);
        let e = errors("key: [unclosed\n");
        assert!(e[0].message.starts_with("not valid YAML"), "{e:?}");
    }

    #[test]
    fn tool_list_entries_must_be_strings() {
        let e = errors("servers:\n  x:\n    match: {exe: \"/usr/bin/*\"}\n    tools: [a, {b: 1}, \"\"]\n");
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["servers.x.tools[1]", "servers.x.tools[2]"]);
    }

    #[test]
    fn secret_classes_from_globs() {
        assert_eq!(secret_class("~/.ssh/id_*"), "ssh_key");
        assert_eq!(secret_class("~/.aws/credentials"), "cloud_credentials");
        assert_eq!(secret_class("**/.env"), "env_file");
        assert_eq!(secret_class("/etc/shadow"), "system_password");
        assert_eq!(secret_class("/opt/thing"), "secret");
    }

    #[test]
    fn home_expansion_only_for_a_leading_tilde() {
        assert_eq!(expand_home("~/.ssh/**", "/home/u/"), "/home/u/.ssh/**");
        assert_eq!(expand_home("~", "/root"), "/root");
        assert_eq!(expand_home("~bob/x", "/root"), "~bob/x");
        assert_eq!(home_of(0).as_deref(), Some("/root"));
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\nodd:x:7:7:::/bin/sh\n";
        assert_eq!(passwd_home(passwd, 65534).as_deref(), Some("/nonexistent"));
        assert_eq!(passwd_home(passwd, 7), None, "an empty home is no home");
        assert_eq!(passwd_home(passwd, 4242), None, "no entry, no home");
    }

    const SCOPED: &str = r#"
secrets: ["~/.ssh/**", "~/.aws/credentials"]
servers:
  everything-at-home:
    match: { cmdline: "*home*" }
    files: ["~/**"]
    secrets: ["~/.aws/credentials"]
    exec: ["~/bin/*", "/usr/bin/*"]
"#;

    #[test]
    fn allow_lists_use_the_owners_home_only_and_detection_both() {
        let p = Policy::parse("p.yaml", SCOPED).unwrap();
        // Started with HOME=/ by whoever launched it: `~/**` must not become `/**`.
        let h = Homes {
            owner: Some("/home/u".into()),
            started_with: Some("/".into()),
        };
        let files = ["/etc/shadow".to_string(), "/home/u/notes".to_string()];
        let call = CallFacts {
            files: &files,
            homes: &h,
            ..facts("any", "c", 1)
        };
        let (_, v) = p.check_call(Some(0), &call);
        let got: Vec<_> = v.iter().map(|v| (v.kind, v.detail.as_str())).collect();
        assert_eq!(got, [("file_out_of_scope", "opened /etc/shadow")]);
        assert!(
            p.check_effect(Some(0), EffectKind::File, "/etc/hostname", &h)
                .is_some()
        );
        assert!(
            p.check_effect(Some(0), EffectKind::Exec, "/bin/sh", &h).is_some(),
            "`~/bin/*` is not `/bin/*`"
        );
        // Credentials under the HOME it was started with: detected, not allowed.
        let h = Homes {
            owner: Some("/home/u".into()),
            started_with: Some("/tmp/h".into()),
        };
        let hit = p.secret(Some(0), "/tmp/h/.aws/credentials", &h).unwrap();
        assert_eq!(hit.class, "cloud_credentials");
        assert_eq!(hit.allowed_by, None, "the allow-list is the owner's home only");
        let hit = p.secret(Some(0), "/home/u/.aws/credentials", &h).unwrap();
        assert_eq!(
            hit.allowed_by.as_deref(),
            Some("servers.everything-at-home.secrets ~/.aws/credentials")
        );
        assert!(p.secret(Some(0), "/tmp/h/.ssh/id_rsa", &h).is_some());
    }

    #[test]
    fn without_a_passwd_entry_tilde_matches_nothing() {
        let p = Policy::parse("p.yaml", SCOPED).unwrap();
        let none = Homes::default();
        for path in ["/", "/etc/shadow", "/.ssh/id_rsa", "/home/u/x"] {
            assert!(
                p.check_effect(Some(0), EffectKind::File, path, &none).is_some(),
                "{path}"
            );
        }
        assert!(p.secret(Some(0), "/.ssh/id_rsa", &none).is_none());
        assert!(
            p.check_effect(Some(0), EffectKind::Exec, "/usr/bin/env", &none)
                .is_none(),
            "globs without ~ still apply"
        );
        let started = Homes {
            owner: None,
            started_with: Some("/tmp/h".into()),
        };
        assert!(
            p.secret(Some(0), "/tmp/h/.ssh/id_rsa", &started).is_some(),
            "detection still uses the HOME it was started with"
        );
    }

    #[test]
    fn a_folder_glob_covers_the_folder_itself() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        assert!(p.is_noise("/usr/share/zoneinfo", &homes()));
        assert!(p.is_noise("/usr/share/zoneinfo/Europe/Paris", &homes()));
        assert!(!p.is_noise("/usr/share/zoneinfo-extra", &homes()));
        assert!(
            p.check_effect(Some(0), EffectKind::File, "/srv/docs", &homes())
                .is_none()
        );
        assert!(
            p.check_effect(Some(0), EffectKind::File, "/srv", &homes())
                .is_some()
        );
    }

    #[test]
    fn calls_on_unregistered_servers_are_violations_unless_ignored() {
        let p = Policy::parse("p.yaml", EXAMPLE).unwrap();
        let (agent, v) = p.check_call(None, &facts("anything", "claude-code", 1000));
        assert_eq!(agent, None);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].kind, v[0].rule.as_str()),
            ("unregistered_server", "unregistered_servers")
        );
        let ignore = EXAMPLE.replace("unregistered_servers: violation", "unregistered_servers: ignore");
        let p = Policy::parse("p.yaml", &ignore).unwrap();
        assert_eq!(p.check_call(None, &facts("anything", "c", 1)).1, []);
    }

    #[test]
    fn unregistered_is_a_reserved_server_name() {
        let e = errors("servers:\n  unregistered:\n    match: {cmdline: \"*x*\"}\n");
        assert_eq!(
            (e[0].line, e[0].field.as_str(), e[0].message.as_str()),
            (2, "servers.unregistered", "`unregistered` is reserved")
        );
    }
}
