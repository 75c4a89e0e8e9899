//! Finding MCP servers by what they read, for processes nobody watches yet, at a cost
//! only to reads that could carry a request:
//! - a `read` of fd 0 of at least `MIN_PROBE_BYTES`: its first 8 bytes are looked at;
//! - a process that dups its fd 0 (Python's SDK reads its stdin through a dup) or
//!   accepts a connection becomes *probed* in `WATCHED` (`watch_state::PROBED`), with
//!   those fds marked (fds below 64): reads of a stdin dup are looked at like fd 0, and
//!   the first read of an accepted connection once.
//!
//! A look that opens a JSON object or array (a JSON-RPC request to a stdio server) or
//! starts with `POST ` on a connection makes the process *pending* (as at exec) and the
//! read is captured, so that userspace decides on the very bytes that made it a
//! candidate and, if it is MCP, loses nothing. Any other syscall of an unwatched
//! process costs two plain register loads and a few compares (tp_btf). A syscall that
//! would be acted on is first checked not to have come through a 32-bit entry (whose
//! number and registers mean something else): only then, so others pay nothing for it.
use aya_ebpf::{
    bindings::{BPF_NOEXIST, pt_regs},
    helpers::bpf_probe_read_user,
};
use monitor_common::{ProbeState, WatchState, watch_state};

use super::task;
use crate::maps::{PROBES, WATCHED, first_generation, mark_watched};

/// The shortest JSON-RPC request an MCP peer sends is about 40 bytes
/// (`{"jsonrpc":"2.0","id":1,"method":"ping"}`); an HTTP request head is longer.
pub const MIN_PROBE_BYTES: i64 = 32;
/// Candidates per process (per exec), each a round trip to userspace: a process that
/// reads JSON on its stdin without being a server stops costing one after this many
/// (userspace ends it sooner, setting `PROBES` to this).
pub const MAX_TRIES: u32 = monitor_common::MAX_PROBE_TRIES;
/// What is copied of a candidate read: enough for the request that opens a session;
/// the rest of a longer read is a gap that the framing resynchronises after.
pub const MAX_CANDIDATE_BYTES: u64 = 4 * monitor_common::MAX_CHUNK as u64;

const SYS_READ: u64 = 0;
const SYS_CLOSE: u64 = 3;
const SYS_DUP: u64 = 32;
const SYS_DUP2: u64 = 33;
const SYS_ACCEPT: u64 = 43;
const SYS_RECVFROM: u64 = 45;
const SYS_FCNTL: u64 = 72;
const SYS_ACCEPT4: u64 = 288;
const SYS_DUP3: u64 = 292;
const F_DUPFD: u64 = 0;
const F_DUPFD_CLOEXEC: u64 = 1030;

/// A read to capture: (fd, buffer, syscall).
pub type Candidate = (u64, u64, u64);

/// Whether syscall `nr` of an unwatched process may be looked at (`unwatched`): the
/// cheap test in front of it.
#[inline(always)]
pub fn may_matter(nr: u64) -> bool {
    matches!(
        nr,
        SYS_READ | SYS_DUP | SYS_DUP2 | SYS_DUP3 | SYS_FCNTL | SYS_ACCEPT | SYS_ACCEPT4
    )
}

/// A syscall of a process that is not in `WATCHED`.
#[inline(always)]
pub fn unwatched(regs: *const pt_regs, pid: u32, ret: i64) -> Option<Candidate> {
    // Safety: a BTF pointer to the task's saved registers (tp_btf): plain loads.
    let (nr, fd) = unsafe { ((*regs).orig_rax, (*regs).rdi) };
    match nr {
        SYS_READ if fd == 0 && ret >= MIN_PROBE_BYTES && !task::compat() => {
            // Safety: as above.
            let buf = unsafe { (*regs).rsi };
            candidate(pid, None, fd, buf, nr, false)
        }
        SYS_DUP | SYS_DUP2 | SYS_DUP3 if fd == 0 && ret > 0 && !task::compat() => {
            start(pid, bit(ret as u64), 0);
            None
        }
        // Safety: as above.
        SYS_FCNTL if fd == 0 && ret > 0 && is_dupfd(unsafe { (*regs).rsi }) && !task::compat() => {
            start(pid, bit(ret as u64), 0);
            None
        }
        SYS_ACCEPT | SYS_ACCEPT4 if ret >= 0 && !task::compat() => {
            start(pid, 0, bit(ret as u64));
            None
        }
        _ => None,
    }
}

