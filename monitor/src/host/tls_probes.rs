//! Which watched processes have the OpenSSL uprobes, and which do TLS the monitor
//! cannot read. A process is probed when it becomes watched (its executable or a
//! `libssl` it maps already), when it opens a `libssl` later (Python imports `ssl`
//! after start), and when a probed process forks a watched child (a uprobe filtered
//! by process does not follow a fork). Probes go at exec and exit. The kernel attaches
//! in the background: a process counts as probed from the request on.
use std::{
    collections::{HashMap, HashSet},
    path::Path,
    rc::Rc,
};

use super::tls::{OpenSsl, SymbolCache, is_libssl};
use crate::{
    kernel::{Kernel, TlsAttached},
    record::facts::Facts,
};

/// Why a watched process's TLS cannot be read (the `reason` of events and metrics).
pub const NO_OPENSSL: &str = "no_openssl";
pub const ATTACH_FAILED: &str = "attach_failed";
/// `--no-tls`.
pub const DISABLED: &str = "disabled";
/// Probed, but its TLS connections come and go and no plaintext comes through the
/// OpenSSL probed (rustls or Go's TLS in a process that also maps libssl).
pub const NO_PLAINTEXT: &str = "no_plaintext";
pub const REASONS: &[&str] = &[NO_OPENSSL, ATTACH_FAILED, DISABLED, NO_PLAINTEXT];

/// Processes remembered as unreadable (reported once each); past this the set is
/// cleared (a process reported again is a line more, nothing lost).
const MAX_REPORTED: usize = 65536;

/// What an attach's outcome means for its process.
#[derive(Debug)]
pub enum Probed {
    /// Uprobes attached on this OpenSSL.
    Attached(OpenSsl),
    /// Nothing new: attached there already, or no longer wanted.
    Unchanged,
    /// The kernel refused the uprobes.
    Failed(String),
}

pub struct TlsProbes {
    /// False with `--no-tls`: nothing is probed.
    enabled: bool,
    symbols: SymbolCache,
    facts: Rc<Facts>,
    /// Attaches asked of the kernel, not done yet, by process.
    requested: HashMap<u32, Vec<OpenSsl>>,
    /// Processes with uprobes, and on which OpenSSL (the last attached).
    probed: HashMap<u32, OpenSsl>,
    /// Why a process was found unreadable (its attach failed), until reported.
    failed: HashMap<u32, &'static str>,
    reported: HashSet<u32>,
}

impl TlsProbes {
    pub fn new(enabled: bool, facts: Rc<Facts>) -> Self {
        Self {
            enabled,
            symbols: SymbolCache::default(),
            facts,
            requested: HashMap::new(),
            probed: HashMap::new(),
            failed: HashMap::new(),
            reported: HashSet::new(),
        }
    }

    /// Probes `pid` on the OpenSSL it maps or exports, if any (it just became watched).
    pub fn probe(&mut self, kernel: &mut dyn Kernel, proc_root: &Path, pid: u32) {
        if !self.enabled {
            return;
        }
        let symbols = &mut self.symbols;
        let found = self
            .facts
            .look(|| format!("openssl/{pid}"), || symbols.openssl_of(proc_root, pid));
        if let Some(ssl) = found {
            self.request(kernel, pid, ssl);
        }
    }

    /// `pid` opened `path` (as it sees it): probed there when it is a `libssl`.
    pub fn opened(&mut self, kernel: &mut dyn Kernel, proc_root: &Path, pid: u32, path: &str) {
        if !self.enabled || !is_libssl(path) || self.has(pid, path) {
            return;
        }
        let symbols = &mut self.symbols;
        let found = self.facts.look(
            || format!("openssl/{pid}/{path}"),
            || symbols.openssl_at(proc_root, pid, path),
        );
        if let Some(ssl) = found {
            self.request(kernel, pid, ssl);
        }
    }

    /// A watched `child` forked from `parent`: it runs the same OpenSSL.
    pub fn forked(&mut self, kernel: &mut dyn Kernel, parent: u32, child: u32) {
        let ssl = self
            .probed
            .get(&parent)
            .or_else(|| self.requested.get(&parent).and_then(|r| r.last()))
            .cloned();
        if let Some(ssl) = ssl {
            self.request(kernel, child, ssl);
        }
    }

    /// Attached or asked for on `mapped` already.
    fn has(&self, pid: u32, mapped: &str) -> bool {
        self.probed.get(&pid).is_some_and(|s| s.mapped == mapped)
            || self
                .requested
                .get(&pid)
                .is_some_and(|r| r.iter().any(|s| s.mapped == mapped))
    }

