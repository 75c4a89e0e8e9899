//! Loading a policy: YAML through a parser that keeps line and column of every node,
//! checked by hand so that every mistake is reported at once, with its place, its
//! field and a hint, never as a serde dump or a panic.
use std::{fmt, path::Path};

use globset::Glob;
use marked_yaml::{LoaderOptions, Node, Span, loader::LoadError};

use super::{
    globs::{NameList, PathGlobs, expand_home, path_glob},
    model::{
        AgentRule, ArgumentsMode, Policy, RUNTIME_NOISE, SecretRule, ServerRule, StaticSecretsMode,
        TokenMatch, UNREGISTERED, Unregistered, WorkloadMatch,
    },
    secret_env::{SecretEnv, SecretEnvRule, env_class, name_glob},
    secrets::secret_class,
    token_lifetime::DEFAULT_SHORT_LIVED_S,
};

/// The policy used when `--policy` is not given; `mcp-monitor default-policy` prints it.
pub const DEFAULT_POLICY: &str = include_str!("default-policy.yaml");

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
            if e.field == FILE_FIELD {
                // About the file itself (unreadable, unsafe to trust): no line to name.
                write!(f, "{}: {}", self.source, e.message)?;
            } else {
                write!(
                    f,
                    "{}:{}:{}: {}: {}",
                    self.source, e.line, e.column, e.field, e.message
                )?;
            }
            if let Some(h) = &e.hint {
                write!(f, " (hint: {h})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// The `field` of a mistake about the policy file itself rather than a place in it.
const FILE_FIELD: &str = "(file)";

impl Policy {
    /// Reads and parses a policy file, refusing one that others could have written
    /// ([`Policy::read_file`]).
    pub fn load_file(path: &Path) -> Result<Self, PolicyErrors> {
        let text = Self::read_file(path)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The text of a policy file, once it is known to be safe to trust: whoever can
    /// write the policy decides what the monitor reports and what it calls a violation,
    /// so a file writable by group or others, owned by a user other than root or the
    /// one running mcp-monitor, or under a folder (any folder above it, where it was
    /// named or where a symlink leads) that such a user owns or that group or others
    /// can write to (without the sticky bit, on a writable mount) is refused, with what
    /// to change.
    pub fn read_file(path: &Path) -> Result<String, PolicyErrors> {
        let source = path.display().to_string();
        let refused = |message: String, hint: Option<String>| PolicyErrors {
            source: source.clone(),
            errors: vec![PolicyError {
                line: 0,
                column: 0,
                field: FILE_FIELD.into(),
                message,
                hint,
            }],
        };
        let cannot_read = |e: std::io::Error| refused(format!("cannot read: {e}"), None);
        let mut file = std::fs::File::open(path).map_err(cannot_read)?;
        // The file opened, not the name: what is read is what was checked.
        let meta = file.metadata().map_err(cannot_read)?;
        // Safety: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if let Some((message, hint)) = unsafe_policy_file(path, &meta, euid) {
            return Err(refused(message, Some(hint)));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(cannot_read)?;
        Ok(text)
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
            "{}: valid: {} server(s), {} agent(s), {} secret pattern(s), unregistered servers: {}, static secrets: {}, arguments: {}",
            self.source,
            self.servers.len(),
            agents,
            self.secrets.len(),
            match self.unregistered_servers {
                Unregistered::Violation => "violation",
                Unregistered::Ignore => "ignore",
            },
            self.static_secrets.as_str(),
            self.arguments.as_str(),
        )
    }
}

/// Why a policy file (opened, with metadata `meta`) must not be trusted by a process
/// running as `euid`, and how to fix it; None when it is safe.
fn unsafe_policy_file(path: &Path, meta: &std::fs::Metadata, euid: u32) -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt as _;
    let shown = path.display();
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Some((
            format!(
                "refused: mode {mode:04o} lets {who} write it, and whoever writes the policy decides what the monitor reports"
            ),
            format!("chmod go-w {shown}"),
        ));
    }
    let owner = meta.uid();
    if owner != 0 && owner != euid {
        return Some((
            format!(
                "refused: owned by uid {owner}, not by root or the user running mcp-monitor (uid {euid}): that user could change it"
            ),
            format!("chown {euid} {shown}, or copy it to a file you own"),
        ));
    }
    let given = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Every folder above the file, where it was named and where it really is (a
    // symlink's target): whoever can rename an entry in any of them can put another
    // file in the policy's place.
    let real = std::fs::canonicalize(path).ok();
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for start in [Some(given), real.as_deref().and_then(Path::parent)]
        .into_iter()
        .flatten()
    {
        let Ok(start) = std::fs::canonicalize(start) else {
            continue;
        };
        for d in start.ancestors() {
            if !dirs.iter().any(|seen| seen == d) {
                dirs.push(d.to_path_buf());
            }
        }
    }
    dirs.iter().find_map(|d| unsafe_policy_folder(d, euid))
}

/// Why a folder above a policy file lets someone else replace the file, and how to fix
/// it; None when only root or `euid` can.
fn unsafe_policy_folder(dir: &Path, euid: u32) -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt as _;
    let d = std::fs::metadata(dir).ok()?;
    let dmode = d.mode() & 0o7777;
    // Sticky (/tmp): others cannot rename or remove what they do not own. A read-only
    // mount (a Kubernetes ConfigMap volume: 0777, mounted ro) cannot be written
    // through, whatever its mode and owner say.
    let writable_by = match (dmode & 0o020 != 0, dmode & 0o002 != 0) {
        _ if dmode & 0o1000 != 0 => None,
        (_, true) => Some(("others", "o-w")),
        (true, false) => Some(("its group", "g-w")),
        (false, false) => None,
    };
    let owner = d.uid();
    let foreign_owner = owner != 0 && owner != euid;
    if (writable_by.is_none() && !foreign_owner) || read_only_mount(dir) {
        return None;
    }
    let shown = dir.display();
    if let Some((who, flag)) = writable_by {
        return Some((
            format!("refused: its folder {shown} (mode {dmode:04o}) lets {who} replace the file"),
            format!("chmod {flag} {shown}, or move the policy to a folder only root can write"),
        ));
    }
    Some((
        format!("refused: its folder {shown} is owned by uid {owner}, who could replace the file"),
        format!("chown root {shown}, or move the policy to a folder only root can write"),
    ))
}

