//! What a hostile watched peer does to the daemon, as root: its memory, and how its
//! endpoint and its shutdown fare while a watched process floods it.
//!
//! Every peer is a Python script run as `python3 peer.py TAG MODE ...`, and each daemon
//! runs with `--watch '*TAG*'`, so each peer is a stdio server from its exec. A fresh
//! daemon per scenario (so that VmHWM, the peak RSS, is the scenario's own); each peer
//! reads its stdin until EOF (so that the bench's writes never block) and this process
//! reads and discards its stdout. Once the daemon's `server_started` names the peer:
//!
//! (a) idle: the peer does nothing. The baseline for the RSS rows; `/metrics` and
//!     `/healthz` timed; SIGTERM to exit timed.
//! (b) a 100 MB line: the peer writes one JSON-looking line of `HUGE_LINE_BYTES` bytes
//!     with no newline to its stdout (1 MiB writes), then idles. The daemon keeps at most
//!     `--max-message-mb` (64 MiB by default) of a line before dropping it.
//! (c) unanswered requests: this process writes `REQUESTS` `tools/call` requests (about
//!     600 bytes each) to the peer's stdin; the peer reads them and never answers. The
//!     daemon keeps at most 1024 pending requests per session, so all but 1024 of those
//!     it sees should be counted in `mcp_monitor_events_lost_total{where="requests_evicted"}`.
//!
//! (b) and (c) run twice: as fast as the peer and this process go, which overruns the
//! kernel ring buffer (what the daemon loses then, it never holds), and `paced`: this
//! process keeps the peer's bytes no more than `WINDOW` ahead of the daemon's
//! `mcp_monitor_captured_bytes_total` (by reading the peer's stdout, or writing its
//! stdin, no further), so that the daemon gets the whole line, or every request.
//! (d) a write flood: the peer writes 4 KiB JSON-RPC notification lines to its stdout
//!     as fast as it can, enough to fill the kernel ring buffer; during it `/metrics`
//!     and `/healthz` are timed as in (a), then SIGTERM to exit is timed with the flood
//!     still running.
//!
//! RSS (VmRSS) and VmHWM come from `/proc/PID/status`: when the peer is watched
//! (`start`, where VmHWM is reset to it through `/proc/PID/clear_refs`), once the daemon has taken in what the peer sent (`done`, judged from its
//! capture and request counters), and 2 s later (`+2 s`). Each GET is a fresh TCP
//! connection (HTTP/1.0), timed from connect to the end of the answer; the GETs
//! alternate between the two paths. Nothing is asserted on the figures: the bench fails
//! only when its setup does (the daemon never watches the peer, a peer dies).
//!
//! `cargo xtask bench` builds the daemon and runs this; by hand, after
//! `cargo xtask build`: `cargo bench --package integration-tests --bench hostile_peer`.
use std::{
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{ChildStdin, Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use integration_tests::{
    Daemon, Killed,
    bench::{
        TempDir, built_daemon, cpu_time, event_file, kernel_release, main_as_root, online_cpus, percentile,
    },
    metrics::{Sample, http_get, parse_exposition, scrape, sum},
    unique_tag,
};

/// The length of the line without a newline in (b).
const HUGE_LINE_BYTES: u64 = 100_000_000;
/// Requests sent and never answered in (c), and the size of their argument.
const REQUESTS: usize = 100_000;
const ARGUMENT_BYTES: usize = 500;
/// The daemon's bound on pending requests per session (`MAX_PENDING`).
const MAX_PENDING: usize = 1024;
/// Requests per write to the peer's stdin in (c).
const BATCH: usize = 1_000;
/// The size of each flood line (one write each) in (d), and the flood's least length.
const FLOOD_LINE_BYTES: usize = 4096;
const FLOOD_MIN: Duration = Duration::from_secs(3);
/// GETs per path and condition.
const GETS: usize = 50;
const SETTLE: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before the daemon is killed (and that reported).
const STOP_WAIT: Duration = Duration::from_secs(20);

/// The peers. argv: TAG MODE [BYTES]; the tag is only there for `--watch`. `huge` and
/// `flood` wait for a line on stdin ("go") first.
const PEER: &str = r#"
import os, sys
mode = sys.argv[2]
def write_all(b):
    m = memoryview(b)
    while m:
        m = m[os.write(1, m):]
def wait_go():
    while os.read(0, 1) not in (b"\n", b""):
        pass
def drain():
    while os.read(0, 1 << 16):
        pass
if mode in ("idle", "sink"):
    drain()
elif mode == "huge":
    wait_go()
    left = int(sys.argv[3])
    head = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"'
    write_all(head)
    left -= len(head)
    chunk = memoryview(b"x" * (1 << 20))
    while left > 0:
        k = min(left, len(chunk))
        write_all(chunk[:k])
        left -= k
    drain()
elif mode == "flood":
    size = int(sys.argv[3])
    make = lambda pad: b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"' + pad + b'"}}\n'
    line = make(b"x" * (size - len(make(b""))))
    wait_go()
    w = os.write
    while True:
        w(1, line)
