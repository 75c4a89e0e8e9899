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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Per home (`NO_HOME`: no home, `~` globs left out).
    compiled: RefCell<HashMap<String, CompiledGlobs>>,
}

/// The key of the set compiled without a home (no home holds a NUL: environment
/// strings end at one).
const NO_HOME: &str = "\0";

/// A compiled set, and for each of its globs the item it came from. Shared, not
/// copied, by each lookup: a copy of a `GlobSet` also starts its regex caches cold.
type CompiledGlobs = Rc<(GlobSet, Vec<usize>)>;

/// Homes compiled for at once: a server's `HOME` comes from whoever started it, so the
/// cache is emptied past this rather than grown (recompiling is the cost).
const MAX_COMPILED_HOMES: usize = 64;

impl PathGlobs {
    pub(super) fn new(items: Vec<String>) -> Result<Self, globset::Error> {
        let me = Self {
            items,
            compiled: RefCell::default(),
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
        let set = Rc::new((b.build()?, origin));
        let mut compiled = self.compiled.borrow_mut();
        if compiled.len() >= MAX_COMPILED_HOMES {
            compiled.clear();
        }
        compiled.insert(key.to_string(), set.clone());
        Ok(set)
    }

    /// The first glob matching `path`, `~` standing for `home`.
    fn matching_home(&self, path: &Candidate, home: Option<&str>) -> Option<&str> {
        let compiled = self.set_for(home).ok()?;
        let (set, origin) = &*compiled;
        // Most paths match nothing: the yes/no test stops early and allocates nothing.
        if !set.is_match_candidate(path) {
            return None;
        }
        let first = set.matches_candidate(path).into_iter().map(|g| origin[g]).min()?;
        Some(self.items[first].as_str())
    }

    /// For an allow-list: the first glob matching `path`, `~` being the owner's home.
    pub fn allowing(&self, path: &str, homes: &Homes) -> Option<&str> {
        self.matching_home(&Candidate::new(path), homes.owner.as_deref())
    }

    /// For a detection list: the first glob matching `path` with `~` as either home.
    /// The path is prepared once (split into name and extension) for both homes' sets.
    pub fn detecting(&self, path: &str, homes: &Homes) -> Option<&str> {
        let path = Candidate::new(path);
        homes.detection().find_map(|h| self.matching_home(&path, h))
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
