//! What the daemon adds to starting programs anywhere on the host, as root.
//!
//! Every exec, fork and exit on the host is a record for the daemon, and every freshly
//! exec'ed program is captured as pending until the daemon has decided it is no server.
//! This times a storm of `/bin/true` runs (spawn, exec, wait) from this process, piece
//! by piece, configurations interleaved over several rounds (order rotating), the
//! median round reported, each against the bare kernel of the same run:
//! (a) no daemon;
//! (b) an empty program on each of the exec path's hooks (the five tracepoints and the
//!     tp_btf `sys_exit`): what the hooks alone cost;
//! (c) the daemon's argv copy only (`execve_enter`, `execveat_enter`);
//! (d) (c) and the lifecycle programs (exec, fork, exit records; the pending mark),
//!     this bench's thread draining the ring as the daemon does (when woken, and every
//!     5 ms) and releasing the exec'ed processes from pending after each drain, as the
//!     daemon does for a glob that matches nothing, and nothing else;
//! (e) (d) and the daemon's `sys_exit`: a pending image's syscalls are captured
//!     (opens, closes) until it is released, /bin/true's for its whole life;
//! (f) the daemon running with a `--watch` glob that matches nothing.
//! (b) to (e) load the daemon's own eBPF object (`monitor::kernel::capture`).
//! The CPU time of the spawns (parent and child, from getrusage) and of whoever drains
//! the ring (this bench's reader, or the daemon's threads) are reported per spawn too,
//! and, from one more storm under (e) with the kernel's BPF run-time statistics on
//! (not timed: the statistics cost time themselves), the time spent in each program.
//!
//! The spawns run without `LD_LIBRARY_PATH`: `cargo bench` sets it (the target and
//! toolchain folders), and /bin/true's loader then fails to open libc.so.6 in each of
//! them and their hardware-capability subfolders, 43 failed opens per spawn that a
//! plain exec does not make (each one an open record while the image is pending).
//! `EXEC_STORM_KEEP_LD_LIBRARY_PATH=1` keeps it; `EXEC_STORM_ROUNDS=N` runs fewer rounds.
//! The open records are also counted by the program that made them, and by path.
//!
//! `cargo xtask bench` builds the daemon and runs this; by hand, after
//! `cargo xtask build`: `cargo bench --package integration-tests --bench exec_storm`.
use std::{
    collections::BTreeMap,
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    Btf, Ebpf,
    maps::{HashMap, RingBuf},
    programs::{BtfTracePoint, TracePoint},
};
use integration_tests::{
    Daemon,
    bench::{main_as_root, median},
    drain::{Counts, Drain},
    unique_tag,
};
use monitor::kernel::capture;
use monitor_common::kind;

// Short rounds, more of them: the median round is less hit by a busy neighbour.
const ROUNDS: usize = 7;
const RUNS: usize = 1_000;
/// The daemon's default ring.
const RING_BYTES: u32 = 16 * 1024 * 1024;

/// The exec path's tracepoints and the daemon's program on each.
const ARGV: &[(&str, &str, &str)] = &[
    ("execve_enter", "syscalls", "sys_enter_execve"),
    ("execveat_enter", "syscalls", "sys_enter_execveat"),
];
const LIFECYCLE: &[(&str, &str, &str)] = &[
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("task_newtask", "task", "task_newtask"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Setup {
    Bare,
    EmptyHooks,
    Argv,
    Lifecycle,
    Kernel,
    Daemon,
}

impl Setup {
    const ALL: [Setup; 6] = [
        Setup::Bare,
        Setup::EmptyHooks,
        Setup::Argv,
        Setup::Lifecycle,
        Setup::Kernel,
        Setup::Daemon,
    ];

    fn label(self) -> &'static str {
        match self {
            Setup::Bare => "(a) no daemon",
            Setup::EmptyHooks => "(b) empty programs on the hooks",
            Setup::Argv => "(c) argv copy only",
            Setup::Lifecycle => "(d) + records, pending mark",
            Setup::Kernel => "(e) + sys_exit on pending",
            Setup::Daemon => "(f) daemon, watching nothing",
        }
    }

    /// The summary row's words, for the rows `cargo xtask bench` collects.
    fn what(self) -> &'static str {
        match self {
            Setup::Bare => "",
            Setup::EmptyHooks => "empty programs on the exec path's hooks",
            Setup::Argv => "the daemon's argv copy at sys_enter_execve only",
            Setup::Lifecycle => "argv copy, exec/fork/exit records and the pending mark, ring drained",
            Setup::Kernel => "all the daemon's exec-path programs with sys_exit, ring drained",
            Setup::Daemon => "daemon watching nothing",
        }
    }
}

