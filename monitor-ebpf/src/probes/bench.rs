//! Baseline for `monitor/benches/hook_cost.rs`: an empty program on the same hook as
//! `sys_exit`, so the bench can tell the cost of the hook itself from the cost of the
//! capture program's work for unwatched processes. The daemon never attaches it.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_empty(_ctx: RawTracePointContext) -> i32 {
    0
}
