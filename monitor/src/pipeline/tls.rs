//! The pipeline's side of the TLS uprobes: which watched processes get them and when,
//! what came of attaching them, and the `tls_probed` / `tls_unreadable` reports.
use std::path::Path;

use log::{info, warn};
use serde_json::json;

use super::Pipeline;
use crate::{
    host::tls_probes::{self, Probed},
    output::render,
};

impl Pipeline {
    /// Whether `pid`'s TLS is probed before it is seen: in the tree of a server named by
    /// the policy or `--watch` (an HTTPS server can only be found so). Servers found by
    /// what they speak are probed at their first TLS socket: attaching a uprobe stalls
    /// forks host-wide for a moment (the kernel's `dup_mmap_sem`), which every stdio
    /// server found on a busy host should not cost.
    pub(super) fn tls_eager(&self, pid: u32) -> bool {
        self.server_root(pid)
            .and_then(|root| self.servers.get(&root))
            .is_some_and(|s| s.named)
    }

    /// What the kernel answered to the uprobe attaches asked for (looked at before every
    /// record and at the daemon's ticks, so answers come while the host is idle too).
    pub fn tls_outcomes(&mut self) {
        for done in self.kernel.tls_attached() {
            let pid = done.pid;
            let probed = self.tls_probes.attached(done);
            let failed = matches!(probed, Probed::Failed(_));
            self.tls_probed(pid, probed);
            if failed && self.tls.has_tls(pid) {
                // Its TLS went by while the attach was under way.
                self.tls_unreadable(pid);
            }
        }
    }

    /// What attaching the OpenSSL uprobes to a watched process gave: a `tls_probed`
    /// status event when they were attached (tells an operator its HTTPS is read).
    pub(super) fn tls_probed(&mut self, pid: u32, probed: Probed) {
        match probed {
            Probed::Attached(ssl) => {
                self.metrics.tls_probed.inc();
                info!(
                    "pid {pid}: TLS plaintext read through the OpenSSL in {}",
                    ssl.mapped
                );
                let functions: Vec<&str> = ssl.functions.iter().map(|f| f.name).collect();
                let now = self.events.now();
                let exe = self.procs.get(pid).map(|p| p.exe.clone());
                self.events.emit(
                    "monitor_status",
                    now,
                    json!({
                        "status": "tls_probed",
                        "pid": pid,
                        "exe": exe,
                        "library": ssl.mapped,
                        "in_executable": ssl.in_executable,
                        "functions": functions,
                    }),
                );
            }
            Probed::Failed(e) => warn!("pid {pid}: its TLS plaintext cannot be read: {e}"),
            Probed::Unchanged => {}
        }
    }

    /// A socket of watched process `pid` turned out to carry TLS: when its plaintext
    /// cannot be read, one `tls_unreadable` status event says so (never silent).
    pub(super) fn tls_socket(&mut self, pid: u32) {
        if !self.tls_probes.is_probed(pid) {
            // Watched after it loaded its OpenSSL, or it mapped one without an open
            // the daemon saw: looked for once more.
            self.tls_probes.probe(&mut *self.kernel, Path::new("/proc"), pid);
        }
        self.tls_unreadable(pid);
    }

    /// One `tls_unreadable` status event for `pid`, when its TLS cannot be read and it
    /// was not reported yet.
    pub(super) fn tls_unreadable(&mut self, pid: u32) {
        if let Some(reason) = self.tls_probes.unreadable(pid) {
            self.report_unreadable(pid, reason);
        }
    }

    /// The `tls_unreadable` status event and metric.
    pub(super) fn report_unreadable(&mut self, pid: u32, reason: &'static str) {
        self.metrics.tls_unreadable.with_label_values(&[reason]).inc();
        let p = self.procs.get(pid);
        let (exe, cmdline) = (
            p.map(|p| p.exe.clone()),
            p.map(|p| render::cmdline(&p.cmdline_string())),
        );
        warn!(
            "pid {pid} ({}) does TLS the monitor cannot read: {reason}",
            exe.as_deref().unwrap_or("?")
        );
        let detail = match reason {
            tls_probes::NO_OPENSSL => {
                "TLS on a socket, but the process maps no libssl and its executable exports no OpenSSL SSL_read/SSL_write (Go crypto/tls, rustls, a static or stripped TLS library): its traffic is ciphertext to the monitor"
            }
            tls_probes::DISABLED => "TLS on a socket, and --no-tls: its traffic is ciphertext to the monitor",
            tls_probes::NO_PLAINTEXT => {
                "its OpenSSL is probed, but its TLS connections closed and none of their plaintext came through it (TLS done by another library: rustls, Go crypto/tls): its traffic is ciphertext to the monitor"
            }
            _ => {
                "the uprobes on its OpenSSL could not be attached (see the daemon log): its traffic is ciphertext to the monitor"
            }
        };
        let now = self.events.now();
        self.events.emit(
            "monitor_status",
            now,
            json!({
                "status": "tls_unreadable",
                "pid": pid,
                "exe": exe,
                "cmdline": cmdline,
                "server_pid": self.server_root(pid),
                "reason": reason,
                "detail": detail,
            }),
        );
    }
}
