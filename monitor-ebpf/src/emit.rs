//! Sending records to userspace.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_ringbuf_output},
};
use monitor_common::{Header, RINGBUF_HEADROOM_SHIFT, forces_wakeup, stat};

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

/// Queues the first `len` bytes of `record` (at most `size_of::<T>()`); when the ring
/// buffer is full, counts the loss in `lost` (a `stat` index: which kind of record).
/// Returns whether it was queued. For exec, fork and exit records: they may use the
/// whole ring.
#[inline(always)]
pub fn output<T>(record: *const T, len: usize, lost: u32) -> bool {
    let len = clamp(len as u64, core::mem::size_of::<T>() as u64);
    // Safety: `record` points to at least size_of::<T>() readable bytes and len is bounded by it.
    let ret = unsafe {
        bpf_ringbuf_output(
            core::ptr::addr_of!(EVENTS).cast_mut().cast(),
            record.cast_mut().cast(),
            len,
            wakeup(lost, len),
        )
    };
    if ret < 0 {
        count(lost);
        false
    } else {
        true
    }
}

/// A lifecycle or other non-data record wakes userspace only when it takes the queue
/// across a multiple of `WAKEUP_QUEUED` (64 KiB, `monitor_common::forces_wakeup`).
/// Otherwise such records wait for userspace's next drain tick (`DRAIN_TICK` in the
/// daemon, a few ms): a wake-up costs the process that sends the record several
/// microseconds, and on a host every exec, fork and exit sends records. Data records
/// (a watched server's transfers) keep the ring's own rule, a wake-up when userspace
/// has caught up: batching them measured slower round trips (userspace reading a
/// ring 5 ms deep rather than the record just written).
#[inline(always)]
fn wakeup(lost: u32, len: u64) -> u64 {
    if lost == stat::RINGBUF_FULL_DATA {
        0
    } else if forces_wakeup(EVENTS.query(BPF_RB_AVAIL_DATA as u64), len) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// `output` for a record that is not an exec, fork or exit: only while the ring keeps
/// half the lifecycle headroom free, so that a flood of them (or of cut markers) cannot
/// use it up.
#[inline(always)]
pub fn output_within<T>(record: *const T, len: usize, lost: u32) -> bool {
    if !fits(len as u64, RINGBUF_HEADROOM_SHIFT + 1) {
        crate::maps::count(lost);
        return false;
    }
    output(record, len, lost)
}

/// Whether `len` more bytes of payload fit before the headroom kept for lifecycle
/// records. Racy across CPUs by at most one chunk each, which the headroom absorbs.
#[inline(always)]
pub fn payload_fits(len: u64) -> bool {
    fits(len, RINGBUF_HEADROOM_SHIFT)
}

/// Whether `len` more bytes leave `ring size >> shift` free.
#[inline(always)]
fn fits(len: u64, shift: u32) -> bool {
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    // Each record also takes an 8-byte header in the ring.
    queued + len + 8 <= size - (size >> shift)
}
