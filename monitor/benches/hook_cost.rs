//! What the daemon's capture hook costs processes that are NOT watched.
//!
//! One process, one run, as root. Six configurations:
//! (a) no program attached (bare kernel);
//! (b) `sys_exit_empty`, an empty tp_btf program on `sys_exit` (the daemon's hook type);
//! (c) before the pid bitmap: `sys_exit_raw_lookup`, a raw tracepoint that looks the
//!     process up in the `WATCHED` hash and leaves, which is what the capture program
//!     did for unwatched processes before `WATCHED_BITS` (and before discovery and
//!     tp_btf);
//! (d) the real `sys_exit` (tp_btf) loaded with `DISCOVERY=0`;
//! (e) the same loaded with `DISCOVERY=1`, the default: an unwatched syscall also has
//!     two registers loaded (plain loads through the BTF pointer) and compared; only
//!     reads of fd 0 (and of fds marked by a dup of it or an accept) read user memory.
//!
//! (f) `sys_enter_pid_filter`, a raw tracepoint on `sys_enter` that gets the pid,
//!     compares it with one value and leaves: the least any per-process monitor does.
//!
//! (d) and (e) are two loads of the same object that differ only in the `DISCOVERY`
//! global; one configuration is attached at a time, and this process is never in the
//! watched set. Three workloads, each timed under every configuration: a 1-byte
//! `write()` to /dev/null (1 syscall), a 1-byte pipe round trip (write, then read back:
//! 2 syscalls) and a 64-byte pipe round trip of bytes that are not JSON (2 syscalls
//! returning 64 on fds other than 0, like most I/O on a host: discovery loads two
//! registers and leaves; before the fd marks it also read 8 bytes of user memory). The
//! configurations are interleaved over many short rounds and the median of each is
//! reported, so slow drifts of the machine hit all of them alike.
//!
//! `cargo xtask bench` (or, after `cargo xtask setup`, `cargo bench --bench hook_cost`).
use std::{
    fs,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::HashMap,
    programs::{Program, raw_trace_point::RawTracePointLinkId, tp_btf::BtfTracePointLinkId},
};
use monitor_common::WatchState;

const HOOK: &str = "sys_exit";
/// Many short rounds rather than a few long ones: this machine's noise comes in bursts.
const ROUNDS: usize = 15;
/// 1-byte write() calls to /dev/null per measurement.
const WRITES: u64 = 400_000;
/// Pipe round trips (write, then read it back: 2 syscalls) per measurement, per size.
const ROUND_TRIPS: u64 = 200_000;
const WARM_UP: u64 = 20_000;
/// Bytes of the long round trip: at least `MIN_PROBE_BYTES` (32), so that discovery looks.
const LONG: usize = 64;
/// What the long round trip sends. Never JSON (`{`, `[`) nor `POST `: that would make
/// this process pending in the kernel, with no daemon to release it.
const LONG_BYTES: [u8; LONG] = [b'x'; LONG];

/// The two loads of the object, by their `DISCOVERY` value.
const DISCOVERY_OFF: usize = 0;
const DISCOVERY_ON: usize = 1;

/// In the order of `Config::ALL` (the discriminant is the index).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    Bare,
    Empty,
    Before,
    DiscoveryOff,
    DiscoveryOn,
    MinimalFilter,
}

impl Config {
    const ALL: [Config; 6] = [
        Config::Bare,
        Config::Empty,
        Config::Before,
        Config::DiscoveryOff,
        Config::DiscoveryOn,
        Config::MinimalFilter,
    ];

