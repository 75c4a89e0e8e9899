//! The daemon under sustained stdio load, as root: its memory and CPU with many watched
//! servers, and the highest rate of calls it takes without loss.
//!
//! Every server is `pipe-peer --tag TAG jsonrpc` (a minimal stdio MCP server: one answer
//! line, in one write(), per request line), and each daemon runs with `--watch '*TAG*'`
//! and its default ring buffer (16 MiB), so every server is watched from its exec. This
//! process is every client (threads, one request per write()); it waits for each
//! server's `server_started` before talking to it. Events go to a file in /dev/shm,
//! read as it grows (and rotated with SIGHUP between steps, so it stays small).
//!
//! (1) RSS: one daemon, `RSS_SERVERS` servers, each with a client thread sending paced
//!     200-byte `tools/call` requests and reading each answer before the next, 1,000
//!     calls/s in total, for `LOAD_BENCH_SECONDS` (60 by default). The daemon's VmRSS
//!     and VmHWM (`/proc/PID/status`) are sampled every second; then its CPU time, and
//!     the check: exactly one `tool_call` event per call made, every one `ok`, and every
//!     loss counter still 0 (`mcp_monitor_events_lost_total`, `_events_dropped_total`,
//!     `_parse_errors_total`; no `monitor_status` loss or drop report; no `bytes_lost`
//!     in `server_exited`). The bench fails if the check does.
//! (2) Rate: one daemon, steps of `STEP` each with `PAIRS` fresh servers and their
//!     clients (a writer thread sending 1 KiB `tools/call` requests, paced or as fast
//!     as the pipe takes them, and a reader thread counting the answers): paced rates
//!     doubling from `FIRST_RATE` until a step does not hold or the clients cannot keep
//!     up, bisection between the highest step that held and the lowest that did not,
//!     then an unpaced step (the ceiling of this machine's clients and servers). A step
//!     holds when none of the loss counters grew (by kind, the daemon's own names), every
//!     call is one `ok` event, every server's exit was seen without `bytes_lost`, and the
//!     daemon kept up: the bytes the clients moved that the daemon had not taken in yet
//!     (`mcp_monitor_captured_bytes_total`, sampled every `BACKLOG_EVERY`) fell under
//!     `KEPT_UP` at least once in the step's last second. A step too short to fill the
//!     ring (16 MiB, the last 2 MiB kept for lifecycle records) can lose nothing and still
//!     be behind all along: the backlog is what tells. Per step: offered and achieved
//!     rate, calls, events, backlog, how long the daemon took to catch up after the
//!     traffic, its CPU use and the machine's, and the loss counters that grew.
//!
//! About 2.5 minutes on 2 CPUs. `LOAD_BENCH_SECONDS` sets (1)'s length (0: skip it);
//! `LOAD_BENCH_PAIRS` changes `PAIRS`; `LOAD_BENCH_RATES=R1,R2,...` runs only those paced
//! steps in (2), with no search and no conclusion. Ends with the `summary | ...` lines of
//! `cargo xtask bench`. By hand, as root, after `cargo xtask build` (or with
//! `MCP_MONITOR_BIN`): `cargo bench --package integration-tests --bench load`.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{ChildStdin, ChildStdout, ExitCode},
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
        built_daemon, cpu_time, event_file, jsonrpc_peer, kernel_release, main_as_root, online_cpus,
        tools_call_line,
    },
    metrics::{Sample, scrape, sum},
    unique_tag,
};
use serde_json::Value;

/// (1): watched servers, calls per second over all of them, request size.
const RSS_SERVERS: usize = 50;
const RSS_RATE: f64 = 1000.0;
const RSS_REQUEST_BYTES: usize = 200;
const RSS_BUDGET_MIB: f64 = 64.0;
/// (2): request size, client/server pairs per step, step length, first paced rate,
/// paced steps at most, bisection ends when the gap is this fraction of the low end.
const RATE_REQUEST_BYTES: usize = 1024;
const PAIRS: usize = 4;
const STEP: Duration = Duration::from_secs(4);
const FIRST_RATE: f64 = 2000.0;
const MAX_PACED_STEPS: usize = 11;
const MAX_BISECT_STEPS: usize = 4;
const BISECT_UNTIL: f64 = 0.08;
/// A paced step whose clients achieve less than this share of the offered rate is at
/// the clients' and servers' ceiling: doubling further offers nothing more.
const KEEPS_UP: f64 = 0.9;
const WAIT: Duration = Duration::from_secs(30);
/// How often a step compares what its clients moved with what the daemon took in.
const BACKLOG_EVERY: Duration = Duration::from_millis(250);
/// The daemon's intake counter unmoved this long after the traffic: it has caught up
/// (what it lacks was lost).
const STILL: Duration = Duration::from_millis(200);
/// Samples in a step's last second, and the backlog the daemon must have been under at
/// least once then for the step to hold (at 25,000 calls/s, some 40 ms of traffic).
const SETTLED: usize = 4;
const KEPT_UP: u64 = 1 << 20;
/// How long a step waits for its servers' `server_exited` (an exit record lost to a
/// full ring shows only at the daemon's next reconciliation, seconds later).
const EXIT_WAIT: Duration = Duration::from_secs(10);
/// Longer than the daemon's loss tick (1 s): its loss counters are updated then.
const LOSS_TICK: Duration = Duration::from_millis(1100);
const MIB: f64 = 1024.0 * 1024.0;

