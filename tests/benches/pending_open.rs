//! What one syscall of a *pending* process costs in the daemon's `sys_exit`, by kind:
//! every freshly exec'ed program is pending (captured) until the daemon has decided
//! it is no server, so the exec path pays this for each syscall a new program makes
//! before its release (a dynamically linked program's loader opens its libraries then;
//! with `LD_LIBRARY_PATH` set it also fails to open them in each listed folder).
//!
//! This process loads the daemon's eBPF object, attaches `sys_exit` only, drains the
//! ring in a thread (as `exec_storm`'s (e) does), and times loops of one syscall with
//! itself unwatched and then pending in `WATCHED` (its bit set), rounds interleaved,
//! the median round reported; and, with the kernel's BPF run-time statistics on, the
//! nanoseconds per run of `sys_exit` in each case.
//!
//! By hand, as root: `cargo bench --package integration-tests --bench pending_open`.
use std::{ffi::CString, time::Instant};

use anyhow::Context as _;
use aya::{
    Btf, Ebpf,
    maps::{HashMap, MapData, RingBuf},
};
use integration_tests::{
    bench::{main_as_root, median},
    drain::Drain,
};
use monitor::kernel::{capture, watched_bits::WatchedBits};
use monitor_common::{WatchState, watch_state};

const ROUNDS: usize = 5;
const LOOPS: usize = 20_000;
const RING_BYTES: u32 = 16 * 1024 * 1024;

#[derive(Clone, Copy)]
enum Op {
    /// A syscall the capture does nothing with.
    Getppid,
    /// An open that fails with ENOENT (as the loader's search of LD_LIBRARY_PATH).
    FailedOpen,
    /// An open that succeeds (a library), and its close.
    OpenClose,
}

impl Op {
    const ALL: [Op; 3] = [Op::Getppid, Op::FailedOpen, Op::OpenClose];

    fn label(self) -> &'static str {
        match self {
            Op::Getppid => "getppid",
            Op::FailedOpen => "failed openat (ENOENT)",
            Op::OpenClose => "openat + close of a library",
        }
    }
}

fn run_op(op: Op, missing: &CString, library: &CString) {
    for _ in 0..LOOPS {
        // Safety: plain syscalls on valid NUL-terminated paths; a returned fd is closed.
        unsafe {
            match op {
                Op::Getppid => {
                    libc::getppid();
                }
                Op::FailedOpen => {
                    libc::openat(libc::AT_FDCWD, missing.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                }
                Op::OpenClose => {
                    let fd = libc::openat(libc::AT_FDCWD, library.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
            }
        }
    }
}

/// (runs, nanoseconds) of `sys_exit` so far.
fn sys_exit_time(ebpf: &Ebpf) -> anyhow::Result<(u64, u64)> {
    let p = ebpf.program("sys_exit").context("no program `sys_exit`")?;
    let info = p.info()?;
    Ok((info.run_count(), info.run_time().as_nanos() as u64))
}

struct Set {
    watched: HashMap<MapData, u32, WatchState>,
    bits: WatchedBits,
    pid: u32,
}

impl Set {
    fn pending(&mut self, on: bool) -> anyhow::Result<()> {
        if on {
            let state = WatchState {
                generation: 1,
                pending: watch_state::PENDING,
                ..WatchState::default()
            };
            self.watched.insert(self.pid, state, 0)?;
            self.bits.mark(self.pid);
        } else {
            // Its stale bit is cleared by its next syscall.
            let _ = self.watched.remove(&self.pid);
        }
        Ok(())
    }
}

fn run() -> anyhow::Result<()> {
    capture::mount_tracefs()?;
    let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
    let mut ebpf = capture::load_object(RING_BYTES, false)?;
    capture::attach_btf_tracepoint(&mut ebpf, "sys_exit", "sys_exit", &btf)?;
    let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("no map `EVENTS`")?)?;
    let watched = HashMap::try_from(ebpf.take_map("WATCHED").context("no map `WATCHED`")?)?;
    let bits = WatchedBits::new(ebpf.take_map("WATCHED_BITS").context("no map `WATCHED_BITS`")?)?;
    let mut set = Set {
        watched,
        bits,
        pid: std::process::id(),
    };
    let reader = Drain::start(ring, None);
    // A path whose folders exist, its file not (what the loader tries), and a library.
    let missing = CString::new("/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libnothing-here.so.6")?;
    let library = CString::new("/lib/x86_64-linux-gnu/libc.so.6")?;
    println!("pending_open: one syscall of this process, unwatched vs pending, {ROUNDS} rounds of {LOOPS}");
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); Op::ALL.len() * 2];
    for round in 0..ROUNDS {
        for i in 0..Op::ALL.len() * 2 {
            let k = (i + round) % (Op::ALL.len() * 2);
            let (op, pending) = (Op::ALL[k / 2], k % 2 == 1);
            set.pending(pending)?;
            let start = Instant::now();
            run_op(op, &missing, &library);
            wall[k].push(start.elapsed().as_nanos() as f64 / LOOPS as f64);
        }
    }
    // The same again, untimed, with the run-time statistics on.
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;
    let mut bpf = Vec::new();
    for (k, op) in Op::ALL
        .iter()
        .flat_map(|&op| [(op, false), (op, true)])
        .enumerate()
    {
        let _ = k;
        set.pending(op.1)?;
        let (c0, n0) = sys_exit_time(&ebpf)?;
        run_op(op.0, &missing, &library);
        let (c1, n1) = sys_exit_time(&ebpf)?;
        bpf.push((
            (n1 - n0) as f64 / (c1 - c0).max(1) as f64,
            (c1 - c0) as f64 / LOOPS as f64,
        ));
    }
    drop(stats);
    set.pending(false)?;
    drop(ebpf);
    let counts = reader.finish()?;
    println!(
        "{:<28} | {:>8} | {:>14} | {:>14} | {:>20}",
        "syscall", "pending", "ns per loop", "sys_exit ns/run", "sys_exit runs/loop"
    );
    for (k, samples) in wall.iter().enumerate() {
        let (op, pending) = (Op::ALL[k / 2], k % 2 == 1);
        let (ns_run, runs) = bpf[k];
        println!(
            "{:<28} | {:>8} | {:>14.0} | {:>14.0} | {:>20.2}",
            op.label(),
            if pending { "yes" } else { "no" },
            median(samples),
            ns_run,
            runs
        );
    }
    println!("records drained: {} ({} bytes)", counts.records(), counts.bytes);
    Ok(())
}

fn main() -> std::process::ExitCode {
    main_as_root("pending_open", run)
}