    fn label(self) -> &'static str {
        match self {
            Config::Bare => "(a) no program (bare kernel)",
            Config::Empty => "(b) sys_exit_empty (tp_btf) attached",
            Config::Before => "(c) before: raw_tp, WATCHED hash lookup",
            Config::DiscoveryOff => "(d) sys_exit, discovery off",
            Config::DiscoveryOn => "(e) sys_exit, discovery on (default)",
            Config::MinimalFilter => "(f) minimal pid filter, raw_tp sys_enter",
        }
    }

    /// The program, the load (`DISCOVERY_OFF` or `DISCOVERY_ON`) it comes from, and the
    /// raw tracepoint it attaches to when it is one.
    fn program(self) -> Option<(&'static str, usize)> {
        match self {
            Config::Bare => None,
            Config::Empty => Some(("sys_exit_empty", DISCOVERY_ON)),
            Config::Before => Some(("sys_exit_raw_lookup", DISCOVERY_OFF)),
            Config::DiscoveryOff => Some(("sys_exit", DISCOVERY_OFF)),
            Config::DiscoveryOn => Some(("sys_exit", DISCOVERY_ON)),
            Config::MinimalFilter => Some(("sys_enter_pid_filter", DISCOVERY_OFF)),
        }
    }

    /// The raw tracepoint a raw_tp program of this configuration attaches to.
    fn raw_hook(self) -> &'static str {
        match self {
            Config::MinimalFilter => "sys_enter",
            _ => HOOK,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Write,
    Pipe,
    LongPipe,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Write, Workload::Pipe, Workload::LongPipe];

    /// Title of the table's column group.
    fn title(self) -> &'static str {
        match self {
            Workload::Write => "write() 1 B to /dev/null",
            Workload::Pipe => "pipe 1 B round trip",
            Workload::LongPipe => "pipe 64 B round trip, not JSON",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Workload::Write => "write 1 B",
            Workload::Pipe => "pipe 1 B",
            Workload::LongPipe => "pipe 64 B",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Workload::Write => "ns/op",
            Workload::Pipe | Workload::LongPipe => "ns/rt",
        }
    }

    /// Hooked syscalls per operation.
    fn syscalls(self) -> f64 {
        match self {
            Workload::Write => 1.0,
            Workload::Pipe | Workload::LongPipe => 2.0,
        }
    }

    fn count(self) -> u64 {
        match self {
            Workload::Write => WRITES,
            Workload::Pipe | Workload::LongPipe => ROUND_TRIPS,
        }
    }
}

/// Where the workloads write and read.
struct Fds {
    devnull: fs::File,
    rd: i32,
    wr: i32,
}

impl Fds {
    fn run(&self, workload: Workload, n: u64) -> anyhow::Result<Duration> {
        match workload {
            Workload::Write => write_calls(&self.devnull, n),
            Workload::Pipe => pipe_round_trips(self.rd, self.wr, &[0x55], n),
            Workload::LongPipe => pipe_round_trips(self.rd, self.wr, &LONG_BYTES, n),
        }
    }
}

