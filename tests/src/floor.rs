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
    os::fd::AsRawFd as _,
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
/// How long the woken reader waits in poll() before it looks at its stop flag.
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
    /// caught up), as the daemon's data records are; the reader sleeps in poll().
    Ring,
    /// Records are submitted with `BPF_RB_NO_WAKEUP`; the reader drains every 1 ms.
    /// Set apart from `Ring`, this is what the wake-ups cost.
    Polled,
}

/// Bytes and records the reader got.
#[derive(Debug, Default)]
pub struct Drained {
    pub records: u64,
    /// Bytes by (fd, direction).
    bytes: BTreeMap<(i32, u32), u64>,
}

impl Drained {
    /// Bytes the process read from `fd` (the floor copies read and write only).
    pub fn read(&self, fd: i32) -> u64 {
        self.bytes
            .get(&(fd, u32::from(direction::READ)))
            .copied()
            .unwrap_or(0)
    }

    /// Bytes the process wrote to `fd`.
    pub fn written(&self, fd: i32) -> u64 {
        self.bytes
            .get(&(fd, u32::from(direction::WRITE)))
            .copied()
            .unwrap_or(0)
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
    loop {
        // Read before the last drain: every record submitted before `stop` was set
        // is then drained.
        let stopping = stop.load(Ordering::SeqCst);
        if !stopping {
            match wake {
                Wake::Ring => wait_readable(&ring)?,
                Wake::Polled => std::thread::sleep(POLL_EVERY),
            }
        }
        while let Some(record) = ring.next() {
            got.add(&record)?;
        }
        if stopping {
            return Ok(got);
        }
    }
}

/// Waits in poll() until the ring has records (or `STOP_CHECK_MS` passed).
fn wait_readable(ring: &RingBuf<MapData>) -> anyhow::Result<()> {
    let mut fd = libc::pollfd {
        fd: ring.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Safety: one valid pollfd.
    if unsafe { libc::poll(&mut fd, 1, STOP_CHECK_MS) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            bail!("poll on the floor's ring: {e}");
        }
    }
    Ok(())
}
