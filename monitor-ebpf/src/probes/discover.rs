//! Finding MCP servers by what they read, for processes nobody watches yet. On the
//! unwatched path of `sys_exit`, a read of at least `MIN_PROBE_BYTES` is looked at:
//! one whose first byte (after whitespace) opens a JSON object or array could be a
//! JSON-RPC request to a stdio server (on fd 0 or a dup of it); one that starts with
//! `POST ` could be a request to an HTTP server. Such a process becomes
//! *pending* in `WATCHED` (as at exec) and this read is captured, so userspace can
//! decide on the very bytes that made it a candidate and, if it is MCP, lose nothing.
//! Everything else leaves after the size test, or after one look at the registers.
use aya_ebpf::{
    bindings::{BPF_NOEXIST, pt_regs},
    helpers::bpf_probe_read_user,
};
use monitor_common::{WatchState, stat};

use monitor_common::ProbeState;

use crate::maps::{PROBES, WATCHED, count};

/// The shortest JSON-RPC request an MCP peer sends is about 40 bytes
/// (`{"jsonrpc":"2.0","id":1,"method":"ping"}`); an HTTP request head is longer.
pub const MIN_PROBE_BYTES: i64 = 32;
/// Candidates per process (per exec), each a round trip to userspace. Files are
/// candidates too (the kernel cannot tell a JSON file from a pipe here; userspace can):
/// a program that reads many JSON files (node's package.json files) stops costing one
/// after this many. Userspace ends the probing of a process sooner once it saw the
/// process read something else than MCP on a pipe or socket (`PROBES` set to this).
pub const MAX_TRIES: u32 = monitor_common::MAX_PROBE_TRIES;
/// What is copied of a candidate read: enough for the request that opens a session;
/// the rest of a longer read is a gap that the framing resynchronises after.
pub const MAX_CANDIDATE_BYTES: u64 = 4 * monitor_common::MAX_CHUNK as u64;

const SYS_READ: u64 = 0;
const SYS_RECVFROM: u64 = 45;

/// The registers the probe looks at.
#[derive(Clone, Copy)]
struct Args {
    si: u64,
    di: u64,
    orig_ax: u64,
}

/// Looks at a read of an unwatched process. Returns the fd, buffer and syscall to
/// capture when the process was made pending.
#[inline(always)]
pub fn probe(regs: *const pt_regs, pid: u32) -> Option<(u64, u64, u64)> {
    // Safety: a BTF pointer to the task's saved registers (tp_btf): plain loads.
    let a = unsafe {
        Args {
            si: (*regs).rsi,
            di: (*regs).rdi,
            orig_ax: (*regs).orig_rax,
        }
    };
    let (fd, buf) = (a.di, a.si);
    // stdout and stderr are written, not read; a server may read its stdin through a
    // dup of fd 0 (Python's SDK does), so any other fd counts.
    if !matches!(a.orig_ax, SYS_READ | SYS_RECVFROM) || fd == 1 || fd == 2 {
        return None;
    }
    // Safety: user memory just written by the read; unreadable means no candidate.
    let head: [u8; 8] = unsafe { bpf_probe_read_user(buf as *const [u8; 8]) }.ok()?;
    if !opens_json(&head) && !(fd > 2 && head.starts_with(b"POST ")) {
        // File contents, a shell's input, any other protocol: nothing more is done.
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
    let state = WatchState {
        generation: 0,
        pending: 1,
    };
    if WATCHED.insert(pid, state, BPF_NOEXIST as u64).is_err() {
        count(stat::WATCH_FULL);
        return None;
    }
    Some((fd, buf, a.orig_ax))
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