fn main() -> ExitCode {
    main_as_root("load", run)
}

fn run() -> anyhow::Result<()> {
    let bin = built_daemon()?;
    raise_nofile();
    let seconds: u64 = match std::env::var("LOAD_BENCH_SECONDS") {
        Ok(s) => s.parse().context("LOAD_BENCH_SECONDS")?,
        Err(_) => 60,
    };
    let pairs: usize = match std::env::var("LOAD_BENCH_PAIRS") {
        Ok(s) => s.parse().context("LOAD_BENCH_PAIRS")?,
        Err(_) => PAIRS,
    };
    println!("load: the daemon under sustained stdio load");
    println!(
        "machine: nproc {}, Linux {}; daemon {}",
        online_cpus(),
        kernel_release(),
        bin.display()
    );
    // Paced rates to run alone (no unpaced step, no search), to look at a rate closely.
    let rates: Vec<f64> = match std::env::var("LOAD_BENCH_RATES") {
        Ok(s) => s
            .split(',')
            .map(|r| r.trim().parse::<f64>().context("LOAD_BENCH_RATES"))
            .collect::<anyhow::Result<_>>()?,
        Err(_) => Vec::new(),
    };
    let rss = if seconds > 0 {
        Some(rss_run(seconds)?)
    } else {
        None
    };
    let rate = rate_run(pairs.max(1), &rates)?;

    // For `cargo xtask bench`'s summary table.
    println!();
    if let Some(rss) = &rss {
        for (what, kib) in [("peak", rss.peak_kib), ("end", rss.end_kib)] {
            println!(
                "summary | daemon RSS, {RSS_SERVERS} watched servers, {RSS_RATE:.0} calls/s for {seconds} s ({what}) | {:.1} MiB | - | - | < {RSS_BUDGET_MIB:.0} MiB",
                kib as f64 / 1024.0
            );
        }
    }
    if let Some(rate) = rate {
        println!(
            "summary | highest rate of 1 KiB calls with zero loss, default ring | {rate} | - | - | stated"
        );
    }
    if let Some(problems) = rss.map(|r| r.problems).filter(|p| !p.is_empty()) {
        bail!("(1) check failed: {}", problems.join("; "));
    }
    Ok(())
}

