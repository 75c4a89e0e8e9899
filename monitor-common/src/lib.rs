//! Records that cross the kernel/userspace boundary, defined once for both sides.
//!
//! Every record starts with a [`Header`]; its `kind` says which struct follows.
//! Records are `#[repr(C)]` plain data: the eBPF side writes them into the ring
//! buffer, userspace decodes them with `read_unaligned` after checking lengths
//! (see `monitor::records`), never by transmuting into enums.
#![no_std]

/// Payload bytes carried by one [`DataRecord`]. A transfer longer than this is
/// split over several records that share `total` and advance `chunk_offset`.
pub const MAX_CHUNK: usize = 16384;
/// Upper bound of payload bytes captured from one syscall; beyond it the
/// copy ends with a [`data_flags::TRUNCATED`] marker.
pub const MAX_CAPTURE_PER_SYSCALL: u64 = 16 * 1024 * 1024;
/// Bytes of a path captured by open records (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Bytes of the executed file name kept in exec records.
pub const MAX_FILENAME: usize = 512;
/// Bytes of NUL-separated argv kept in exec records.
pub const MAX_ARGV: usize = 4096;
/// Arguments read from execve's argv.
pub const MAX_ARGS: usize = 64;
/// Bytes of a socket address kept in connect records (sizeof sockaddr_storage).
pub const MAX_SOCKADDR: usize = 128;

/// Record kinds (the `kind` field of [`Header`]).
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const DATA: u32 = 4;
    pub const OPEN: u32 = 5;
    pub const CONNECT: u32 = 6;
    /// An fd of a watched process was closed or replaced (close, dup2, ...).
    pub const FD_CHANGE: u32 = 7;
    /// A watched process accepted a connection (accept, accept4).
    pub const ACCEPT: u32 = 8;
    /// A watched process made a syscall through a 32-bit (compat) entry: not decoded
    /// (its numbers and arguments are not the native ones), reported once per exec.
    pub const COMPAT_SYSCALL: u32 = 9;
    /// A watched process set up an io_uring (`io_uring_setup` succeeded): the reads,
    /// writes and opens it submits through the ring are not seen. A [`CompatRecord`]
    /// (`nr` is the syscall's number), reported once per exec.
    pub const IO_URING: u32 = 10;
}

/// Direction of a [`DataRecord`] relative to the watched process.
pub mod direction {
    /// The process received the bytes (read, recv...).
    pub const READ: u8 = 0;
    /// The process sent the bytes (write, send...).
    pub const WRITE: u8 = 1;
}

/// Bits of [`DataRecord::flags`].
pub mod data_flags {
    /// Part of the transfer was not captured: over the per-syscall bound, or a chunk
    /// could not be read or queued. The copy ends with a marker record of this flag
    /// and no bytes (`len` 0): the transfer's bytes from its `chunk_offset` to `total`
    /// are missing, and the stream must resynchronise after them.
    pub const TRUNCATED: u8 = 1;
    /// TLS plaintext read at `SSL_read`/`SSL_write` (uprobes), not bytes of a
    /// syscall: `conn` names the `SSL*`, `fd` is the socket when a syscall nested in
    /// the call named it (a blocking server), else -1 (a memory BIO: userspace maps it).
    pub const TLS: u8 = 2;
    /// `file_mode`, `inode` and `dev` were read from the fd's `struct file` at the
    /// syscall's exit (else the kernel could not resolve the fd: userspace looks in /proc).
    pub const FILE: u8 = 4;
}

/// File types of [`DataMeta::file_mode`] (`S_IFMT` bits).
pub mod file_type {
    pub const MASK: u16 = 0o170000;
    pub const FIFO: u16 = 0o010000;
    pub const CHR: u16 = 0o020000;
    pub const DIR: u16 = 0o040000;
    pub const REG: u16 = 0o100000;
    pub const SOCK: u16 = 0o140000;
}