/// What one configuration's storm had running, dropped after it.
enum Running {
    Nothing,
    Programs {
        // Holds programs and links: dropping it detaches them.
        ebpf: Ebpf,
        reader: Option<Drain>,
    },
    Daemon(Daemon),
}

/// One configuration's storm: its time, and the CPU of whoever drained the ring.
struct Storm {
    elapsed: Duration,
    /// CPU time of the spawns themselves (`storm_cpu`).
    cpu: Duration,
    drainer_cpu: Option<Duration>,
    counts: Option<Counts>,
}

/// CPU time (user + system) of `who` (`RUSAGE_THREAD`, or `RUSAGE_CHILDREN`: the
/// children reaped so far).
fn cpu(who: i32) -> Duration {
    // Safety: a zeroed rusage is valid; getrusage writes into it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // Safety: as above.
    unsafe { libc::getrusage(who, &mut r) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// CPU time the storm's spawns cost: this thread's (clone, wait) and the children's
/// (exec, the program, exit), eBPF programs run in either included. Less hit than wall
/// time by whatever else the machine runs.
fn storm_cpu() -> Duration {
    cpu(libc::RUSAGE_THREAD) + cpu(libc::RUSAGE_CHILDREN)
}

/// Wall time and CPU time of `RUNS` spawns.
fn storm() -> anyhow::Result<(Duration, Duration)> {
    let cpu_before = storm_cpu();
    let start = Instant::now();
    for _ in 0..RUNS {
        let mut cmd = Command::new("/bin/true");
        if !keep_ld_library_path() {
            cmd.env_remove("LD_LIBRARY_PATH");
        }
        let status = cmd.stdin(Stdio::null()).status()?;
        if !status.success() {
            bail!("/bin/true failed: {status}");
        }
    }
    Ok((start.elapsed(), storm_cpu().saturating_sub(cpu_before)))
}

/// Whether the spawns keep this process's `LD_LIBRARY_PATH` (see the top of the file).
fn keep_ld_library_path() -> bool {
    std::env::var_os("EXEC_STORM_KEEP_LD_LIBRARY_PATH").is_some()
}

fn attach_empty(ebpf: &mut Ebpf, btf: &Btf) -> anyhow::Result<()> {
    let p: &mut TracePoint = ebpf
        .program_mut("tracepoint_empty")
        .context("no program `tracepoint_empty`")?
        .try_into()?;
    p.load()?;
    for &(_, category, name) in ARGV.iter().chain(LIFECYCLE) {
        p.attach(category, name)
            .with_context(|| format!("attaching tracepoint_empty to {category}:{name}"))?;
    }
    let p: &mut BtfTracePoint = ebpf
        .program_mut("sys_exit_empty")
        .context("no program `sys_exit_empty`")?
        .try_into()?;
    p.load("sys_exit", btf)?;
    p.attach()?;
    Ok(())
}

fn start(setup: Setup, btf: &Btf, nothing: &str, events: &std::path::Path) -> anyhow::Result<Running> {
    if setup == Setup::Bare {
        return Ok(Running::Nothing);
    }
    if setup == Setup::Daemon {
        return Ok(Running::Daemon(Daemon::start_with_events(
            &["--watch", nothing],
            events,
        )?));
    }
    let mut ebpf = capture::load_object(RING_BYTES, false)?;
    if setup == Setup::EmptyHooks {
        attach_empty(&mut ebpf, btf)?;
        return Ok(Running::Programs { ebpf, reader: None });
    }
    for &(prog, category, name) in ARGV {
        capture::attach_tracepoint(&mut ebpf, prog, category, name)?;
    }
    if setup == Setup::Argv {
        return Ok(Running::Programs { ebpf, reader: None });
    }
    for &(prog, category, name) in LIFECYCLE {
        capture::attach_tracepoint(&mut ebpf, prog, category, name)?;
    }
    if setup == Setup::Kernel {
        capture::attach_btf_tracepoint(&mut ebpf, "sys_exit", "sys_exit", btf)?;
    }
    let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("no map `EVENTS`")?)?;
    // As the daemon does for a glob that matches nothing: every exec'ed process is
    // released after the drain that brought its exec record.
    let watched = HashMap::try_from(ebpf.take_map("WATCHED").context("no map `WATCHED`")?)?;
    let reader = Some(Drain::start(ring, Some(watched)));
    Ok(Running::Programs { ebpf, reader })
}

/// CPU time of every live thread of `pid` so far (the first field of each task's
/// schedstat, nanoseconds on the CPU).
fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // a thread that just ended
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    Ok(Duration::from_nanos(ns))
}

