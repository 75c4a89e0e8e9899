//! One raw `sys_exit` hook for every syscall on the host. Unwatched processes leave
//! after a single map lookup; for watched ones the syscall number and arguments come
//! from pt_regs and what was really transferred from the return value. A syscall that
//! entered through a 32-bit entry is not decoded at all (its number and argument
//! registers are not the native ones): it is counted and reported. What an fd is comes
//! from its `struct file` at the syscall's exit (see `task`): the bytes of pipes, FIFOs
//! and sockets are copied, however the fd was opened, and those of anything else not.
//! Bytes that move inside the kernel (splice, tee, sendfile, copy_file_range) are never
//! in user memory: their offsets are taken and a cut marker says they are missing. An
//! io_uring set up by a watched process is reported: what it submits is not seen.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_NOEXIST, pt_regs},
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user, bpf_probe_read_user_str_bytes,
        generated::{bpf_loop, bpf_probe_read_user as read_user_raw},
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use monitor_common::{
    AcceptRecord, CompatRecord, ConnectRecord, DataMeta, DataRecord, FdChangeRecord, MAX_CAPTURE_PER_SYSCALL,
    MAX_CHUNK, MAX_PATH, MAX_SOCKADDR, OpenRecord, StreamKey, WatchState, data_flags, direction, kind,
    resolved, stat, watch_state,
};

use super::{
    discover::{self, MAX_CANDIDATE_BYTES},
    paths, task, tls,
};
use crate::{
    bounds::clamp,
    emit::{header, output, output_within, payload_fits},
    maps::{
        ACCEPT_SCRATCH, CONNECT_SCRATCH, COPY_STATE, DATA_SCRATCH, OPEN_SCRATCH, STREAM_OFFSETS, WATCHED,
        count, discovery, mark_watched, may_be_watched, unmark_watched,
    },
};

// x86_64 syscall numbers.
pub(super) const SYS_READ: u64 = 0;
pub(super) const SYS_WRITE: u64 = 1;
const SYS_OPEN: u64 = 2;
const SYS_CLOSE: u64 = 3;
const SYS_PREAD64: u64 = 17;
const SYS_PWRITE64: u64 = 18;
const SYS_READV: u64 = 19;
const SYS_WRITEV: u64 = 20;
const SYS_DUP: u64 = 32;
const SYS_DUP2: u64 = 33;
const SYS_CONNECT: u64 = 42;
const SYS_ACCEPT: u64 = 43;
const SYS_SENDTO: u64 = 44;
const SYS_RECVFROM: u64 = 45;
const SYS_SENDMSG: u64 = 46;
const SYS_RECVMSG: u64 = 47;
const SYS_FCNTL: u64 = 72;
const SYS_OPENAT: u64 = 257;
const SYS_DUP3: u64 = 292;
const SYS_ACCEPT4: u64 = 288;
const SYS_PREADV: u64 = 295;
const SYS_PWRITEV: u64 = 296;
const SYS_PREADV2: u64 = 327;
const SYS_PWRITEV2: u64 = 328;
const SYS_SENDFILE: u64 = 40;
const SYS_SPLICE: u64 = 275;
const SYS_TEE: u64 = 276;
const SYS_VMSPLICE: u64 = 278;
const SYS_COPY_FILE_RANGE: u64 = 326;
const SYS_IO_URING_SETUP: u64 = 425;
const SYS_IO_URING_ENTER: u64 = 426;
const SYS_IO_URING_REGISTER: u64 = 427;
const SYS_RECVMMSG: u64 = 299;
const SYS_SENDMMSG: u64 = 307;
const SYS_CLOSE_RANGE: u64 = 436;
const SYS_OPENAT2: u64 = 437;

const F_DUPFD: u64 = 0;
const F_DUPFD_CLOEXEC: u64 = 1030;

/// Messages of a sendmmsg/recvmmsg whose lengths are summed (past the first, which is
/// copied); the lengths of any beyond are not known here: the stream's next transfer
/// shows the gap.
const MAX_MMSG: u64 = 64;

