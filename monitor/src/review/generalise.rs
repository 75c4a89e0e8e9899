//! From what one run showed to globs that also match the next run of the same thing.
//!
//! The rules, each narrow on purpose (a suggested policy should allow what was seen,
//! and as little else as a rerun needs):
//! - Every observed string is a literal first: glob characters in it (`*?[]{},\`) are
//!   escaped, so a hostile path or tool name cannot widen its own entry.
//! - Temporary folders (`per_run_folder`): a path under `/tmp/`, `/var/tmp/` or
//!   `/dev/shm/` that goes through a folder there (`/tmp/tmp.x8Yz/root/a.txt`) gets
//!   that folder as `*` (`/tmp/*/root/a.txt`): `mktemp -d` and test harnesses make a
//!   new one each run. A file directly in the temporary root keeps its name.
//! - Command lines (`cmdline_glob`): each argument as above, and in each argument
//!   every run of 4 or more digits becomes `*` (process ids, ports, time stamps in
//!   names that change between runs: `--name job-48213` matches `--name job-*`).
//!   Shorter runs (versions like `1.2.3`) stay. A part redacted in events
//!   (`[redacted:KIND]`) was a credential, whose value is not known: `*`.
//! - Files (`fold_folders`): when 3 or more distinct entries share one folder they
//!   become `folder/*` (its direct entries, not its subfolders: `*` does not cross
//!   `/` in path globs). Fewer stay listed one by one.

use std::collections::BTreeMap;

/// Folders whose subfolders are made per run.
const TEMP_ROOTS: &[&str] = &["/tmp/", "/var/tmp/", "/dev/shm/"];

/// Entries of one folder from which the folder is allowed as `folder/*`.
pub const FOLD_AT: usize = 3;

/// Shortest digit run in a command line taken for a per-run value.
const DIGIT_RUN: usize = 4;

/// `s` as a glob that matches exactly `s`: each glob character as a one-character class.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_literal(&mut out, c);
    }
    out
}

fn push_literal(out: &mut String, c: char) {
    match c {
        '*' | '?' | '[' | '{' | '}' | ',' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        // `]` alone is literal; in a class `[]]` it would be too, but plainer this way.
        ']' => out.push(']'),
        // A backslash escapes the next character in globset: escape it by itself.
        '\\' => out.push_str("\\\\"),
        c => out.push(c),
    }
}

/// A path as a glob: literal, but for the per-run folder under a temporary root.
pub fn path_glob(path: &str) -> String {
    match per_run_folder(path) {
        Some((root, rest)) => format!("{root}*/{}", literal(rest)),
        None => literal(path),
    }
}

/// `("/tmp/", "root/a.txt")` for `/tmp/x8Yz/root/a.txt`: the temporary root and what
/// follows the per-run folder under it.
fn per_run_folder(path: &str) -> Option<(&'static str, &str)> {
    TEMP_ROOTS.iter().find_map(|root| {
        let (folder, rest) = path.strip_prefix(root)?.split_once('/')?;
        (!folder.is_empty() && folder != "." && folder != "..").then_some((*root, rest))
    })
}

/// A command line as a glob that matches reruns of it (rules in the module docs).
/// Arguments are split at single spaces, as events join them.
pub fn cmdline_glob(cmdline: &str) -> String {
    cmdline
        .split(' ')
        .map(argument_glob)
        .collect::<Vec<_>>()
        .join(" ")
}

fn argument_glob(arg: &str) -> String {
    if arg.contains("[redacted") {
        return "*".to_string();
    }
    // `--root=/tmp/x/y` as well as `/tmp/x/y`.
    let (prefix, value) = match arg.split_once('=') {
        Some((k, v)) if v.starts_with('/') => (Some(k), v),
        _ => (None, arg),
    };
    let value = match per_run_folder(value) {
        Some((root, rest)) => format!("{}*/{}", root_glob(root), digits_glob(rest)),
        None => digits_glob(value),
    };
    match prefix {
        Some(k) => format!("{}={value}", digits_glob(k)),
        None => value,
    }
}

fn root_glob(root: &str) -> String {
    literal(root)
}

/// Literal, with every run of `DIGIT_RUN` or more digits as `*`.
fn digits_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let end = chars[i..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(chars.len(), |n| i + n);
            if end - i >= DIGIT_RUN {
                if !out.ends_with('*') {
                    out.push('*');
                }
            } else {
                out.extend(&chars[i..end]);
            }
            i = end;
        } else {
            push_literal(&mut out, chars[i]);
            i += 1;
        }
    }
    out
}