const NC: usize = Config::ALL.len();
const NW: usize = Workload::ALL.len();

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
         write: {WRITES} 1-byte write()s to /dev/null; pipe: {ROUND_TRIPS} 1-byte and \
         {ROUND_TRIPS} {LONG}-byte (not JSON) round trips (write then read back in this thread, \
         2 syscalls)"
    );

    // Indexed by the DISCOVERY value each was loaded with.
    let mut ebpf = [load(DISCOVERY_OFF as u32)?, load(DISCOVERY_ON as u32)?];
    let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
    for config in Config::ALL {
        if let Some((name, instance)) = config.program() {
            load_program(&mut ebpf[instance], name, &btf)
                .with_context(|| format!("loading program `{name}` (DISCOVERY={instance})"))?;
        }
    }
    let pid = std::process::id();
    ensure_unwatched(&ebpf, pid)?;

    let fds = {
        let devnull = fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .context("opening /dev/null")?;
        let (rd, wr) = pipe()?;
        Fds { devnull, rd, wr }
    };

    // samples[round][config][workload], ns per operation.
    let mut samples = [[[0f64; NW]; NC]; ROUNDS];
    let started = Instant::now();
    for (round, sample) in samples.iter_mut().enumerate() {
        // Rotate the order so that no configuration always runs first or last.
        for k in 0..NC {
            let i = (round + k) % NC;
            let config = Config::ALL[i];
            let link = attach(&mut ebpf, config)?;
            for (w, workload) in Workload::ALL.into_iter().enumerate() {
                fds.run(workload, WARM_UP)?;
                let t = fds.run(workload, workload.count())?;
                sample[i][w] = per_op(t, workload.count());
            }
            detach(&mut ebpf, config, link)?;
        }
        eprintln!(
            "hook_cost: round {}/{ROUNDS} done ({:.0} s)",
            round + 1,
            started.elapsed().as_secs_f64()
        );
    }
    // Safety: both fds came from pipe2 and are closed once.
    unsafe {
        libc::close(fds.rd);
        libc::close(fds.wr);
    }
    // Had the long round trip made this process pending, (d) would have timed the
    // watched path.
    ensure_unwatched(&ebpf, pid)?;

    // series(config, workload): that configuration's ns per operation in each round.
    let series = |i: usize, w: usize| -> [f64; ROUNDS] { std::array::from_fn(|r| samples[r][i][w]) };
    let med: [[f64; NW]; NC] = std::array::from_fn(|i| std::array::from_fn(|w| median(series(i, w))));
    let (bare, empty) = (med[0], med[1]);
    const LABEL: usize = 42;
    const GROUP: usize = 34;
    println!();
    let mut titles = format!("{:<LABEL$}", "");
    let mut header = format!("{:<LABEL$}", "configuration");
    for workload in Workload::ALL {
        titles += &format!(" | {:<GROUP$}", workload.title());
        header += &format!(
            " | {:>9} {:>6} {:>8} {:>8}",
            workload.unit(),
            "rate",
            "+ns bare",
            "+ns empt"
        );
    }
    println!("{}", titles.trim_end());
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    // Extra ns per hooked syscall.
    let extra = |x: f64, base: f64, workload: Workload| format!("{:+.1}", (x - base) / workload.syscalls());
    for (i, config) in Config::ALL.into_iter().enumerate() {
        let mut line = format!("{:<LABEL$}", config.label());
        for (w, workload) in Workload::ALL.into_iter().enumerate() {
            let x = med[i][w];
            line += &format!(
                " | {:>9.1} {:>6} {:>8} {:>8}",
                x,
                format!("x{:.2}", bare[w] / x),
                extra(x, bare[w], workload),
                extra(x, empty[w], workload),
            );
        }
        println!("{line}");
    }
    println!();
    println!(
        "rate: bare kernel's time / this configuration's (operations per second relative to bare); \
         +ns bare / +ns empt: extra ns per hooked syscall versus (a) / versus (b)"
    );
    println!(
        "(c) is the unwatched path before the pid bitmap (one hash lookup); (e) is what every \
         unwatched process pays now; (d) is (e) without discovery; (f) is the least a \
         per-process monitor can do (one hook, get the pid, compare, leave)"
    );
    // Paired: both ran in the same round, so a round's drift cancels out.
    let compare = |a: Config, b: Config| {
        let (a, b) = (a as usize, b as usize);
        Workload::ALL
            .into_iter()
            .enumerate()
            .map(|(w, workload)| {
                let paired = median(std::array::from_fn(|r| samples[r][a][w] - samples[r][b][w]));
                format!(
                    "{} x{:.3} ({} ns/syscall, paired {})",
                    workload.short(),
                    med[b][w] / med[a][w],
                    extra(med[a][w], med[b][w], workload),
                    extra(paired, 0.0, workload)
                )
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!(
        "UNWATCHED PATH (e) vs EMPTY PROGRAM ON THE SAME HOOK (b), rate (b)/(e): {}",
        compare(Config::DiscoveryOn, Config::Empty)
    );
    println!(
        "UNWATCHED PATH (e) vs MINIMAL PID FILTER (f), rate (f)/(e): {}",
        compare(Config::DiscoveryOn, Config::MinimalFilter)
    );
    println!(
        "UNWATCHED PATH (e) vs BEFORE THE PID BITMAP (c), rate (c)/(e): {}",
        compare(Config::DiscoveryOn, Config::Before)
    );
    println!("  (paired: median over rounds of that round's difference, per syscall)");
    // For `cargo xtask bench`'s summary table.
    let (write, pipe) = (Workload::Write as usize, Workload::Pipe as usize);
    let row = |what: &str, w: usize, a: Config, b: Config, budget: &str| {
        let (now, base) = (med[a as usize][w], med[b as usize][w]);
        println!(
            "summary | {what} | {now:.1} ns | {base:.1} ns | x{:.3} | {budget}",
            base / now
        );
    };
    row(
        "unwatched 1-byte write(): sys_exit vs an empty program on the same hook",
        write,
        Config::DiscoveryOn,
        Config::Empty,
        ">= x0.95",
    );
    row(
        "unwatched 1-byte write(): sys_exit vs a minimal raw sys_enter pid filter",
        write,
        Config::DiscoveryOn,
        Config::MinimalFilter,
        ">= x0.95",
    );
    row(
        "unwatched pipe ping-pong: sys_exit vs a minimal raw sys_enter pid filter",
        pipe,
        Config::DiscoveryOn,
        Config::MinimalFilter,
        ">= x0.95",
    );
    println!("per-round ns (write | pipe 1 B round trip | pipe {LONG} B round trip):");
    let show = |v: &[f64; ROUNDS]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" ");
    for (i, config) in Config::ALL.into_iter().enumerate() {
        let rounds = (0..NW).map(|w| show(&series(i, w))).collect::<Vec<_>>();
        println!("  {:<LABEL$} {}", config.label(), rounds.join(" | "));
    }
    Ok(())
}

/// Loads the object (maps and relocations; programs are loaded one by one later) with
/// `DISCOVERY` set to `discovery`. `TP_OFFSETS` keeps its defaults: the raw tracepoint
/// does not use them on the paths timed here.
fn load(discovery: u32) -> anyhow::Result<Ebpf> {
    EbpfLoader::new()
        .override_global("DISCOVERY", &discovery, true)
        // Only the raw tracepoint programs are loaded: the ring buffer stays idle.
        .map_max_entries("EVENTS", 1 << 16)
        .load(monitor::kernel::capture::ebpf_object())
        .with_context(|| format!("loading the eBPF object with DISCOVERY={discovery}"))
}

/// Fails if `pid` is in either load's watched set: the bench times unwatched processes.
fn ensure_unwatched(ebpf: &[Ebpf; 2], pid: u32) -> anyhow::Result<()> {
    for (instance, ebpf) in ebpf.iter().enumerate() {
        let watched: HashMap<_, u32, WatchState> = HashMap::try_from(
            ebpf.map("WATCHED")
                .context("the eBPF object has no map `WATCHED`")?,
        )?;
        if watched.get(&pid, 0).is_ok() {
            bail!(
                "pid {pid} is in the watched set (DISCOVERY={instance}); the bench measures unwatched \
                 processes"
            );
        }
    }
    Ok(())
}

/// The raw tracepoint "before" program, or a tp_btf one (the daemon's hook now).
fn load_program(ebpf: &mut Ebpf, name: &str, btf: &Btf) -> anyhow::Result<()> {
    let prog = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program `{name}`"))?;
    match prog {
        Program::RawTracePoint(p) => p.load()?,
        Program::BtfTracePoint(p) => p.load(HOOK, btf)?,
        _ => bail!("program `{name}` is neither a raw tracepoint nor tp_btf"),
    }
    Ok(())
}

enum Link {
    Raw(RawTracePointLinkId),
    Btf(BtfTracePointLinkId),
}

fn attach(ebpf: &mut [Ebpf; 2], config: Config) -> anyhow::Result<Option<Link>> {
    let Some((name, instance)) = config.program() else {
        return Ok(None);
    };
    let prog = ebpf[instance]
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program `{name}`"))?;
    let link = match prog {
        Program::RawTracePoint(p) => Link::Raw(p.attach(config.raw_hook())?),
        Program::BtfTracePoint(p) => Link::Btf(p.attach()?),
        _ => bail!("program `{name}` is neither a raw tracepoint nor tp_btf"),
    };
    Ok(Some(link))
}

fn detach(ebpf: &mut [Ebpf; 2], config: Config, link: Option<Link>) -> anyhow::Result<()> {
    let (Some((name, instance)), Some(link)) = (config.program(), link) else {
        return Ok(());
    };
    let prog = ebpf[instance]
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program `{name}`"))?;
    match (prog, link) {
        (Program::RawTracePoint(p), Link::Raw(l)) => p.detach(l)?,
        (Program::BtfTracePoint(p), Link::Btf(l)) => p.detach(l)?,
        _ => bail!("program `{name}`: link of another kind"),
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

/// Writes `out` into the pipe and reads it back, `n` times.
fn pipe_round_trips(rd: i32, wr: i32, out: &[u8], n: u64) -> anyhow::Result<Duration> {
    let mut back = [0u8; LONG];
    let back = &mut back[..out.len()];
    let len = out.len() as isize;
    let start = Instant::now();
    for _ in 0..n {
        // Safety: `out.len()` bytes from/into live buffers on the pipe's open fds.
        let (w, r) = unsafe {
            (
                libc::write(wr, out.as_ptr().cast(), out.len()),
                libc::read(rd, back.as_mut_ptr().cast(), back.len()),
            )
        };
        if w != len || r != len {
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