/// Iterations of the copy loop: every chunk of the largest captured transfer,
/// plus one step per iovec (empty ones included).
const MAX_IOVECS: u64 = 1024;
const MAX_STEPS: u32 = (MAX_CAPTURE_PER_SYSCALL / MAX_CHUNK as u64 + MAX_IOVECS) as u32;

/// The registers the capture needs, loaded straight from the task's saved `pt_regs`
/// (a BTF pointer under tp_btf: no helper call).
#[derive(Clone, Copy)]
pub struct Regs {
    pub di: u64,
    pub si: u64,
    pub dx: u64,
    pub r10: u64,
    pub orig_ax: u64,
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    // The path every syscall of the host takes is kept here, small and without a call
    // to a subprogram: a helper call, a bit test and, with discovery on, a comparison
    // of the syscall number. Anything more is out of line.
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = (pid_tgid >> 32) as u32;
    if !may_be_watched(pid) {
        let regs: *const pt_regs = ctx.arg(0);
        // Safety: a BTF pointer to the task's saved registers (tp_btf): a plain load.
        if discovery() && discover::may_matter(unsafe { (*regs).orig_rax }) {
            unwatched(&ctx, pid_tgid);
        }
        return 0;
    }
    marked(&ctx, pid_tgid)
}

/// A syscall of an unwatched process that discovery looks at (a read, dup or accept).
#[inline(never)]
fn unwatched(ctx: &BtfTracePointContext, pid_tgid: u64) {
    let ret: i64 = ctx.arg(1);
    let regs: *const pt_regs = ctx.arg(0);
    let pid = (pid_tgid >> 32) as u32;
    capture_candidate(pid_tgid, ret, discover::unwatched(regs, pid, ret));
}