/// Path globs with the entries of any folder holding `FOLD_AT` or more of them folded
/// into `folder/*`; each result with the globs it stands for, sorted.
pub fn fold_folders(globs: impl IntoIterator<Item = String>) -> BTreeMap<String, Vec<String>> {
    let mut by_folder: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in globs {
        match g.rsplit_once('/') {
            Some((folder, name)) if !name.is_empty() => {
                by_folder.entry(folder.to_string()).or_default().push(g)
            }
            _ => {
                out.entry(g.clone()).or_default().push(g);
            }
        }
    }
    for (folder, mut entries) in by_folder {
        entries.sort();
        entries.dedup();
        if entries.len() >= FOLD_AT {
            out.entry(format!("{folder}/*")).or_default().extend(entries);
        } else {
            for e in entries {
                out.entry(e.clone()).or_default().push(e);
            }
        }
    }
    // A folded glob may also hold an entry listed alone (a path ending in `/*`).
    for members in out.values_mut() {
        members.sort();
        members.dedup();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_matches(glob: &str, path: &str) -> bool {
        globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .unwrap()
            .compile_matcher()
            .is_match(path)
    }

    fn cmdline_matches(glob: &str, cmdline: &str) -> bool {
        globset::Glob::new(glob)
            .unwrap()
            .compile_matcher()
            .is_match(cmdline)
    }

    #[test]
    fn a_literal_matches_itself_only() {
        for s in ["/a/b*c", "x?[y]{z,w}", "a\\b", "[v6]:443", "plain", "]odd["] {
            let g = literal(s);
            assert!(path_matches(&g, s), "{s} -> {g}");
            assert!(cmdline_matches(&g, s), "{s} -> {g}");
        }
        assert!(!cmdline_matches(&literal("a*"), "abc"));
        assert!(!cmdline_matches(&literal("a?"), "ab"));
        assert!(!cmdline_matches(&literal("{a,b}"), "a"));
    }

    #[test]
    fn a_per_run_temporary_folder_becomes_a_star() {
        assert_eq!(
            path_glob("/tmp/tsuggestx1x2/root/notes.txt"),
            "/tmp/*/root/notes.txt"
        );
        assert_eq!(path_glob("/var/tmp/abc/x"), "/var/tmp/*/x");
        assert_eq!(
            path_glob("/tmp/file.txt"),
            "/tmp/file.txt",
            "directly in /tmp: kept"
        );
        assert_eq!(path_glob("/srv/docs/a.txt"), "/srv/docs/a.txt");
        assert_eq!(path_glob("/tmp/../etc/shadow"), "/tmp/../etc/shadow");
        assert!(path_matches(&path_glob("/tmp/run1/root"), "/tmp/run2/root"));
        assert!(!path_matches(&path_glob("/tmp/run1/root"), "/tmp/a/b/root"));
    }

    #[test]
    fn command_lines_keep_their_shape_across_reruns() {
        let first = "node /x/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /tmp/tsuggestx4242x123456/root";
        let second = "node /x/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /tmp/tsuggestx4343x999999/root";
        let g = cmdline_glob(first);
        assert_eq!(
            g,
            "node /x/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /tmp/*/root"
        );
        assert!(cmdline_matches(&g, first) && cmdline_matches(&g, second));
        assert!(!cmdline_matches(&g, "node /x/other.js /tmp/a/root"));
        let py = "/v/bin/python /m/py_server.py --name treplaypyx14726x886521751";
        let g = cmdline_glob(py);
        assert_eq!(g, "/v/bin/python /m/py_server.py --name treplaypyx*x*");
        assert!(cmdline_matches(
            &g,
            "/v/bin/python /m/py_server.py --name treplaypyx1x2"
        ));
        assert_eq!(
            cmdline_glob("srv --root=/tmp/ab12/x -v 1.2.3"),
            "srv --root=/tmp/*/x -v 1.2.3"
        );
        assert_eq!(cmdline_glob("srv --token [redacted:token]"), "srv --token *");
        assert_eq!(cmdline_glob("srv --glob *.txt"), "srv --glob [*].txt");
    }

    #[test]
    fn three_entries_of_one_folder_fold_into_folder_star() {
        let folded = fold_folders(
            ["/d/a", "/d/b", "/d/c", "/e/a", "/e/b", "/d", "/d/a"]
                .iter()
                .map(|s| s.to_string()),
        );
        let keys: Vec<&str> = folded.keys().map(String::as_str).collect();
        assert_eq!(keys, ["/d", "/d/*", "/e/a", "/e/b"]);
        assert_eq!(folded["/d/*"], ["/d/a", "/d/b", "/d/c"]);
        assert!(path_matches("/d/*", "/d/new") && !path_matches("/d/*", "/d/sub/x"));
        assert!(!path_matches("/d/*", "/d"), "the folder itself is its own entry");
    }
}