else:
    sys.exit("peer: unknown mode %r" % mode)
"#;

/// What a peer's `wait_go` waits for: a line, here an MCP notification.
const GO: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";

fn main() -> ExitCode {
    main_as_root("hostile_peer", run)
}

/// A running peer: killed when dropped; its stdout read and discarded by a thread
/// that counts the bytes.
struct Peer {
    child: Killed,
    stdin: ChildStdin,
    stdout_bytes: Arc<AtomicU64>,
    /// How far the reader may read the peer's stdout (it blocks the peer past that).
    read_limit: Arc<AtomicU64>,
}

impl Peer {
    fn spawn(script: &Path, tag: &str, mode: &str, arg: Option<u64>) -> anyhow::Result<Self> {
        let mut child = Command::new("python3")
            .arg(script)
            .args([tag, mode])
            .args(arg.map(|a| a.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting python3 (the peer)")?;
        let stdin = child.stdin.take().context("peer stdin")?;
        let mut stdout = child.stdout.take().context("peer stdout")?;
        let stdout_bytes = Arc::new(AtomicU64::new(0));
        let read_limit = Arc::new(AtomicU64::new(u64::MAX));
        let (count, limit) = (stdout_bytes.clone(), read_limit.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let done = count.load(Ordering::Relaxed);
                let allowed = limit.load(Ordering::Relaxed).saturating_sub(done);
                if allowed == 0 {
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let want = buf.len().min(usize::try_from(allowed).unwrap_or(usize::MAX));
                match stdout.read(&mut buf[..want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => count.fetch_add(n as u64, Ordering::Relaxed),
                };
            }
        });
        Ok(Self {
            child: Killed(child),
            stdin,
            stdout_bytes,
            read_limit,
        })
    }

    fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Fails when the peer has exited (it never should while the bench runs).
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.0.try_wait()? {
            bail!("the peer exited early with {status}");
        }
        Ok(())
    }
}

/// VmRSS and VmHWM of a process, in KiB.
#[derive(Clone, Copy)]
struct Mem {
    rss: u64,
    hwm: u64,
}

fn mem(pid: u32) -> anyhow::Result<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(line[name.len()..].trim().trim_end_matches("kB").trim().parse()?)
    };
    Ok(Mem {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// Starts a daemon watching `*TAG*`, then the peer, and waits until the daemon has it
/// as a server.
fn start(setup: &Setup, mode: &str, arg: Option<u64>) -> anyhow::Result<(Daemon, Peer)> {
    let glob = format!("*{}*", setup.tag);
    let d = Daemon::start_with_events(&["--watch", &glob], &setup.events)?;
    let peer = Peer::spawn(&setup.script, &setup.tag, mode, arg)?;
    let pid = peer.pid();
    d.wait_for(WAIT, |e| {
        e["type"] == "server_started" && e["server"]["pid"] == pid
    })
    .with_context(|| {
        format!(
            "the daemon did not watch the {mode} peer; stderr:\n{}",
            d.stderr()
        )
    })?;
    Ok((d, peer))
}

/// Scrapes the daemon every 100 ms until `value` reaches `target`, has not moved for
/// 1 s, or `WAIT` is over; returns the last value.
fn settle(d: &Daemon, target: f64, value: impl Fn(&[Sample]) -> f64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + WAIT;
    let (mut last, mut moved) = (f64::NAN, Instant::now());
    loop {
        let v = value(&scrape(d)?);
        if v != last {
            last = v;
            moved = Instant::now();
        }
        if v >= target || moved.elapsed() >= Duration::from_secs(1) || Instant::now() >= deadline {
            return Ok(v);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Everything in `mcp_monitor_events_lost_total`, by `where`, that is not 0.
fn losses(samples: &[Sample]) -> String {
    let lost: Vec<String> = samples
        .iter()
        .filter(|s| s.name == "mcp_monitor_events_lost_total" && s.value != 0.0)
        .map(|s| {
            format!(
                "{}={}",
                s.labels.get("where").map(String::as_str).unwrap_or("?"),
                s.value
            )
        })
        .collect();
    if lost.is_empty() {
        "none".to_string()
    } else {
        lost.join(", ")
    }
}

fn captured(samples: &[Sample], direction: &str) -> f64 {
    sum(samples, "mcp_monitor_captured_bytes_total", |s| {
        s.labels.get("direction").map(String::as_str) == Some(direction)
    })
}

/// One row of the memory table.
struct MemRow {
    label: &'static str,
    start: Mem,
    /// Once the daemon has taken in the peer's bytes (or, for the flood, during it).
    done: Option<Mem>,
    later: Option<Mem>,
    notes: String,
}

/// GET latencies (ns) and failures, per path.
#[derive(Default)]
struct Gets {
    metrics: Vec<u64>,
    healthz: Vec<u64>,
    failures: Vec<String>,
}

/// `GETS` GETs of each path, alternating, each on a fresh connection.
fn time_gets(d: &Daemon) -> anyhow::Result<Gets> {
    let addr = d.ready["metrics_addr"]
        .as_str()
        .context("ready event without metrics_addr")?;
    let mut g = Gets::default();
    for _ in 0..GETS {
        for path in ["/metrics", "/healthz"] {
            let t = Instant::now();
            let got = http_get(addr, path);
            let ns = t.elapsed().as_nanos() as u64;
            match got {
                Ok((200, body)) if path == "/metrics" => {
                    if let Err(e) = parse_exposition(&body) {
                        g.failures.push(format!("{path}: {e:#}"));
                    }
                    g.metrics.push(ns);
                }
                Ok((200, _)) => g.healthz.push(ns),
                Ok((status, _)) => g.failures.push(format!("{path}: status {status}")),
                Err(e) => g
                    .failures
                    .push(format!("{path} after {:.0} ms: {e:#}", ns as f64 / 1e6)),
            }
        }
    }
    Ok(g)
}

/// Kills the peer, waits for the daemon's `server_exited` about it, and tells what that
/// event says about the stream and the daemon's RSS then.
fn peer_exit(d: &Daemon, peer: Peer) -> anyhow::Result<String> {
    let pid = peer.pid();
    drop(peer);
    let e = d
        .wait_for(WAIT, |e| {
            e["type"] == "server_exited" && e["server"]["pid"] == pid
        })
        .with_context(|| format!("no server_exited for the peer; stderr:\n{}", d.stderr()))?;
    thread::sleep(Duration::from_millis(200));
    Ok(format!(
        "peer killed: server_exited bytes_lost {} bytes_discarded {} requests {}, RSS then {:.1} MiB",
        e["bytes_lost"],
        e["bytes_discarded"],
        e["requests"],
        mem(d.pid())?.rss as f64 / 1024.0
    ))
}

/// SIGTERM to exit: the time, or what went wrong.
fn stop(d: Daemon) -> Result<Duration, String> {
    match d.stop(STOP_WAIT) {
        Ok((status, elapsed, _)) if status.success() => Ok(elapsed),
        Ok((status, elapsed, _)) => Err(format!(
            "exited with {status} after {:.1} ms",
            elapsed.as_secs_f64() * 1e3
        )),
        Err(e) => Err(format!("{e:#}")),
    }
}

struct Setup {
    script: PathBuf,
    tag: String,
    events: PathBuf,
}

fn run() -> anyhow::Result<()> {
    let bin = built_daemon()?;
    let started = Instant::now();
    println!("hostile_peer: the daemon's memory and endpoint under a hostile watched stdio peer");
    println!(
        "machine: nproc {}, Linux {}; daemon {}",
        online_cpus(),
        kernel_release(),
        bin.display()
    );
    println!(
        "a fresh daemon (default options, --watch '*TAG*') per scenario: (a) idle peer; (b) peer writes \
         a {HUGE_LINE_BYTES}-byte line with no newline (1 MiB writes), then idles; (c) {REQUESTS} \
         tools/call requests (~{ARGUMENT_BYTES}-byte argument) written to the peer, never answered; \
         (d) peer writes {FLOOD_LINE_BYTES}-byte lines as fast as it can (>= {} s); \
         {GETS} GETs per path, each a fresh connection, in (a) and during (d)",
        FLOOD_MIN.as_secs()
    );

    // The directory's name holds no tag: the peers' command lines name the script in it.
    let dir = TempDir::new("mcp-monitor-hostile-peer")?;
    let script = dir.path().join("peer.py");
    std::fs::write(&script, PEER)?;
    let setup = Setup {
        script,
        tag: unique_tag("hostile"),
        events: event_file("mcp-monitor-hostile-peer"),
    };
    let result = scenarios(&setup);
    let _ = std::fs::remove_file(&setup.events);
    let (rows, idle_gets, flood_gets, stops, flood_note) = result?;

    println!();
    println!(
        "{:<34} | {:>9} | {:>9} | {:>9} | {:>9} | {:>7} | notes",
        "scenario", "start MiB", "peak MiB", "done MiB", "+2 s MiB", "+2 s x"
    );
    println!(
        "{}",
        "-".repeat(34 + 3 + 9 + 3 + 9 + 3 + 9 + 3 + 9 + 3 + 7 + 3 + 30)
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let idle_rss = rows[0].later.map(|m| m.rss).unwrap_or(rows[0].start.rss);
    for r in &rows {
        let peak = r.later.or(r.done).unwrap_or(r.start).hwm;
        let show = |m: Option<Mem>| m.map_or("-".to_string(), |m| format!("{:.1}", mib(m.rss)));
        let ratio = r.later.map_or("-".to_string(), |m| {
            format!("x{:.2}", m.rss as f64 / idle_rss as f64)
        });
        println!(
            "{:<34} | {:>9.1} | {:>9.1} | {:>9} | {:>9} | {:>7} | {}",
            r.label,
            mib(r.start.rss),
            mib(peak),
            show(r.done),
            show(r.later),
            ratio,
            r.notes
        );
    }
    println!(
        "start: VmRSS once the daemon watches the peer; peak: VmHWM since start (reset there through \
         /proc/PID/clear_refs) at the last reading; done: VmRSS once the daemon has taken in what the peer sent (in (d): during the \
         flood, after the GETs); +2 s: 2 s after done; x: over (a)'s"
    );

    println!();
    println!(
        "{:<9} {:<7} | {:>3} | {:>8} {:>8} {:>8} | {:>7} {:>7}",
        "path", "daemon", "n", "p50 ms", "p99 ms", "max ms", "p50 x", "p99 x"
    );
    println!("{}", "-".repeat(17 + 3 + 3 + 3 + 26 + 3 + 15));
    for (path, idle, flood) in [
        ("/metrics", &idle_gets.metrics, &flood_gets.metrics),
        ("/healthz", &idle_gets.healthz, &flood_gets.healthz),
    ] {
        let pct = |v: &Vec<u64>| {
            let mut s = v.clone();
            s.sort_unstable();
            [
                percentile(&s, 50.0),
                percentile(&s, 99.0),
                s.last().copied().unwrap_or(0) as f64,
            ]
        };
        let base = pct(idle);
        for (label, v) in [("idle", idle), ("flood", flood)] {
            let p = pct(v);
            println!(
                "{:<9} {:<7} | {:>3} | {:>8.2} {:>8.2} {:>8.2} | {:>7} {:>7}",
                path,
                label,
                v.len(),
                p[0] / 1e6,
                p[1] / 1e6,
                p[2] / 1e6,
                format!("x{:.2}", p[0] / base[0]),
                format!("x{:.2}", p[1] / base[1]),
            );
        }
    }
    for (label, g) in [("idle", &idle_gets), ("flood", &flood_gets)] {
        for f in &g.failures {
            println!("  failed GET ({label}): {f}");
        }
    }
    println!("flood: {flood_note}");
    let show = |s: &Result<Duration, String>| match s {
        Ok(d) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
        Err(e) => format!("FAILED: {e}"),
    };
    println!();
    println!("SIGTERM to exit (scenario):");
    for (label, s) in &stops {
        println!("  {label:<34} {}", show(s));
    }
    println!("runtime: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

type Outcome = (
    Vec<MemRow>,
    Gets,
    Gets,
    Vec<(&'static str, Result<Duration, String>)>,
    String,
);

/// How far this process lets a paced peer's bytes get ahead of the daemon's capture
/// counter: well under the 16 MiB ring buffer, so that nothing is lost.
const WINDOW: u64 = 4 << 20;

/// The daemon's VmHWM reset to its current RSS (`/proc/PID/clear_refs`), so that the
/// peak is the scenario's rather than the daemon's start-up.
fn reset_peak(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting VmHWM")
}

fn scenarios(setup: &Setup) -> anyhow::Result<Outcome> {
    let mut rows = Vec::new();
    let mut stops = Vec::new();

    // (a) idle.
    let label = "(a) idle peer";
    let (d, mut peer) = start(setup, "idle", None)?;
    let start_mem = mem(d.pid())?;
    reset_peak(d.pid())?;
    thread::sleep(SETTLE);
    let later = mem(d.pid())?;
    let idle_gets = time_gets(&d)?;
    let after_gets = mem(d.pid())?;
    peer.check_alive()?;
    rows.push(MemRow {
        label,
        start: start_mem,
        done: None,
        later: Some(later),
        notes: format!(
            "VmHWM of the start-up {:.1} MiB; after the {} GETs: {:.1} MiB",
            start_mem.hwm as f64 / 1024.0,
            2 * GETS,
            after_gets.rss as f64 / 1024.0
        ),
    });
    stops.push((label, stop(d)));
    drop(peer);
    eprintln!("hostile_peer: (a) done");

    for paced in [false, true] {
        let (row, stopped) = huge_line(setup, paced)?;
        stops.push((row.label, stopped));
        rows.push(row);
        eprintln!("hostile_peer: {} done", rows.last().unwrap().label);
    }
    for paced in [false, true] {
        let (row, stopped) = unanswered(setup, paced)?;
        stops.push((row.label, stopped));
        rows.push(row);
        eprintln!("hostile_peer: {} done", rows.last().unwrap().label);
    }

    // (d) a write flood: GETs, then SIGTERM, while it runs.
    let label = "(d) 4 KiB write flood";
    let (d, mut peer) = start(setup, "flood", Some(FLOOD_LINE_BYTES as u64))?;
    let start_mem = mem(d.pid())?;
    reset_peak(d.pid())?;
    let before = scrape(&d)?;
    let cpu_before = cpu_time(d.pid())?;
    let t = Instant::now();
    peer.stdin.write_all(GO)?;
    thread::sleep(Duration::from_millis(300));
    let flood_gets = time_gets(&d)?;
    if let Some(rest) = FLOOD_MIN.checked_sub(t.elapsed()) {
        thread::sleep(rest);
    }
    peer.check_alive()?;
    let during = mem(d.pid())?;
    let cpu = cpu_time(d.pid())?.saturating_sub(cpu_before);
    let samples = scrape(&d)?;
    let flooded = peer.stdout_bytes.load(Ordering::Relaxed);
    let elapsed = t.elapsed().as_secs_f64();
    rows.push(MemRow {
        label,
        start: start_mem,
        done: Some(during),
        later: None,
        notes: "done: during the flood, after the GETs".to_string(),
    });
    let stopped = stop(d);
    let during_stop = peer.stdout_bytes.load(Ordering::Relaxed) - flooded;
    peer.check_alive()?;
    let flood_note = format!(
        "{:.0} MB written by the peer in {elapsed:.1} s ({:.0} MB/s); daemon captured {:.0} MB, \
         used {:.0}% of a CPU; lost: {} (before the flood: {}); {:.0} MB more written between \
         the last scrape and the daemon's exit",
        flooded as f64 / 1e6,
        flooded as f64 / 1e6 / elapsed,
        captured(&samples, "write") / 1e6,
        cpu.as_secs_f64() / elapsed * 100.0,
        losses(&samples),
        losses(&before),
        during_stop as f64 / 1e6,
    );
    stops.push((label, stopped));
    drop(peer);
    eprintln!("hostile_peer: (d) done");

    Ok((rows, idle_gets, flood_gets, stops, flood_note))
}

/// (b): the peer writes a line of `HUGE_LINE_BYTES` with no newline, as fast as it can
/// or `paced` (its stdout read no more than `WINDOW` ahead of what the daemon captured).
fn huge_line(setup: &Setup, paced: bool) -> anyhow::Result<(MemRow, Result<Duration, String>)> {
    let label = if paced {
        "(b) 100 MB line, no newline, paced"
    } else {
        "(b) 100 MB line, no newline"
    };
    let (d, mut peer) = start(setup, "huge", Some(HUGE_LINE_BYTES))?;
    let start_mem = mem(d.pid())?;
    reset_peak(d.pid())?;
    if paced {
        peer.read_limit.store(WINDOW, Ordering::Relaxed);
    }
    let t = Instant::now();
    peer.stdin.write_all(GO)?;
    // Sampled while the line comes: how the RSS moves (VmHWM has the peak anyway).
    let mut max_sampled = 0;
    while peer.stdout_bytes.load(Ordering::Relaxed) < HUGE_LINE_BYTES {
        peer.check_alive()?;
        if t.elapsed() > WAIT {
            bail!(
                "{label}: only {} bytes of the line read in {WAIT:?}",
                peer.stdout_bytes.load(Ordering::Relaxed)
            );
        }
        max_sampled = max_sampled.max(mem(d.pid())?.rss);
        if paced {
            let seen = captured(&scrape(&d)?, "write") as u64;
            peer.read_limit.store(seen + WINDOW, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(1));
        } else {
            thread::sleep(Duration::from_millis(10));
        }
    }
    let written = t.elapsed();
    let seen = settle(&d, HUGE_LINE_BYTES as f64, |s| captured(s, "write"))?;
    let done = mem(d.pid())?;
    thread::sleep(SETTLE);
    let later = mem(d.pid())?;
    let samples = scrape(&d)?;
    peer.check_alive()?;
    let row = MemRow {
        label,
        start: start_mem,
        done: Some(done),
        later: Some(later),
        notes: format!(
            "written in {:.2} s; max RSS sampled {:.1} MiB; captured {:.1} MB of it; lost: {}; \
             parse errors {}",
            written.as_secs_f64(),
            max_sampled as f64 / 1024.0,
            seen / 1e6,
            losses(&samples),
            sum(&samples, "mcp_monitor_parse_errors_total", |_| true),
        ),
    };
    let row = MemRow {
        notes: format!("{}; {}", row.notes, peer_exit(&d, peer)?),
        ..row
    };
    let stopped = stop(d);
    Ok((row, stopped))
}

/// (c): `REQUESTS` requests written to the peer's stdin, never answered, as fast as
/// this process can or `paced` (no more than `WINDOW` ahead of what the daemon captured).
fn unanswered(setup: &Setup, paced: bool) -> anyhow::Result<(MemRow, Result<Duration, String>)> {
    let label = if paced {
        "(c) 100,000 unanswered, paced"
    } else {
        "(c) 100,000 unanswered requests"
    };
    let (d, mut peer) = start(setup, "sink", None)?;
    let start_mem = mem(d.pid())?;
    reset_peak(d.pid())?;
    let pad = "x".repeat(ARGUMENT_BYTES);
    let t = Instant::now();
    let mut sent_bytes = 0u64;
    for first in (1..=REQUESTS).step_by(BATCH) {
        let mut batch = String::with_capacity(BATCH * (ARGUMENT_BYTES + 100));
        for id in first..(first + BATCH).min(REQUESTS + 1) {
            batch.push_str(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"t","arguments":{{"x":"{pad}"}}}}}}"#
            ));
            batch.push('\n');
        }
        peer.stdin.write_all(batch.as_bytes())?;
        sent_bytes += batch.len() as u64;
        while paced && (captured(&scrape(&d)?, "read") as u64) + WINDOW < sent_bytes {
            if t.elapsed() > WAIT {
                bail!("{label}: the daemon captured too little of the requests in {WAIT:?}");
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    let written = t.elapsed();
    let is_call = |s: &Sample| s.labels.get("method").map(String::as_str) == Some("tools/call");
    let calls = settle(&d, REQUESTS as f64, |s| sum(s, "mcp_requests_total", is_call))?;
    let done = mem(d.pid())?;
    thread::sleep(SETTLE);
    let later = mem(d.pid())?;
    let samples = scrape(&d)?;
    let evicted = sum(&samples, "mcp_monitor_events_lost_total", |s| {
        s.labels.get("where").map(String::as_str) == Some("requests_evicted")
    });
    peer.check_alive()?;
    let row = MemRow {
        label,
        start: start_mem,
        done: Some(done),
        later: Some(later),
        notes: format!(
            "{:.1} MB written in {:.2} s; tools/call seen {calls}; requests_evicted {evicted} \
             (expected {} if all seen); lost: {}",
            sent_bytes as f64 / 1e6,
            written.as_secs_f64(),
            REQUESTS - MAX_PENDING,
            losses(&samples),
        ),
    };
    let row = MemRow {
        notes: format!("{}; {}", row.notes, peer_exit(&d, peer)?),
        ..row
    };
    let stopped = stop(d);
    Ok((row, stopped))
}