/// A syscall of a process whose bit is set in `WATCHED_BITS`: probed, pending or
/// watched, or released since (a stale bit).
#[inline(never)]
fn marked(ctx: &BtfTracePointContext, pid_tgid: u64) -> i32 {
    let pid = (pid_tgid >> 32) as u32;
    let ret: i64 = ctx.arg(1);
    let regs: *const pt_regs = ctx.arg(0);
    let Some(state) = WATCHED.get_ptr_mut(pid) else {
        // A stale bit: the entry went (userspace released the process). Cleared, then
        // set back if an entry appeared meanwhile.
        unmark_watched(pid);
        if WATCHED.get_ptr(pid).is_some() {
            mark_watched(pid);
        }
        if discovery() {
            unwatched(ctx, pid_tgid);
        }
        return 0;
    };
    // Safety: map value pointer checked above; this program's run owns the update.
    let state = unsafe { &mut *state };
    if state.pending == watch_state::PROBED {
        // Not watched: checked for a 32-bit entry only where a syscall is acted on.
        capture_candidate(pid_tgid, ret, discover::probed(state, regs, pid, ret));
        return 0;
    }
    if task::compat() {
        // Safety: a BTF pointer to the task's saved registers (tp_btf): a plain load.
        compat_syscall(state, pid_tgid, unsafe { (*regs).orig_rax });
        return 0;
    }
    // Safety: under tp_btf the first argument is a kernel pointer the verifier types
    // (struct pt_regs); plain loads from it are checked against its BTF.
    let regs = unsafe {
        Regs {
            di: (*regs).rdi,
            si: (*regs).rsi,
            dx: (*regs).rdx,
            r10: (*regs).r10,
            orig_ax: (*regs).orig_rax,
        }
    };
    let args = [regs.di, regs.si, regs.dx, regs.r10];
    // (fd, buffer or iovec array, iovec count or 0 for a plain buffer, direction)
    let transfer = match regs.orig_ax {
        SYS_READ | SYS_PREAD64 | SYS_RECVFROM => Some((args[0], args[1], 0, direction::READ)),
        SYS_WRITE | SYS_PWRITE64 | SYS_SENDTO => Some((args[0], args[1], 0, direction::WRITE)),
        SYS_READV | SYS_PREADV | SYS_PREADV2 => Some((args[0], args[1], args[2], direction::READ)),
        SYS_WRITEV | SYS_PWRITEV | SYS_PWRITEV2 => Some((args[0], args[1], args[2], direction::WRITE)),
        // User pages into a pipe's write end; on its read end, a copy out of the pipe
        // into user memory (as readv): told apart by the file's mode.
        SYS_VMSPLICE => {
            let dir = if task::writable(args[0] as i32) {
                direction::WRITE
            } else {
                direction::READ
            };
            Some((args[0], args[1], args[2], dir))
        }
        SYS_RECVMSG | SYS_SENDMSG => {
            // struct msghdr: msg_iov at 16, msg_iovlen at 24.
            let msg = args[1];
            // Safety: user memory; unreadable means nothing is captured.
            let iov: u64 = unsafe { bpf_probe_read_user((msg + 16) as *const u64) }.unwrap_or(0);
            let cnt: u64 = unsafe { bpf_probe_read_user((msg + 24) as *const u64) }.unwrap_or(0);
            let dir = if regs.orig_ax == SYS_RECVMSG {
                direction::READ
            } else {
                direction::WRITE
            };
            if iov != 0 && cnt != 0 {
                Some((args[0], iov, cnt, dir))
            } else {
                None
            }
        }
        _ => None,
    };
    // sendmmsg/recvmmsg: `ret` messages of `struct mmsghdr { struct msghdr msg_hdr;
    // unsigned int msg_len; }` (64 bytes each); the first is copied like a sendmsg of
    // its `msg_len` bytes, those of the others are cut (`mmsg_rest`).
    let mmsg = (regs.orig_ax == SYS_SENDMMSG || regs.orig_ax == SYS_RECVMMSG) && ret > 0;
    let (transfer, len) = if mmsg {
        let vec = args[1];
        // Safety: user memory; unreadable means nothing is captured (the gap shows at
        // the stream's next transfer).
        let read = |addr: u64| unsafe { bpf_probe_read_user(addr as *const u64) }.ok();
        let dir = if regs.orig_ax == SYS_RECVMMSG {
            direction::READ
        } else {
            direction::WRITE
        };
        match (read(vec + 16), read(vec + 24), read(vec + 56)) {
            (Some(iov), Some(cnt), Some(len)) => (Some((args[0], iov, cnt, dir)), (len & 0xffff_ffff) as i64),
            _ => {
                count(stat::READ_FAILED);
                (None, 0)
            }
        }
    } else {
        (transfer, ret)
    };
    if let Some((fd, buf, iovcnt, dir)) = transfer {
        tls::nested_transfer(pid_tgid, fd as i32);
        data(
            &Transfer {
                pid_tgid,
                syscall: regs.orig_ax,
                fd: fd as i32,
                conn: 0,
                buf,
                iovcnt,
                dir,
            },
            len,
            MAX_CAPTURE_PER_SYSCALL,
        );
        if mmsg {
            mmsg_rest(pid_tgid, regs.orig_ax, fd as i32, args[1], ret as u64, dir);
        }
        return 0;
    }
    match regs.orig_ax {
        SYS_OPEN => open(pid_tgid, &regs, -100, args[0], args[1], ret),
        SYS_OPENAT => open(pid_tgid, &regs, args[0] as i64, args[1], args[2], ret),
        SYS_OPENAT2 => {
            // struct open_how starts with the u64 flags.
            // Safety: user memory; unreadable flags are reported as 0.
            let flags = unsafe { bpf_probe_read_user(args[2] as *const u64) }.unwrap_or(0);
            open(pid_tgid, &regs, args[0] as i64, args[1], flags, ret)
        }
        SYS_CONNECT => connect(pid_tgid, args[0], args[1], args[2], ret),
        SYS_ACCEPT | SYS_ACCEPT4 if ret >= 0 => accept(pid_tgid, args[0], args[1], args[2], ret),
        SYS_CLOSE if ret == 0 => fd_change(pid_tgid, regs.orig_ax, args[0] as i32),
        // The new fd refers to what the old one does: its kind comes with its next
        // transfer, read from its file then.
        SYS_DUP | SYS_DUP2 | SYS_DUP3 if ret >= 0 => fd_change(pid_tgid, regs.orig_ax, ret as i32),
        SYS_FCNTL if ret >= 0 && (args[1] == F_DUPFD || args[1] == F_DUPFD_CLOEXEC) => {
            fd_change(pid_tgid, regs.orig_ax, ret as i32)
        }
        SYS_CLOSE_RANGE if ret == 0 => fd_change(pid_tgid, regs.orig_ax, -1),
        // In-kernel copies: (fd_in, fd_out). tee does not consume its input.
        SYS_SPLICE | SYS_TEE | SYS_SENDFILE | SYS_COPY_FILE_RANGE if ret > 0 => {
            let (fd_in, fd_out) = match regs.orig_ax {
                SYS_SPLICE | SYS_COPY_FILE_RANGE => (args[0] as i32, args[2] as i32),
                SYS_TEE => (-1, args[1] as i32),
                _ => (args[1] as i32, args[0] as i32),
            };
            invisible(
                pid_tgid,
                regs.orig_ax,
                fd_out,
                direction::WRITE,
                ret,
                stat::COPY_CUT_INVISIBLE,
            );
            if fd_in >= 0 {
                invisible(
                    pid_tgid,
                    regs.orig_ax,
                    fd_in,
                    direction::READ,
                    ret,
                    stat::COPY_CUT_INVISIBLE,
                );
            }
        }
        // Setting one up, or using one it inherited or set up before it was watched.
        SYS_IO_URING_SETUP | SYS_IO_URING_ENTER | SYS_IO_URING_REGISTER if ret >= 0 => {
            io_uring(state, pid_tgid, regs.orig_ax)
        }
        _ => {}
    }
    0
}

