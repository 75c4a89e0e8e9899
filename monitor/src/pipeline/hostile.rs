//! Watched processes that try to blind or fool the monitor:
//! - syscalls through a 32-bit entry (`int 0x80`, a 32-bit program): the kernel does not
//!   decode them (their numbers and registers are not the native ones), so what goes
//!   through them is a blind spot; the process is flagged once (`monitor_status`
//!   `compat_syscall`), and `mcp_monitor_compat_syscalls_total` counts them;
//! - an io_uring set up by a watched process: the reads, writes and opens it submits
//!   through the ring go by no syscall the kernel side sees; the process is flagged
//!   once (`monitor_status` `io_uring`), and `mcp_monitor_io_uring_total` counts them;
//! - writes by a server's tree into the server's own stdin (a pipe it can reopen through
//!   /proc/self/fd/0): bytes it will read back as if its client had sent them. Such a
//!   write is a `stdin_forged` violation, and its bytes are cut out of what the server
//!   reads next from that pipe, so the session never takes them for the client's.
use std::collections::{HashMap, HashSet, VecDeque};

use log::warn;
use serde_json::json;

use super::{Pipeline, agent_label};
use crate::{
    host::fds::FdKind,
    kernel::records::{Data, Direction},
    output::render,
    policy::refs::refs_of,
};

/// Bytes of forged writes kept per server to find in its stdin reads; beyond, they
/// are counted and reported but not cut out.
const MAX_PENDING_BYTES: usize = 1 << 20;
/// `violation` events per server for forged writes; later ones are counted only.
const MAX_FORGED_EVENTS: u32 = 16;
/// Stdin bytes a server reads after a forged write, past its own length, before the
/// write is taken as read back where it could not be told apart (split over reads, or
/// interleaved with the client's bytes): a pipe holds 64 KiB by default.
const READ_BACK_WINDOW: u64 = 64 * 1024;

#[derive(Default)]
pub(super) struct Hostile {
    /// Processes already flagged for compat syscalls.
    compat_flagged: HashSet<u32>,
    /// The kernel's compat-syscall count at the last report.
    compat_counted: u64,
    /// Processes already flagged for an io_uring.
    io_uring_flagged: HashSet<u32>,
    /// Forged writes per server (by its pid).
    forged: HashMap<u32, Forged>,
}

#[derive(Default)]
struct Forged {
    /// Forged writes not yet found in the server's stdin reads, with the stdin bytes
    /// read since each.
    pending: VecDeque<(Vec<u8>, u64)>,
    pending_bytes: usize,
    events: u32,
}

impl Hostile {
    pub(super) fn forget(&mut self, pid: u32) {
        self.compat_flagged.remove(&pid);
        self.io_uring_flagged.remove(&pid);
        self.forged.remove(&pid);
    }
}

impl Pipeline {
    /// A watched process's first syscall through a 32-bit entry since its exec.
    pub(super) fn compat_syscall(&mut self, pid: u32, nr: u32, ts_ns: u64) {
        let Some(p) = self.procs.get(pid).filter(|p| p.watched) else {
            // Pending at its exec and no server: nothing it does is followed.
            return;
        };
        if !self.hostile.compat_flagged.insert(pid) {
            return;
        }
        let (exe, cmdline) = (p.exe.clone(), p.cmdline_string());
        let root = self.server_root(pid);
        let server = root.and_then(|r| self.servers.get(&r)).map(render::server_json);
        warn!("pid {pid} ({exe}) made a 32-bit (compat) syscall, number {nr}: not decoded, a blind spot");
        let ts = self.events.kernel_time(ts_ns);
        self.events.emit(
            "monitor_status",
            ts,
            json!({
                "status": "compat_syscall",
                "pid": pid,
                "exe": exe,
                "cmdline": cmdline,
                "server_pid": root,
                "server": server,
                "syscall_nr": nr,
                "detail": "a watched process made a syscall through a 32-bit entry (int 0x80, sysenter, or a 32-bit program); the monitor does not decode 32-bit syscalls, so whatever this process reads, writes, opens or connects through them is not seen: a blind spot, and a server that does this on purpose is hiding its I/O",
            }),
        );
    }

    /// A watched process set up or used an io_uring (the first time since its exec).
    pub(super) fn io_uring(&mut self, pid: u32, ts_ns: u64) {
        let Some(p) = self.procs.get(pid).filter(|p| p.watched) else {
            return;
        };
        if !self.hostile.io_uring_flagged.insert(pid) {
            return;
        }
        let (exe, cmdline) = (p.exe.clone(), p.cmdline_string());
        let root = self.server_root(pid);
        let server = root.and_then(|r| self.servers.get(&r)).map(render::server_json);
        warn!("pid {pid} ({exe}) set up or used an io_uring: what it submits through it is not seen");
        self.metrics.io_uring.inc();
        let ts = self.events.kernel_time(ts_ns);
        self.events.emit(
            "monitor_status",
            ts,
            json!({
                "status": "io_uring",
                "pid": pid,
                "exe": exe,
                "cmdline": cmdline,
                "server_pid": root,
                "server": server,
                "detail": "a watched process set up or used an io_uring (io_uring_setup, io_uring_enter or io_uring_register); the reads, writes, sends, receives, opens and connects it submits through the ring are done by the kernel without a syscall of its own, and the monitor does not see them: a blind spot, and a server that does this on purpose is hiding its I/O",
            }),
        );
    }

