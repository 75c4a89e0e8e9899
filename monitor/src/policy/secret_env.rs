//! Static secrets: environment variables whose NAME says they hold a credential
//! (`GITHUB_TOKEN`, `*_API_KEY`, ...), with a class. A server started with one holds a
//! long-lived secret in its memory for as long as it runs, whoever gave it. Only names
//! are ever looked at; values are never read into the monitor's output.
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::host::environ::EnvNames;

/// Name globs (case-insensitive; `*` matches any characters) and their classes, tried
/// in order: the first that matches names the class. Specific names come before the
/// generic suffixes so that `AWS_SESSION_TOKEN` is `cloud_credentials`, not `token`.
/// Classes reuse the vocabulary of secret files (`policy::secret_class`) where the
/// kind is the same. A policy's `secret_env:` entries are tried before these.
pub const BUILTIN_SECRET_ENV: &[(&str, &str)] = &[
    // Cloud providers.
    ("AWS_SECRET_ACCESS_KEY", "cloud_credentials"),
    ("AWS_SESSION_TOKEN", "cloud_credentials"),
    ("AZURE_CLIENT_SECRET", "cloud_credentials"),
    ("AZURE_STORAGE_KEY", "cloud_credentials"),
    ("AZURE_STORAGE_CONNECTION_STRING", "cloud_credentials"),
    ("GOOGLE_API_KEY", "cloud_credentials"),
    // Source hosting.
    ("GITHUB_*TOKEN", "vcs_token"),
    ("GITHUB_PAT", "vcs_token"),
    ("GH_*TOKEN", "vcs_token"),
    ("GITLAB_*TOKEN", "vcs_token"),
    ("BITBUCKET_*TOKEN", "vcs_token"),
    // Package registries.
    ("NPM_TOKEN", "package_token"),
    ("NODE_AUTH_TOKEN", "package_token"),
    ("PYPI_*TOKEN", "package_token"),
    ("TWINE_PASSWORD", "package_token"),
    ("CARGO_REGISTRY_TOKEN", "package_token"),
    ("CARGO_REGISTRIES_*_TOKEN", "package_token"),
    // Container registries.
    ("DOCKER_PASSWORD", "container_credentials"),
    ("DOCKER_AUTH_CONFIG", "container_credentials"),
    // Databases that read a password from the environment.
    ("PGPASSWORD", "password"),
    ("MYSQL_PWD", "password"),
    // Generic names, by what they end with.
    ("*_PRIVATE_KEY", "private_key"),
    ("*_API_KEY", "api_key"),
    ("*_APIKEY", "api_key"),
    ("API_KEY", "api_key"),
    ("*_PASSWORD", "password"),
    ("*_PASSWD", "password"),
    ("PASSWORD", "password"),
    ("*_SECRET", "secret"),
    ("*_SECRET_KEY", "secret"),
    ("SECRET_KEY", "secret"),
    ("*_TOKEN", "token"),
    ("TOKEN", "token"),
];

/// Static secrets listed per server; more are counted (`static_secrets_dropped`).
pub const MAX_STATIC_SECRETS: usize = 64;

/// A `secret_env:` entry of a policy: a name glob and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnvRule {
    pub name: String,
    pub class: String,
}

/// One secret-looking variable a server was started with: its name and class, never
/// its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticSecret {
    pub name: String,
    pub class: String,
}

/// The static secrets of one environment, within `MAX_STATIC_SECRETS`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StaticSecrets {
    pub found: Vec<StaticSecret>,
    /// Found past the bound, not listed.
    pub dropped: u64,
}

/// The classifier: the policy's rules, then the built-in ones, compiled once.
#[derive(Debug)]
pub struct SecretEnv {
    /// The policy's `secret_env:` entries (the built-in ones follow them in `set`).
    pub rules: Vec<SecretEnvRule>,
    set: GlobSet,
}

impl Default for SecretEnv {
    fn default() -> Self {
        // The built-in globs are tested to compile (`builtin_names_and_classes`).
        Self::new(Vec::new()).unwrap_or_else(|e| panic!("built-in secret_env globs: {e}"))
    }
}

/// A name glob as the classifier uses it: case-insensitive (`github_token` is read by
/// the same programs as `GITHUB_TOKEN` on some platforms, and is meant the same).
pub fn name_glob(glob: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(glob).case_insensitive(true).build()
}

impl SecretEnv {
    pub fn new(rules: Vec<SecretEnvRule>) -> Result<Self, globset::Error> {
        let mut b = GlobSetBuilder::new();
        for r in &rules {
            b.add(name_glob(&r.name)?);
        }
        for (g, _) in BUILTIN_SECRET_ENV {
            b.add(name_glob(g)?);
        }
        Ok(Self {
            rules,
            set: b.build()?,
        })
    }