/// A syscall through a 32-bit entry: counted (for a watched process), and the first one
/// since the process's exec (or since userspace watched it) reported with its (32-bit)
/// number, so that userspace flags the process.
#[inline(always)]
fn compat_syscall(state: &mut WatchState, pid_tgid: u64, nr: u64) {
    if state.pending == watch_state::WATCHED {
        count(stat::COMPAT_SYSCALL);
    }
    report_once(&mut state.compat_reported, kind::COMPAT_SYSCALL, pid_tgid, nr);
}

/// A watched process set up an io_uring, or entered or registered with one: reported
/// once per exec (what it submits through the ring, reads, writes and opens, goes by
/// no syscall this hook sees). `nr` says which syscall.
#[inline(always)]
fn io_uring(state: &mut WatchState, pid_tgid: u64, nr: u64) {
    report_once(&mut state.io_uring_reported, kind::IO_URING, pid_tgid, nr);
}

/// Sends a `CompatRecord` of `kind` naming syscall `nr`, unless `reported` says one was
/// sent since the exec; a record the ring could not take is tried again next time.
#[inline(always)]
fn report_once(reported: &mut u32, kind: u32, pid_tgid: u64, nr: u64) {
    if *reported != 0 {
        return;
    }
    let rec = CompatRecord {
        header: header(kind, pid_tgid),
        nr: nr as u32,
        _pad: 0,
    };
    if output_within(
        &rec as *const CompatRecord,
        core::mem::size_of::<CompatRecord>(),
        stat::RINGBUF_FULL_OTHER,
    ) {
        *reported = 1;
    }
}

/// The messages of a sendmmsg/recvmmsg (`n` at `vec`) past the first: their bytes
/// take their place in the stream's offsets and are cut (one marker for all), so that
/// userspace counts them missing.
#[inline(always)]
fn mmsg_rest(pid_tgid: u64, syscall: u64, fd: i32, vec: u64, n: u64, dir: u8) {
    let mut rest = 0u64;
    let mut i = 1u64;
    while i < MAX_MMSG && i < n {
        // Safety: user memory; an unreadable length ends the sum.
        match unsafe { bpf_probe_read_user((vec + i * 64 + 56) as *const u32) } {
            Ok(l) => rest += l as u64,
            Err(_) => break,
        }
        i += 1;
    }
    if rest > 0 {
        invisible(pid_tgid, syscall, fd, dir, rest as i64, stat::COPY_CUT_LIMIT);
    }
}