    /// Exports the kernel's compat-syscall count (at each loss report).
    pub(super) fn count_compat(&mut self) {
        let now = self.loss.kernel.compat_syscalls;
        if now > self.hostile.compat_counted {
            self.metrics
                .compat_syscalls
                .inc_by(now - self.hostile.compat_counted);
        }
        self.hostile.compat_counted = now;
    }

    /// Bytes on the pipe that is a server's stdin, from its own tree: a write there is
    /// forged client input (flagged, and remembered); a read there loses the forged
    /// bytes it holds before the session sees it. `kind` is what the fd was at the
    /// syscall (from the kernel: a reopened /proc/self/fd/0 is that pipe too).
    pub(super) fn own_stdin(&mut self, d: &mut Data<'_>, kind: &FdKind) {
        let FdKind::Pipe { inode } = *kind else {
            return;
        };
        if d.tls_conn.is_some() || d.bytes.is_empty() {
            return;
        }
        let Some(root) = self.server_root(d.header.pid) else {
            return;
        };
        let Some(server) = self.servers.get(&root) else {
            return;
        };
        if server.stdio.stdio.stdin != Some(inode) {
            return;
        }
        match d.direction {
            Direction::Write => self.forged_write(root, d),
            Direction::Read => self.forged_read_back(root, d),
        }
    }

    fn forged_write(&mut self, root: u32, d: &Data<'_>) {
        let Some(server) = self.servers.get(&root) else {
            return;
        };
        let forged = self.hostile.forged.entry(root).or_default();
        let kept = forged.pending_bytes + d.bytes.len() <= MAX_PENDING_BYTES;
        if kept {
            forged.pending.push_back((d.bytes.to_vec(), 0));
            forged.pending_bytes += d.bytes.len();
        }
        forged.events += 1;
        let report = forged.events <= MAX_FORGED_EVENTS;
        let starter = server.stdio_session();
        let client = starter.and_then(|s| s.client.as_deref());
        let agent = agent_label(&self.metrics, server.label(), None, client);
        self.metrics
            .violations
            .with_label_values(&[server.label(), &agent, "stdin_forged"])
            .inc();
        if !report {
            return;
        }
        let pid = d.header.pid;
        let exe = self.procs.get(pid).map(|p| p.exe.clone());
        warn!(
            "server {root}: pid {pid} wrote {} bytes into the server's own stdin",
            d.bytes.len()
        );
        let preview =
            String::from_utf8_lossy(&d.bytes[..d.bytes.len().min(self.max_field_bytes)]).into_owned();
        let detail = format!(
            "pid {pid} of the server's tree wrote {} bytes into the pipe that is the server's stdin (fd {}): client input it forged. Those bytes are cut out of what the server reads back{}; bytes it interleaves with the client's in the pipe cannot be told apart from them",
            d.bytes.len(),
            d.fd,
            if kept {
                ""
            } else {
                " (too many forged bytes remembered: these are not)"
            }
        );
        let fields = json!({
            "server": render::server_json(server),
            "agent": starter.and_then(|s| s.peer.as_ref()).map(|c| {
                let mut agent = json!({"pid": c.pid, "uid": c.uid, "exe": c.exe});
                if let Some(w) = &c.workload {
                    agent["workload"] = json!(w);
                }
                agent
            }),
            "kind": "stdin_forged",
            "detail": detail,
            "rule": null,
            "refs": refs_of("stdin_forged"),
            "writer": {"pid": pid, "exe": exe, "fd": d.fd},
            "bytes": d.bytes.len(),
            "data": preview,
        });
        let ts = self.events.kernel_time(d.header.ts_ns);
        self.events.emit("violation", ts, fields);
    }

    /// Cuts out of a stdin read the forged writes it holds whole; a forged write not
    /// found within `READ_BACK_WINDOW` bytes of reads is given up on, reported.
    fn forged_read_back(&mut self, root: u32, d: &mut Data<'_>) {
        let Some(forged) = self.hostile.forged.get_mut(&root) else {
            return;
        };
        let read = d.bytes.len() as u64;
        let mut cut = 0;
        forged.pending.retain_mut(|(bytes, since)| {
            if let Some(at) = find(&d.bytes, bytes) {
                // Copied out of the ring only when forged bytes are cut.
                d.bytes.to_mut().drain(at..at + bytes.len());
                cut += bytes.len();
                return false;
            }
            *since += read;
            *since <= bytes.len() as u64 + READ_BACK_WINDOW
        });
        let given_up =
            forged.pending_bytes - cut - forged.pending.iter().map(|(b, _)| b.len()).sum::<usize>();
        forged.pending_bytes -= cut + given_up;
        if given_up > 0 {
            warn!("server {root}: {given_up} forged stdin bytes were not found whole in its reads");
            let server = self.servers.get(&root).map(render::server_json);
            let ts = self.events.kernel_time(d.header.ts_ns);
            self.events.emit(
                "monitor_status",
                ts,
                json!({
                    "status": "stdin_forged_unmatched",
                    "server_pid": root,
                    "server": server,
                    "bytes": given_up,
                    "detail": "bytes the server wrote into its own stdin were not found whole in what it read back (split over reads or interleaved with the client's): the client messages it read meanwhile may hold them",
                }),
            );
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