/// Whether a character device (kernel `dev_t`: major in the top 12 bits) is a terminal:
/// the virtual consoles and serial ports (4), /dev/tty, /dev/console, /dev/ptmx (5),
/// pseudo-terminals (136-143). Their bytes are copied; other devices' (/dev/null) not.
pub const fn is_tty(rdev: u32) -> bool {
    let major = rdev >> 20;
    major == 4 || major == 5 || (major >= 136 && major <= 143)
}

/// Which OpenSSL function a TLS uprobe is attached to: its attach cookie. A plaintext
/// [`DataRecord`] carries `TLS_SYSCALL_BASE + cookie` as its `syscall`.
pub mod tls_fn {
    /// Bit 0: the function sends (`SSL_write*`) rather than receives.
    pub const WRITE: u64 = 1;
    /// Bit 1: the `_ex` form: the byte count is written through its 4th argument.
    pub const EX: u64 = 2;
    pub const SSL_READ: u64 = 0;
    pub const SSL_WRITE: u64 = WRITE;
    pub const SSL_READ_EX: u64 = EX;
    pub const SSL_WRITE_EX: u64 = EX | WRITE;
}

/// `syscall` of a plaintext record: this plus its [`tls_fn`] cookie (no real syscall
/// has such a number).
pub const TLS_SYSCALL_BASE: u32 = 1000;

/// Indices of the per-CPU `STATS` counters.
pub mod stat {
    /// Data records (chunks of a transfer, and the marker of a transfer cut short) the
    /// ring buffer could not take.
    pub const RINGBUF_FULL_DATA: u32 = 0;
    /// User memory that could not be read (a chunk, a path, an address).
    pub const READ_FAILED: u32 = 1;
    /// Watched-set insertions that failed (map full).
    pub const WATCH_FULL: u32 = 2;
    /// TLS calls whose entry the return probe did not find (the in-flight map was full,
    /// or the call began before the probes were attached).
    pub const TLS_UNPAIRED: u32 = 3;
    /// Exec, fork and exit records the ring buffer could not take (it was full even
    /// though data stops short of the lifecycle headroom).
    pub const RINGBUF_FULL_LIFECYCLE: u32 = 4;
    /// Open, connect, accept and fd-change records the ring buffer could not take (or
    /// held back to keep half the lifecycle headroom).
    pub const RINGBUF_FULL_OTHER: u32 = 5;
    /// Data chunks not queued because the ring buffer was down to the headroom kept
    /// for lifecycle records ([`RINGBUF_HEADROOM_SHIFT`](super::RINGBUF_HEADROOM_SHIFT)).
    pub const DATA_HEADROOM: u32 = 6;
    /// Transfers whose copy stopped short (ring buffer full or at its headroom, user
    /// memory unreadable, more iovecs than are followed, over the per-syscall bound):
    /// each is followed by a [`data_flags::TRUNCATED`](super::data_flags::TRUNCATED)
    /// marker record saying where.
    pub const COPY_CUT_RING: u32 = 7;
    pub const COPY_CUT_READ: u32 = 8;
    pub const COPY_CUT_LIMIT: u32 = 9;
    /// Syscalls watched processes made through a 32-bit (compat) entry: not decoded.
    pub const COMPAT_SYSCALL: u32 = 10;
    /// Transfers whose fd the kernel could not resolve to its `struct file` (sent
    /// without [`data_flags::FILE`](super::data_flags::FILE): userspace looks in /proc).
    pub const FD_UNRESOLVED: u32 = 11;
    /// Transfers whose bytes moved inside the kernel (splice, tee, sendfile,
    /// copy_file_range into or out of a pipe or socket): never in user memory, so not
    /// copied; their offsets are taken and a cut marker covers them all.
    pub const COPY_CUT_INVISIBLE: u32 = 12;
    pub const COUNT: u32 = 13;
}

/// Data stops short of the last `ring size >> RINGBUF_HEADROOM_SHIFT` bytes of the ring
/// buffer (2 MiB of the default 16 MiB), other records and cut markers short of the
/// last half of that: a burst of payload or of opens can never crowd out the exec,
/// fork and exit records the process table depends on.
pub const RINGBUF_HEADROOM_SHIFT: u32 = 3;