/// `ret` bytes moved inside the kernel into (`WRITE`) or out of (`READ`) `fd`: when it
/// is a stream whose bytes are copied, they take their place in its offsets and a cut
/// marker covers them all, so that userspace counts them missing and resynchronises.
#[inline(always)]
fn invisible(pid_tgid: u64, syscall: u64, fd: i32, dir: u8, ret: i64, why: u32) {
    let Some(f) = task::file_of(fd) else {
        // Unknown: no offsets are taken; the stream's next transfer shows the gap.
        count(stat::FD_UNRESOLVED);
        return;
    };
    if !f.is_stream() {
        return;
    }
    let total = ret as u64;
    let key = StreamKey {
        pid: (pid_tgid >> 32) as u32,
        fd,
        direction: dir as u32,
        _pad: 0,
        conn: 0,
    };
    let Some(stream_offset) = claim_offsets(&key, total) else {
        return;
    };
    let Some(copy) = COPY_STATE.get_ptr_mut(0) else {
        return;
    };
    // Safety: per-CPU state owned by this program for its run.
    let copy = unsafe { &mut *copy };
    *copy = Copy {
        pid_tgid,
        fd,
        syscall: syscall as u32,
        direction: dir,
        flags: data_flags::FILE,
        file_mode: f.mode,
        file_dev: f.dev,
        file_ino: f.ino,
        cut: why,
        conn: 0,
        iov: 0,
        iov_left: 0,
        base: 0,
        base_left: 0,
        remaining: 0,
        total,
        chunk_offset: 0,
        stream_offset,
    };
    count(why);
    cut_marker(copy);
}

/// Copies the read that made a process pending (its first `MAX_CANDIDATE_BYTES`).
#[inline(always)]
fn capture_candidate(pid_tgid: u64, ret: i64, candidate: Option<discover::Candidate>) {
    if let Some((fd, buf, syscall)) = candidate {
        let transfer = Transfer {
            pid_tgid,
            syscall,
            fd: fd as i32,
            conn: 0,
            buf,
            iovcnt: 0,
            dir: direction::READ,
        };
        data(&transfer, ret, MAX_CANDIDATE_BYTES);
    }
}

/// State of one transfer's copy, shared with the `bpf_loop` callback through a
/// per-CPU map rather than the stack: the verifier then treats its fields as unknown
/// scalars in the callback, so verifying the loop body converges at once instead of
/// following every iteration's exact values (which overran the 1M-instruction limit).
#[repr(C)]
pub struct Copy {
    pid_tgid: u64,
    fd: i32,
    syscall: u32,
    direction: u8,
    flags: u8,
    /// The fd's inode mode, number and device (with `data_flags::FILE`).
    file_mode: u16,
    file_dev: u32,
    file_ino: u64,
    /// Why the copy stops short if it does (a `stat::COPY_CUT_*` index); the limit
    /// unless a step says otherwise.
    cut: u32,
    conn: u64,
    /// User address of the next `struct iovec`, 0 for a single buffer.
    iov: u64,
    iov_left: u64,
    /// Current buffer and what remains of it.
    base: u64,
    base_left: u64,
    /// Bytes of the transfer not yet copied (bounded by the capture limit).
    remaining: u64,
    total: u64,
    chunk_offset: u64,
    stream_offset: u64,
}

/// Where the bytes of one transfer are: a syscall's, or an OpenSSL call's plaintext.
pub struct Transfer {
    pub pid_tgid: u64,
    /// Syscall number, or `TLS_SYSCALL_BASE + tls_fn`.
    pub syscall: u64,
    pub fd: i32,
    /// TLS plaintext: the `SSL*`; 0 for syscalls.
    pub conn: u64,
    /// Buffer, or iovec array when `iovcnt` > 0.
    pub buf: u64,
    pub iovcnt: u64,
    pub dir: u8,
}

