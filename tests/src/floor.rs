//! The floor of a stdio capture, for the benches to show how close the daemon is to
//! it: the bench-only `sys_exit_floor` program (monitor-ebpf `probes/bench.rs`) on the
//! daemon's hook, copying one process's reads and writes into records of the `EVENTS`
//! ring, and a thread that drains the ring and counts what it got. The least any
//! in-kernel capture of a server's stdio does; the daemon never loads it. Also the
//! empty program on the same hook (`sys_exit_empty`), what the hook alone costs.
//!
//! The eBPF object comes from the bench (`monitor::kernel::capture::ebpf_object()`,
//! a dev-dependency), so that this library does not depend on the daemon's.
use std::{
    collections::BTreeMap,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::BtfTracePoint,
};
use monitor_common::{FloorMeta, direction};

use crate::bench::set_affinity;

const HOOK: &str = "sys_exit";
/// `BPF_RB_NO_WAKEUP` (include/uapi/linux/bpf.h).
const BPF_RB_NO_WAKEUP: u64 = 1;
/// How often the polling reader drains the ring.
const POLL_EVERY: Duration = Duration::from_millis(1);
/// How long the woken reader waits in epoll_wait() before it looks at its stop flag.
const STOP_CHECK_MS: i32 = 100;

/// What is attached to the hook.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `sys_exit_empty`: returns at once, no reader.
    Empty,
    /// `sys_exit_floor`, and a reader.
    Copy(Wake),
}

impl Hook {
    fn program(self) -> &'static str {
        match self {
            Hook::Empty => "sys_exit_empty",
            Hook::Copy(_) => "sys_exit_floor",
        }
    }
}

/// How the reader learns there are records.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Records are submitted with the ring's own rule (a wake-up when the reader has
    /// caught up), as the daemon's data records are; the reader sleeps in epoll_wait().
    Ring,
    /// Records are submitted with `BPF_RB_NO_WAKEUP`; the reader drains every 1 ms.
    /// Set apart from `Ring`, this is what the wake-ups cost: the reader's, and the
    /// irq_work the submit raises in the writer's syscall (a self-IPI: on a VM, an
    /// x2APIC MSR write that exits to the host).
    Polled,
}

/// Bytes and records the reader got.
#[derive(Debug, Default)]
pub struct Drained {
    pub records: u64,
    /// Drains that found records: records over these is how many a wake-up (or a
    /// 1 ms poll) finds.
    pub drains: u64,
    /// Bytes by (fd, direction).
    bytes: BTreeMap<(i32, u32), u64>,
}

impl Drained {
    /// Bytes the process read from `fd` (the floor copies read and write only).
    pub fn read(&self, fd: i32) -> u64 {
        self.of(fd, direction::READ)
    }

    /// Bytes the process wrote to `fd`.
    pub fn written(&self, fd: i32) -> u64 {
        self.of(fd, direction::WRITE)
    }

    fn of(&self, fd: i32, dir: u8) -> u64 {
        self.bytes.get(&(fd, u32::from(dir))).copied().unwrap_or(0)
    }

    /// Bytes of every fd, both directions.
    pub fn total(&self) -> u64 {
        self.bytes.values().sum()
    }

    /// Adds one record, checking its length against the length it says it carries.
    fn add(&mut self, record: &[u8]) -> anyhow::Result<()> {
        let fixed = size_of::<FloorMeta>();
        if record.len() < fixed {
            bail!("a floor record of {} bytes", record.len());
        }
        // Safety: at least size_of::<FloorMeta>() bytes, read unaligned; every bit
        // pattern is a valid FloorMeta (integers only).
        let meta: FloorMeta = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
        if meta.len as usize > record.len() - fixed {
            bail!(
                "a floor record of {} bytes says it carries {}",
                record.len(),
                meta.len
            );
        }
        *self.bytes.entry((meta.fd, meta.direction)).or_default() += u64::from(meta.len);
        self.records += 1;
        Ok(())
    }
}

/// What the floor's reader got against what the client exchanged with the server,
/// added up over servers: the reader must get every byte (no silent loss).
#[derive(Default)]
pub struct Check {
    /// Bytes the server read from its stdin and wrote to its stdout, as the client
    /// counted them.
    sent: u64,
    /// What the reader got of those (reads of fd 0, writes to fd 1).
    got: u64,
    /// Bytes of other fds.
    other: u64,
    records: u64,
    drains: u64,
}

impl Check {
    /// Adds one server's: `stdin` bytes the client wrote to it, `stdout` bytes the
    /// client read from it, and what the reader got.
    pub fn add(&mut self, stdin: u64, stdout: u64, got: &Drained) {
        let stdio = got.read(0) + got.written(1);
        self.sent += stdin + stdout;
        self.got += stdio;
        self.other += got.total() - stdio;
        self.records += got.records;
        self.drains += got.drains;
    }

