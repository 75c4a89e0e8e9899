//! Secret files by device and inode: a hard link to a secret is the secret under
//! another name, which no glob on names catches. The index is built from the policy's
//! secret globs (`~` expanded per home) by listing the folders they name, bounded, and
//! is only looked at for a regular file with more than one link that no name of it
//! makes a secret; it is rebuilt at most every [`REFRESH`].
//!
//! Globs that start with a wildcard (`**/.env`) name no folder to list: a hard link to
//! such a file is only caught under a name that matches.
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::Path,
    time::{Duration, Instant},
};

use globset::{GlobBuilder, GlobMatcher};

/// How long a built index is trusted: a secret created since is not found by inode
/// until then (by name it always is).
pub const REFRESH: Duration = Duration::from_secs(30);
/// Directory entries one build looks at, over all globs.
const MAX_ENTRIES: usize = 20_000;
/// Folder levels below a glob's literal prefix.
const MAX_DEPTH: usize = 8;
/// Sets of globs (one per distinct set of homes) kept at once.
const MAX_SETS: usize = 16;

type Index = HashMap<(u32, u64), String>;

#[derive(Default)]
pub struct SecretInodes {
    built: HashMap<Vec<String>, (Instant, Index)>,
}

impl SecretInodes {
    /// The secret path whose file is (`dev`, `ino`), `dev` in the kernel's encoding.
    pub fn find(&mut self, globs: Vec<String>, dev: u32, ino: u64) -> Option<String> {
        let fresh = self
            .built
            .get(&globs)
            .is_some_and(|(at, _)| at.elapsed() < REFRESH);
        if !fresh {
            if self.built.len() >= MAX_SETS {
                self.built.clear();
            }
            let index = build(&globs);
            self.built.insert(globs.clone(), (Instant::now(), index));
        }
        self.built.get(&globs)?.1.get(&(dev, ino)).cloned()
    }
}

/// `st_dev` as glibc encodes it, in the kernel's internal encoding (`s_dev`:
/// major << 20 | minor), which the programs read.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = ((st_dev >> 32) & 0xffff_f000) | ((st_dev >> 8) & 0xfff);
    let minor = ((st_dev >> 12) & 0xffff_ff00) | (st_dev & 0xff);
    ((major << 20) | (minor & 0xf_ffff)) as u32
}

fn build(globs: &[String]) -> Index {
    let mut index = Index::new();
    let mut budget = MAX_ENTRIES;
    for glob in globs {
        let prefix = literal_prefix(glob);
        if prefix.is_empty() || prefix == "/" {
            continue;
        }
        if prefix == *glob {
            add(&mut index, Path::new(glob));
            continue;
        }
        let Ok(glob_matcher) = GlobBuilder::new(glob).literal_separator(true).build() else {
            continue;
        };
        walk(
            Path::new(&prefix),
            &glob_matcher.compile_matcher(),
            0,
            &mut budget,
            &mut index,
        );
    }
    index
}

/// The leading components of `glob` without a wildcard, as a path.
fn literal_prefix(glob: &str) -> String {
    let wild = |c: &str| c.contains(['*', '?', '[', '{', '\\']);
    let parts: Vec<&str> = glob.split('/').take_while(|c| !wild(c)).collect();
    let prefix = parts.join("/");
    if prefix.is_empty() && glob.starts_with('/') {
        "/".to_string()
    } else {
        prefix
    }
}

fn walk(dir: &Path, matcher: &GlobMatcher, depth: usize, budget: &mut usize, index: &mut Index) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, matcher, depth + 1, budget, index);
            }
        } else if matcher.is_match(&path) {
            add(index, &path);
        }
    }
}

fn add(index: &mut Index, path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_file()
    {
        index
            .entry((kernel_dev(meta.dev()), meta.ino()))
            .or_insert_with(|| path.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("/etc/shadow"), "/etc/shadow");
        assert_eq!(literal_prefix("/home/u/.ssh/id_*"), "/home/u/.ssh");
        assert_eq!(
            literal_prefix("/home/u/.config/chromium/**/Cookies"),
            "/home/u/.config/chromium"
        );
        assert_eq!(literal_prefix("**/.env"), "");
        assert_eq!(literal_prefix("/*/x"), "/");
    }

    #[test]
    fn kernel_dev_encoding() {
        // makedev(8, 1) = 0x801; makedev(259, 0x12345) = major 0x103, minor 0x12345.
        assert_eq!(kernel_dev(0x801), 8 << 20 | 1);
        let st_dev = (0x103u64 & 0xfff) << 8 | (0x12345u64 & 0xff) | (0x12345u64 & !0xff) << 12;
        assert_eq!(kernel_dev(st_dev), 0x103 << 20 | 0x12345);
    }

    #[test]
    fn finds_a_hard_link_of_a_listed_secret() {
        let dir = std::env::temp_dir().join(format!("secret-inodes-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let secret = dir.join("keys/id_test");
        std::fs::write(&secret, "k").unwrap();
        let link = dir.join("innocent.txt");
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&secret, &link).unwrap();
        let meta = std::fs::metadata(&link).unwrap();
        let globs = vec![format!("{}/keys/id_*", dir.display())];
        let mut inodes = SecretInodes::default();
        assert_eq!(
            inodes.find(globs.clone(), kernel_dev(meta.dev()), meta.ino()),
            Some(secret.display().to_string())
        );
        assert_eq!(inodes.find(globs, kernel_dev(meta.dev()), meta.ino() + 1), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