/// Many fds: two pipe ends per server here, and the daemon's.
fn raise_nofile() {
    // Safety: plain struct in, plain struct out.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A watched server and this process's ends of its pipes.
struct Server {
    child: Killed,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
}

impl Server {
    fn spawn(tag: &str) -> anyhow::Result<Self> {
        let mut child = jsonrpc_peer(env!("CARGO_BIN_EXE_pipe-peer"), tag)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        Ok(Self {
            child: Killed(child),
            stdin,
            stdout,
        })
    }

    fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Waits for the exit its clients caused (they closed its stdin).
    fn finish(mut self) -> anyhow::Result<()> {
        let status = self.child.0.wait()?;
        if !status.success() {
            bail!("pipe-peer {} exited with {status}", self.pid());
        }
        Ok(())
    }
}

/// What the event file said so far.
#[derive(Default)]
struct Seen {
    started: HashSet<u32>,
    /// Servers that exited, with the `bytes_lost` of their `server_exited`.
    exited: HashMap<u32, u64>,
    tool_calls: HashMap<u32, u64>,
    /// `tool_call` events whose outcome is not `ok`, by outcome.
    not_ok: BTreeMap<String, u64>,
    /// `monitor_status` events reporting loss (`loss`) or dropped events (`events_dropped`).
    loss_reports: u64,
    drop_reports: u64,
}

impl Seen {
    fn take(&mut self, line: &[u8]) -> anyhow::Result<()> {
        // The bulk of the file: read without building a JSON tree.
        if let Some((pid, outcome)) = quick_tool_call(line) {
            *self.tool_calls.entry(pid).or_default() += 1;
            if outcome != b"ok" {
                *self
                    .not_ok
                    .entry(String::from_utf8_lossy(outcome).into_owned())
                    .or_default() += 1;
            }
            return Ok(());
        }
        let e: Value = serde_json::from_slice(line).with_context(|| {
            format!(
                "daemon wrote a line that is not JSON: {}",
                String::from_utf8_lossy(line)
            )
        })?;
        let pid = e["server"]["pid"].as_u64().unwrap_or(0) as u32;
        match e["type"].as_str().unwrap_or("") {
            "server_started" => {
                self.started.insert(pid);
            }
            "server_exited" => {
                self.exited.insert(pid, e["bytes_lost"].as_u64().unwrap_or(0));
            }
            "tool_call" => {
                *self.tool_calls.entry(pid).or_default() += 1;
                let outcome = e["outcome"].as_str().unwrap_or("?");
                if outcome != "ok" {
                    *self.not_ok.entry(outcome.to_string()).or_default() += 1;
                }
            }
            "monitor_status" => match e["status"].as_str().unwrap_or("") {
                "loss" => self.loss_reports += 1,
                "events_dropped" => self.drop_reports += 1,
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn tool_calls_of(&self, pids: &[u32]) -> u64 {
        pids.iter()
            .map(|p| self.tool_calls.get(p).copied().unwrap_or(0))
            .sum()
    }

    fn bytes_lost_of(&self, pids: &[u32]) -> u64 {
        pids.iter()
            .map(|p| self.exited.get(p).copied().unwrap_or(0))
            .sum()
    }
}

/// The server pid and outcome of a `tool_call` line as the daemon writes them (`type`,
/// `ts`, then the `server` object, whose `pid` is the line's first); None for any other
/// line, or a shape this does not know, which is then parsed in full.
fn quick_tool_call(line: &[u8]) -> Option<(u32, &[u8])> {
    let rest = line.strip_prefix(b"{\"type\":\"tool_call\",\"ts\":\"")?;
    let server = find(rest, b"\",\"server\":{")?;
    let pid_at = find(rest, b"\"pid\":")?;
    if pid_at < server {
        return None;
    }
    let digits = &rest[pid_at + 6..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    let pid = std::str::from_utf8(&digits[..end]).ok()?.parse().ok()?;
    let at = find(rest, b",\"outcome\":\"")? + 12;
    let len = rest[at..].iter().position(|&b| b == b'"')?;
    Some((pid, &rest[at..at + len]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The daemon's event file, read as it grows.
struct Tail {
    path: PathBuf,
    file: File,
    partial: Vec<u8>,
    seen: Seen,
}

impl Tail {
    fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: File::open(path).with_context(|| format!("opening {}", path.display()))?,
            partial: Vec::new(),
            seen: Seen::default(),
        })
    }

    /// Takes in the complete lines written since the last call.
    fn poll(&mut self) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        self.file.read_to_end(&mut buf)?;
        if buf.is_empty() {
            return Ok(());
        }
        self.partial.extend_from_slice(&buf);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let rest = self.partial.split_off(last + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.seen.take(line)?;
        }
        Ok(())
    }

    /// Polls every 10 ms until `done` holds; false at `timeout`.
    fn wait(&mut self, timeout: Duration, done: impl Fn(&Seen) -> bool) -> anyhow::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll()?;
            if done(&self.seen) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Moves the file away and has the daemon start a new one (SIGHUP, as for a log
    /// rotator), takes in the rest of the old one and removes it: the file stays small
    /// however many events a run writes.
    fn rotate(&mut self, daemon: &Daemon) -> anyhow::Result<()> {
        let old = self.path.with_extension("old");
        std::fs::rename(&self.path, &old).context("moving the event file away")?;
        // Safety: signalling our own child.
        unsafe { libc::kill(daemon.pid() as i32, libc::SIGHUP) };
        let deadline = Instant::now() + WAIT;
        while !self.path.exists() {
            if Instant::now() >= deadline {
                bail!("the daemon did not reopen its event file after SIGHUP");
            }
            thread::sleep(Duration::from_millis(5));
        }
        // The daemon writes what it holds to the old file before it opens the new one.
        self.poll()?;
        self.file = File::open(&self.path)?;
        let _ = std::fs::remove_file(&old);
        Ok(())
    }
}

/// The daemon's loss counters now, by kind: `mcp_monitor_events_lost_total` by `where`,
/// `mcp_monitor_events_dropped_total` by `reason`, `mcp_monitor_parse_errors_total` by
/// `what`.
fn loss_counters(d: &Daemon) -> anyhow::Result<BTreeMap<String, f64>> {
    let samples = scrape(d)?;
    let mut out = BTreeMap::new();
    let mut add = |s: &Sample, prefix: &str, label: &str| {
        let kind = s.labels.get(label).map(String::as_str).unwrap_or("?");
        *out.entry(format!("{prefix}{kind}")).or_default() += s.value;
    };
    for s in &samples {
        match s.name.as_str() {
            "mcp_monitor_events_lost_total" => add(s, "", "where"),
            "mcp_monitor_events_dropped_total" => add(s, "events_dropped:", "reason"),
            "mcp_monitor_parse_errors_total" => add(s, "parse_errors:", "what"),
            _ => {}
        }
    }
    Ok(out)
}

/// Counters that grew from `before` to `after`, and by how much.
fn grown(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, &v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d as u64))
        })
        .collect()
}

fn shown(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "-".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A process's memory, in KiB: VmRSS, VmHWM (the peak VmRSS), and the RSS's anonymous
/// and file-backed parts (the ring buffer's mapping is file-backed).
#[derive(Clone, Copy, Default)]
struct Mem {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
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
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

/// Starts a daemon watching `*TAG*` with its events in `path`.
fn start_daemon(tag: &str, path: &Path) -> anyhow::Result<(Daemon, Tail)> {
    let glob = format!("*{tag}*");
    let d = Daemon::start_with_events(&["--watch", &glob], path)?;
    let tail = Tail::open(path)?;
    Ok((d, tail))
}

/// Starts `n` servers and waits until the daemon has each as a server.
fn start_servers(n: usize, tag: &str, d: &Daemon, tail: &mut Tail) -> anyhow::Result<Vec<Server>> {
    let servers = (0..n)
        .map(|_| Server::spawn(tag))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    if !tail.wait(WAIT, |s| pids.iter().all(|p| s.started.contains(p)))? {
        bail!(
            "the daemon did not watch all {n} servers within {WAIT:?}; stderr:\n{}",
            d.stderr()
        );
    }
    Ok(servers)
}

/// Reads one answer line (a synchronous client has one at most in flight).
fn read_answer(stdout: &mut ChildStdout, reply: &mut Vec<u8>) -> anyhow::Result<()> {
    reply.clear();
    let mut buf = [0u8; 512];
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            bail!("the server closed its stdout");
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.last() == Some(&b'\n') {
            break;
        }
    }
    if !reply.starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":") {
        bail!("unexpected reply: {}", String::from_utf8_lossy(reply));
    }
    Ok(())
}

/// What (1) found.
struct RssResult {
    peak_kib: u64,
    end_kib: u64,
    /// Where the check failed (empty: passed).
    problems: Vec<String>,
}

fn rss_run(seconds: u64) -> anyhow::Result<RssResult> {
    let length = Duration::from_secs(seconds);
    let per_server = RSS_RATE / RSS_SERVERS as f64;
    println!();
    println!(
        "(1) RSS: {RSS_SERVERS} watched servers, a client thread each sending paced {RSS_REQUEST_BYTES}-byte \
         tools/call requests ({per_server:.0}/s each, {RSS_RATE:.0}/s in total, staggered) and reading each \
         answer, for {seconds} s; the daemon's memory sampled every second"
    );
    let tag = unique_tag("loadrss");
    let path = event_file("mcp-monitor-load-rss");
    let result = (|| {
        let (d, mut tail) = start_daemon(&tag, &path)?;
        let dpid = d.pid();
        let ready = mem(dpid)?;
        let mut servers = start_servers(RSS_SERVERS, &tag, &d, &mut tail)?;
        let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
        let watching = mem(dpid)?;
        let cpu_before = cpu_time(dpid)?;
        let start = Instant::now() + Duration::from_millis(50);
        let end = start + length;
        let clients: Vec<_> = servers
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let mut stdin = s.stdin.take().expect("stdin");
                let mut stdout = s.stdout.take().expect("stdout");
                // Spread over the first second so that calls do not come in bunches.
                let phase = Duration::from_secs_f64(i as f64 / RSS_RATE);
                thread::spawn(move || -> anyhow::Result<u64> {
                    let mut reply = Vec::with_capacity(256);
                    let mut k: u64 = 0;
                    loop {
                        let due = start + phase + Duration::from_secs_f64(k as f64 / per_server);
                        if due >= end {
                            break;
                        }
                        sleep_until(due);
                        stdin.write_all(&tools_call_line(k + 1, RSS_REQUEST_BYTES))?;
                        read_answer(&mut stdout, &mut reply)?;
                        k += 1;
                    }
                    // EOF: the server exits.
                    drop(stdin);
                    Ok(k)
                })
            })
            .collect();
        // (seconds since start, memory then)
        let mut samples: Vec<(u64, Mem)> = Vec::new();
        for t in 1..=seconds {
            sleep_until(start + Duration::from_secs(t));
            samples.push((t, mem(dpid)?));
        }
        let cpu = cpu_time(dpid)?.saturating_sub(cpu_before);
        let mut calls: Vec<u64> = Vec::new();
        for c in clients {
            calls.push(
                c.join()
                    .map_err(|_| anyhow::anyhow!("a client thread panicked"))??,
            );
        }
        let elapsed = start.elapsed();
        for s in servers {
            s.finish()?;
        }
        let exits_seen = tail.wait(WAIT, |s| pids.iter().all(|p| s.exited.contains_key(p)))?;
        let after = mem(dpid)?;
        thread::sleep(LOSS_TICK);
        let counters = loss_counters(&d)?;
        tail.rotate(&d)?;
        let (status, _, _) = d.stop(WAIT)?;
        tail.poll()?;
        if !status.success() {
            bail!("the daemon exited with {status}");
        }

        println!();
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "{:>5} | {:>9} | {:>9} | {:>11} | {:>11}",
            "t s", "VmRSS MiB", "VmHWM MiB", "RssAnon MiB", "RssFile MiB"
        );
        println!("{}", "-".repeat(57));
        let every = (seconds / 12).max(1);
        for (t, m) in samples.iter().filter(|s| s.0 % every == 0 || s.0 == seconds) {
            println!(
                "{t:>5} | {:>9.1} | {:>9.1} | {:>11.1} | {:>11.1}",
                mib(m.rss),
                mib(m.hwm),
                mib(m.anon),
                mib(m.file)
            );
        }
        let peak_rss = samples.iter().map(|s| s.1.rss).max().unwrap_or(0);
        let peak_anon = samples.iter().map(|s| s.1.anon).max().unwrap_or(0);
        let at_end = samples.last().map(|s| s.1).unwrap_or_default();
        let peak = at_end.hwm.max(after.hwm);
        let total: u64 = calls.iter().sum();
        let events = tail.seen.tool_calls_of(&pids);
        let lost: f64 = counters.values().sum();
        let nonzero: BTreeMap<String, u64> = counters
            .iter()
            .filter(|&(_, &v)| v > 0.0)
            .map(|(k, &v)| (k.clone(), v as u64))
            .collect();
        let bytes_lost = tail.seen.bytes_lost_of(&pids);
        println!();
        println!(
            "once ready: VmRSS {:.1} MiB, VmHWM {:.1} MiB (start-up); once all {RSS_SERVERS} servers were \
             watched: VmRSS {:.1} MiB",
            mib(ready.rss),
            mib(ready.hwm),
            mib(watching.rss)
        );
        println!(
            "peak: VmHWM {:.1} MiB (highest VmRSS sampled under load {:.1} MiB, highest RssAnon {:.1} MiB); \
             end of the load: VmRSS {:.1} MiB (RssAnon {:.1}, RssFile {:.1}); after the servers exited: \
             VmRSS {:.1} MiB",
            mib(peak),
            mib(peak_rss),
            mib(peak_anon),
            mib(at_end.rss),
            mib(at_end.anon),
            mib(at_end.file),
            mib(after.rss)
        );
        println!(
            "calls made {total} in {:.1} s ({:.0}/s); daemon CPU time {:.2} s ({:.1}% of one CPU)",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / length.as_secs_f64()
        );
        println!(
            "check: {events} tool_call events for {total} calls, not ok: {}; loss counters: {}; \
             monitor_status loss reports {}, drop reports {}; bytes_lost at exit {bytes_lost}; \
             server_exited for all: {exits_seen}",
            shown(&tail.seen.not_ok),
            shown(&nonzero),
            tail.seen.loss_reports,
            tail.seen.drop_reports
        );
        let mut problems = Vec::new();
        for (pid, &n) in pids.iter().zip(&calls) {
            let got = tail.seen.tool_calls.get(pid).copied().unwrap_or(0);
            if got != n {
                problems.push(format!("server {pid}: {got} tool_call events for {n} calls"));
            }
        }
        problems.truncate(5);
        if !tail.seen.not_ok.is_empty() {
            problems.push(format!("tool_call outcomes not ok: {}", shown(&tail.seen.not_ok)));
        }
        if lost != 0.0 || tail.seen.loss_reports != 0 || tail.seen.drop_reports != 0 || bytes_lost != 0 {
            problems.push("loss reported".into());
        }
        if !exits_seen {
            problems.push("not every server_exited came".into());
        }
        anyhow::Ok(RssResult {
            peak_kib: peak,
            end_kib: at_end.rss,
            problems,
        })
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// One step of (2).
struct Step {
    label: String,
    /// Calls/s offered (None: unpaced).
    offered: Option<f64>,
    achieved: f64,
    calls: u64,
    events: u64,
    not_ok: u64,
    loss: BTreeMap<String, u64>,
    bytes_lost: u64,
    exits_missing: usize,
    /// From the end of the traffic until the daemon had taken in all of it.
    lag: Duration,
    /// The daemon's CPU use over the traffic and its lag, in CPUs.
    cpu: f64,
    /// The machine's CPU use over the traffic (all CPUs busy: 1).
    machine: f64,
    /// Bytes moved but not yet taken in by the daemon: the most sampled, and the least
    /// in the step's last second (above 0 then: the daemon was behind all along).
    backlog_max: u64,
    backlog_settled: u64,
}

impl Step {
    fn clean(&self) -> bool {
        self.loss.is_empty()
            && self.bytes_lost == 0
            && self.events == self.calls
            && self.not_ok == 0
            && self.exits_missing == 0
    }

    /// Clean, and the daemon kept up to the end: the rate can go on.
    fn holds(&self) -> bool {
        self.clean() && self.backlog_settled < KEPT_UP
    }

    fn offered_shown(&self) -> String {
        self.offered.map_or("unpaced".into(), |o| format!("{o:.0}"))
    }

    /// The step in words, for the conclusion.
    fn describe(&self) -> String {
        let what = format!(
            "{:.0} calls/s achieved ({} offered, {} step), {} tool_call events for {} calls",
            self.achieved,
            self.offered_shown(),
            self.label,
            self.events,
            self.calls
        );
        if !self.clean() {
            let mut lost = shown(&self.loss);
            if self.bytes_lost > 0 {
                lost = format!("{lost}; bytes lost at the servers' exits {}", self.bytes_lost);
            }
            if self.not_ok > 0 {
                lost = format!("{lost}; calls not ok {}", self.not_ok);
            }
            if self.exits_missing > 0 {
                lost = format!("{lost}; server exits not seen {}", self.exits_missing);
            }
            return format!("{what}; lost: {lost}");
        }
        if !self.holds() {
            return format!(
                "{what}; nothing lost within the step, but the daemon fell behind: {:.1} MiB not taken in \
                 through its last second (at most {:.1} MiB), caught up {:.0} ms after it",
                self.backlog_settled as f64 / MIB,
                self.backlog_max as f64 / MIB,
                self.lag.as_secs_f64() * 1e3
            );
        }
        format!(
            "{what}; nothing lost, backlog at most {:.1} MiB, caught up {:.0} ms after the traffic",
            self.backlog_max as f64 / MIB,
            self.lag.as_secs_f64() * 1e3
        )
    }

    fn client_bound(&self) -> bool {
        self.offered.is_some_and(|o| self.achieved < KEEPS_UP * o)
    }

    fn print(&self) {
        let offered = self.offered_shown();
        let mut lost = shown(&self.loss);
        if self.bytes_lost > 0 {
            lost = format!("{lost} bytes_lost_at_exit={}", self.bytes_lost);
        }
        if self.not_ok > 0 {
            lost = format!("{lost} not_ok_calls={}", self.not_ok);
        }
        if self.exits_missing > 0 {
            lost = format!("{lost} exits_not_seen={}", self.exits_missing);
        }
        let mib = |b: u64| b as f64 / MIB;
        println!(
            "{:<7} | {:>7} | {:>8.0} | {:>7} | {:>7} | {:>6} | {:>5.1} {:>5.1} | {:>6.0} | {:>5.0}% | {:>6.0}% | {}",
            self.label,
            offered,
            self.achieved,
            self.calls,
            self.events,
            match (self.clean(), self.holds()) {
                (true, true) => "yes",
                (true, false) => "behind",
                _ => "NO",
            },
            mib(self.backlog_max),
            mib(self.backlog_settled),
            self.lag.as_secs_f64() * 1e3,
            self.cpu * 100.0,
            self.machine * 100.0,
            lost
        );
    }
}

fn rate_header() {
    println!(
        "{:<7} | {:>7} | {:>8} | {:>7} | {:>7} | {:>6} | {:>11} | {:>6} | {:>6} | {:>7} | loss counters grown (by kind)",
        "step",
        "offered",
        "achieved",
        "calls",
        "events",
        "held",
        "backlog MiB",
        "lag ms",
        "daemon",
        "machine"
    );
    println!("{}", "-".repeat(126));
}

/// Bytes the clients of a step have written (requests) and read (answers).
#[derive(Default)]
struct Moved {
    requests: AtomicU64,
    answers: AtomicU64,
}

/// Bytes the daemon has taken in (`mcp_monitor_captured_bytes_total`, both directions).
fn captured(d: &Daemon) -> anyhow::Result<u64> {
    Ok(sum(&scrape(d)?, "mcp_monitor_captured_bytes_total", |_| true) as u64)
}

/// Busy and total jiffies of all CPUs (`/proc/stat`), for the machine's load.
fn machine_cpu() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// One client: a writer sending requests (paced at `rate`/s, or as fast as the pipe
/// takes them) until `end`, then closing the server's stdin; a reader counting answers
/// until the server's EOF. Returns (sent, answered).
fn client(
    mut stdin: ChildStdin,
    mut stdout: ChildStdout,
    rate: Option<f64>,
    (start, end): (Instant, Instant),
    moved: Arc<Moved>,
) -> thread::JoinHandle<anyhow::Result<(u64, u64)>> {
    thread::spawn(move || {
        let read = moved.clone();
        let reader = thread::spawn(move || -> anyhow::Result<u64> {
            let mut buf = vec![0u8; 65536];
            let mut answers = 0u64;
            loop {
                let n = stdout.read(&mut buf)?;
                if n == 0 {
                    return Ok(answers);
                }
                read.answers.fetch_add(n as u64, Ordering::Relaxed);
                answers += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
        });
        let mut sent: u64 = 0;
        sleep_until(start);
        let written = (|| -> anyhow::Result<()> {
            loop {
                let now = Instant::now();
                if now >= end {
                    return Ok(());
                }
                if let Some(r) = rate {
                    // Every request due by now (a late writer catches up), then sleep
                    // until the next is due.
                    let due = ((now - start).as_secs_f64() * r) as u64 + 1;
                    while sent < due {
                        stdin.write_all(&tools_call_line(sent + 1, RATE_REQUEST_BYTES))?;
                        moved
                            .requests
                            .fetch_add(RATE_REQUEST_BYTES as u64, Ordering::Relaxed);
                        sent += 1;
                    }
                    sleep_until((start + Duration::from_secs_f64(sent as f64 / r)).min(end));
                } else {
                    stdin.write_all(&tools_call_line(sent + 1, RATE_REQUEST_BYTES))?;
                    moved
                        .requests
                        .fetch_add(RATE_REQUEST_BYTES as u64, Ordering::Relaxed);
                    sent += 1;
                }
            }
        })();
        drop(stdin);
        let answered = reader
            .join()
            .map_err(|_| anyhow::anyhow!("a reader thread panicked"))??;
        written?;
        Ok((sent, answered))
    })
}

struct RateRun<'a> {
    d: &'a Daemon,
    tail: &'a mut Tail,
    tag: String,
    pairs: usize,
}

impl RateRun<'_> {
    /// Paced steps doubling from `FIRST_RATE` until one does not hold (or the clients
    /// cannot keep up), bisection between the highest that held and the lowest that did
    /// not, then the unpaced step.
    fn search(&mut self) -> anyhow::Result<Vec<Step>> {
        let mut steps: Vec<Step> = Vec::new();
        let mut rate = FIRST_RATE;
        // The lowest rate offered that did not hold.
        let mut failed = None;
        for _ in 0..MAX_PACED_STEPS {
            let s = self.step("double", Some(rate), STEP)?;
            let (holds, bound) = (s.holds(), s.client_bound());
            steps.push(s);
            if !holds {
                failed = Some(rate);
                break;
            }
            if bound {
                break;
            }
            rate *= 2.0;
        }
        if let Some(mut hi) = failed {
            let mut lo = steps
                .iter()
                .filter(|s| s.holds())
                .filter_map(|s| s.offered)
                .fold(0.0, f64::max);
            for _ in 0..MAX_BISECT_STEPS {
                if hi - lo <= BISECT_UNTIL * lo.max(1000.0) {
                    break;
                }
                let mid = ((lo + hi) / 2.0 / 250.0).round() * 250.0;
                let s = self.step("bisect", Some(mid), STEP)?;
                if s.holds() {
                    lo = mid;
                } else {
                    hi = mid;
                }
                steps.push(s);
            }
        }
        // Last, so that whatever it leaves behind weighs on no paced step.
        steps.push(self.step("unpaced", None, STEP + Duration::from_secs(1))?);
        Ok(steps)
    }

    fn step(&mut self, label: &str, offered: Option<f64>, length: Duration) -> anyhow::Result<Step> {
        let dpid = self.d.pid();
        let before = loss_counters(self.d)?;
        let not_ok_before: u64 = self.tail.seen.not_ok.values().sum();
        let mut servers = start_servers(self.pairs, &self.tag, self.d, self.tail)?;
        let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
        let cpu_before = cpu_time(dpid)?;
        let captured_before = captured(self.d)?;
        let machine_before = machine_cpu()?;
        let moved = Arc::new(Moved::default());
        let start = Instant::now() + Duration::from_millis(20);
        let end = start + length;
        let per_pair = offered.map(|r| r / self.pairs as f64);
        let clients: Vec<_> = servers
            .iter_mut()
            .map(|s| {
                let stdin = s.stdin.take().expect("stdin");
                let stdout = s.stdout.take().expect("stdout");
                client(stdin, stdout, per_pair, (start, end), moved.clone())
            })
            .collect();
        // What the clients moved that the daemon has not taken in yet (in the ring, or
        // lost), every BACKLOG_EVERY: steady when the daemon keeps up, growing when not.
        let mut backlog: Vec<u64> = Vec::new();
        let mut t = start + BACKLOG_EVERY;
        while t < end {
            sleep_until(t);
            let moved_now = moved.requests.load(Ordering::Relaxed) + moved.answers.load(Ordering::Relaxed);
            let taken = captured(self.d)?.saturating_sub(captured_before);
            backlog.push(moved_now.saturating_sub(taken));
            t += BACKLOG_EVERY;
        }
        let (mut calls, mut answered) = (0, 0);
        for c in clients {
            let (s, a) = c
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
            calls += s;
            answered += a;
        }
        let done = Instant::now();
        let elapsed = done - start;
        let machine_after = machine_cpu()?;
        // How long the daemon takes to catch up: until it has taken in every byte moved,
        // or (bytes lost) its count stopped moving.
        let moved_total = moved.requests.load(Ordering::Relaxed) + moved.answers.load(Ordering::Relaxed);
        let (mut last, mut last_move) = (0, done);
        let lag = loop {
            let taken = captured(self.d)?.saturating_sub(captured_before);
            let now = Instant::now();
            if taken >= moved_total {
                break now - done;
            }
            if taken != last {
                (last, last_move) = (taken, now);
            } else if now - last_move >= STILL || now - done >= EXIT_WAIT {
                break last_move - done;
            }
            thread::sleep(Duration::from_millis(5));
        };
        let cpu = cpu_time(dpid)?.saturating_sub(cpu_before);
        let cpu_span = start.elapsed();
        for s in servers {
            s.finish()?;
        }
        if answered != calls {
            bail!("{answered} answers for {calls} requests");
        }
        self.tail
            .wait(EXIT_WAIT, |s| pids.iter().all(|p| s.exited.contains_key(p)))?;
        thread::sleep(LOSS_TICK);
        let after = loss_counters(self.d)?;
        self.tail.poll()?;
        let seen = &self.tail.seen;
        let step = Step {
            label: label.to_string(),
            offered,
            achieved: calls as f64 / elapsed.as_secs_f64(),
            calls,
            events: seen.tool_calls_of(&pids),
            not_ok: seen.not_ok.values().sum::<u64>() - not_ok_before,
            loss: grown(&before, &after),
            bytes_lost: seen.bytes_lost_of(&pids),
            exits_missing: pids.iter().filter(|p| !seen.exited.contains_key(p)).count(),
            lag,
            cpu: cpu.as_secs_f64() / cpu_span.as_secs_f64(),
            machine: (machine_after.0 - machine_before.0) as f64
                / (machine_after.1 - machine_before.1).max(1) as f64,
            backlog_max: backlog.iter().copied().max().unwrap_or(0),
            backlog_settled: backlog.iter().rev().take(SETTLED).copied().min().unwrap_or(0),
        };
        self.tail.rotate(self.d)?;
        step.print();
        Ok(step)
    }
}

