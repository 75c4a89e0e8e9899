//! Helpers shared by the test files: a temporary folder, and (from the library, where
//! the benches reach them too) the HTTP GET and exposition parser for the daemon's
//! Prometheus endpoint.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

pub use integration_tests::metrics::{Sample, http_get, parse_exposition, urlencode};

/// A folder under the temporary directory, removed when dropped (a failing test too).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