/// Sends the `ret` bytes `t` transferred (at most `max`) as data records.
#[inline(always)]
pub fn data(t: &Transfer, ret: i64, max: u64) {
    if ret <= 0 {
        return;
    }
    let (pid_tgid, fd, dir, buf, iovcnt) = (t.pid_tgid, t.fd, t.dir, t.buf, t.iovcnt);
    let pid = (pid_tgid >> 32) as u32;
    // What the fd is now, from its struct file (TLS plaintext has no fd of its own).
    let file = if t.conn == 0 { task::file_of(fd) } else { None };
    let mut flags = if t.conn != 0 { data_flags::TLS } else { 0 };
    match file {
        Some(f) => {
            flags |= data_flags::FILE;
            // A candidate read (a look for a request) is sent whatever it is read
            // from, for userspace to decide.
            if !f.is_stream() && max == MAX_CAPTURE_PER_SYSCALL {
                return;
            }
        }
        None if t.conn == 0 => count(stat::FD_UNRESOLVED),
        None => {}
    }
    let total = ret as u64;
    let key = StreamKey {
        pid,
        fd: if t.conn == 0 { fd } else { -1 },
        direction: dir as u32,
        _pad: 0,
        conn: t.conn,
    };
    let Some(stream_offset) = claim_offsets(&key, total) else {
        return;
    };
    let Some(copy) = COPY_STATE.get_ptr_mut(0) else {
        return;
    };
    // Safety: per-CPU state owned by this program for its run.
    let copy = unsafe { &mut *copy };
    *copy = Copy {
        pid_tgid,
        fd,
        syscall: t.syscall as u32,
        direction: dir,
        flags,
        file_mode: file.map_or(0, |f| f.mode),
        file_dev: file.map_or(0, |f| f.dev),
        file_ino: file.map_or(0, |f| f.ino),
        cut: stat::COPY_CUT_LIMIT,
        conn: t.conn,
        iov: if iovcnt > 0 { buf } else { 0 },
        iov_left: if iovcnt > MAX_IOVECS { MAX_IOVECS } else { iovcnt },
        base: if iovcnt > 0 { 0 } else { buf },
        base_left: if iovcnt > 0 { 0 } else { total },
        remaining: if total > max { max } else { total },
        total,
        chunk_offset: 0,
        stream_offset,
    };
    // Safety: bpf_loop calls `copy_step`, which finds its state in COPY_STATE.
    unsafe {
        bpf_loop(MAX_STEPS, copy_step as *mut c_void, core::ptr::null_mut(), 0);
    }
    // A candidate's first bytes are all discovery wants: stopping there is no loss.
    let deliberate = copy.cut == stat::COPY_CUT_LIMIT && max < MAX_CAPTURE_PER_SYSCALL;
    if copy.chunk_offset < copy.total && !deliberate {
        count(copy.cut);
        cut_marker(copy);
    }
}

/// Takes `total` bytes of the stream's offsets: returns where this transfer starts.
/// An atomic add, so that threads of one process writing the same fd at once get
/// disjoint ranges.
#[inline(always)]
fn claim_offsets(key: &StreamKey, total: u64) -> Option<u64> {
    if STREAM_OFFSETS.get_ptr_mut(key).is_none() {
        // Another CPU may have created it meanwhile: then this insert fails, harmlessly.
        let _ = STREAM_OFFSETS.insert(key, 0, BPF_NOEXIST as u64);
    }
    let p = STREAM_OFFSETS.get_ptr_mut(key)?;
    Some(crate::atomics::fetch_add(p, total))
}

/// The transfer's copy stopped before its end: a record without bytes says from where
/// on it is missing, so userspace resynchronises now rather than at the stream's next
/// transfer. It may use half the headroom (it is small, and it makes loss visible at
/// once; refused, the loss still shows at the stream's next record).
#[inline(always)]
fn cut_marker(c: &Copy) {
    let Some(rec) = DATA_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // Safety: per-CPU scratch owned by this program for its run.
    let rec = unsafe { &mut *rec };
    fill_meta(rec, c, 0);
    rec.meta.flags = c.flags | data_flags::TRUNCATED;
    output_within(
        rec as *const DataRecord,
        core::mem::size_of::<DataMeta>(),
        stat::RINGBUF_FULL_DATA,
    );
}