/// Queued bytes past which a lifecycle or other non-data record wakes userspace (see
/// `wakeup` in monitor-ebpf's emit.rs): below it, such records wait for userspace's next
/// drain tick.
pub const WAKEUP_QUEUED: u64 = 64 * 1024;

/// Whether a non-data record of `len` bytes, sent with `queued` bytes in the ring,
/// forces a wake-up of userspace: when it takes the queue across a multiple of
/// [`WAKEUP_QUEUED`], not for every record past it. A forced wake-up is an irq_work,
/// a self-IPI (an exit to the hypervisor in a VM, several microseconds), and once
/// userspace lags more than `WAKEUP_QUEUED` behind, one per record made every pending
/// process's open cost that; userspace drains on its tick anyway.
#[inline(always)]
pub fn forces_wakeup(queued: u64, len: u64) -> bool {
    // Each record also takes an 8-byte header in the ring.
    let after = queued + len + 8;
    after / WAKEUP_QUEUED != queued / WAKEUP_QUEUED
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    /// Thread-group id (the process id users see).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns`: CLOCK_MONOTONIC.
    pub ts_ns: u64,
}

/// Bytes a watched process transferred in one syscall (or one chunk of it).
/// Only `meta.len` bytes of `data` are sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataRecord {
    pub meta: DataMeta,
    pub data: [u8; MAX_CHUNK],
}

/// The fixed part of a [`DataRecord`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DataMeta {
    pub header: Header,
    pub fd: i32,
    /// x86_64 syscall number that transferred the bytes.
    pub syscall: u32,
    pub direction: u8,
    pub flags: u8,
    /// With [`data_flags::FILE`]: the fd's `inode->i_mode` at the syscall's exit (its
    /// [`file_type`] says pipe/FIFO, socket, file...).
    pub file_mode: u16,
    /// Payload bytes in this record.
    pub len: u32,
    /// What the syscall returned: the bytes it transferred in all.
    pub total: u64,
    /// Where this chunk starts within the syscall's transfer.
    pub chunk_offset: u64,
    /// Where this chunk starts within the (pid, fd, direction) stream, as
    /// counted by the kernel: a jump tells userspace that bytes were lost.
    pub stream_offset: u64,
    /// TLS plaintext: the `SSL*` it went through (the stream is per `SSL*`); else 0.
    pub conn: u64,
    /// With [`data_flags::FILE`]: the fd's inode number (a pipe's or socket's is the
    /// one /proc shows as `pipe:[N]`, `socket:[N]`).
    pub inode: u64,
    /// With [`data_flags::FILE`]: its superblock's `s_dev` (kernel encoding).
    pub dev: u32,
    pub _pad: u32,
}

/// The fixed part of a data record before `inode` and `dev` were added: what
/// recordings made by earlier versions hold (userspace still decodes them).
pub const LEGACY_DATA_META_SIZE: usize = 72;

/// A watched process's first syscall (since its exec) through a 32-bit entry
/// (`int 0x80`, `sysenter`, a 32-bit program): it is not decoded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CompatRecord {
    pub header: Header,
    /// The 32-bit syscall number (`orig_ax`).
    pub nr: u32,
    pub _pad: u32,
}

/// A process (not a thread) created by fork/clone anywhere on the host.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkRecord {
    /// `pid` is the parent's thread-group id.
    pub header: Header,
    pub child_pid: u32,
    /// 1 when the parent was watched, so the child is too (set in the kernel).
    pub watched: u32,
}

/// A thread group whose last thread exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRecord {
    pub header: Header,
}

/// A successful exec anywhere on the host. Sent up to the used part of `argv`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecRecord {
    pub meta: ExecMeta,
    pub filename: [u8; MAX_FILENAME],
    pub argv: [u8; MAX_ARGV],
}

/// The fixed part of an [`ExecRecord`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecMeta {
    pub header: Header,
    pub uid: u32,
    pub gid: u32,
    /// Thread id that called execve (differs from `pid` when a non-leader thread execs).
    pub old_tid: u32,
    /// Bytes of `filename` used (without NUL).
    pub filename_len: u32,
    /// Bytes of `argv` used: NUL-terminated arguments back to back.
    pub argv_len: u32,
    /// 1 when argv did not fit (more than MAX_ARGS arguments or MAX_ARGV bytes).
    pub argv_truncated: u32,
}

