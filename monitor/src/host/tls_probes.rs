//! Which watched processes have the OpenSSL uprobes, and which do TLS the monitor
//! cannot read. A process is probed when it becomes watched (its executable or a
//! `libssl` it maps already), when it opens a `libssl` later (Python imports `ssl`
//! after start), and when a probed process forks a watched child (a uprobe filtered
//! by process does not follow a fork). Probes go at exec and exit.
use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use super::tls::{OpenSsl, SymbolCache, is_libssl};
use crate::kernel::Kernel;

/// Why a watched process's TLS cannot be read (the `reason` of events and metrics).
pub const NO_OPENSSL: &str = "no_openssl";
pub const ATTACH_FAILED: &str = "attach_failed";
/// `--no-tls`.
pub const DISABLED: &str = "disabled";
pub const REASONS: &[&str] = &[NO_OPENSSL, ATTACH_FAILED, DISABLED];

/// Processes remembered as unreadable (reported once each); past this the set is
/// cleared (a process reported again is a line more, nothing lost).
const MAX_REPORTED: usize = 65536;

/// What probing a process gave.
#[derive(Debug)]
pub enum Probed {
    /// Uprobes attached now on this OpenSSL.
    Attached(OpenSsl),
    /// Nothing new: already probed there, or no OpenSSL to probe.
    Unchanged,
    /// The kernel refused the uprobes.
    Failed(String),
}

pub struct TlsProbes {
    /// False with `--no-tls`: nothing is probed.
    enabled: bool,
    symbols: SymbolCache,
    probed: HashMap<u32, OpenSsl>,
    /// Why a process was found unreadable (its attach failed), until reported.
    failed: HashMap<u32, &'static str>,
    reported: HashSet<u32>,
}

impl TlsProbes {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            symbols: SymbolCache::default(),
            probed: HashMap::new(),
            failed: HashMap::new(),
            reported: HashSet::new(),
        }
    }

    /// Probes `pid` on the OpenSSL it maps or exports, if any (it just became watched).
    pub fn probe(&mut self, kernel: &mut dyn Kernel, proc_root: &Path, pid: u32) -> Probed {
        if !self.enabled {
            return Probed::Unchanged;
        }
        match self.symbols.openssl_of(proc_root, pid) {
            Some(ssl) => self.attach(kernel, pid, ssl),
            None => Probed::Unchanged,
        }
    }

    /// `pid` opened `path` (as it sees it): probed there when it is a `libssl`.
    pub fn opened(&mut self, kernel: &mut dyn Kernel, proc_root: &Path, pid: u32, path: &str) -> Probed {
        if !self.enabled || !is_libssl(path) || self.probed.get(&pid).is_some_and(|s| s.mapped == path) {
            return Probed::Unchanged;
        }
        match self.symbols.openssl_at(proc_root, pid, path) {
            Some(ssl) => self.attach(kernel, pid, ssl),
            None => Probed::Unchanged,
        }
    }

    /// A watched `child` forked from `parent`: it runs the same OpenSSL.
    pub fn forked(&mut self, kernel: &mut dyn Kernel, parent: u32, child: u32) -> Probed {
        match self.probed.get(&parent) {
            Some(ssl) => {
                let ssl = ssl.clone();
                self.attach(kernel, child, ssl)
            }
            None => Probed::Unchanged,
        }
    }

    fn attach(&mut self, kernel: &mut dyn Kernel, pid: u32, ssl: OpenSsl) -> Probed {
        let functions: Vec<(u64, u64)> = ssl.functions.iter().map(|f| (f.file_offset, f.cookie)).collect();
        match kernel.attach_tls(pid, &ssl.path, &functions) {
            Ok(true) => {
                self.failed.remove(&pid);
                self.probed.insert(pid, ssl.clone());
                Probed::Attached(ssl)
            }
            Ok(false) => Probed::Unchanged,
            Err(e) => {
                self.failed.insert(pid, ATTACH_FAILED);
                Probed::Failed(format!("{e:#}"))
            }
        }
    }

    /// `pid` exec'd another image or exited: its probes go.
    pub fn forget(&mut self, kernel: &mut dyn Kernel, pid: u32) {
        if self.probed.remove(&pid).is_some() {
            kernel.detach_tls(pid);
        }
        self.failed.remove(&pid);
    }

    /// Forgets `pid` as reported too (it exited: the pid may come back as another).
    pub fn exited(&mut self, kernel: &mut dyn Kernel, pid: u32) {
        self.forget(kernel, pid);
        self.reported.remove(&pid);
    }

    pub fn is_probed(&self, pid: u32) -> bool {
        self.probed.contains_key(&pid)
    }

    /// A socket of `pid` carries TLS and `pid` has no probes: the reason its plaintext
    /// cannot be read, the first time only.
    pub fn unreadable(&mut self, pid: u32) -> Option<&'static str> {
        if self.reported.contains(&pid) || self.probed.contains_key(&pid) {
            return None;
        }
        if self.reported.len() >= MAX_REPORTED {
            self.reported.clear();
        }
        self.reported.insert(pid);
        let reason = match self.enabled {
            true => self.failed.remove(&pid).unwrap_or(NO_OPENSSL),
            false => DISABLED,
        };
        Some(reason)
    }
}
