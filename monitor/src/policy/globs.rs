//! Globs of a policy: names (tools, addresses) and paths, where `~` is a home folder
//! and `DIR/**` covers `DIR` itself.
use std::{cell::RefCell, collections::HashMap, rc::Rc};

use globset::{Candidate, Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::passwd::home_of;

/// Tool names or addresses: globs over plain strings (`*` matches anything).
#[derive(Debug)]
pub struct NameList {
    pub items: Vec<String>,
    set: GlobSet,
}

impl NameList {
    pub(super) fn new(items: Vec<String>) -> Result<Self, globset::Error> {
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

    /// Both homes, for detection (the owner's first).
    fn detection(&self) -> impl Iterator<Item = Option<&str>> {
        std::iter::once(self.owner.as_deref()).chain(self.started_with.as_deref().map(Some))
    }
}

/// Path globs where `~` is a home folder, compiled once per home. `DIR/**` also
/// matches `DIR` itself: a scope over a folder's contents includes opening the folder.
#[derive(Debug, Default)]
pub struct PathGlobs {
    pub items: Vec<String>,
    /// Per home (`NO_HOME`: no home, `~` globs left out).
    compiled: RefCell<HashMap<String, CompiledGlobs>>,
    /// Per pair of homes, for detection: both homes' globs in one set, matched once.
    detection: RefCell<HashMap<Homes, CompiledGlobs>>,
}

/// The key of the set compiled without a home (no home holds a NUL: environment
/// strings end at one).
const NO_HOME: &str = "\0";

/// A compiled set, and for each of its globs where it came from. Shared, not copied,
/// by each lookup: a copy of a `GlobSet` also starts its regex caches cold.
type CompiledGlobs = Rc<(GlobSet, Vec<Origin>)>;

/// Where a compiled glob came from: its item, and whether it is a `~` glob expanded
/// to the second home of a detection set (ordered after every glob of the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Origin {
    second_home: bool,
    item: usize,
}

/// Homes compiled for at once: a server's `HOME` comes from whoever started it, so the
/// cache is emptied past this rather than grown (recompiling is the cost).
const MAX_COMPILED_HOMES: usize = 64;

/// Keeps `set` under `key`, in a cache emptied when it holds `MAX_COMPILED_HOMES` sets.
fn keep<K: Eq + std::hash::Hash>(cache: &RefCell<HashMap<K, CompiledGlobs>>, key: K, set: &CompiledGlobs) {
    let mut cache = cache.borrow_mut();
    if cache.len() >= MAX_COMPILED_HOMES {
        cache.clear();
    }
    cache.insert(key, set.clone());
}

impl PathGlobs {
    pub(super) fn new(items: Vec<String>) -> Result<Self, globset::Error> {
        let me = Self {
            items,
            compiled: RefCell::default(),
            detection: RefCell::default(),
        };
        me.set_for(Some("/home/check"))?;
        Ok(me)
    }

    fn set_for(&self, home: Option<&str>) -> Result<CompiledGlobs, globset::Error> {
        // Looked up by `&str`, with no key built: this runs for every path checked.
        let key = home.unwrap_or(NO_HOME);
        if let Some(s) = self.compiled.borrow().get(key) {
            return Ok(s.clone());
        }
        let mut b = GlobSetBuilder::new();
        let mut origin = Vec::new();
        self.add_globs(&mut b, &mut origin, home, false)?;
        let set = Rc::new((b.build()?, origin));
        keep(&self.compiled, key.to_string(), &set);
        Ok(set)
    }

    /// The set of a detection with two homes: every glob with `~` as the owner's home
    /// (or left out without one), then the `~` globs again with `~` as the second.
    /// The globs without `~` are in it once: in separate sets they would match for
    /// the owner's first anyway.
    fn detection_set(&self, homes: &Homes, second: &str) -> Result<CompiledGlobs, globset::Error> {
        if let Some(s) = self.detection.borrow().get(homes) {
            return Ok(s.clone());
        }
        let mut b = GlobSetBuilder::new();
        let mut origin = Vec::new();
        self.add_globs(&mut b, &mut origin, homes.owner.as_deref(), false)?;
        self.add_globs(&mut b, &mut origin, Some(second), true)?;
        let set = Rc::new((b.build()?, origin));
        keep(&self.detection, homes.clone(), &set);
        Ok(set)
    }

    /// Adds the globs with `~` as `home` (left out without one); `second_home`: only
    /// the `~` globs, as the second home of a detection set.
    fn add_globs(
        &self,
        b: &mut GlobSetBuilder,
        origin: &mut Vec<Origin>,
        home: Option<&str>,
        second_home: bool,
    ) -> Result<(), globset::Error> {
        for (item, glob) in self.items.iter().enumerate() {
            let expanded = match (is_home_glob(glob), home) {
                (false, _) if second_home => continue,
                (false, _) => glob.clone(),
                (true, Some(h)) => expand_home(glob, h),
                (true, None) => continue,
            };
            let from = Origin { second_home, item };
            if let Some(dir) = expanded.strip_suffix("/**")
                && !dir.is_empty()
            {
                b.add(path_glob(dir)?);
                origin.push(from);
            }
            b.add(path_glob(&expanded)?);
            origin.push(from);
        }
        Ok(())
    }

    /// The first glob of `compiled` matching `path`: the first home's before the
    /// second's, then in the order of the items.
    fn first_match(&self, compiled: &CompiledGlobs, path: &Candidate) -> Option<&str> {
        let (set, origin) = &**compiled;
        // Most paths match nothing: the yes/no test stops early and allocates nothing.
        if !set.is_match_candidate(path) {
            return None;
        }
        let first = set.matches_candidate(path).into_iter().map(|g| origin[g]).min()?;
        Some(self.items[first.item].as_str())
    }

    /// The first glob matching `path`, `~` standing for `home`.
    fn matching_home(&self, path: &Candidate, home: Option<&str>) -> Option<&str> {
        self.first_match(&self.set_for(home).ok()?, path)
    }

    /// For an allow-list: the first glob matching `path`, `~` being the owner's home.
    pub fn allowing(&self, path: &str, homes: &Homes) -> Option<&str> {
        self.matching_home(&Candidate::new(path), homes.owner.as_deref())
    }

    /// For a detection list: the first glob matching `path` with `~` as either home
    /// (the owner's first). Two homes are one set, matched once.
    pub fn detecting(&self, path: &str, homes: &Homes) -> Option<&str> {
        let path = Candidate::new(path);
        match homes.started_with.as_deref() {
            None => self.matching_home(&path, homes.owner.as_deref()),
            Some(second) => self.first_match(&self.detection_set(homes, second).ok()?, &path),
        }
    }

    /// The globs as detection reads them: `~` expanded to either home (left out
    /// without one).
    pub fn expanded(&self, homes: &Homes) -> Vec<String> {
        let mut out = Vec::new();
        for item in &self.items {
            if !is_home_glob(item) {
                out.push(item.clone());
                continue;
            }
            out.extend(homes.detection().flatten().map(|h| expand_home(item, h)));
        }
        out.dedup();
        out
    }
}

fn is_home_glob(glob: &str) -> bool {
    glob == "~" || glob.starts_with("~/")
}

/// `*` stays within one path component, `**` crosses them.
pub(super) fn path_glob(s: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(s).literal_separator(true).build()
}

pub(super) fn expand_home(glob: &str, home: &str) -> String {
    match glob.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", home.trim_end_matches('/'))
        }
        _ => glob.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_expansion_only_for_a_leading_tilde() {
        assert_eq!(expand_home("~/.ssh/**", "/home/u/"), "/home/u/.ssh/**");
        assert_eq!(expand_home("~", "/root"), "/root");
        assert_eq!(expand_home("~bob/x", "/root"), "~bob/x");
    }

    /// One set for both homes finds what matching each home's set in turn finds.
    #[test]
    fn detection_over_two_homes_in_one_set_is_each_home_in_turn() {
        let globs = PathGlobs::new(vec![
            "/tmp/h/.aws/**".into(),
            "~/.ssh/**".into(),
            "**/*.pem".into(),
            "~/.aws/**".into(),
            "~".into(),
            "/home/u/.netrc".into(),
        ])
        .unwrap();
        let in_turn = |path: &str, homes: &Homes| {
            let path = Candidate::new(path);
            homes
                .detection()
                .find_map(|h| globs.matching_home(&path, h))
                .map(str::to_string)
        };
        let homes = [
            (Some("/home/u"), Some("/tmp/h")),
            (None, Some("/tmp/h")),
            (Some("/home/u"), Some("/home/u")),
            (Some("/home/u"), None),
            (None, None),
        ];
        let paths = [
            "/home/u/.ssh/id_rsa",
            "/tmp/h/.ssh/id_rsa",
            "/tmp/h/.aws/credentials",
            "/home/u/.aws",
            "/tmp/h/.aws",
            "/tmp/h",
            "/home/u",
            "/tmp/h/key.pem",
            "/home/u/.netrc",
            "/etc/passwd",
        ];
        for (owner, started_with) in homes {
            let homes = Homes {
                owner: owner.map(String::from),
                started_with: started_with.map(String::from),
            };
            for path in paths {
                assert_eq!(
                    globs.detecting(path, &homes).map(str::to_string),
                    in_turn(path, &homes),
                    "{path} with {homes:?}"
                );
            }
        }
        // The owner's home decides before the second's, whatever the items' order:
        // `~/.ssh/**` (item 1) matches for the second home, `~/.aws/**` (item 3) for
        // the owner's.
        let homes = Homes {
            owner: Some("/x/.ssh".into()),
            started_with: Some("/x".into()),
        };
        assert_eq!(globs.detecting("/x/.ssh/.aws/k", &homes), Some("~/.aws/**"));
        assert_eq!(in_turn("/x/.ssh/.aws/k", &homes).as_deref(), Some("~/.aws/**"));
        let homes = Homes {
            owner: Some("/home/u".into()),
            started_with: Some("/tmp/h".into()),
        };
        assert_eq!(globs.detecting("/home/u/.aws", &homes), Some("~/.aws/**"));
        assert_eq!(globs.detecting("/tmp/h/.ssh/k", &homes), Some("~/.ssh/**"));
    }

    #[test]
    fn homes_compiled_for_are_bounded_and_still_match() {
        let globs = PathGlobs::new(vec!["~/.ssh/**".into(), "/etc/shadow".into()]).unwrap();
        for i in 0..MAX_COMPILED_HOMES * 3 {
            let home = format!("/home/u{i}");
            assert_eq!(
                globs.matching_home(&Candidate::new(&format!("{home}/.ssh/id_rsa")), Some(&home)),
                Some("~/.ssh/**")
            );
            assert!(globs.compiled.borrow().len() <= MAX_COMPILED_HOMES);
        }
        assert_eq!(
            globs.matching_home(&Candidate::new("/etc/shadow"), None),
            Some("/etc/shadow")
        );
    }
}