/// Bytes the kernel's walk of an opened file's dentries may write: the components,
/// leaf first, each NUL-terminated. A walk that would go past it stops (truncated).
pub const MAX_RESOLVED: usize = 4096;
/// Longest component name with its NUL (NAME_MAX + 1): what one step of the walk may
/// write past its start.
pub const MAX_NAME: usize = 256;
/// Components the walk follows (mount crossings included) before it gives up.
pub const MAX_COMPONENTS: u32 = 96;

/// open/openat/openat2 by a watched process, at syscall exit. Sent up to the used
/// part of `path`: the path asked for (`path_len` bytes), then what the kernel resolved
/// it to (`resolved_len` bytes, see [`OpenMeta::resolved`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenRecord {
    pub meta: OpenMeta,
    /// Sized so that a write of [`MAX_NAME`] bytes at any offset below
    /// `MAX_PATH + MAX_RESOLVED` stays inside (what the verifier checks).
    pub path: [u8; MAX_PATH + MAX_RESOLVED + MAX_NAME],
}

/// Values of [`OpenMeta::resolved`]: how far the kernel got walking the opened file's
/// dentries up to the root of its mount namespace.
pub mod resolved {
    /// Not walked: the open failed, or struct offsets are unknown.
    pub const NONE: u32 = 0;
    /// The components reach the root: the path is whole.
    pub const WHOLE: u32 = 1;
    /// The walk stopped at [`super::MAX_COMPONENTS`] or [`super::MAX_RESOLVED`] bytes,
    /// or a read failed: the components are the leaf end of the path.
    pub const PARTIAL: u32 = 2;
    /// The file is not reachable from a root (an unlinked file's dentry is still
    /// reachable; a pipe's or an anonymous inode's is not).
    pub const UNREACHABLE: u32 = 3;
}

/// The fixed part of an [`OpenRecord`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenMeta {
    pub header: Header,
    pub syscall: u32,
    /// AT_FDCWD (-100) or the directory fd relative paths start from.
    pub dirfd: i32,
    pub flags: u64,
    /// The new fd, or -errno.
    pub ret: i64,
    /// Bytes of `path` used (without NUL).
    pub path_len: u32,
    /// A [`resolved`] value.
    pub resolved: u32,
    /// The opened file's inode number, device (`s_dev`, kernel encoding), mode and link
    /// count, from its `struct file` (all 0 when the open failed).
    pub ino: u64,
    pub dev: u32,
    pub mode: u32,
    pub nlink: u32,
    /// Bytes after the asked path: the resolved components, leaf first, each ending
    /// with a NUL.
    pub resolved_len: u32,
}

/// The fixed part of an open record before the resolved path and inode were added:
/// what recordings made by earlier versions hold (userspace still decodes them).
pub const LEGACY_OPEN_META_SIZE: usize = 56;

/// connect by a watched process, at syscall exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnectRecord {
    pub header: Header,
    pub fd: i32,
    /// Bytes of `addr` used.
    pub addr_len: u32,
    /// 0, -EINPROGRESS for a non-blocking connect, or another -errno.
    pub ret: i64,
    pub addr: [u8; MAX_SOCKADDR],
}

/// accept/accept4 by a watched process that returned a connection, at syscall exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AcceptRecord {
    pub header: Header,
    /// The listening socket.
    pub listen_fd: i32,
    /// The new connection's fd.
    pub fd: i32,
    /// Bytes of `addr` used: 0 when the caller asked for no address (libuv does not).
    pub addr_len: u32,
    pub _pad: u32,
    /// The peer's address, as the kernel wrote it for the caller.
    pub addr: [u8; MAX_SOCKADDR],
}

/// An fd of a watched process that now refers to something else (or nothing).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FdChangeRecord {
    pub header: Header,
    pub syscall: u32,
    /// The fd that changed; -1 means "any fd of the process" (close_range, exec).
    pub fd: i32,
}