/// A syscall of a probed process (it dup'd its stdin or accepted a connection).
#[inline(always)]
pub fn probed(state: &mut WatchState, regs: *const pt_regs, pid: u32, ret: i64) -> Option<Candidate> {
    // Safety: a BTF pointer to the task's saved registers (tp_btf): plain loads.
    let (nr, fd) = unsafe { ((*regs).orig_rax, (*regs).rdi) };
    let b = bit(fd);
    match nr {
        SYS_READ | SYS_RECVFROM if ret > 0 => {
            let stdin = nr == SYS_READ && (fd == 0 || state.stdin_fds & b != 0);
            let first_on_conn = state.new_conns & b != 0;
            // A connection's first read is its only look, long enough or not.
            state.new_conns &= !b;
            if ret < MIN_PROBE_BYTES || !(stdin || first_on_conn) || task::compat() {
                return None;
            }
            // Safety: as above.
            let buf = unsafe { (*regs).rsi };
            candidate(pid, Some(state), fd, buf, nr, first_on_conn)
        }
        SYS_DUP | SYS_DUP2 | SYS_DUP3
            if ret > 0 && (fd == 0 || state.stdin_fds & b != 0) && !task::compat() =>
        {
            state.stdin_fds |= bit(ret as u64);
            None
        }
        // Safety: as above.
        SYS_FCNTL
            if ret > 0
                && (fd == 0 || state.stdin_fds & b != 0)
                && is_dupfd(unsafe { (*regs).rsi })
                && !task::compat() =>
        {
            state.stdin_fds |= bit(ret as u64);
            None
        }
        SYS_ACCEPT | SYS_ACCEPT4 if ret >= 0 && !task::compat() => {
            state.new_conns |= bit(ret as u64);
            None
        }
        SYS_CLOSE if ret == 0 => {
            state.stdin_fds &= !b;
            state.new_conns &= !b;
            None
        }
        _ => None,
    }
}

/// Looks at the first 8 bytes of a read; when they could open a request, makes the
/// process pending (within its tries) and says what to capture.
#[inline(always)]
fn candidate(
    pid: u32,
    state: Option<&mut WatchState>,
    fd: u64,
    buf: u64,
    nr: u64,
    conn: bool,
) -> Option<Candidate> {
    // Safety: user memory just written by the read; unreadable means no candidate.
    let head: [u8; 8] = unsafe { bpf_probe_read_user(buf as *const [u8; 8]) }.ok()?;
    if !(opens_json(&head) || (conn && head.starts_with(b"POST "))) {
        return None;
    }
    let tries = match PROBES.get_ptr_mut(pid) {
        // Safety: map value; a lost update only allows one more try.
        Some(p) => unsafe { &mut *p },
        None => {
            let _ = PROBES.insert(pid, ProbeState::default(), 0);
            // Safety: as above, just inserted (None if the LRU map dropped it at once).
            unsafe { &mut *PROBES.get_ptr_mut(pid)? }
        }
    };
    if tries.tries >= MAX_TRIES {
        return None;
    }
    tries.tries += 1;
    match state {
        Some(s) => s.pending = watch_state::PENDING,
        None => {
            let s = WatchState {
                generation: first_generation(),
                pending: watch_state::PENDING,
                ..WatchState::default()
            };
            WATCHED.insert(pid, s, BPF_NOEXIST as u64).ok()?;
            mark_watched(pid);
        }
    }
    Some((fd, buf, nr))
}

/// An unwatched process becomes probed, with these fds marked.
#[inline(always)]
fn start(pid: u32, stdin_fds: u64, new_conns: u64) {
    if stdin_fds | new_conns == 0 {
        return;
    }
    let s = WatchState {
        generation: first_generation(),
        pending: watch_state::PROBED,
        stdin_fds,
        new_conns,
        ..WatchState::default()
    };
    // A full map only means this process is not found by what it speaks.
    if WATCHED.insert(pid, s, BPF_NOEXIST as u64).is_ok() {
        mark_watched(pid);
    }
}

/// The mark of an fd: fds from 64 on are not followed.
#[inline(always)]
fn bit(fd: u64) -> u64 {
    if fd < 64 { 1 << fd } else { 0 }
}

#[inline(always)]
fn is_dupfd(cmd: u64) -> bool {
    cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC
}

/// Whether the first non-blank byte opens a JSON object or array.
#[inline(always)]
fn opens_json(head: &[u8; 8]) -> bool {
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'{' | b'[' => return true,
            _ => return false,
        }
    }
    false
}