/// Whether `dir` is on a file system mounted read-only (false when that is unknown).
fn read_only_mount(dir: &Path) -> bool {
    use nix::sys::statvfs::{FsFlags, statvfs};
    statvfs(dir).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

const TOP_KEYS: &[&str] = &[
    "secrets",
    "noise",
    "unregistered_servers",
    "arguments",
    "servers",
    "secret_env",
    "static_secrets",
    "short_lived_tokens",
];
const SERVER_KEYS: &[&str] = &[
    "match",
    "tools",
    "files",
    "secrets",
    "exec",
    "connect",
    "agents",
    "static_secrets",
];
const MATCH_KEYS: &[&str] = &["cmdline", "exe", "container", "pod", "cgroup"];
const AGENT_KEYS: &[&str] = &[
    "client",
    "uid",
    "exe",
    "sub",
    "iss",
    "client_id",
    "container",
    "pod",
    "cgroup",
    "tools",
];
/// Agent keys that match a caller; an agent needs one.
const AGENT_MATCHERS: &[&str] = &[
    "client",
    "uid",
    "exe",
    "sub",
    "iss",
    "client_id",
    "container",
    "pod",
    "cgroup",
];
const SECRET_KEYS: &[&str] = &["path", "class"];
const SECRET_ENV_KEYS: &[&str] = &["name", "class"];

/// A class name that can be a metric label value and reads well in events.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Seconds in `3600`, `90s`, `15m`, `1h` or `7d`; None unless positive and in range.
fn parse_duration_s(s: &str) -> Option<i64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86_400),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    n.checked_mul(unit).filter(|&v| v > 0)
}

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
        let arguments = match map.get_node("arguments") {
            None => ArgumentsMode::default(),
            Some(n) => match n.as_scalar().map(|s| s.as_str()) {
                Some("redact") => ArgumentsMode::Redact,
                Some("drop") => ArgumentsMode::Drop,
                Some("keep") => ArgumentsMode::Keep,
                _ => {
                    self.err(
                        n.span(),
                        "arguments",
                        "must be `redact`, `drop` or `keep`",
                        Some(
                            "`redact` (the default) hides credentials in events, `drop` leaves arguments out, `keep` writes them as sent"
                                .into(),
                        ),
                    );
                    ArgumentsMode::default()
                }
            },
        };
        let secret_env = match map.get_node("secret_env") {
            Some(n) => self.secret_env_list(n, "secret_env"),
            None => Vec::new(),
        };
        // Each glob was checked: this builds.
        let secret_env = SecretEnv::new(secret_env).unwrap_or_default();
        let static_secrets = map
            .get_node("static_secrets")
            .and_then(|n| self.static_secrets_mode(n, "static_secrets"))
            .unwrap_or_default();
        let short_lived_tokens_s = map
            .get_node("short_lived_tokens")
            .and_then(|n| self.duration_s(n, "short_lived_tokens"))
            .unwrap_or(DEFAULT_SHORT_LIVED_S);
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
            arguments,
            servers,
            secret_env,
            static_secrets,
            short_lived_tokens_s,
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

    /// `secret_env:` items are name globs, or `{name: GLOB, class: WORD}`.
    fn secret_env_list(&mut self, node: &Node, field: &str) -> Vec<SecretEnvRule> {
        let Some(seq) = node.as_sequence() else {
            self.err(
                node.span(),
                field,
                "must be a list of environment variable name globs",
                Some("write `secret_env: [\"MY_*_CRED\", {name: DATABASE_URL, class: database_url}]`".into()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let (name, class) = match item {
                Node::Scalar(s) => (s, None),
                Node::Mapping(m) => {
                    self.unknown_keys(m, &f, SECRET_ENV_KEYS);
                    let Some(name) = m.get_scalar("name") else {
                        self.err(
                            m.span(),
                            &f,
                            "a secret_env entry needs `name`",
                            Some("write `{name: \"MY_SERVICE_KEY\", class: api_key}`".into()),
                        );
                        continue;
                    };
                    let class = match m.get_node("class") {
                        None => None,
                        Some(c) => match c.as_scalar().map(|c| c.as_str()) {
                            Some(c) if is_word(c) => Some(c.to_string()),
                            _ => {
                                self.err(
                                    c.span(),
                                    &format!("{f}.class"),
                                    "must be a word (letters, digits, `_`, `-`)",
                                    Some(
                                        "the class is a metric label: e.g. `api_key`, `database_url`".into(),
                                    ),
                                );
                                continue;
                            }
                        },
                    };
                    (name, class)
                }
                Node::Sequence(s) => {
                    self.err(s.span(), &f, "must be a name glob or {name, class}", None);
                    continue;
                }
            };
            let glob = name.as_str();
            let field = match item {
                Node::Mapping(_) => format!("{f}.name"),
                _ => f.clone(),
            };
            if glob.is_empty() || glob.contains(['=', '\0']) {
                self.err(
                    name.span(),
                    &field,
                    "must be a variable name glob, without `=`",
                    Some("give the name only (`MY_TOKEN`), never a value".into()),
                );
                continue;
            }
            if let Err(e) = name_glob(glob) {
                self.err(
                    name.span(),
                    &field,
                    format!("bad glob {glob:?}: {}", e.kind()),
                    Some(
                        "`*` matches any characters, `[ab]` a class; names match whatever their case".into(),
                    ),
                );
                continue;
            }
            out.push(SecretEnvRule {
                name: glob.to_string(),
                class: class.unwrap_or_else(|| env_class(glob)),
            });
        }
        out
    }

    /// `static_secrets: allow | violation`, at the top level or in a server entry.
    fn static_secrets_mode(&mut self, node: &Node, field: &str) -> Option<StaticSecretsMode> {
        match node.as_scalar().map(|s| s.as_str()) {
            Some("allow") => Some(StaticSecretsMode::Allow),
            Some("violation") => Some(StaticSecretsMode::Violation),
            _ => {
                self.err(
                    node.span(),
                    field,
                    "must be `allow` or `violation`",
                    Some(
                        "`violation` reports a server started with secret-looking environment variables; `allow` (the default) only lists them"
                            .into(),
                    ),
                );
                None
            }
        }
    }

    /// A positive duration in seconds: `3600`, `90s`, `15m`, `1h`, `7d`.
    fn duration_s(&mut self, node: &Node, field: &str) -> Option<i64> {
        let parsed = node.as_scalar().and_then(|s| parse_duration_s(s.as_str()));
        if parsed.is_none() {
            self.err(
                node.span(),
                field,
                "must be a positive duration",
                Some("seconds (`3600`) or a number with `s`, `m`, `h` or `d` (`15m`, `1h`)".into()),
            );
        }
        parsed
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
        let (mut cmdline, mut exe, mut workload) = (None, None, WorkloadMatch::default());
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
                    "must be a mapping with `cmdline`, `exe`, `container`, `pod` and/or `cgroup`",
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
                    workload = self.workload_match(mm, &format!("{base}.match"));
                    if MATCH_KEYS.iter().all(|k| mm.get_node(k).is_none()) {
                        self.err(
                            mm.span(),
                            &format!("{base}.match"),
                            "needs `cmdline`, `exe`, `container`, `pod` or `cgroup`",
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
        let static_secrets = map
            .get_node("static_secrets")
            .and_then(|n| self.static_secrets_mode(n, &format!("{base}.static_secrets")));
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
            workload,
            tools,
            files,
            secrets,
            exec,
            connect,
            agents,
            static_secrets,
        })
    }

    /// `container`, `pod` and `cgroup` globs of a server's `match` or an agent.
    fn workload_match(&mut self, map: &marked_yaml::types::MarkedMappingNode, field: &str) -> WorkloadMatch {
        let mut glob = |key: &str| {
            map.get_node(key)
                .and_then(|n| self.glob_matcher(n, &format!("{field}.{key}")))
        };
        WorkloadMatch {
            container: glob("container"),
            pod: glob("pod"),
            cgroup: glob("cgroup"),
        }
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
        let mut glob = |key: &str| {
            map.get_node(key)
                .and_then(|n| self.glob_matcher(n, &format!("{field}.{key}")))
        };
        let token = TokenMatch {
            sub: glob("sub"),
            iss: glob("iss"),
            client_id: glob("client_id"),
        };
        let workload = self.workload_match(map, &field);
        if AGENT_MATCHERS.iter().all(|k| map.get_node(k).is_none()) {
            self.err(
                map.span(),
                &field,
                "an agent needs a matcher",
                Some(
                    "give `client` (clientInfo name glob), `uid`, `exe`, a bearer-token claim glob (`sub`, `iss`, `client_id`), or where the client runs (`container`, `pod`, `cgroup`)"
                        .into(),
                ),
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
            token,
            workload,
            tools,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<PolicyError> {
        Policy::parse("p.yaml", text)
            .expect_err("policy should be invalid")
            .errors
    }

    #[test]
    fn token_claim_globs_are_validated_like_the_others() {
        let text = "servers:\n  fs:\n    match: { cmdline: \"*fs*\" }\n    agents:\n      a: { sub: [x] }\n      b: { iss: \"https://[idp\" }\n      c: { client_id: \"ci-*\", tools: [x] }\n";
        let e = errors(text);
        let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            got,
            [(5, "servers.fs.agents.a.sub"), (6, "servers.fs.agents.b.iss")],
            "{e:#?}"
        );
    }

    #[test]
    fn workload_globs_are_validated_with_their_line_and_field() {
        let text = "servers:\n  fs:\n    match: { container: \"[abc\", pod: 7 }\n    agents:\n      a: { cgroup: [x] }\n      b: { containr: \"x\" }\n";
        let got: Vec<_> = errors(text)
            .iter()
            .map(|e| (e.line, e.field.clone(), e.message.clone()))
            .collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!((got[0].0, got[0].1.as_str()), (3, "servers.fs.match.container"));
        assert!(got[0].2.starts_with("bad glob \"[abc\""), "{got:#?}");
        // A YAML number is a scalar: a glob that matches the text `7`.
        assert_eq!(
            (got[1].0, got[1].1.as_str(), got[1].2.as_str()),
            (5, "servers.fs.agents.a.cgroup", "must be a glob string")
        );
        assert!(
            got.contains(&(6, "servers.fs.agents.b.containr".into(), "unknown key".into())),
            "{got:#?}"
        );
        let p = Policy::parse("p.yaml", "servers:\n  c:\n    match: { container: \"abc*\" }\n").unwrap();
        assert_eq!(p.servers[0].workload.container.as_ref().unwrap().0, "abc*");
    }

    #[test]
    fn default_policy_is_valid() {
        let p = Policy::builtin();
        assert!(p.secrets.len() >= 10);
        assert!(!p.servers.is_empty());
        assert!(p.summary().starts_with("built-in: valid:"), "{}", p.summary());
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
                (
                    "servers.x.match",
                    "needs `cmdline`, `exe`, `container`, `pod` or `cgroup`"
                ),
                ("servers.x.match.command", "unknown key")
            ]
        );
        assert_eq!(
            e[1].hint.as_deref(),
            Some("known keys: cmdline, exe, container, pod, cgroup")
        );
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
    fn arguments_is_redact_drop_or_keep() {
        let p = Policy::parse("p.yaml", "servers: {}\n").unwrap();
        assert_eq!(p.arguments, ArgumentsMode::Redact);
        assert!(p.summary().ends_with("arguments: redact"), "{}", p.summary());
        for (text, mode) in [
            ("drop", ArgumentsMode::Drop),
            ("keep", ArgumentsMode::Keep),
            ("redact", ArgumentsMode::Redact),
        ] {
            let p = Policy::parse("p.yaml", &format!("arguments: {text}\n")).unwrap();
            assert_eq!(p.arguments, mode);
        }
        let e = errors("secrets: []\narguments: hide\n");
        assert_eq!(
            (e[0].line, e[0].column, e[0].field.as_str(), e[0].message.as_str()),
            (2, 12, "arguments", "must be `redact`, `drop` or `keep`")
        );
        let e = errors("argumnets: drop\n");
        assert_eq!(e[0].hint.as_deref(), Some("did you mean `arguments`?"));
    }

    #[test]
    fn a_policy_file_others_can_write_is_refused_with_how_to_fix_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("policy-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("p.yaml");
        std::fs::write(&path, "servers: {}\n").unwrap();
        for (mode, who) in [
            (0o666, "group and others"),
            (0o620, "its group"),
            (0o602, "others"),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Policy::load_file(&path).expect_err("refused").to_string();
            assert_eq!(
                e,
                format!(
                    "{0}: refused: mode {mode:04o} lets {who} write it, and whoever writes the policy decides what the monitor reports (hint: chmod go-w {0})",
                    path.display()
                )
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Policy::load_file(&path).is_ok());
        // A folder anyone can write to (no sticky bit): the file could be replaced.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Policy::load_file(&path).expect_err("refused").to_string();
        assert!(
            e.contains("refused: its folder") && e.contains("(mode 0777)"),
            "{e}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(Policy::load_file(&path).is_ok());
        // A folder its group can write to.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = Policy::load_file(&path).expect_err("refused").to_string();
        assert!(e.contains("(mode 0775) lets its group replace the file"), "{e}");
        // A folder owned by someone else, who could rename the file away and put
        // another in its place, whatever the file's own owner and mode.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Safety: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
            let e = Policy::load_file(&path).expect_err("refused").to_string();
            assert!(
                e.contains("is owned by uid 4242, who could replace the file (hint: chown root"),
                "{e}"
            );
            std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
            assert!(Policy::load_file(&path).is_ok());
        }
        // Owned by a user other than root or the one running mcp-monitor.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let owner = std::os::unix::fs::MetadataExt::uid(&meta);
        let (meta, euid) = if owner == 0 {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            (std::fs::metadata(&path).unwrap(), 0)
        } else {
            (meta, owner + 1)
        };
        let (message, hint) = unsafe_policy_file(&path, &meta, euid).expect("refused");
        assert!(message.starts_with("refused: owned by uid "), "{message}");
        assert!(hint.starts_with(&format!("chown {euid} ")), "{hint}");
        let root = std::fs::metadata("/").unwrap();
        assert!(
            unsafe_policy_file(Path::new("/p.yaml"), &root, 1000).is_none(),
            "root's is fine"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let missing = Policy::load_file(Path::new("/nonexistent/p.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("/nonexistent/p.yaml: cannot read: "),
            "{missing}"
        );
    }

    #[test]
    fn secret_env_static_secrets_and_short_lived_tokens() {
        let p = Policy::parse("p.yaml", "servers: {}\n").unwrap();
        assert_eq!(
            p.static_secrets,
            StaticSecretsMode::Allow,
            "report-only by default"
        );
        assert_eq!(p.short_lived_tokens_s, 3600);
        assert_eq!(p.secret_env.class_of("GITHUB_TOKEN"), Some("vcs_token"));
        let text = "secret_env: [\"INTERNAL_*_CRED\", {name: DATABASE_URL, class: database_url}, MY_SERVICE_API_KEY]\nstatic_secrets: violation\nshort_lived_tokens: 15m\nservers:\n  gh:\n    match: {cmdline: \"*github*\"}\n    static_secrets: allow\n  fs:\n    match: {cmdline: \"*fs*\"}\n";
        let p = Policy::parse("p.yaml", text).unwrap();
        let rules: Vec<(&str, &str)> = p
            .secret_env
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.class.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                ("INTERNAL_*_CRED", "secret"),
                ("DATABASE_URL", "database_url"),
                ("MY_SERVICE_API_KEY", "api_key")
            ]
        );
        assert_eq!(p.secret_env.class_of("internal_billing_cred"), Some("secret"));
        assert_eq!(p.static_secrets, StaticSecretsMode::Violation);
        assert_eq!(p.short_lived_tokens_s, 900);
        assert_eq!(p.servers[0].static_secrets, Some(StaticSecretsMode::Allow));
        assert_eq!(p.servers[1].static_secrets, None);
        assert!(
            p.summary().contains("static secrets: violation, "),
            "{}",
            p.summary()
        );
        for (text, s) in [("3600", 3600), ("90s", 90), ("1h", 3600), ("7d", 604_800)] {
            assert_eq!(parse_duration_s(text), Some(s), "{text}");
        }
        for bad in ["", "0", "-5m", "1w", "h", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration_s(bad), None, "{bad}");
        }
    }

    #[test]
    fn secret_env_mistakes_name_their_line_and_field() {
        let text = "secret_env:\n  - {name: \"A=1\"}\n  - {nme: X}\n  - {name: Y, class: \"two words\"}\n  - \"[bad\"\nstatic_secrets: maybe\nshort_lived_tokens: 1w\nservers:\n  fs:\n    match: {cmdline: \"*fs*\"}\n    static_secrets: nope\n    static_secret: violation\n";
        let e = errors(text);
        let got: Vec<(usize, usize, &str, &str)> = e
            .iter()
            .map(|e| (e.line, e.column, e.field.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    2,
                    12,
                    "secret_env[0].name",
                    "must be a variable name glob, without `=`"
                ),
                (3, 5, "secret_env[1]", "a secret_env entry needs `name`"),
                (3, 6, "secret_env[1].nme", "unknown key"),
                (
                    4,
                    22,
                    "secret_env[2].class",
                    "must be a word (letters, digits, `_`, `-`)"
                ),
                (
                    5,
                    5,
                    "secret_env[3]",
                    "bad glob \"[bad\": unclosed character class; missing ']'"
                ),
                (6, 17, "static_secrets", "must be `allow` or `violation`"),
                (7, 21, "short_lived_tokens", "must be a positive duration"),
                (
                    11,
                    21,
                    "servers.fs.static_secrets",
                    "must be `allow` or `violation`"
                ),
                (12, 5, "servers.fs.static_secret", "unknown key"),
            ],
            "{e:#?}"
        );
        assert_eq!(e[8].hint.as_deref(), Some("did you mean `static_secrets`?"));
        let shown = PolicyErrors {
            source: "p.yaml".into(),
            errors: e,
        }
        .to_string();
        assert!(
            shown.starts_with("p.yaml:2:12: secret_env[0].name: must be a variable name glob, without `=` (hint: give the name only"),
            "{shown}"
        );
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
