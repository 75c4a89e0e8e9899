//! Who connects: `sock:inet_sock_set_state`. A TCP socket enters `SYN_SENT` in
//! `connect()`, in the connecting process, but before it has a local port; it becomes
//! `ESTABLISHED` when the peer answers, in whatever context the answer is handled. So
//! the tgid is kept by socket at the first and moved to the local end at the second.
//! Userspace then names the client of a connection a server accepted without looking
//! through /proc, where a short connection may be gone already.
use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use monitor_common::{AF_INET, AF_INET6, ConnectKey};

use crate::maps::{CONNECTING, CONNECTS, offsets};

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const IPPROTO_TCP: u16 = 6;

#[tracepoint]
pub fn tcp_connect(ctx: TracePointContext) -> u32 {
    let off = offsets();
    // Safety (every `read_at` here): field offsets from this kernel's tracefs format file.
    let newstate: i32 = unsafe { ctx.read_at(off.sock_newstate as usize) }.unwrap_or(0);
    let oldstate: i32 = unsafe { ctx.read_at(off.sock_oldstate as usize) }.unwrap_or(0);
    let connecting = newstate == TCP_SYN_SENT;
    if !connecting && !(oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED) {
        return 0;
    }
    let protocol: u16 = unsafe { ctx.read_at(off.sock_protocol as usize) }.unwrap_or(0);
    let Ok(sk) = (unsafe { ctx.read_at::<u64>(off.sock_skaddr as usize) }) else {
        return 0;
    };
    if protocol != IPPROTO_TCP {
        return 0;
    }
    if connecting {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        let _ = CONNECTING.insert(sk, tgid, 0);
        return 0;
    }
    // Safety: map value pointer read once, before the entry is removed.
    let Some(tgid) = CONNECTING.get_ptr(sk).map(|t| unsafe { *t }) else {
        return 0;
    };
    let _ = CONNECTING.remove(sk);
    let family: u16 = unsafe { ctx.read_at(off.sock_family as usize) }.unwrap_or(0);
    let mut key = ConnectKey {
        family,
        port: unsafe { ctx.read_at(off.sock_sport as usize) }.unwrap_or(0),
        addr: [0; 16],
    };
    // The v4 address is 4 bytes, the v6 one 16.
    let read = match family {
        AF_INET => unsafe { ctx.read_at::<[u8; 4]>(off.sock_saddr as usize) }
            .map(|a| key.addr[..4].copy_from_slice(&a)),
        AF_INET6 => unsafe { ctx.read_at::<[u8; 16]>(off.sock_saddr_v6 as usize) }.map(|a| key.addr = a),
        _ => return 0,
    };
    if read.is_ok() {
        let _ = CONNECTS.insert(key, tgid, 0);
    }
    0
}