/// Offsets of tracepoint fields, read from tracefs by userspace at load time
/// and handed to the eBPF programs as a global, so the programs do not
/// hard-code one kernel's layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TracepointOffsets {
    pub exec_filename: u32,
    pub exec_old_pid: u32,
    pub newtask_pid: u32,
    pub newtask_clone_flags: u32,
    pub exit_group_dead: u32,
    pub execve_argv: u32,
    pub execveat_argv: u32,
    /// `sock:inet_sock_set_state`: who connects (see [`ConnectKey`]).
    pub sock_skaddr: u32,
    pub sock_oldstate: u32,
    pub sock_newstate: u32,
    pub sock_sport: u32,
    pub sock_family: u32,
    pub sock_protocol: u32,
    pub sock_saddr: u32,
    pub sock_saddr_v6: u32,
}

/// Member offsets of kernel structs, from the kernel's BTF (read by userspace at load
/// time): the programs walk `current->files->fdt->fd[fd]->f_inode` and read
/// `current->thread_info.status` with them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    /// `task_struct.thread_info.status` (x86_64: thread_info is inside task_struct).
    pub task_status: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    pub inode_ino: u32,
    pub inode_rdev: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    pub inode_nlink: u32,
    /// `file.f_mode` (`FMODE_READ`, `FMODE_WRITE`).
    pub file_fmode: u32,
    /// `file.f_path.dentry` and `file.f_path.mnt` (a `struct vfsmount` inside a
    /// `struct mount` at `mount_mnt`).
    pub file_dentry: u32,
    pub file_vfsmount: u32,
    pub dentry_parent: u32,
    /// `dentry.d_name.name`.
    pub dentry_name: u32,
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub vfsmount_root: u32,
    /// 1 once userspace has filled the offsets in.
    pub valid: u32,
}

/// `thread_info.status` bit set while a syscall entered through a 32-bit entry runs
/// (x86_64 `TS_COMPAT`).
pub const TS_COMPAT: u32 = 0x0002;

/// 64-bit words of `WATCHED_BITS`, the filter in front of `WATCHED`: one bit per pid
/// below 4,194,304 (`PID_MAX_LIMIT` on 64-bit), 512 KiB. A pid beyond (a kernel built
/// otherwise) is always looked up.
pub const WATCHED_BITS_WORDS: u32 = 65536;

/// Values of [`WatchState::pending`].
pub mod watch_state {
    /// Watched: everything it transfers is captured; its children are followed.
    pub const WATCHED: u32 = 0;
    /// From its exec (or a read that could be a request) until userspace has decided
    /// whether it is a server to watch: its syscalls are captured meanwhile (userspace
    /// drops them if not), so a server that talks at once loses nothing to the
    /// decision's latency. Children of a pending process are not followed.
    pub const PENDING: u32 = 1;
    /// Not watched: it dup'd its stdin or accepted a connection, and the reads of those
    /// fds are looked at for a request (`probes::discover`). Nothing is captured.
    pub const PROBED: u32 = 2;
}

/// Value of the `WATCHED` map (key: thread-group id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WatchState {
    /// Bumped on every exec (the kernel no longer uses it: an fd's kind comes from its
    /// `struct file`; kept so that entries stay told apart across pid reuse).
    pub generation: u32,
    /// One of [`watch_state`].
    pub pending: u32,
    /// PROBED: fds below 64 that are dups of its stdin.
    pub stdin_fds: u64,
    /// PROBED: accepted connections (fds below 64) whose first read is still to come.
    pub new_conns: u64,
    /// 1 once a compat syscall was reported for this image (see [`kind::COMPAT_SYSCALL`]).
    pub compat_reported: u32,
    /// 1 once an io_uring setup was reported for this image (see [`kind::IO_URING`]).
    pub io_uring_reported: u32,
}

/// Candidate reads the kernel hands to userspace per unwatched process and exec (see
/// `probes::discover`); userspace sets `PROBES` to this to stop them sooner.
pub const MAX_PROBE_TRIES: u32 = 64;