fn timed(setup: Setup, btf: &Btf, nothing: &str, events: &std::path::Path) -> anyhow::Result<Storm> {
    let running = start(setup, btf, nothing, events)?;
    let daemon_before = match &running {
        Running::Daemon(d) => Some(process_cpu(d.pid())?),
        _ => None,
    };
    let (elapsed, cpu) = storm()?;
    Ok(match running {
        Running::Nothing => Storm {
            elapsed,
            cpu,
            drainer_cpu: None,
            counts: None,
        },
        Running::Programs { ebpf, reader } => {
            drop(ebpf);
            let counts = reader.map(Drain::finish).transpose()?;
            Storm {
                elapsed,
                cpu,
                drainer_cpu: counts.as_ref().map(|c| c.cpu),
                counts,
            }
        }
        Running::Daemon(d) => {
            let after = process_cpu(d.pid())?;
            d.stop(Duration::from_secs(5))?;
            Storm {
                elapsed,
                cpu,
                drainer_cpu: daemon_before.map(|b| after.saturating_sub(b)),
                counts: None,
            }
        }
    })
}

/// One more storm under (e) with the kernel's run-time statistics on: per program, its
/// runs and nanoseconds per spawn. `sys_exit` also runs for every other process's
/// syscalls meanwhile (its runs say how many).
fn program_times(
    btf: &Btf,
    nothing: &str,
    events: &std::path::Path,
) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let Running::Programs { ebpf, reader } = start(Setup::Kernel, btf, nothing, events)? else {
        bail!("(e) runs programs");
    };
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("BPF_ENABLE_STATS")?;
    let before = run_times(&ebpf);
    storm()?;
    let after = run_times(&ebpf);
    drop(stats);
    drop(ebpf);
    if let Some(r) = reader {
        r.finish()?;
    }
    Ok(after
        .into_iter()
        .map(|(name, (count, ns))| {
            let (c0, n0) = before.get(&name).copied().unwrap_or_default();
            (
                name,
                (count - c0) as f64 / RUNS as f64,
                (ns - n0) as f64 / RUNS as f64,
            )
        })
        .collect())
}

/// (runs, nanoseconds) of each loaded program so far.
fn run_times(ebpf: &Ebpf) -> BTreeMap<String, (u64, u64)> {
    ebpf.programs()
        .filter_map(|(name, p)| {
            let info = p.info().ok()?;
            Some((
                name.to_string(),
                (info.run_count(), info.run_time().as_nanos() as u64),
            ))
        })
        .filter(|(_, (count, _))| *count > 0)
        .collect()
}

fn kind_name(k: u32) -> String {
    match k {
        kind::EXEC => "exec".into(),
        kind::FORK => "fork".into(),
        kind::EXIT => "exit".into(),
        kind::DATA => "data".into(),
        kind::OPEN => "open".into(),
        kind::FD_CHANGE => "fd_change".into(),
        other => format!("kind {other}"),
    }
}