    fn request(&mut self, kernel: &mut dyn Kernel, pid: u32, ssl: OpenSsl) {
        if self.has(pid, &ssl.mapped) {
            return;
        }
        let functions: Vec<(u64, u64)> = ssl.functions.iter().map(|f| (f.file_offset, f.cookie)).collect();
        kernel.attach_tls(pid, &ssl.path, &functions);
        self.requested.entry(pid).or_default().push(ssl);
    }

    /// The kernel's answer to an attach asked for.
    pub fn attached(&mut self, done: TlsAttached) -> Probed {
        let Some(list) = self.requested.get_mut(&done.pid) else {
            // Forgotten meanwhile (exec, exit): the kernel detaches it next.
            return Probed::Unchanged;
        };
        let Some(i) = list.iter().position(|s| s.path == done.path) else {
            return Probed::Unchanged;
        };
        let ssl = list.remove(i);
        if list.is_empty() {
            self.requested.remove(&done.pid);
        }
        match done.result {
            Ok(true) => {
                self.failed.remove(&done.pid);
                self.probed.insert(done.pid, ssl.clone());
                Probed::Attached(ssl)
            }
            Ok(false) => Probed::Unchanged,
            Err(e) => {
                if !self.probed.contains_key(&done.pid) {
                    self.failed.insert(done.pid, ATTACH_FAILED);
                }
                Probed::Failed(e)
            }
        }
    }

    /// `pid` exec'd another image or exited: its probes go.
    pub fn forget(&mut self, kernel: &mut dyn Kernel, pid: u32) {
        let had = self.probed.remove(&pid).is_some() | self.requested.remove(&pid).is_some();
        if had {
            kernel.detach_tls(pid);
        }
        self.failed.remove(&pid);
    }

    /// Forgets `pid` as reported too (it exited: the pid may come back as another).
    pub fn exited(&mut self, kernel: &mut dyn Kernel, pid: u32) {
        self.forget(kernel, pid);
        self.reported.remove(&pid);
    }

    /// Probed, or about to be.
    pub fn is_probed(&self, pid: u32) -> bool {
        self.probed.contains_key(&pid) || self.requested.contains_key(&pid)
    }