    pub fn complete(&self) -> bool {
        self.got == self.sent
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of the {} bytes the server read from stdin and wrote to stdout, in {} records \
             ({} drains found records); {} bytes of other fds",
            self.got, self.sent, self.records, self.drains, self.other
        )
    }
}

/// A floor program attached for one process, and its reader.
pub struct Floor {
    /// Holds the program and its link: dropping it detaches.
    ebpf: Ebpf,
    reader: Option<Reader>,
}

struct Reader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Drained>>,
}

impl Floor {
    /// Loads `object` (the daemon's eBPF object) with the floor set on `pid`, attaches
    /// `hook`'s program and starts its reader, if any, on `reader_cpus`.
    pub fn attach(object: &[u8], pid: u32, hook: Hook, reader_cpus: &[usize]) -> anyhow::Result<Self> {
        let flags = match hook {
            Hook::Copy(Wake::Polled) => BPF_RB_NO_WAKEUP,
            _ => 0u64,
        };
        let mut ebpf = EbpfLoader::new()
            .override_global("FLOOR_PID", &pid, true)
            .override_global("FLOOR_SUBMIT_FLAGS", &flags, true)
            .load(object)
            .context("loading the eBPF object for the floor")?;
        let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
        let name = hook.program();
        let prog: &mut BtfTracePoint = ebpf
            .program_mut(name)
            .with_context(|| format!("the eBPF object has no program `{name}`"))?
            .try_into()?;
        prog.load(HOOK, &btf)
            .with_context(|| format!("loading `{name}`"))?;
        prog.attach()
            .with_context(|| format!("attaching `{name}` to tp_btf {HOOK}"))?;
        let reader = match hook {
            Hook::Empty => None,
            Hook::Copy(wake) => {
                let ring = RingBuf::try_from(
                    ebpf.take_map("EVENTS")
                        .context("the eBPF object has no map `EVENTS`")?,
                )?;
                Some(Reader::start(ring, wake, reader_cpus.to_vec()))
            }
        };
        Ok(Self { ebpf, reader })
    }

    /// Detaches the program, then lets the reader drain what is left and returns what
    /// it got. Call it once the process has exited, so that all of its records are in.
    pub fn finish(self) -> anyhow::Result<Drained> {
        drop(self.ebpf);
        let Some(reader) = self.reader else {
            return Ok(Drained::default());
        };
        reader.stop.store(true, Ordering::SeqCst);
        match reader.thread.join() {
            Ok(drained) => drained,
            Err(_) => bail!("the floor's reader panicked"),
        }
    }
}

impl Reader {
    fn start(ring: RingBuf<MapData>, wake: Wake, cpus: Vec<usize>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                set_affinity(0, &cpus)?;
                read(ring, wake, &stop)
            })
        };
        Self { stop, thread }
    }
}

/// The reader: drains the ring whenever it is told to (`wake`) until `stop`, then once more.
fn read(mut ring: RingBuf<MapData>, wake: Wake, stop: &AtomicBool) -> anyhow::Result<Drained> {
    let mut got = Drained::default();
    let epoll = Epoll::new(ring.as_raw_fd())?;
    loop {
        // Read before the last drain: every record submitted before `stop` was set
        // is then drained.
        let stopping = stop.load(Ordering::SeqCst);
        if !stopping {
            match wake {
                Wake::Ring => epoll.wait()?,
                Wake::Polled => std::thread::sleep(POLL_EVERY),
            }
        }
        let before = got.records;
        while let Some(record) = ring.next() {
            got.add(&record)?;
        }
        got.drains += u64::from(got.records > before);
        if stopping {
            return Ok(got);
        }
    }
}

/// An epoll instance on the ring's fd, edge-triggered as the daemon's event loop
/// (tokio) registers it.
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new(ring: i32) -> anyhow::Result<Self> {
        // Safety: no pointer arguments; the fd returned is checked, then owned.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            bail!("epoll_create1: {}", std::io::Error::last_os_error());
        }
        // Safety: a new fd that nothing else owns.
        let epoll = Self(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 0,
        };
        // Safety: valid fds and one event.
        if unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, ring, &mut event) } != 0 {
            bail!(
                "epoll_ctl on the floor's ring: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(epoll)
    }

    /// Waits until the ring has new records (or `STOP_CHECK_MS` passed).
    pub(crate) fn wait(&self) -> anyhow::Result<()> {
        self.wait_ms(STOP_CHECK_MS)
    }

    /// Waits until the ring has new records, or `ms` passed.
    pub(crate) fn wait_ms(&self, ms: i32) -> anyhow::Result<()> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // Safety: room for one event.
        if unsafe { libc::epoll_wait(self.0.as_raw_fd(), &mut event, 1, ms) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                bail!("epoll_wait on the floor's ring: {e}");
            }
        }
        Ok(())
    }
}