fn run() -> anyhow::Result<()> {
    capture::mount_tracefs()?;
    let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
    println!("exec_storm: what the daemon adds to spawn + exec + wait of /bin/true, piece by piece");
    let rounds: usize = std::env::var("EXEC_STORM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS);
    println!(
        "{rounds} rounds of {RUNS} runs per configuration, interleaved (order rotating); median round; LD_LIBRARY_PATH {}",
        if keep_ld_library_path() { "kept" } else { "removed" }
    );

    let events = std::env::temp_dir().join(format!("{}.jsonl", unique_tag("execstorm")));
    let nothing = format!("/nothing/{}", unique_tag("execstorm"));
    storm()?; // warm-up: page cache, allocator
    let mut results: BTreeMap<Setup, Vec<Storm>> = BTreeMap::new();
    for round in 0..rounds {
        for i in 0..Setup::ALL.len() {
            let setup = Setup::ALL[(i + round) % Setup::ALL.len()];
            let s = timed(setup, &btf, &nothing, &events)?;
            results.entry(setup).or_default().push(s);
        }
        eprintln!("exec_storm: round {}/{rounds} done", round + 1);
    }
    let times = program_times(&btf, &nothing, &events)?;
    let _ = std::fs::remove_file(&events);
    let per_run = |d: Duration| d.as_secs_f64() / RUNS as f64 * 1e6;
    let median_of =
        |v: &[Storm], f: fn(&Storm) -> Duration| median(&v.iter().map(|s| per_run(f(s))).collect::<Vec<_>>());
    let median_elapsed = |v: &[Storm]| median_of(v, |s| s.elapsed);
    let median_spawn_cpu = |v: &[Storm]| median_of(v, |s| s.cpu);
    let median_cpu = |v: &[Storm]| {
        let t: Vec<f64> = v.iter().filter_map(|s| s.drainer_cpu.map(per_run)).collect();
        (!t.is_empty()).then(|| median(&t))
    };
    let bare = median_elapsed(&results[&Setup::Bare]);
    let bare_cpu = median_spawn_cpu(&results[&Setup::Bare]);
    println!(
        "{:<36} | {:>10} | {:>7} | {:>8} | {:>13} | {:>8} | {:>18}",
        "configuration", "us per run", "rate", "+us", "spawn CPU us", "+CPU us", "drainer CPU us/run"
    );
    println!(
        "{}",
        "-".repeat(36 + 3 + 10 + 3 + 7 + 3 + 8 + 3 + 13 + 3 + 8 + 3 + 18)
    );
    for setup in Setup::ALL {
        let v = &results[&setup];
        let (t, c) = (median_elapsed(v), median_spawn_cpu(v));
        let drainer = median_cpu(v).map_or("-".to_string(), |c| format!("{c:.1}"));
        println!(
            "{:<36} | {t:>10.1} | {:>7} | {:>+8.1} | {c:>13.1} | {:>+8.1} | {drainer:>18}",
            setup.label(),
            format!("x{:.3}", bare / t),
            t - bare,
            c - bare_cpu
        );
    }
    // What the ring carried, per run, in the last round of each configuration that
    // drained it (the storm's own records and whatever else ran on the host).
    for setup in [Setup::Lifecycle, Setup::Kernel] {
        if let Some(c) = results[&setup].last().and_then(|s| s.counts.as_ref()) {
            let kinds: Vec<String> = c
                .by_kind
                .iter()
                .map(|(&k, &n)| format!("{} {:.2}", kind_name(k), n as f64 / RUNS as f64))
                .collect();
            println!(
                "{}: records per run: {} ({:.2} in all, {:.0} bytes, {:.2} drains)",
                setup.label(),
                kinds.join(", "),
                c.records() as f64 / RUNS as f64,
                c.bytes as f64 / RUNS as f64,
                c.drains as f64 / RUNS as f64
            );
            // Where the open records come from: the program (as exec'ed, else its comm)
            // and whether the open succeeded; then the most frequent paths.
            let mut by_exe: Vec<_> = c.opens_by_exe.iter().collect();
            by_exe.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
            for ((exe, ok), n) in by_exe.iter().take(10) {
                println!(
                    "  opens {:>8.3}/run {} {exe}",
                    **n as f64 / RUNS as f64,
                    if *ok { "ok    " } else { "failed" }
                );
            }
            let mut by_path: Vec<_> = c.opens_by_path.iter().collect();
            by_path.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
            for ((exe, path), n) in by_path.iter().take(10) {
                println!("  path {:>8.3}/run {exe}: {path}", **n as f64 / RUNS as f64);
            }
        }
    }
    println!("time in the daemon's programs under (e), one storm with BPF run-time statistics on:");
    for (name, runs, ns) in &times {
        println!(
            "  {name:<20} {runs:>8.2} runs per spawn, {:>8.2} us per spawn",
            ns / 1000.0
        );
    }
    // For `cargo xtask bench`'s summary table: the budget's row, then the pieces.
    for setup in Setup::ALL.into_iter().skip(1).rev() {
        let t = median_elapsed(&results[&setup]);
        let budget = if setup == Setup::Daemon {
            ">= x0.95"
        } else {
            "stated"
        };
        println!(
            "summary | exec storm (spawn /bin/true), {} vs no daemon | {t:.1} us | {bare:.1} us | x{:.3} | {budget}",
            setup.what(),
            bare / t
        );
    }
    if let Some(cpu) = median_cpu(&results[&Setup::Daemon]) {
        println!(
            "summary | exec storm (spawn /bin/true), daemon watching nothing: its own CPU per spawn | {cpu:.1} us | - | - | stated"
        );
    }
    for setup in Setup::ALL.into_iter().skip(1).rev() {
        let c = median_spawn_cpu(&results[&setup]);
        println!(
            "summary | exec storm (spawn /bin/true), CPU of the spawns (parent + child), {} vs no daemon | {c:.1} us | {bare_cpu:.1} us | x{:.3} | stated",
            setup.what(),
            bare_cpu / c
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    main_as_root("exec_storm", run)
}