    /// `pid` is probed but closed TLS sockets and gave no plaintext: `NO_PLAINTEXT`, the
    /// first time only.
    pub fn blind(&mut self, pid: u32) -> Option<&'static str> {
        if !self.probed.contains_key(&pid) || !self.report_once(pid) {
            return None;
        }
        Some(NO_PLAINTEXT)
    }

    /// True the first time `pid` is reported (the set is bounded).
    fn report_once(&mut self, pid: u32) -> bool {
        if self.reported.len() >= MAX_REPORTED {
            self.reported.clear();
        }
        self.reported.insert(pid)
    }

    /// A socket of `pid` carries TLS: the reason its plaintext cannot be read, the first
    /// time only (None when it is probed or about to be, or was reported already).
    pub fn unreadable(&mut self, pid: u32) -> Option<&'static str> {
        if self.reported.contains(&pid) || self.is_probed(pid) || !self.report_once(pid) {
            return None;
        }
        let reason = match self.enabled {
            true => self.failed.remove(&pid).unwrap_or(NO_OPENSSL),
            false => DISABLED,
        };
        Some(reason)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        path::PathBuf,
        process::{Child, Command, Stdio},
    };

    use super::*;
    use crate::kernel::KernelStats;

    /// Records what was asked; answers at `tls_attached`, refusing when told to.
    #[derive(Default)]
    struct Uprobes {
        attached: Vec<(u32, PathBuf, usize)>,
        outcomes: Vec<TlsAttached>,
        detached: Vec<u32>,
        refuse: bool,
    }

    impl Kernel for Uprobes {
        fn watch(&mut self, _: u32) -> anyhow::Result<()> {
            Ok(())
        }
        fn unwatch(&mut self, _: u32) {}
        fn stop_probing(&mut self, _: u32) {}
        fn probe(&mut self, _: u32, _: u64) {}
        fn stats(&self) -> anyhow::Result<KernelStats> {
            Ok(KernelStats::default())
        }
        fn attached(&self) -> &[(String, u32)] {
            &[]
        }
        fn attach_tls(&mut self, pid: u32, path: &Path, functions: &[(u64, u64)]) {
            let result = if self.refuse {
                Err("refused".to_string())
            } else if self.attached.iter().any(|(p, f, _)| *p == pid && f == path) {
                Ok(false)
            } else {
                self.attached.push((pid, path.to_path_buf(), functions.len()));
                Ok(true)
            };
            self.outcomes.push(TlsAttached {
                pid,
                path: path.to_path_buf(),
                result,
            });
        }
        fn detach_tls(&mut self, pid: u32) {
            self.detached.push(pid);
            self.attached.retain(|(p, _, _)| *p != pid);
        }
        fn tls_attached(&mut self) -> Vec<TlsAttached> {
            std::mem::take(&mut self.outcomes)
        }
        fn connector(&self, _: std::net::SocketAddr) -> Option<u32> {
            None
        }
        fn watched_set(&self) -> Vec<(u32, u32)> {
            Vec::new()
        }
        fn stream_end(&self, _: u32, _: i32, _: bool) -> Option<u64> {
            None
        }
    }

    /// Feeds the kernel's answers back; what they gave.
    fn answers(k: &mut Uprobes, probes: &mut TlsProbes) -> Vec<Probed> {
        k.tls_attached().into_iter().map(|a| probes.attached(a)).collect()
    }

    /// A Python that imported `ssl` (it maps libssl.so.3), until dropped.
    struct Python(Child);

    impl Python {
        fn start() -> Self {
            let mut child = Command::new("python3")
                .args(["-c", "import ssl, sys; print('up', flush=True); sys.stdin.read()"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
                &mut line,
            )
            .unwrap();
            Self(child)
        }
    }

    impl Drop for Python {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_process_is_probed_once_and_its_fork_on_the_same_library() {
        let python = Python::start();
        let pid = python.0.id();
        let (mut k, mut probes) = (Uprobes::default(), TlsProbes::new(true, Facts::live()));
        probes.probe(&mut k, Path::new("/proc"), pid);
        assert!(probes.is_probed(pid), "probed from the request on");
        assert_eq!(probes.unreadable(pid), None, "about to be readable");
        let Some(Probed::Attached(ssl)) = answers(&mut k, &mut probes).pop() else {
            panic!("python maps libssl");
        };
        assert!(is_libssl(&ssl.mapped));
        assert_eq!(k.attached, [(pid, ssl.path.clone(), 4)]);
        // Its open of the same library, later: nothing asked.
        probes.opened(&mut k, Path::new("/proc"), pid, &ssl.mapped);
        // A file that is not libssl is not looked at.
        probes.opened(&mut k, Path::new("/proc"), pid, "/etc/hosts");
        assert!(k.outcomes.is_empty());
        probes.forked(&mut k, pid, 999_999);
        assert!(matches!(answers(&mut k, &mut probes)[..], [Probed::Attached(_)]));
        assert_eq!(k.attached.len(), 2);
        assert_eq!(probes.unreadable(pid), None, "probed: readable");
        probes.exited(&mut k, 999_999);
        probes.exited(&mut k, pid);
        assert_eq!(k.detached, [999_999, pid]);
        assert!(!probes.is_probed(pid));
    }

    #[test]
    fn an_answer_for_a_process_forgotten_meanwhile_changes_nothing() {
        let python = Python::start();
        let pid = python.0.id();
        let (mut k, mut probes) = (Uprobes::default(), TlsProbes::new(true, Facts::live()));
        probes.probe(&mut k, Path::new("/proc"), pid);
        probes.forget(&mut k, pid);
        assert_eq!(
            k.detached,
            [pid],
            "the kernel detaches what it attached meanwhile"
        );
        assert!(matches!(answers(&mut k, &mut probes)[..], [Probed::Unchanged]));
        assert!(!probes.is_probed(pid));
    }

    #[test]
    fn unreadable_is_said_once_per_process_with_its_reason() {
        let python = Python::start();
        let pid = python.0.id();
        let mut k = Uprobes {
            refuse: true,
            ..Uprobes::default()
        };
        let mut probes = TlsProbes::new(true, Facts::live());
        probes.probe(&mut k, Path::new("/proc"), pid);
        assert!(matches!(answers(&mut k, &mut probes)[..], [Probed::Failed(_)]));
        assert_eq!(probes.unreadable(pid), Some(ATTACH_FAILED));
        assert_eq!(probes.unreadable(pid), None, "once");
        // A process with no OpenSSL at all (this test binary maps none).
        let me = std::process::id();
        probes.probe(&mut k, Path::new("/proc"), me);
        assert!(k.outcomes.is_empty(), "nothing to attach");
        assert_eq!(probes.unreadable(me), Some(NO_OPENSSL));
        // --no-tls: nothing attached, and said so.
        let (mut k, mut off) = (Uprobes::default(), TlsProbes::new(false, Facts::live()));
        off.probe(&mut k, Path::new("/proc"), pid);
        assert!(k.outcomes.is_empty());
        assert_eq!(off.unreadable(pid), Some(DISABLED));
        // A pid that exited and came back is a new process.
        probes.exited(&mut k, me);
        assert_eq!(probes.unreadable(me), Some(NO_OPENSSL));
    }
}
