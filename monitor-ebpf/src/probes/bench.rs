//! Programs only the benches load, never the daemon. For `monitor/benches/hook_cost.rs`:
//! an empty program on the same hook as `sys_exit`, so the bench can tell the cost of
//! the hook itself from the cost of the capture program's work for unwatched
//! processes, and two other baselines. For the stdio benches (tests/benches):
//! `sys_exit_floor`, the least a capture of one process's reads and writes does.
//! For `exec_storm`: `tracepoint_empty`, for the exec path's hooks.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::pt_regs, helpers::generated::bpf_probe_read_user as read_user_raw, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use monitor_common::{FLOOR_SMALL, FloorMeta, FloorRecord, MAX_CHUNK, direction};

use super::syscalls::{SYS_READ, SYS_WRITE};
use crate::{bounds::clamp, maps::EVENTS};

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_empty(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// The unwatched path of `sys_exit` as it was before the `WATCHED_BITS` filter (and
/// before discovery and tp_btf): a raw tracepoint that looks the process up in the
/// `WATCHED` hash and leaves. The bench's "before".
#[aya_ebpf::macros::raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_raw_lookup(_ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    if crate::maps::WATCHED.get_ptr(pid).is_none() {
        return 0;
    }
    0
}

/// What the bench's minimal filter compares the pid with (never a real pid: 0).
#[unsafe(no_mangle)]
static FILTER_PID: u32 = 0;
/// Set when the minimal filter matches (never): a store the compiler cannot drop.
#[unsafe(no_mangle)]
static mut FILTER_HITS: u64 = 0;

/// The least any per-process monitor does on every syscall: a raw tracepoint on
/// `sys_enter` that gets the pid, compares it with one value and leaves. The bench's
/// "minimal one-hook pid filter", the floor a real monitor is measured against.
#[aya_ebpf::macros::raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_pid_filter(_ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    // Safety: globals of this object; volatile so neither is folded away.
    unsafe {
        if pid == core::ptr::read_volatile(&FILTER_PID) {
            core::ptr::write_volatile(core::ptr::addr_of_mut!(FILTER_HITS), 1);
        }
    }
    0
}

/// The one process `sys_exit_floor` copies the reads and writes of (set at load).
#[unsafe(no_mangle)]
static FLOOR_PID: u32 = 0;
/// The flags `sys_exit_floor` submits with (set at load): 0, the ring's own wake-up
/// rule (as data records), or `BPF_RB_NO_WAKEUP` for a reader that polls.
#[unsafe(no_mangle)]
static FLOOR_SUBMIT_FLAGS: u64 = 0;

/// Chunks of one transfer `sys_exit_floor` copies; the bench's pipes move less.
const FLOOR_MAX_CHUNKS: u64 = 16;

/// The least an in-kernel capture of a process's stdio must do, on the daemon's hook:
/// one pid, read and write only, each transfer's bytes read from user memory straight
/// into records reserved in `EVENTS` (no scratch copy, no fd lookup, no stream
/// offsets, no headroom check). The stdio benches' floor; the daemon never attaches it.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_floor(ctx: BtfTracePointContext) -> i32 {
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    // Safety: a global of this object; volatile so the default is not folded in.
    if pid != unsafe { core::ptr::read_volatile(&FLOOR_PID) } {
        return 0;
    }
    let regs: *const pt_regs = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    // Safety: a BTF pointer to the task's saved registers (tp_btf): plain loads.
    let (nr, fd, buf) = unsafe { ((*regs).orig_rax, (*regs).rdi, (*regs).rsi) };
    let dir = match nr {
        SYS_READ => direction::READ,
        SYS_WRITE => direction::WRITE,
        _ => return 0,
    };
    if ret <= 0 {
        return 0;
    }
    let total = ret as u64;
    // Safety: as above.
    let flags = unsafe { core::ptr::read_volatile(&FLOOR_SUBMIT_FLAGS) };
    for i in 0..FLOOR_MAX_CHUNKS {
        let offset = i * MAX_CHUNK as u64;
        if offset >= total || !floor_chunk(fd as i32, dir, buf + offset, total - offset, flags) {
            break;
        }
    }
    0
}

/// Queues up to `MAX_CHUNK` of the `left` bytes at `addr` in the smallest record they
/// fit; false when the ring is full or the memory unreadable (the bench then sees
/// bytes missing).
#[inline(always)]
fn floor_chunk(fd: i32, dir: u8, addr: u64, left: u64, flags: u64) -> bool {
    if left <= FLOOR_SMALL as u64 {
        floor_record::<FLOOR_SMALL>(fd, dir, addr, left, flags)
    } else {
        floor_record::<MAX_CHUNK>(fd, dir, addr, left, flags)
    }
}

#[inline(always)]
fn floor_record<const N: usize>(fd: i32, dir: u8, addr: u64, left: u64, flags: u64) -> bool {
    let Some(mut entry) = EVENTS.reserve::<FloorRecord<N>>(0) else {
        return false;
    };
    let rec = entry.as_mut_ptr();
    let n = clamp(left, N as u64);
    // Safety: `rec` is the reserved record; n <= N, the size of `data`.
    let read = unsafe {
        read_user_raw(
            core::ptr::addr_of_mut!((*rec).data).cast(),
            n as u32,
            addr as *const c_void,
        )
    };
    if read < 0 {
        entry.discard(0);
        return false;
    }
    let meta = FloorMeta {
        fd,
        direction: u32::from(dir),
        len: n as u32,
        _pad: 0,
    };
    // Safety: the reserved record's fixed part.
    unsafe { core::ptr::addr_of_mut!((*rec).meta).write(meta) };
    entry.submit(flags);
    true
}

/// A tracepoint program that returns at once, for `tests/benches/exec_storm.rs`: attached
/// to each of the exec path's tracepoints, what those hooks alone cost every exec.
#[aya_ebpf::macros::tracepoint]
pub fn tracepoint_empty(_ctx: aya_ebpf::programs::TracePointContext) -> u32 {
    0
}
