//! Which processes to watch: command lines that match the configured globs.
use anyhow::Context as _;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// Command lines that MCP servers commonly have. `--watch` replaces them.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "*@modelcontextprotocol/*",
    "*mcp-server-*",
    "*server-filesystem*",
    "*mcp_server*",
    "*mcp*",
];

pub struct WatchPatterns {
    set: GlobSet,
    patterns: Vec<String>,
}

impl WatchPatterns {
    pub fn new(patterns: &[String]) -> anyhow::Result<Self> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            // `*` crosses `/`: command lines hold paths.
            b.add(Glob::new(p).with_context(|| format!("invalid --watch glob {p:?}"))?);
        }
        Ok(Self {
            set: b.build().context("building --watch globs")?,
            patterns: patterns.to_vec(),
        })
    }

    /// The first pattern that matches `cmdline`.
    pub fn matches(&self, cmdline: &str) -> Option<&str> {
        self.set
            .matches(cmdline)
            .first()
            .map(|&i| self.patterns[i].as_str())
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> WatchPatterns {
        WatchPatterns::new(&DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn defaults_recognise_common_servers() {
        let w = defaults();
        assert_eq!(
            w.matches(
                "node /usr/lib/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /srv"
            ),
            Some("*@modelcontextprotocol/*")
        );
        assert_eq!(w.matches("uvx mcp-server-fetch"), Some("*mcp-server-*"));
        assert!(w.matches("python3 -m my_mcp.server").is_some());
        assert_eq!(w.matches("/usr/bin/bash -l"), None);
    }

    #[test]
    fn bad_glob_is_an_error_naming_it() {
        let err = WatchPatterns::new(&["a[".to_string()]).err().unwrap();
        assert!(format!("{err:#}").contains("\"a[\""), "{err:#}");
    }
}
