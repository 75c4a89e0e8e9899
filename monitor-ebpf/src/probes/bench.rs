//! Baseline for `monitor/benches/hook_cost.rs`: an empty program on the same hook as
//! `sys_exit`, so the bench can tell the cost of the hook itself from the cost of the
//! capture program's work for unwatched processes. The daemon never attaches it.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

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