/// (2); the highest rate held, in words (None: only the rates asked were run).
fn rate_run(pairs: usize, only: &[f64]) -> anyhow::Result<Option<String>> {
    println!();
    println!(
        "(2) rate: 1 KiB tools/call requests (and their ~80-byte answers) at the default ring size \
         (16 MiB); steps of {:.0} s, {pairs} fresh client/server pairs each (a writer and a reader \
         thread per client): paced rates doubling from {FIRST_RATE:.0}/s, bisection, then unpaced",
        STEP.as_secs_f64()
    );
    println!(
        "offered/achieved: calls/s; events: tool_call events of the step's servers; held: yes when \
         no loss counter grew, every call is one ok event and the daemon kept up (behind: nothing \
         lost yet, but the backlog stayed over {} MiB through the step's last second; NO: loss); \
         backlog: bytes the clients moved that the daemon had not taken in (sampled every {} ms: \
         the most, the least in the last second); lag: from the end of the traffic \
         until the daemon had taken in all of it; daemon: its CPU use over traffic and lag (one CPU: \
         100%); machine: every process's over the traffic (every CPU busy: 100%)",
        KEPT_UP as f64 / MIB,
        BACKLOG_EVERY.as_millis()
    );
    let tag = unique_tag("loadrate");
    let path = event_file("mcp-monitor-load-rate");
    let result = (|| {
        let (d, mut tail) = start_daemon(&tag, &path)?;
        let mut run = RateRun {
            d: &d,
            tail: &mut tail,
            tag,
            pairs,
        };
        println!();
        rate_header();
        let steps = if only.is_empty() {
            run.search()?
        } else {
            only.iter()
                .map(|&r| run.step("asked", Some(r), STEP))
                .collect::<anyhow::Result<_>>()?
        };
        drop(run);
        tail.rotate(&d)?;
        let (status, _, _) = d.stop(WAIT)?;
        if !status.success() {
            bail!("the daemon exited with {status}");
        }
        anyhow::Ok(steps)
    })();
    let _ = std::fs::remove_file(&path);
    let steps = result?;
    if !only.is_empty() {
        return Ok(None);
    }

    println!();
    let all: Vec<&Step> = steps.iter().collect();
    let best = all
        .iter()
        .filter(|s| s.holds())
        .max_by(|a, b| a.achieved.total_cmp(&b.achieved));
    let Some(best) = best else {
        println!("no step held, not even {FIRST_RATE:.0} calls/s");
        return Ok(Some(format!("< {FIRST_RATE:.0} calls/s (no step held)")));
    };
    let lowest_above = |pred: &dyn Fn(&Step) -> bool| {
        all.iter()
            .copied()
            .filter(|s| pred(s) && s.achieved > best.achieved)
            .min_by(|a, b| a.achieved.total_cmp(&b.achieved))
    };
    println!("highest step held: {}", best.describe());
    let Some(above) = lowest_above(&|s| !s.holds()) else {
        println!(
            "every step held, unpaced included: the limit on this machine is the clients' and servers' \
             own speed ({pairs} pairs), {:.0} calls/s",
            best.achieved
        );
        return Ok(Some(format!(
            "{:.0} calls/s (client-bound: no loss even unpaced)",
            best.achieved
        )));
    };
    println!("the first step above it: {}", above.describe());
    if let Some(lossy) = lowest_above(&|s| !s.clean()).filter(|l| !std::ptr::eq(*l, above)) {
        println!("the lowest step with loss: {}", lossy.describe());
    }
    Ok(Some(format!("{:.0} calls/s", best.achieved)))
}