    /// The class of a variable name, if it looks like it holds a secret.
    pub fn class_of(&self, name: &str) -> Option<&str> {
        // `matches` lists glob indices in ascending order: the first is the rule.
        let i = *self.set.matches(name).first()?;
        match self.rules.get(i) {
            Some(r) => Some(r.class.as_str()),
            None => BUILTIN_SECRET_ENV.get(i - self.rules.len()).map(|(_, c)| *c),
        }
    }

    /// The secret-looking variables among `env`'s names, in their order.
    pub fn static_secrets(&self, env: &EnvNames) -> StaticSecrets {
        let mut out = StaticSecrets::default();
        for name in &env.names {
            let Some(class) = self.class_of(name) else {
                continue;
            };
            if out.found.len() >= MAX_STATIC_SECRETS {
                out.dropped += 1;
                continue;
            }
            out.found.push(StaticSecret {
                name: name.clone(),
                class: class.to_string(),
            });
        }
        out
    }
}

/// The class of a policy's `secret_env` glob given without one: what the built-in list
/// calls a variable of that name (`MY_SERVICE_API_KEY` is `api_key`), else `secret`.
pub fn env_class(glob: &str) -> String {
    SecretEnv::default()
        .class_of(glob)
        .unwrap_or("secret")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::environ::parse_names;

    #[test]
    fn builtin_names_and_classes() {
        let c = SecretEnv::default();
        for (name, class) in [
            ("AWS_SECRET_ACCESS_KEY", "cloud_credentials"),
            ("AWS_SESSION_TOKEN", "cloud_credentials"),
            ("GITHUB_TOKEN", "vcs_token"),
            ("GITHUB_PERSONAL_ACCESS_TOKEN", "vcs_token"),
            ("GH_TOKEN", "vcs_token"),
            ("NPM_TOKEN", "package_token"),
            ("OPENAI_API_KEY", "api_key"),
            ("MY_SERVICE_API_KEY", "api_key"),
            ("stripe_apikey", "api_key"),
            ("DB_PASSWORD", "password"),
            ("PGPASSWORD", "password"),
            ("JWT_SECRET", "secret"),
            ("DJANGO_SECRET_KEY", "secret"),
            ("SLACK_BOT_TOKEN", "token"),
            ("github_token", "vcs_token"),
            ("DEPLOY_PRIVATE_KEY", "private_key"),
        ] {
            assert_eq!(c.class_of(name), Some(class), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "SSH_AUTH_SOCK",
            "AWS_ACCESS_KEY_ID",
            "PASSWORD_STORE_DIR",
            "TOKENIZERS_PARALLELISM",
            "KEY",
            "",
        ] {
            assert_eq!(c.class_of(name), None, "{name}");
        }
    }

    #[test]
    fn policy_rules_come_first_and_extend_the_list() {
        let c = SecretEnv::new(vec![
            SecretEnvRule {
                name: "DATABASE_URL".into(),
                class: "database_url".into(),
            },
            SecretEnvRule {
                name: "GITHUB_TOKEN".into(),
                class: "ci_token".into(),
            },
        ])
        .unwrap();
        assert_eq!(c.class_of("DATABASE_URL"), Some("database_url"));
        assert_eq!(c.class_of("GITHUB_TOKEN"), Some("ci_token"), "the policy's wins");
        assert_eq!(c.class_of("GH_TOKEN"), Some("vcs_token"), "built-ins still apply");
        assert_eq!(env_class("MY_SERVICE_API_KEY"), "api_key");
        assert_eq!(env_class("INTERNAL_*_CRED"), "secret");
    }

    #[test]
    fn static_secrets_of_an_environment_are_names_and_classes_bounded() {
        let env = parse_names(
            b"PATH=/bin\0GITHUB_TOKEN=ghp_value\0MY_SERVICE_API_KEY=sk_value\0nonsense\0",
            false,
        );
        let s = SecretEnv::default().static_secrets(&env);
        assert_eq!(
            serde_json::to_string(&s.found).unwrap(),
            r#"[{"name":"GITHUB_TOKEN","class":"vcs_token"},{"name":"MY_SERVICE_API_KEY","class":"api_key"}]"#
        );
        assert_eq!(s.dropped, 0);
        let mut bytes = Vec::new();
        for i in 0..MAX_STATIC_SECRETS + 3 {
            bytes.extend_from_slice(format!("S{i}_TOKEN=v\0").as_bytes());
        }
        let s = SecretEnv::default().static_secrets(&parse_names(&bytes, false));
        assert_eq!((s.found.len(), s.dropped), (MAX_STATIC_SECRETS, 3));
        // Hostile names classify like any other and never panic.
        let env = parse_names(b"\xff\xfe_TOKEN=x\0\0\0=\0", false);
        let s = SecretEnv::default().static_secrets(&env);
        assert_eq!(s.found.len(), 1);
        assert_eq!(s.found[0].class, "token");
    }
}
