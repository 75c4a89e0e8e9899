//! A reader that drains the daemon's ring (`EVENTS`) and does nothing with the records
//! but count them by kind: with the daemon's kernel programs loaded by a bench, what
//! the kernel side of the daemon costs without its userspace. Drained as the daemon
//! does: when the ring wakes the reader, and every `DRAIN_TICK` (lifecycle records
//! wake nobody until 64 KiB pile up, see monitor-ebpf's emit.rs).
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::bail;
use aya::maps::{MapData, RingBuf};
use monitor_common::Header;

use crate::floor::Epoll;

/// The daemon's drain tick (`DRAIN_TICK` in monitor/src/daemon.rs).
const DRAIN_TICK_MS: i32 = 5;

/// What the reader got.
#[derive(Debug, Default)]
pub struct Counts {
    /// Records by `Header::kind` (0: a record too short for a header).
    pub by_kind: BTreeMap<u32, u64>,
    pub bytes: u64,
    /// Drains that found records: about the wake-ups the reader took.
    pub drains: u64,
    /// CPU time of the reader thread (user + system).
    pub cpu: Duration,
}

impl Counts {
    pub fn records(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// A thread draining one ring until `finish`.
pub struct Drain {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Counts>>,
}

impl Drain {
    pub fn start(ring: RingBuf<MapData>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || read(ring, &stop))
        };
        Self { stop, thread }
    }

    /// Stops the reader after one last drain; call it once the programs are detached.
    pub fn finish(self) -> anyhow::Result<Counts> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.join() {
            Ok(counts) => counts,
            Err(_) => bail!("the ring's reader panicked"),
        }
    }
}

fn read(mut ring: RingBuf<MapData>, stop: &AtomicBool) -> anyhow::Result<Counts> {
    use std::os::fd::AsRawFd as _;
    let mut got = Counts::default();
    let epoll = Epoll::new(ring.as_raw_fd())?;
    loop {
        // Read before the last drain: every record submitted before `stop` is drained.
        let stopping = stop.load(Ordering::SeqCst);
        if !stopping {
            epoll.wait_ms(DRAIN_TICK_MS)?;
        }
        let before = got.records();
        while let Some(record) = ring.next() {
            let kind = if record.len() >= size_of::<Header>() {
                // Safety: at least a header's bytes, read unaligned; integers only.
                unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<Header>()) }.kind
            } else {
                0
            };
            *got.by_kind.entry(kind).or_default() += 1;
            got.bytes += record.len() as u64;
        }
        got.drains += u64::from(got.records() > before);
        if stopping {
            got.cpu = thread_cpu();
            return Ok(got);
        }
    }
}

/// CPU time the calling thread used so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: clock_gettime writes into the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
