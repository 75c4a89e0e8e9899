//! A server's environment as the monitor keeps it: the NAMES of its variables, never
//! their values. `/proc/PID/environ` is what the process was started with (as it
//! stands in its memory: a process may overwrite it), read once when the server is
//! found. The bytes are whatever its starter chose: read with a bound, parsed without
//! trusting any of it, and every entry that is not `NAME=VALUE` counted.
use std::{io::Read as _, path::Path};

/// Bytes of `/proc/PID/environ` read. Linux caps a process's argv and environment
/// together at a quarter of its stack limit (2 MiB by default); past this the rest is
/// not read and `truncated` says so.
pub const MAX_ENVIRON: usize = 4 << 20;
/// Distinct names kept; more are counted in `dropped`.
pub const MAX_NAMES: usize = 4096;
/// Longest name kept, in bytes; longer ones are counted in `long_names`.
pub const MAX_NAME: usize = 256;

/// The variable names of a process's environment, and what did not parse.
/// Values are never kept here: this is recorded by `run --record` as a host fact.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvNames {
    /// Distinct names in order of first appearance.
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "EnvProblems::is_empty")]
    pub problems: EnvProblems,
}

/// What in an environment was not a plain `NAME=VALUE` entry, or went past a bound.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EnvProblems {
    /// Entries with no `=`, or with an empty name (none is kept: without `=` the
    /// whole entry could be a value).
    pub malformed: u64,
    /// Names that are not UTF-8 (kept, with U+FFFD for the bad bytes).
    pub non_utf8: u64,
    /// Names longer than `MAX_NAME` (not kept).
    pub long_names: u64,
    /// Names past `MAX_NAMES` (not kept).
    pub dropped: u64,
    /// The environment was longer than `MAX_ENVIRON`: the rest was not read.
    pub truncated: bool,
}

impl EnvProblems {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Problems in all, for `mcp_monitor_parse_errors_total{what="environ"}`.
    pub fn total(&self) -> u64 {
        self.malformed + self.non_utf8 + self.long_names + self.dropped + u64::from(self.truncated)
    }
}

/// Up to `MAX_ENVIRON` bytes of `/proc/PID/environ` under `proc`, and whether there
/// was more. None when it cannot be read (the process is gone, or not ours to read).
pub fn read(proc: &Path, pid: u32) -> Option<(Vec<u8>, bool)> {
    let file = std::fs::File::open(proc.join(pid.to_string()).join("environ")).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_ENVIRON as u64 + 1).read_to_end(&mut bytes).ok()?;
    let truncated = bytes.len() > MAX_ENVIRON;
    bytes.truncate(MAX_ENVIRON);
    Some((bytes, truncated))
}

/// The variable names of process `pid` (None: its environment could not be read).
pub fn names(proc: &Path, pid: u32) -> Option<EnvNames> {
    let (bytes, truncated) = read(proc, pid)?;
    Some(parse_names(&bytes, truncated))
}

