//! Maps shared by the probes. Sizes are defaults; userspace may resize the ring buffer.
use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use monitor_common::{
    AcceptRecord, ConnectKey, ConnectRecord, DataRecord, ExecRecord, KernelOffsets, OpenRecord, ProbeState,
    StreamKey, TlsCall, TracepointOffsets, WATCHED_BITS_WORDS, WatchState, stat,
};

/// Every record for userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Watched thread-group ids. Userspace adds servers; the kernel adds their children.
#[map]
pub static WATCHED: HashMap<u32, WatchState> = HashMap::with_max_entries(16384, 0);

/// The filter in front of `WATCHED`: bit `pid` is set whenever `pid` may have an
/// entry there, so that a syscall of an unwatched process costs a bit test (an array
/// lookup the verifier inlines) instead of a hash lookup. What keeps it right: every
/// insert into `WATCHED` sets the bit after it (userspace through its mmap of the
/// map, atomically too); the bit is cleared at the process's exit, or by `sys_exit`
/// after a lookup found no entry, which then looks again and sets it back if an entry
/// appeared meanwhile. A stale bit only costs that lookup.
#[map]
pub static WATCHED_BITS: Array<u64> = Array::with_max_entries(WATCHED_BITS_WORDS, BPF_F_MMAPABLE);

/// Protocol probes made per unwatched process since its exec (see `probes::discover`).
#[map]
pub static PROBES: LruHashMap<u32, ProbeState> = LruHashMap::with_max_entries(65536, 0);

/// Bytes transferred so far per (pid, fd, direction), so userspace sees gaps.
#[map]
pub static STREAM_OFFSETS: LruHashMap<StreamKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// argv saved at execve entry, keyed by thread id, emitted at sched_process_exec.
#[map]
pub static EXEC_ARGS: LruHashMap<u32, ExecRecord> = LruHashMap::with_max_entries(256, 0);

/// OpenSSL calls in flight, by thread id: saved by the uprobe, taken by the uretprobe;
/// a syscall nested in the call fills in its socket.
#[map]
pub static TLS_CALLS: LruHashMap<u32, TlsCall> = LruHashMap::with_max_entries(4096, 0);

/// Who opened each recent TCP connection on the host, by its local end: the tgid of
/// the process that connected (see `probes::connects`).
#[map]
pub static CONNECTS: LruHashMap<ConnectKey, u32> = LruHashMap::with_max_entries(16384, 0);

/// Sockets in `SYN_SENT`, by address: the tgid that connected, until the connection is
/// established and its local port known.
#[map]
pub static CONNECTING: LruHashMap<u64, u32> = LruHashMap::with_max_entries(4096, 0);

/// Counters of what could not be captured (indices in `monitor_common::stat`).
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

// Records too large for the 512-byte stack are built in per-CPU scratch space.
#[map]
pub static DATA_SCRATCH: PerCpuArray<DataRecord> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecRecord> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static OPEN_SCRATCH: PerCpuArray<OpenRecord> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static PATH_WALK: PerCpuArray<crate::probes::PathWalk> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static COPY_STATE: PerCpuArray<crate::probes::Copy> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static CONNECT_SCRATCH: PerCpuArray<ConnectRecord> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static ACCEPT_SCRATCH: PerCpuArray<AcceptRecord> = PerCpuArray::with_max_entries(1, 0);

/// Tracepoint field offsets read from tracefs by userspace before loading.
#[unsafe(no_mangle)]
pub static TP_OFFSETS: TracepointOffsets = TracepointOffsets {
    exec_filename: 8,
    exec_old_pid: 16,
    newtask_pid: 8,
    newtask_clone_flags: 32,
    exit_group_dead: 32,
    execve_argv: 24,
    execveat_argv: 32,
    sock_skaddr: 8,
    sock_oldstate: 16,
    sock_newstate: 20,
    sock_sport: 24,
    sock_family: 28,
    sock_protocol: 30,
    sock_saddr: 32,
    sock_saddr_v6: 40,
};

/// Kernel struct member offsets from the kernel's BTF, patched in by userspace before
/// load (`valid` stays 0 otherwise, and nothing is read through them).
#[unsafe(no_mangle)]
pub static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    task_status: 0,
    task_files: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_inode: 0,
    inode_mode: 0,
    inode_ino: 0,
    inode_rdev: 0,
    inode_sb: 0,
    sb_dev: 0,
    inode_nlink: 0,
    file_fmode: 0,
    file_dentry: 0,
    file_vfsmount: 0,
    dentry_parent: 0,
    dentry_name: 0,
    mount_mnt: 0,
    mount_parent: 0,
    mount_mountpoint: 0,
    vfsmount_root: 0,
    valid: 0,
};

#[inline(always)]
pub fn kernel_offsets() -> KernelOffsets {
    // Safety: a global that userspace patches before load; volatile so the compiler
    // does not fold the zeros above into the code.
    unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS) }
}

/// 1: look at unwatched processes' reads for MCP (`probes::discover`); userspace sets
/// 0 for `--no-discovery`.
#[unsafe(no_mangle)]
pub static DISCOVERY: u32 = 1;

#[inline(always)]
pub fn discovery() -> bool {
    // Safety: a global that userspace patches before load (see `offsets`).
    unsafe { core::ptr::read_volatile(&DISCOVERY) != 0 }
}

/// Whether `pid` may be in `WATCHED` (see `WATCHED_BITS`).
#[inline(always)]
pub fn may_be_watched(pid: u32) -> bool {
    match WATCHED_BITS.get(pid >> 6) {
        Some(word) => *word & (1 << (pid & 63)) != 0,
        None => true,
    }
}

/// Sets `pid`'s bit: after every insert into `WATCHED`.
#[inline(always)]
pub fn mark_watched(pid: u32) {
    if let Some(word) = WATCHED_BITS.get_ptr_mut(pid >> 6) {
        crate::atomics::or(word, 1 << (pid & 63));
    }
}

/// Clears `pid`'s bit: it has no entry in `WATCHED` (see `WATCHED_BITS`).
#[inline(always)]
pub fn unmark_watched(pid: u32) {
    if let Some(word) = WATCHED_BITS.get_ptr_mut(pid >> 6) {
        crate::atomics::and(word, !(1 << (pid & 63)));
    }
}

/// The generation a new `WATCHED` entry starts at: not 0, but the clock's low bits, so
/// that a recycled pid's entry is told apart from its last holder's.
#[inline(always)]
pub fn first_generation() -> u32 {
    // Safety: helper without arguments.
    (unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns() } as u32) | 1
}

#[inline(always)]
pub fn offsets() -> TracepointOffsets {
    // Safety: a global that userspace patches before load; volatile so the
    // compiler does not fold the defaults above into the code.
    unsafe { core::ptr::read_volatile(&TP_OFFSETS) }
}

#[inline(always)]
pub fn count(index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // Safety: per-CPU slot, no other writer while this program runs on this CPU.
        unsafe { *counter += 1 };
    }
}
