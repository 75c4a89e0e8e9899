//! What the daemon's capture hook costs processes that are NOT watched.
//!
//! One process, one run, as root: the same two syscall workloads are timed with
//! (a) no program attached, (b) `sys_exit_empty` (an empty program on the same raw
//! tracepoint) and (c) the real `sys_exit` capture program, with this process not in
//! the watched set. The configurations are interleaved over several rounds and the
//! median of each is reported, so slow drifts of the machine hit all three alike.
//!
//! `cargo xtask bench` (or, after `cargo xtask setup`, `cargo bench --bench hook_cost`).
use std::{
    fs,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::HashMap,
    programs::{RawTracePoint, raw_trace_point::RawTracePointLinkId},
};
use monitor_common::WatchState;

/// The eBPF object built by monitor/build.rs (the one the daemon embeds).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

const HOOK: &str = "sys_exit";
const ROUNDS: usize = 5;
/// 1-byte write() calls to /dev/null per measurement.
const WRITES: u64 = 1_500_000;
/// Pipe round trips (write 1 byte, read it back: 2 syscalls) per measurement.
const ROUND_TRIPS: u64 = 750_000;
const WARM_UP: u64 = 50_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    Bare,
    Empty,
    Capture,
}

impl Config {
    const ALL: [Config; 3] = [Config::Bare, Config::Empty, Config::Capture];

    fn label(self) -> &'static str {
        match self {
            Config::Bare => "(a) no program (bare kernel)",
            Config::Empty => "(b) sys_exit_empty attached",
            Config::Capture => "(c) sys_exit attached, unwatched",
        }
    }

    fn program(self) -> Option<&'static str> {
        match self {
            Config::Bare => None,
            Config::Empty => Some("sys_exit_empty"),
            Config::Capture => Some("sys_exit"),
        }
    }
}

fn main() -> ExitCode {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "hook_cost: must run as root (it loads and attaches eBPF programs): run `cargo xtask bench` as root"
        );
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hook_cost: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1);
    let cpu = pin_to_last_cpu(online as usize)?;
    println!("hook_cost: what the `{HOOK}` capture hook costs processes that are not watched");
    println!(
        "machine: nproc {online}, {}, Linux {}; this thread pinned to CPU {cpu}",
        cpu_model(),
        kernel_release()
    );
    println!(
        "{ROUNDS} rounds, configurations interleaved, median per configuration; \
         write: {WRITES} 1-byte write()s to /dev/null; pipe: {ROUND_TRIPS} 1-byte round trips \
         (write then read back in this thread, 2 syscalls)"
    );

    let mut ebpf = EbpfLoader::new()
        // Only the raw tracepoint programs are loaded: the ring buffer stays idle.
        .map_max_entries("EVENTS", 1 << 16)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object (maps and relocations)")?;
    for config in Config::ALL {
        if let Some(name) = config.program() {
            raw_tracepoint(&mut ebpf, name)?
                .load()
                .with_context(|| format!("loading program `{name}`"))?;
        }
    }
    {
        let pid = std::process::id();
        let watched: HashMap<_, u32, WatchState> = HashMap::try_from(
            ebpf.map("WATCHED")
                .context("the eBPF object has no map `WATCHED`")?,
        )?;
        if watched.get(&pid, 0).is_ok() {
            bail!("pid {pid} is in the watched set; the bench measures unwatched processes");
        }
    }

    let devnull = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    let (rd, wr) = pipe()?;

    // samples[round][config][workload], ns per operation.
    let mut samples = [[[0f64; 2]; 3]; ROUNDS];
    for (round, sample) in samples.iter_mut().enumerate() {
        // Rotate the order so that no configuration always runs first or last.
        for k in 0..Config::ALL.len() {
            let i = (round + k) % Config::ALL.len();
            let config = Config::ALL[i];
            let link = attach(&mut ebpf, config)?;
            write_calls(&devnull, WARM_UP)?;
            let t = write_calls(&devnull, WRITES)?;
            sample[i][0] = per_op(t, WRITES);
            pipe_round_trips(rd, wr, WARM_UP)?;
            let t = pipe_round_trips(rd, wr, ROUND_TRIPS)?;
            sample[i][1] = per_op(t, ROUND_TRIPS);
            detach(&mut ebpf, config, link)?;
        }
        eprintln!("hook_cost: round {}/{ROUNDS} done", round + 1);
    }
    // Safety: both fds came from pipe2 and are closed once.
    unsafe {
        libc::close(rd);
        libc::close(wr);
    }

    // series(config, workload): that configuration's ns per operation in each round.
    let series = |i: usize, w: usize| -> [f64; ROUNDS] { std::array::from_fn(|r| samples[r][i][w]) };
    let med: [[f64; 2]; 3] = std::array::from_fn(|i| [median(series(i, 0)), median(series(i, 1))]);
    let (bare, empty) = (med[0], med[1]);
    println!();
    println!(
        "{:<33} | {:>9} {:>6} {:>8} {:>8} | {:>10} {:>6} {:>8} {:>8}",
        "configuration",
        "write ns",
        "rate",
        "+ns bare",
        "+ns empt",
        "pipe ns/rt",
        "rate",
        "+ns bare",
        "+ns empt"
    );
    println!("{}", "-".repeat(33 + 3 + 34 + 3 + 35));
    for (i, config) in Config::ALL.into_iter().enumerate() {
        let [w, p] = med[i];
        // Extra ns per hooked syscall: the pipe round trip is two syscalls.
        let extra = |x: f64, base: f64, syscalls: f64| format!("{:+.1}", (x - base) / syscalls);
        println!(
            "{:<33} | {:>9.1} {:>6} {:>8} {:>8} | {:>10.1} {:>6} {:>8} {:>8}",
            config.label(),
            w,
            format!("x{:.2}", bare[0] / w),
            extra(w, bare[0], 1.0),
            extra(w, empty[0], 1.0),
            p,
            format!("x{:.2}", bare[1] / p),
            extra(p, bare[1], 2.0),
            extra(p, empty[1], 2.0),
        );
    }
    println!();
    println!(
        "rate: bare kernel's time / this configuration's (operations per second relative to bare); \
         +ns bare / +ns empt: extra ns per syscall versus (a) / versus (b)"
    );
    println!("per-round ns (write | pipe round trip):");
    for (i, config) in Config::ALL.into_iter().enumerate() {
        let show = |v: &[f64; ROUNDS]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" ");
        println!(
            "  {:<33} {} | {}",
            config.label(),
            show(&series(i, 0)),
            show(&series(i, 1))
        );
    }
    Ok(())
}

