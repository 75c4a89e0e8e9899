//! A reader that drains the daemon's ring (`EVENTS`) and does nothing with the records
//! but count them by kind: with the daemon's kernel programs loaded by a bench, what
//! the kernel side of the daemon costs without its userspace. Drained as the daemon
//! does: when the ring wakes the reader, and every `DRAIN_TICK` (lifecycle records
//! wake nobody until 64 KiB pile up, see monitor-ebpf's emit.rs). Optionally it
//! also releases every exec'ed process from the kernel's pending state after each
//! drain, as the daemon does for processes no glob matches (else a long-lived program
//! exec'ed meanwhile, a compiler, stays pending and every open of it is a record).
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
use aya::maps::{HashMap, MapData, RingBuf};
use monitor_common::{Header, WatchState, kind};

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
    /// Open records by (program as exec'ed or `(no exec seen) comm`, succeeded), and by
    /// (program, "ok PATH" or "failed PATH").
    pub opens_by_exe: BTreeMap<(String, bool), u64>,
    pub opens_by_path: BTreeMap<(String, String), u64>,
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
    /// `release`: the `WATCHED` map, to release exec'ed processes from.
    pub fn start(ring: RingBuf<MapData>, release: Option<HashMap<MapData, u32, WatchState>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || read(ring, release, &stop))
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

fn read(
    mut ring: RingBuf<MapData>,
    mut release: Option<HashMap<MapData, u32, WatchState>>,
    stop: &AtomicBool,
) -> anyhow::Result<Counts> {
    use std::os::fd::AsRawFd as _;
    let mut got = Counts::default();
    let epoll = Epoll::new(ring.as_raw_fd())?;
    let mut exe_of: std::collections::HashMap<u32, String> = Default::default();
    loop {
        // Read before the last drain: every record submitted before `stop` is drained.
        let stopping = stop.load(Ordering::SeqCst);
        if !stopping {
            epoll.wait_ms(DRAIN_TICK_MS)?;
        }
        let before = got.records();
        let mut execs = Vec::new();
        while let Some(record) = ring.next() {
            let header = (record.len() >= size_of::<Header>())
                // Safety: at least a header's bytes, read unaligned; integers only.
                .then(|| unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<Header>()) });
            let k = header.map_or(0, |h| h.kind);
            match (k, header) {
                (kind::EXEC, Some(h)) => {
                    execs.push(h.pid);
                    if record.len() >= size_of::<monitor_common::ExecMeta>() {
                        // Safety: at least the meta's bytes, read unaligned; integers only.
                        let m = unsafe {
                            std::ptr::read_unaligned(record.as_ptr().cast::<monitor_common::ExecMeta>())
                        };
                        let at = std::mem::offset_of!(monitor_common::ExecRecord, filename);
                        let end = (at + m.filename_len as usize).min(record.len());
                        exe_of.insert(h.pid, String::from_utf8_lossy(&record[at..end]).into_owned());
                    }
                }
                (kind::OPEN, Some(h)) if record.len() >= size_of::<monitor_common::OpenMeta>() => {
                    // Safety: at least the meta's bytes, read unaligned; integers only.
                    let m = unsafe {
                        std::ptr::read_unaligned(record.as_ptr().cast::<monitor_common::OpenMeta>())
                    };
                    let at = std::mem::offset_of!(monitor_common::OpenRecord, path);
                    let end = (at + m.path_len as usize).min(record.len());
                    let exe = exe_of
                        .entry(h.pid)
                        .or_insert_with(|| {
                            let comm =
                                std::fs::read_to_string(format!("/proc/{}/comm", h.pid)).unwrap_or_default();
                            format!("(no exec seen) {}", comm.trim())
                        })
                        .clone();
                    let path = String::from_utf8_lossy(&record[at..end]).into_owned();
                    *got.opens_by_exe.entry((exe.clone(), m.ret >= 0)).or_default() += 1;
                    let ok = if m.ret >= 0 { "ok" } else { "failed" };
                    *got.opens_by_path
                        .entry((exe, format!("{ok} {path}")))
                        .or_default() += 1;
                }
                // Its exit dropped its entry.
                (kind::EXIT, Some(h)) => execs.retain(|&p| p != h.pid),
                _ => {}
            }
            *got.by_kind.entry(k).or_default() += 1;
            got.bytes += record.len() as u64;
        }
        if let Some(watched) = release.as_mut() {
            for pid in execs {
                // Gone already (a lost exit record): nothing to release.
                let _ = watched.remove(&pid);
            }
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
