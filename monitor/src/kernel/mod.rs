//! The kernel side: loading and attaching the programs, tracefs, the ring buffer, and
//! decoding the records it carries. The pipeline sees the kernel through `Kernel`,
//! which the real `capture::Capture` implements and benches replace.
pub mod btf;
pub mod capture;
/// Each record's bytes as the kernel sends them, the inverse of `records`, for replay tests and benches.
pub mod encode;
pub mod id_map;
pub mod recorded;
pub mod records;
pub mod uprobes;
pub mod watched_bits;

/// What the pipeline asks of the kernel side: add a process to the watched set, read
/// the loss counters, name the attached programs. `Capture` is the real one; benches
/// and tests drive the pipeline with recorded records and a stand-in.
pub trait Kernel {
    fn watch(&mut self, pid: u32) -> anyhow::Result<()>;
    /// Forgets a process the kernel made pending at its exec, once it is known not to
    /// be watched.
    fn unwatch(&mut self, pid: u32);
    /// The process read something other than MCP on a pipe or socket: the kernel stops
    /// handing its reads over for a look (until its next exec).
    fn stop_probing(&mut self, pid: u32);
    /// A process running before the daemon: the reads of these fds (a bit per fd below
    /// 64) are looked at for a request, as if they were dups of its stdin.
    fn probe(&mut self, pid: u32, fds: u64);
    fn stats(&self) -> anyhow::Result<KernelStats>;
    /// (program name, kernel program id) of what is attached.
    fn attached(&self) -> &[(String, u32)];
    /// Captures the TLS plaintext of `pid`: uprobes on `functions` ((file offset,
    /// `monitor_common::tls_fn` cookie)) of the ELF file at `path`, for that process
    /// only. Done in the background (attaching waits on the kernel): the outcome comes
    /// from `tls_attached`.
    fn attach_tls(&mut self, pid: u32, path: &std::path::Path, functions: &[(u64, u64)]);
    /// Detaches the TLS uprobes of `pid` (it exited, or exec'd another image).
    fn detach_tls(&mut self, pid: u32);
    /// Outcomes of `attach_tls` since the last call.
    fn tls_attached(&mut self) -> Vec<TlsAttached>;
    /// The process that opened the TCP connection whose local end is `local`, as the
    /// kernel saw it connect (recent connections of the whole host).
    fn connector(&self, local: std::net::SocketAddr) -> Option<u32>;
    /// The kernel's watched set: (pid, `monitor_common::watch_state`).
    fn watched_set(&self) -> Vec<(u32, u32)>;
    /// Where the kernel's count of `pid`'s bytes on `fd` (written or read) stands: the
    /// end of the stream as far as the kernel claimed it, copied or not.
    fn stream_end(&self, pid: u32, fd: i32, write: bool) -> Option<u64>;
}

/// Kernel-side loss counters, summed over CPUs (see `monitor_common::stat`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelStats {
    /// Records the ring buffer could not take, by kind: data, exec/fork/exit, the rest.
    pub ringbuf_full_data: u64,
    pub ringbuf_full_lifecycle: u64,
    pub ringbuf_full_other: u64,
    /// Data chunks held back to keep the headroom for lifecycle records.
    pub data_headroom: u64,
    pub read_failed: u64,
    pub watch_full: u64,
    /// TLS calls whose return the kernel could not pair with their entry.
    pub tls_unpaired: u64,
    /// Transfers whose copy stopped short, by why: the ring, unreadable memory, the
    /// per-syscall bound (or more iovecs than are followed).
    pub cut_ring: u64,
    pub cut_read: u64,
    pub cut_limit: u64,
    /// Syscalls of watched processes that came through a 32-bit entry (not decoded).
    #[serde(default)]
    pub compat_syscalls: u64,
    /// Transfers whose fd the kernel could not resolve to its file (userspace looked
    /// in /proc for them).
    #[serde(default)]
    pub fd_unresolved: u64,
    /// Transfers into or out of a pipe or socket whose bytes moved inside the kernel
    /// (splice, tee, sendfile, copy_file_range): not copied, cut whole.
    #[serde(default)]
    pub cut_invisible: u64,
}

/// What came of one `Kernel::attach_tls`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsAttached {
    pub pid: u32,
    pub path: std::path::PathBuf,
    /// True: attached; false: that file was attached for `pid` already; else why not.
    pub result: Result<bool, String>,
}
