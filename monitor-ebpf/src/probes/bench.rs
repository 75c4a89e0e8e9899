//! Baseline for `monitor/benches/hook_cost.rs`: an empty program on the same hook as
//! `sys_exit`, so the bench can tell the cost of the hook itself from the cost of the
//! capture program's work for unwatched processes. The daemon never attaches it.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_empty(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// The unwatched path of `sys_exit` as it was before discovery and tp_btf: a raw
/// tracepoint that looks the process up in `WATCHED` and leaves. The bench's "before".
#[aya_ebpf::macros::raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_raw_lookup(_ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    if crate::maps::WATCHED.get_ptr(pid).is_none() {
        return 0;
    }
    0
}
