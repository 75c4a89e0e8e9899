//! The policy as loaded: server entries with their scopes and agents, secret rules,
//! runtime noise, and the facts and findings the evaluation works with.
use super::{
    globs::{Homes, NameList, PathGlobs},
    secret_env::SecretEnv,
};
use crate::{host::workload::Workload, transport::bearer::Claims};

/// The server name in events and the `server` label in metrics of a server that no
/// policy entry matches; reserved, so no entry can take it.
pub const UNREGISTERED: &str = "unregistered";

/// Files every runtime opens while it works (shared libraries, /proc, locale and time
/// zone data, its own packages). They are counted, not listed, and `files` scopes need
/// not repeat them. A policy's `noise:` replaces this list. Judged on the path the
/// kernel opened (a symlink's target), so the targets of the system's own symlinks
/// are here too (Debian's /etc/ssl/certs, locale.alias, systemd's resolv.conf).
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
    "/etc/locale.alias",
    "/usr/share/ca-certificates/**",
    "/run/systemd/resolve/*.conf",
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

/// The policy's `static_secrets:` (top level: the default; per server: its own): what
/// a server started with secret-looking environment variables is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaticSecretsMode {
    /// Listed in `server_started` and the metrics, not a violation (the default: many
    /// servers need an API key by design; see the README).
    #[default]
    Allow,
    /// A `static_secret` violation when the server starts.
    Violation,
}

impl StaticSecretsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Violation => "violation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregistered {
    Violation,
    Ignore,
}

/// What events carry of a call's arguments (and its error text): the policy's
/// `arguments:`. Events leave the host; arguments are whatever the agent typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArgumentsMode {
    /// Credentials replaced by `[redacted]` / `[redacted:KIND]` (the default).
    #[default]
    Redact,
    /// No arguments at all in events, only their size.
    Drop,
    /// Arguments as sent, nothing redacted (an explicit opt-out).
    Keep,
}

impl ArgumentsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redact => "redact",
            Self::Drop => "drop",
            Self::Keep => "keep",
        }
    }
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
    pub(super) client_glob: Option<globset::GlobMatcher>,
    pub uid: Option<u32>,
    pub exe: Option<String>,
    pub(super) exe_glob: Option<globset::GlobMatcher>,
    /// Globs on the caller's bearer-token claims.
    pub token: TokenMatch,
    /// Globs on the client process's cgroup, container id and pod UID.
    pub workload: WorkloadMatch,
    pub tools: Option<NameList>,
}

/// Globs on where a process runs: `container` (its id), `pod` (the pod UID), `cgroup`
/// (the cgroup v2 path). A glob given matches nothing when that is unknown.
#[derive(Debug, Default)]
pub struct WorkloadMatch {
    pub container: Option<(String, globset::GlobMatcher)>,
    pub pod: Option<(String, globset::GlobMatcher)>,
    pub cgroup: Option<(String, globset::GlobMatcher)>,
}

impl WorkloadMatch {
    pub fn matches(&self, w: Option<&Workload>) -> bool {
        let ok = |glob: &Option<(String, globset::GlobMatcher)>, value: Option<&str>| {
            glob.as_ref()
                .is_none_or(|(_, g)| value.is_some_and(|v| g.is_match(v)))
        };
        ok(&self.container, w.and_then(Workload::container_id))
            && ok(&self.pod, w.and_then(Workload::pod_uid))
            && ok(&self.cgroup, w.map(|w| w.cgroup.as_str()))
    }
}

/// An agent's globs on token claims: `sub`, `iss`, `client_id` (or `azp`).
#[derive(Debug, Default)]
pub struct TokenMatch {
    pub sub: Option<(String, globset::GlobMatcher)>,
    pub iss: Option<(String, globset::GlobMatcher)>,
    pub client_id: Option<(String, globset::GlobMatcher)>,
}

impl TokenMatch {
    pub fn is_empty(&self) -> bool {
        self.sub.is_none() && self.iss.is_none() && self.client_id.is_none()
    }

    /// Whether claims satisfy every glob given; a claim that is absent matches none.
    pub fn matches(&self, claims: Option<&Claims>) -> bool {
        let ok = |glob: &Option<(String, globset::GlobMatcher)>, value: Option<&String>| {
            glob.as_ref()
                .is_none_or(|(_, g)| value.is_some_and(|v| g.is_match(v)))
        };
        ok(&self.sub, claims.and_then(|c| c.sub.as_ref()))
            && ok(&self.iss, claims.and_then(|c| c.iss.as_ref()))
            && ok(&self.client_id, claims.and_then(|c| c.client_id.as_ref()))
    }
}

#[derive(Debug)]
pub struct ServerRule {
    pub name: String,
    pub cmdline: Option<String>,
    pub(super) cmdline_glob: Option<globset::GlobMatcher>,
    pub exe: Option<String>,
    pub(super) exe_glob: Option<globset::GlobMatcher>,
    pub workload: WorkloadMatch,
    pub tools: Option<NameList>,
    pub files: Option<PathGlobs>,
    pub secrets: PathGlobs,
    pub exec: Option<PathGlobs>,
    pub connect: Option<NameList>,
    pub agents: Vec<AgentRule>,
    /// Its own `static_secrets:`; None: the policy's top-level one.
    pub static_secrets: Option<StaticSecretsMode>,
}

#[derive(Debug)]
pub struct Policy {
    /// Where it came from: a file path or "built-in".
    pub source: String,
    pub secrets: Vec<SecretRule>,
    pub(super) secret_globs: PathGlobs,
    pub(super) noise: PathGlobs,
    pub unregistered_servers: Unregistered,
    /// What events carry of arguments: redacted, dropped or kept.
    pub arguments: ArgumentsMode,
    pub servers: Vec<ServerRule>,
    /// Environment variable names that hold secrets: `secret_env:`, then built-ins.
    pub secret_env: SecretEnv,
    /// The top-level `static_secrets:`, for servers whose entry does not say.
    pub static_secrets: StaticSecretsMode,
    /// `short_lived_tokens:`: bearer JWTs valid (iat to exp) for at most this many
    /// seconds are short-lived.
    pub short_lived_tokens_s: i64,
}

/// What a check concluded, with the rule that decided it. In events it also carries
/// `refs`, the framework references of its kind (`policy::refs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: &'static str,
    pub detail: String,
    pub rule: String,
}

impl serde::Serialize for Violation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("kind", self.kind)?;
        m.serialize_entry("detail", &self.detail)?;
        m.serialize_entry("rule", &self.rule)?;
        m.serialize_entry("refs", super::refs::refs_of(self.kind))?;
        m.end()
    }
}

/// What the policy needs to know about a completed tool call.
pub struct CallFacts<'a> {
    pub tool: &'a str,
    pub client_name: Option<&'a str>,
    pub client_uid: Option<u32>,
    pub client_exe: Option<&'a str>,
    /// Where the client process runs (cgroup, container, pod).
    pub client_workload: Option<&'a Workload>,
    /// The claims of the caller's bearer token (unverified).
    pub token: Option<&'a Claims>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectKind {
    File,
    Exec,
    Connect,
}