#[inline(always)]
fn fill_meta(rec: &mut DataRecord, c: &Copy, len: u64) {
    rec.meta.header = header(kind::DATA, c.pid_tgid);
    rec.meta.fd = c.fd;
    rec.meta.syscall = c.syscall;
    rec.meta.direction = c.direction;
    rec.meta.flags = c.flags;
    rec.meta.file_mode = c.file_mode;
    rec.meta.len = len as u32;
    rec.meta.total = c.total;
    rec.meta.chunk_offset = c.chunk_offset;
    rec.meta.stream_offset = c.stream_offset.wrapping_add(c.chunk_offset);
    rec.meta.conn = c.conn;
    rec.meta.inode = c.file_ino;
    rec.meta.dev = c.file_dev;
    rec.meta._pad = 0;
}

/// One step of the copy: load the next iovec, or send one chunk. Returns 1 to stop
/// (`cut` then says why, when it stopped short).
extern "C" fn copy_step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(c) = COPY_STATE.get_ptr_mut(0) else {
        return 1;
    };
    // Safety: per-CPU state filled by `data` on this CPU before the loop.
    let c = unsafe { &mut *c };
    if c.remaining == 0 {
        return 1;
    }
    if c.base_left == 0 {
        if c.iov_left == 0 {
            return 1;
        }
        // struct iovec { void *iov_base; size_t iov_len; }
        // Safety: user memory; an unreadable iovec ends the copy.
        let base = unsafe { bpf_probe_read_user(c.iov as *const u64) };
        let len = unsafe { bpf_probe_read_user((c.iov + 8) as *const u64) };
        let (Ok(base), Ok(len)) = (base, len) else {
            count(stat::READ_FAILED);
            c.cut = stat::COPY_CUT_READ;
            return 1;
        };
        c.base = base;
        c.base_left = len;
        c.iov += 16;
        c.iov_left -= 1;
        return 0;
    }
    let Some(rec) = DATA_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let mut n = c.base_left;
    if n > c.remaining {
        n = c.remaining;
    }
    let n = clamp(n, MAX_CHUNK as u64);
    let size = core::mem::size_of::<DataMeta>() as u64 + n;
    if !payload_fits(size) {
        count(stat::DATA_HEADROOM);
        c.cut = stat::COPY_CUT_RING;
        return 1;
    }
    // Safety: per-CPU scratch owned by this program for its run.
    let rec = unsafe { &mut *rec };
    fill_meta(rec, c, n);
    // Safety: n <= MAX_CHUNK, the size of `data`.
    let read = unsafe { read_user_raw(rec.data.as_mut_ptr().cast(), n as u32, c.base as *const c_void) };
    if read < 0 {
        count(stat::READ_FAILED);
        c.cut = stat::COPY_CUT_READ;
        return 1;
    }
    if !output(rec as *const DataRecord, size as usize, stat::RINGBUF_FULL_DATA) {
        c.cut = stat::COPY_CUT_RING;
        return 1;
    }
    c.base += n;
    c.base_left -= n;
    c.remaining -= n;
    c.chunk_offset += n;
    0
}

