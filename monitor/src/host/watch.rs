//! Which processes to watch from their exec: command lines that match a policy's
//! server entries or the `--watch` globs. Other MCP servers are found by what they
//! speak (see `mcp::detect`), not by their names.
use anyhow::Context as _;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// How a process came to be a server, as `server_started` says (`detected_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectedBy {
    /// A `match.cmdline` of the policy given with `--policy`.
    PolicyMatch,
    /// A `--watch` glob.
    WatchPattern,
    /// It read an MCP request on its stdin or on a connection it accepted.
    Protocol,
}

impl DetectedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PolicyMatch => "policy_match",
            Self::WatchPattern => "watch_pattern",
            Self::Protocol => "protocol",
        }
    }
}

pub struct WatchPatterns {
    set: GlobSet,
    patterns: Vec<(String, DetectedBy)>,
}

impl WatchPatterns {
    /// The policy's server globs (tried first: they also name the server) and the
    /// `--watch` globs.
    pub fn new(policy: &[String], watch: &[String]) -> anyhow::Result<Self> {
        let mut b = GlobSetBuilder::new();
        let mut patterns = Vec::new();
        let tagged = policy
            .iter()
            .map(|p| (p, DetectedBy::PolicyMatch))
            .chain(watch.iter().map(|p| (p, DetectedBy::WatchPattern)));
        for (p, origin) in tagged {
            // `*` crosses `/`: command lines hold paths.
            let what = match origin {
                DetectedBy::PolicyMatch => "policy match.cmdline",
                _ => "--watch",
            };
            b.add(Glob::new(p).with_context(|| format!("invalid {what} glob {p:?}"))?);
            patterns.push((p.clone(), origin));
        }
        Ok(Self {
            set: b.build().context("building watch globs")?,
            patterns,
        })
    }

    /// The first pattern that matches `cmdline`, and where it comes from.
    pub fn matches(&self, cmdline: &str) -> Option<(&str, DetectedBy)> {
        self.set
            .matches(cmdline)
            .first()
            .map(|&i| (self.patterns[i].0.as_str(), self.patterns[i].1))
    }

    pub fn patterns(&self) -> Vec<&str> {
        self.patterns.iter().map(|(p, _)| p.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_globs_come_first_and_say_so() {
        let w = WatchPatterns::new(&["*server-filesystem*".into()], &["node *".into()]).unwrap();
        assert_eq!(
            w.matches("node /x/server-filesystem/dist/index.js /srv"),
            Some(("*server-filesystem*", DetectedBy::PolicyMatch))
        );
        assert_eq!(
            w.matches("node other.js"),
            Some(("node *", DetectedBy::WatchPattern))
        );
        assert_eq!(w.matches("/usr/bin/bash -l"), None);
        assert_eq!(w.patterns(), ["*server-filesystem*", "node *"]);
    }

    #[test]
    fn no_pattern_watches_nothing_by_name() {
        let w = WatchPatterns::new(&[], &[]).unwrap();
        for cmdline in [
            "ls /tmp/mcp-perf/bin",
            "python3 -m my_mcp.server",
            "uvx mcp-server-fetch",
        ] {
            assert_eq!(w.matches(cmdline), None, "{cmdline}");
        }
    }

    #[test]
    fn bad_glob_is_an_error_naming_it() {
        let err = WatchPatterns::new(&[], &["a[".to_string()]).err().unwrap();
        assert!(format!("{err:#}").contains("--watch glob \"a[\""), "{err:#}");
    }
}