fn raw_tracepoint<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut RawTracePoint> {
    let prog = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program `{name}`"))?;
    prog.try_into()
        .with_context(|| format!("program `{name}` is not a raw tracepoint"))
}

fn attach(ebpf: &mut Ebpf, config: Config) -> anyhow::Result<Option<RawTracePointLinkId>> {
    let Some(name) = config.program() else {
        return Ok(None);
    };
    let link = raw_tracepoint(ebpf, name)?
        .attach(HOOK)
        .with_context(|| format!("attaching `{name}` to raw tracepoint {HOOK}"))?;
    Ok(Some(link))
}

fn detach(ebpf: &mut Ebpf, config: Config, link: Option<RawTracePointLinkId>) -> anyhow::Result<()> {
    if let (Some(name), Some(link)) = (config.program(), link) {
        raw_tracepoint(ebpf, name)?
            .detach(link)
            .with_context(|| format!("detaching `{name}`"))?;
    }
    Ok(())
}

fn write_calls(file: &fs::File, n: u64) -> anyhow::Result<Duration> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    let byte = [0u8; 1];
    let start = Instant::now();
    for _ in 0..n {
        // Safety: writes one byte from a live buffer to an open fd.
        if unsafe { libc::write(fd, byte.as_ptr().cast(), 1) } != 1 {
            bail!("write to /dev/null: {}", std::io::Error::last_os_error());
        }
    }
    Ok(start.elapsed())
}

fn pipe_round_trips(rd: i32, wr: i32, n: u64) -> anyhow::Result<Duration> {
    let out = [0x55u8; 1];
    let mut back = [0u8; 1];
    let start = Instant::now();
    for _ in 0..n {
        // Safety: one byte from/into live buffers on the pipe's open fds.
        let (w, r) = unsafe {
            (
                libc::write(wr, out.as_ptr().cast(), 1),
                libc::read(rd, back.as_mut_ptr().cast(), 1),
            )
        };
        if w != 1 || r != 1 {
            bail!("pipe round trip: {}", std::io::Error::last_os_error());
        }
    }
    Ok(start.elapsed())
}

fn pipe() -> anyhow::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // Safety: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe2: {}", std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

fn per_op(t: Duration, n: u64) -> f64 {
    t.as_nanos() as f64 / n as f64
}

fn median(mut v: [f64; ROUNDS]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[ROUNDS / 2]
}

/// Pins this thread to the last online CPU, so that every measurement runs on the same one.
fn pin_to_last_cpu(online: usize) -> anyhow::Result<usize> {
    let cpu = online - 1;
    // Safety: a zeroed cpu_set_t is an empty set; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(cpu)
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}