#[inline(always)]
fn open(pid_tgid: u64, regs: &Regs, dirfd: i64, path: u64, flags: u64, ret: i64) {
    let Some(rec) = OPEN_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // Safety: per-CPU scratch owned by this program for its run.
    let rec = unsafe { &mut *rec };
    rec.meta.header = header(kind::OPEN, pid_tgid);
    rec.meta.syscall = regs.orig_ax as u32;
    rec.meta.dirfd = dirfd as i32;
    rec.meta.flags = flags;
    rec.meta.ret = ret;
    // Safety: user string into a bounded buffer.
    rec.meta.path_len =
        match unsafe { bpf_probe_read_user_str_bytes(path as *const u8, &mut rec.path[..MAX_PATH]) } {
            Ok(s) => s.len() as u32,
            Err(_) => {
                count(stat::READ_FAILED);
                0
            }
        };
    rec.meta.resolved = resolved::NONE;
    rec.meta.resolved_len = 0;
    rec.meta.ino = 0;
    rec.meta.dev = 0;
    rec.meta.mode = 0;
    rec.meta.nlink = 0;
    // What was opened, from the new fd's `struct file`: the path asked for may name
    // something else by the time userspace looks (a symlink swapped, a chdir).
    if let Some(file) = task::file_ptr(ret as i32) {
        if let Some(info) = task::inode_of(file) {
            rec.meta.ino = info.ino;
            rec.meta.dev = info.dev;
            rec.meta.mode = info.mode as u32;
        }
        rec.meta.nlink = task::nlink_of(file);
        let (state, len) = paths::resolve(file, rec.meta.path_len);
        rec.meta.resolved = state;
        rec.meta.resolved_len = len;
    }
    let len =
        core::mem::offset_of!(OpenRecord, path) + rec.meta.path_len as usize + rec.meta.resolved_len as usize;
    output_within(rec as *const OpenRecord, len, stat::RINGBUF_FULL_OTHER);
}

#[inline(always)]
fn connect(pid_tgid: u64, fd: u64, addr: u64, addr_len: u64, ret: i64) {
    let Some(rec) = CONNECT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // Safety: per-CPU scratch owned by this program for its run.
    let rec = unsafe { &mut *rec };
    rec.header = header(kind::CONNECT, pid_tgid);
    rec.fd = fd as i32;
    rec.ret = ret;
    let n = clamp(addr_len, MAX_SOCKADDR as u64);
    // Safety: n <= MAX_SOCKADDR, the size of `addr`.
    let read = unsafe { read_user_raw(rec.addr.as_mut_ptr().cast(), n as u32, addr as *const c_void) };
    rec.addr_len = if read < 0 {
        count(stat::READ_FAILED);
        0
    } else {
        n as u32
    };
    output_within(
        rec as *const ConnectRecord,
        core::mem::size_of::<ConnectRecord>(),
        stat::RINGBUF_FULL_OTHER,
    );
}

/// A connection accepted on `listen_fd`: its fd and, when the caller asked for it, the
/// peer's address (`addr`, with its length behind `addr_len_ptr`).
#[inline(always)]
fn accept(pid_tgid: u64, listen_fd: u64, addr: u64, addr_len_ptr: u64, ret: i64) {
    let Some(rec) = ACCEPT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // Safety: per-CPU scratch owned by this program for its run.
    let rec = unsafe { &mut *rec };
    rec.header = header(kind::ACCEPT, pid_tgid);
    rec.listen_fd = listen_fd as i32;
    rec.fd = ret as i32;
    rec.addr_len = 0;
    if addr != 0 && addr_len_ptr != 0 {
        // Safety: user memory; unreadable means no address.
        let len: u32 = unsafe { bpf_probe_read_user(addr_len_ptr as *const u32) }.unwrap_or(0);
        let n = clamp(len as u64, MAX_SOCKADDR as u64);
        // Safety: n <= MAX_SOCKADDR, the size of `addr`.
        let read = unsafe { read_user_raw(rec.addr.as_mut_ptr().cast(), n as u32, addr as *const c_void) };
        if read < 0 {
            count(stat::READ_FAILED);
        } else {
            rec.addr_len = n as u32;
        }
    }
    output_within(
        rec as *const AcceptRecord,
        core::mem::size_of::<AcceptRecord>(),
        stat::RINGBUF_FULL_OTHER,
    );
}

#[inline(always)]
fn fd_change(pid_tgid: u64, syscall: u64, fd: i32) {
    let rec = FdChangeRecord {
        header: header(kind::FD_CHANGE, pid_tgid),
        syscall: syscall as u32,
        fd,
    };
    output_within(
        &rec as *const FdChangeRecord,
        core::mem::size_of::<FdChangeRecord>(),
        stat::RINGBUF_FULL_OTHER,
    );
}