/// The value of `name` in raw environ bytes, for the one variable the monitor needs
/// the value of (`HOME`, see `policy::Homes`); the first one wins, as for getenv.
pub fn value_of<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    entries(bytes, false).find_map(|kv| {
        kv.strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

/// The NUL-separated entries of `bytes`, without the empty one after the final NUL;
/// when `truncated`, without the last entry either (it was cut).
fn entries(bytes: &[u8], truncated: bool) -> impl Iterator<Item = &[u8]> {
    let mut parts: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    // `split` yields one empty part after a final NUL; a cut entry is unusable.
    if truncated || parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts.into_iter()
}

/// The names in raw environ bytes (`NAME=VALUE` entries separated by NULs), counting
/// every entry that is not one. The values are looked at only to be skipped.
pub fn parse_names(bytes: &[u8], truncated: bool) -> EnvNames {
    let mut out = EnvNames::default();
    out.problems.truncated = truncated;
    let mut seen = std::collections::HashSet::new();
    for entry in entries(bytes, truncated) {
        if entry.is_empty() {
            // Two NULs in a row: not an entry at all.
            out.problems.malformed += 1;
            continue;
        }
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            out.problems.malformed += 1;
            continue;
        };
        let name = &entry[..eq];
        if name.is_empty() {
            out.problems.malformed += 1;
            continue;
        }
        if name.len() > MAX_NAME {
            out.problems.long_names += 1;
            continue;
        }
        let name = match std::str::from_utf8(name) {
            Ok(s) => s.to_string(),
            Err(_) => {
                out.problems.non_utf8 += 1;
                String::from_utf8_lossy(name).into_owned()
            }
        };
        if seen.contains(&name) {
            continue;
        }
        if out.names.len() >= MAX_NAMES {
            out.problems.dropped += 1;
            continue;
        }
        seen.insert(name.clone());
        out.names.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_in_order_once_each() {
        let e = parse_names(
            b"PATH=/usr/bin\0GITHUB_TOKEN=ghp_secret=x\0PATH=/other\0EMPTY=\0",
            false,
        );
        assert_eq!(e.names, ["PATH", "GITHUB_TOKEN", "EMPTY"]);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        let shown = serde_json::to_string(&e).unwrap();
        assert!(
            !shown.contains("ghp_secret") && !shown.contains("/usr/bin"),
            "{shown}"
        );
        assert_eq!(shown, r#"{"names":["PATH","GITHUB_TOKEN","EMPTY"]}"#);
    }

    #[test]
    fn hostile_environments_are_counted_never_trusted() {
        // No '=': the whole entry may be a value, so nothing of it is kept.
        let e = parse_names(b"ghp_noequals\0=starts_with_eq\0OK=1", false);
        assert_eq!(e.names, ["OK"]);
        assert_eq!(e.problems.malformed, 2);
        // NUL-only: empty entries, nothing else.
        let e = parse_names(&[0u8; 64], false);
        assert!(e.names.is_empty());
        assert_eq!(e.problems.malformed, 64, "the last NUL ends the block");
        assert_eq!(parse_names(b"", false), EnvNames::default());
        // Not UTF-8: kept as it reads, counted.
        let e = parse_names(b"A\xffB_TOKEN=v\0", false);
        assert_eq!(e.names, ["A\u{fffd}B_TOKEN"]);
        assert_eq!(e.problems.non_utf8, 1);
        // A name past MAX_NAME is not kept.
        let long = format!("{}_TOKEN=v\0", "X".repeat(MAX_NAME));
        let e = parse_names(long.as_bytes(), false);
        assert!(e.names.is_empty());
        assert_eq!(e.problems.long_names, 1);
        // Cut at the bound: the last, partial entry is not used.
        let e = parse_names(b"A=1\0GITHUB_TO", true);
        assert_eq!(e.names, ["A"]);
        assert!(e.problems.truncated);
        assert_eq!(e.problems.total(), 1);
    }

    #[test]
    fn past_max_names_the_rest_are_counted() {
        let mut bytes = Vec::new();
        for i in 0..MAX_NAMES + 10 {
            bytes.extend_from_slice(format!("V{i}=x\0").as_bytes());
        }
        let e = parse_names(&bytes, false);
        assert_eq!(e.names.len(), MAX_NAMES);
        assert_eq!(e.problems.dropped, 10);
    }

    #[test]
    fn a_huge_environ_is_read_to_the_bound_only() {
        let dir = std::env::temp_dir().join(format!("environ-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("7")).unwrap();
        let mut bytes = b"FIRST_TOKEN=a\0".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', MAX_ENVIRON + 100));
        std::fs::write(dir.join("7/environ"), &bytes).unwrap();
        let e = names(&dir, 7).unwrap();
        assert_eq!(e.names, ["FIRST_TOKEN"]);
        assert!(e.problems.truncated);
        assert_eq!(names(&dir, 8), None, "unreadable: unknown");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn value_of_home_first_wins() {
        let b = b"HOMEX=1\0HOME=/home/a\0HOME=/home/b\0";
        assert_eq!(value_of(b, "HOME"), Some(&b"/home/a"[..]));
        assert_eq!(value_of(b"PATH=x", "HOME"), None);
    }
}
