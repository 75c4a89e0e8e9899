//! TLS plaintext of watched processes: uprobes on OpenSSL's `SSL_read`, `SSL_write` and
//! their `_ex` forms. Userspace attaches them per process (a pid-filtered uprobe: no
//! other process that maps the same library is trapped), with the function as the
//! attach cookie. The entry saves the buffer by thread; the return sends what the call
//! really transferred, with the `SSL*` as its stream and, when a syscall nested in the
//! call named it (a blocking socket BIO), its fd.
use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use monitor_common::{
    MAX_CAPTURE_PER_SYSCALL, TLS_SYSCALL_BASE, TlsCall, direction, stat, tls_fn, watch_state,
};

use super::syscalls::{Transfer, data};
use crate::maps::{TLS_CALLS, WATCHED, count};

#[uprobe]
pub fn ssl_enter(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Attached for watched processes only; one that exec'd is pending until userspace
    // decides again, and its new image's calls wait for that.
    match WATCHED.get_ptr((pid_tgid >> 32) as u32) {
        // Safety: map value pointer checked by the match.
        Some(state) if unsafe { (*state).pending } == watch_state::WATCHED => {}
        _ => return 0,
    }
    // Safety: the context is this program's.
    let function = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let ssl: u64 = ctx.arg(0).unwrap_or(0);
    if ssl == 0 {
        return 0;
    }
    let call = TlsCall {
        ssl,
        buf: ctx.arg(1).unwrap_or(0),
        processed: if function & tls_fn::EX != 0 {
            ctx.arg(3).unwrap_or(0)
        } else {
            0
        },
        function,
        fd: -1,
        _pad: 0,
    };
    let _ = TLS_CALLS.insert(pid_tgid as u32, call, 0);
    0
}

#[uretprobe]
pub fn ssl_return(ctx: RetProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // Safety: map value pointer checked, copied out before the entry is removed.
    let Some(call) = TLS_CALLS.get_ptr(tid).map(|c| unsafe { *c }) else {
        count(stat::TLS_UNPAIRED);
        return 0;
    };
    let _ = TLS_CALLS.remove(tid);
    // Both forms return an int: the byte count, or 1 for success of an `_ex` form.
    let ret = ctx.ret::<u64>() as i32 as i64;
    let n = if call.function & tls_fn::EX != 0 {
        if ret != 1 {
            return 0;
        }
        // Safety: user memory; unreadable means nothing was transferred that we can see.
        match unsafe { bpf_probe_read_user(call.processed as *const u64) } {
            Ok(n) => n as i64,
            Err(_) => {
                count(stat::READ_FAILED);
                return 0;
            }
        }
    } else {
        ret
    };
    let dir = if call.function & tls_fn::WRITE != 0 {
        direction::WRITE
    } else {
        direction::READ
    };
    let transfer = Transfer {
        pid_tgid,
        syscall: (TLS_SYSCALL_BASE as u64) + call.function,
        fd: call.fd,
        conn: call.ssl,
        buf: call.buf,
        iovcnt: 0,
        dir,
    };
    data(&transfer, n, MAX_CAPTURE_PER_SYSCALL);
    0
}

/// A watched thread transferred bytes on `fd`: when it is inside an OpenSSL call, that
/// call's ciphertext goes through `fd` (the first such syscall names it).
#[inline(always)]
pub fn nested_transfer(pid_tgid: u64, fd: i32) {
    if let Some(call) = TLS_CALLS.get_ptr_mut(pid_tgid as u32) {
        // Safety: map value pointer checked above.
        unsafe {
            if (*call).fd < 0 {
                (*call).fd = fd;
            }
        }
    }
}