/// Value of the `PROBES` map (key: thread-group id): candidate reads handed over.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeState {
    pub tries: u32,
    pub _pad: u32,
}

/// An OpenSSL call in flight on a thread, from its uprobe to its uretprobe.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsCall {
    /// The `SSL*`.
    pub ssl: u64,
    pub buf: u64,
    /// `_ex` forms: where the function writes the byte count.
    pub processed: u64,
    /// A [`tls_fn`] value.
    pub function: u64,
    /// The socket a syscall nested in the call transferred on; -1 until one does.
    pub fd: i32,
    pub _pad: u32,
}

/// Key of `STREAM_OFFSETS`: one direction of one stream of a process. The value is the
/// offset its next transfer starts at (bytes claimed so far, copied or not); userspace
/// reads it when the process exits, to find bytes lost at the end of a stream.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub pid: u32,
    pub fd: i32,
    /// A [`direction`] value.
    pub direction: u32,
    pub _pad: u32,
    /// TLS plaintext: the `SSL*` (fd is then -1); 0 for syscalls.
    pub conn: u64,
}

/// The local end of a TCP connection a process opened, as `CONNECTS` keys it: the
/// process that connected, recorded in the kernel as it connects, so that a server's
/// accepted connection names its client however briefly it lived.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnectKey {
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Local port, host byte order.
    pub port: u16,
    /// Local address: 4 bytes for `AF_INET`, then zeros.
    pub addr: [u8; 16],
}

/// `AF_INET`, `AF_INET6`.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// A chunk of one read or write of the pid a bench watches, as the bench-only
/// `sys_exit_floor` program queues it: the least an in-kernel capture of a process's
/// stdio must send (the daemon never loads that program). Reserved whole in the ring
/// (a ring reservation has a constant size: `N` is [`FLOOR_SMALL`] or [`MAX_CHUNK`]);
/// the first `len` bytes of `data` are set.
#[repr(C)]
pub struct FloorRecord<const N: usize> {
    pub meta: FloorMeta,
    pub data: [u8; N],
}

/// The small size of [`FloorRecord`]: a short transfer (most of a stdio session's
/// messages) does not take a 16 KiB slot of the ring.
pub const FLOOR_SMALL: usize = 512;

/// The fixed part of a [`FloorRecord`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FloorMeta {
    pub fd: i32,
    /// A [`direction`] value.
    pub direction: u32,
    /// Bytes of `data` set (at most [`MAX_CHUNK`]).
    pub len: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod user {
    // Safety: plain `#[repr(C)]` integers and bytes, no padding.
    unsafe impl aya::Pod for super::ConnectKey {}
    // Safety: plain `#[repr(C)]` integers, no padding.
    unsafe impl aya::Pod for super::StreamKey {}
    // Safety: plain `#[repr(C)]` integers, no padding.
    unsafe impl aya::Pod for super::TracepointOffsets {}
    // Safety: plain `#[repr(C)]` integers, no padding.
    unsafe impl aya::Pod for super::WatchState {}
    // Safety: plain `#[repr(C)]` integers, no padding.
    unsafe impl aya::Pod for super::KernelOffsets {}
    // Safety: plain `#[repr(C)]` integers, no padding.
    unsafe impl aya::Pod for super::ProbeState {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wakeup_is_forced_once_per_step_of_the_queue() {
        // Below the first step: none.
        assert!(!forces_wakeup(0, 100));
        assert!(!forces_wakeup(WAKEUP_QUEUED - 200, 100));
        // The record that crosses it, and the one that crosses the next.
        assert!(forces_wakeup(WAKEUP_QUEUED - 100, 100));
        assert!(forces_wakeup(2 * WAKEUP_QUEUED - 50, 100));
        // Past it, records that stay within a step: none (before: every one).
        assert!(!forces_wakeup(WAKEUP_QUEUED, 100));
        assert!(!forces_wakeup(WAKEUP_QUEUED + 1000, 4096));
        assert!(!forces_wakeup(5 * WAKEUP_QUEUED + 10, 100));
    }
}
