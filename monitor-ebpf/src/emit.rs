//! Sending records to userspace.
use aya_ebpf::helpers::generated::{bpf_ktime_get_boot_ns, bpf_ringbuf_output};
use monitor_common::{Header, stat};

use crate::{
    bounds::clamp,
    maps::{EVENTS, count},
};

#[inline(always)]
pub fn header(kind: u32, pid_tgid: u64) -> Header {
    Header {
        kind,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        _pad: 0,
        // Safety: helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}

/// Queues the first `len` bytes of `record` (at most `size_of::<T>()`); counts a loss
/// when the ring buffer is full. Returns whether it was queued.
#[inline(always)]
pub fn output<T>(record: *const T, len: usize) -> bool {
    let len = clamp(len as u64, core::mem::size_of::<T>() as u64);
    // Safety: `record` points to at least size_of::<T>() readable bytes and len is bounded by it.
    let ret = unsafe {
        bpf_ringbuf_output(
            core::ptr::addr_of!(EVENTS).cast_mut().cast(),
            record.cast_mut().cast(),
            len,
            0,
        )
    };
    if ret < 0 {
        count(stat::RINGBUF_FULL);
        false
    } else {
        true
    }
}
