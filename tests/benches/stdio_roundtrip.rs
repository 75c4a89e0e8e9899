//! What the daemon adds to a stdio `tools/call` round trip, as root.
//!
//! This process is the MCP client: it sends a 200-byte `tools/call` request line to
//! `pipe-peer jsonrpc` (the server) over its stdin pipe and waits for the one-line
//! result on its stdout pipe, one request at a time. Timed per round trip, with
//! (a) no daemon, (b) the daemon running with a `--watch` glob that does not match the
//! server, and (c) the daemon watching the server, so that every request and response
//! is captured in the kernel and becomes a `tool_call` event (written to a file, which
//! is checked at the end: one event per request). Then, no daemon, the floor of such a
//! capture (see `integration_tests::floor`): (d) an empty program on the daemon's hook
//! (tp_btf `sys_exit`), what the hook alone costs; (e) `sys_exit_floor` on that hook,
//! for the server's pid only: each read and write's bytes copied straight into records
//! reserved in the ring, submitted with the ring's own wake-up rule and drained by a
//! reader thread in epoll_wait(); (f) the same submitted without wake-ups and drained
//! every 1 ms, which sets the wake-ups' cost apart. The floor's reader must get every
//! byte the server read and wrote (checked at the end). All are interleaved over
//! several rounds, each with a fresh server (and daemon), the order rotating.
//!
//! Each is measured in two CPU layouts: `free` (the scheduler's choice: what users
//! get) and `pinned` (client and server on the last CPU, the daemon on CPU 0). On a
//! small VM, `free` round trips are dominated by waking an idle CPU, which a busy
//! daemon can make cheaper; `pinned` takes idle CPUs out of the path and shows what
//! the capture adds to the server's syscalls. The floor's reader runs where the daemon
//! would.
//!
//! `cargo xtask bench` builds the daemon and runs this; by hand, after
//! `cargo xtask build`: `cargo bench --package integration-tests --bench stdio_roundtrip`.
use std::{
    io::{Read as _, Write as _},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, ExitCode},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use integration_tests::{
    Daemon,
    bench::{
        Layout, built_daemon, event_file, events_after_exit, jsonrpc_peer, kernel_release, main_as_root,
        online_cpus, paired_ratio, percentile, set_affinity, tools_call_line,
    },
    floor::{self, Floor, Hook, Wake},
    unique_tag,
};

const ROUNDS: usize = 5;
/// Timed round trips per configuration, over all rounds.
const REQUESTS: usize = 20_000;
/// Untimed round trips before each timed series.
const WARM_UP: usize = 1_000;
const REQUEST_BYTES: usize = 200;
const WAIT: Duration = Duration::from_secs(30);

/// In the order of `Config::ALL` (the discriminant is the index).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    NoDaemon,
    Unwatched,
    Watched,
    EmptyHook,
    Floor,
    FloorPolled,
}

const NC: usize = Config::ALL.len();

impl Config {
    const ALL: [Config; 6] = [
        Config::NoDaemon,
        Config::Unwatched,
        Config::Watched,
        Config::EmptyHook,
        Config::Floor,
        Config::FloorPolled,
    ];

    fn label(self) -> &'static str {
        match self {
            Config::NoDaemon => "(a) no daemon",
            Config::Unwatched => "(b) daemon, server not watched",
            Config::Watched => "(c) daemon, server watched",
            Config::EmptyHook => "(d) empty program on the hook",
            Config::Floor => "(e) floor, reader woken",
            Config::FloorPolled => "(f) floor, reader polls 1 ms",
        }
    }

    /// What a floor configuration attaches; None for the others.
    fn floor(self) -> Option<Hook> {
        match self {
            Config::EmptyHook => Some(Hook::Empty),
            Config::Floor => Some(Hook::Copy(Wake::Ring)),
            Config::FloorPolled => Some(Hook::Copy(Wake::Polled)),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    main_as_root("stdio_roundtrip", run)
}

/// The server under test, and the client's ends of its pipes.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    next_id: u64,
    reply: Vec<u8>,
    /// Bytes written to the server's stdin and read from its stdout.
    bytes_out: u64,
    bytes_in: u64,
}

/// What the client exchanged with one server.
struct Exchanged {
    requests: u64,
    /// What the server read from its stdin.
    bytes_out: u64,
    /// What the server wrote to its stdout.
    bytes_in: u64,
}

impl Peer {
    fn spawn(tag: &str) -> anyhow::Result<Self> {
        let mut child = jsonrpc_peer(env!("CARGO_BIN_EXE_pipe-peer"), tag)?;
        let stdin = child.stdin.take().context("peer stdin")?;
        let stdout = child.stdout.take().context("peer stdout")?;
        Ok(Self {
            child,
            stdin,
            stdout,
            next_id: 1,
            reply: Vec::with_capacity(256),
            bytes_out: 0,
            bytes_in: 0,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One round trip: the request in one write(), then reads until the result's newline.
    fn call(&mut self, request: &[u8]) -> anyhow::Result<Duration> {
        let start = Instant::now();
        self.stdin.write_all(request)?;
        self.reply.clear();
        let mut buf = [0u8; 256];
        loop {
            let n = self.stdout.read(&mut buf)?;
            if n == 0 {
                bail!("the server closed its stdout");
            }
            self.reply.extend_from_slice(&buf[..n]);
            if self.reply.last() == Some(&b'\n') {
                break;
            }
        }
        let elapsed = start.elapsed();
        self.bytes_out += request.len() as u64;
        self.bytes_in += self.reply.len() as u64;
        if !self.reply.starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":") {
            bail!("unexpected reply: {}", String::from_utf8_lossy(&self.reply));
        }
        Ok(elapsed)
    }

    /// `n` round trips, each timed into `samples` when given.
    fn calls(&mut self, n: usize, mut samples: Option<&mut Vec<u64>>) -> anyhow::Result<()> {
        for _ in 0..n {
            let request = tools_call_line(self.next_id, REQUEST_BYTES);
            self.next_id += 1;
            let t = self.call(&request)?;
            if let Some(s) = samples.as_deref_mut() {
                s.push(t.as_nanos() as u64);
            }
        }
        Ok(())
    }

    /// Closes the server's stdin (it exits at EOF) and waits for it.
    fn finish(self) -> anyhow::Result<Exchanged> {
        let Peer {
            mut child,
            stdin,
            stdout,
            next_id,
            bytes_out,
            bytes_in,
            ..
        } = self;
        drop(stdin);
        let status = child.wait()?;
        drop(stdout);
        if !status.success() {
            bail!("pipe-peer exited with {status}");
        }
        Ok(Exchanged {
            requests: next_id - 1,
            bytes_out,
            bytes_in,
        })
    }
}

/// What the watched rounds left in the event file, and what the floor's reader got.
#[derive(Default)]
struct Checked {
    requests: u64,
    tool_calls: u64,
    loss_reports: u64,
    /// By copying floor configuration ((e), (f)).
    floor: [floor::Check; 2],
}

fn run() -> anyhow::Result<()> {
    let bin = built_daemon()?;
    let per_round = REQUESTS / ROUNDS;
    let online = online_cpus();
    let all: Vec<usize> = (0..online).collect();
    println!("stdio_roundtrip: latency of a stdio tools/call round trip, without and with the daemon");
    println!(
        "machine: nproc {online}, Linux {}; daemon {}",
        kernel_release(),
        bin.display()
    );
    println!(
        "{ROUNDS} rounds, configurations interleaved (order rotating), a fresh server (and daemon) each; \
         per configuration and round: {WARM_UP} warm-up then {per_round} timed sequential \
         {REQUEST_BYTES}-byte tools/call requests; layouts: free (no affinity) and pinned \
         (client and server on CPU {}, daemon on CPU 0)",
        online - 1
    );
    let tag = unique_tag("roundtrip");
    let events_path = event_file("mcp-monitor-bench");
    // samples[layout][config]: nanoseconds per round trip.
    let mut samples: [[Vec<u64>; NC]; 2] = Default::default();
    // round_p50[layout][config]: each round's median, to show the spread between rounds.
    let mut round_p50: [[Vec<f64>; NC]; 2] = Default::default();
    let mut checked = Checked::default();
    let result = (|| {
        for round in 0..ROUNDS {
            for (l, layout) in Layout::ALL.into_iter().enumerate() {
                for k in 0..NC {
                    let i = (round + k) % NC;
                    let config = Config::ALL[i];
                    let mut sample = Vec::with_capacity(per_round);
                    measure(
                        config,
                        layout,
                        online,
                        &tag,
                        &events_path,
                        per_round,
                        &mut sample,
                        &mut checked,
                    )
                    .with_context(|| format!("{} {}, round {}", layout.label(), config.label(), round + 1))?;
                    sample.sort_unstable();
                    round_p50[l][i].push(percentile(&sample, 50.0));
                    samples[l][i].extend(sample);
                }
            }
            eprintln!("stdio_roundtrip: round {}/{ROUNDS} done", round + 1);
        }
        anyhow::Ok(())
    })();
    set_affinity(0, &all)?;
    let _ = std::fs::remove_file(&events_path);
    result?;

    println!();
    println!(
        "{:<6} {:<32} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>9}",
        "layout", "configuration", "p50 us", "p90 us", "p99 us", "p50 x", "p90 x", "p99 x", "+p50 us"
    );
    println!("{}", "-".repeat(7 + 32 + 3 + 26 + 3 + 26 + 3 + 9));
    for (l, layout) in Layout::ALL.into_iter().enumerate() {
        let pct: Vec<[f64; 3]> = samples[l]
            .iter_mut()
            .map(|s| {
                s.sort_unstable();
                [percentile(s, 50.0), percentile(s, 90.0), percentile(s, 99.0)]
            })
            .collect();
        let bare = pct[0];
        for (i, config) in Config::ALL.into_iter().enumerate() {
            let p = pct[i];
            println!(
                "{:<6} {:<32} | {:>8.1} {:>8.1} {:>8.1} | {:>8} {:>8} {:>8} | {:>+9.1}",
                layout.label(),
                config.label(),
                p[0] / 1e3,
                p[1] / 1e3,
                p[2] / 1e3,
                format!("x{:.2}", p[0] / bare[0]),
                format!("x{:.2}", p[1] / bare[1]),
                format!("x{:.2}", p[2] / bare[2]),
                (p[0] - bare[0]) / 1e3,
            );
        }
        if layout == Layout::Pinned {
            // For `cargo xtask bench`'s summary table.
            let p50 = |c: Config| pct[c as usize][0];
            let row = |what: &str, now: Config, base: Config, budget: &str| {
                println!(
                    "summary | {what}, 200 B, p50, pinned | {:.1} us | {:.1} us | x{:.3} | {budget}",
                    p50(now) / 1e3,
                    p50(base) / 1e3,
                    p50(now) / p50(base)
                );
            };
            row(
                "watched stdio tools/call round trip",
                Config::Watched,
                Config::NoDaemon,
                "<= x1.15",
            );
            row(
                "stdio round trip under the capture floor (copy into the ring, reader woken) vs no capture",
                Config::Floor,
                Config::NoDaemon,
                "stated",
            );
            row(
                "stdio round trip under an empty program on the daemon's hook vs no capture",
                Config::EmptyHook,
                Config::NoDaemon,
                "stated",
            );
            row(
                "watched stdio tools/call round trip vs the capture floor",
                Config::Watched,
                Config::Floor,
                "stated",
            );
        }
    }
    println!();
    println!(
        "{} timed round trips per layout and configuration; x: this configuration's percentile \
         over (a)'s in the same layout; +p50 us: added median latency",
        samples[0][0].len()
    );
    println!("per-round p50 us (rounds in run order):");
    for (l, layout) in Layout::ALL.into_iter().enumerate() {
        for (i, config) in Config::ALL.into_iter().enumerate() {
            let shown: Vec<String> = round_p50[l][i]
                .iter()
                .map(|ns| format!("{:.1}", ns / 1e3))
                .collect();
            println!(
                "  {:<6} {:<32} {}",
                layout.label(),
                config.label(),
                shown.join(" ")
            );
        }
    }
    // The floor's rows, paired round by round: this machine's noise moves whole rounds.
    for (l, layout) in Layout::ALL.into_iter().enumerate() {
        let paired = |now: Config, base: Config| {
            format!(
                "x{:.3}",
                paired_ratio(&round_p50[l][now as usize], &round_p50[l][base as usize])
            )
        };
        println!(
            "paired p50 ({}): (d)/(a) {}, (e)/(a) {}, (f)/(a) {}, (c)/(a) {}, (c)/(e) {}, (c)/(f) {}",
            layout.label(),
            paired(Config::EmptyHook, Config::NoDaemon),
            paired(Config::Floor, Config::NoDaemon),
            paired(Config::FloorPolled, Config::NoDaemon),
            paired(Config::Watched, Config::NoDaemon),
            paired(Config::Watched, Config::Floor),
            paired(Config::Watched, Config::FloorPolled),
        );
    }
    println!("  (paired: the median over rounds of the round's p50 over the other's)");
    println!(
        "(c) event file check: {} tool_call events for {} requests sent (warm-up included), \
         {} loss reports",
        checked.tool_calls, checked.requests, checked.loss_reports
    );
    for (f, config) in [Config::Floor, Config::FloorPolled].into_iter().enumerate() {
        println!(
            "{} reader check (warm-up included): {}",
            &config.label()[..3],
            checked.floor[f]
        );
    }
    if checked.tool_calls != checked.requests {
        bail!("every request sent to the watched server must be one tool_call event");
    }
    if !checked.floor.iter().all(floor::Check::complete) {
        bail!("the floor's reader must get every byte the server read and wrote");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    config: Config,
    layout: Layout,
    online: usize,
    tag: &str,
    events_path: &Path,
    n: usize,
    samples: &mut Vec<u64>,
    checked: &mut Checked,
) -> anyhow::Result<()> {
    let glob = match config {
        Config::NoDaemon | Config::EmptyHook | Config::Floor | Config::FloorPolled => None,
        Config::Unwatched => Some(format!("*{tag}-does-not-match*")),
        Config::Watched => Some(format!("*{tag}*")),
    };
    // Processes and threads inherit the affinity of the thread that starts them.
    let all: Vec<usize> = (0..online).collect();
    match layout {
        Layout::Free => set_affinity(0, &all)?,
        Layout::Pinned => set_affinity(0, &[0])?,
    }
    let daemon = match &glob {
        None => None,
        Some(g) => Some(Daemon::start_with_events(&["--watch", g], events_path)?),
    };
    if layout == Layout::Pinned {
        set_affinity(0, &[online - 1])?;
    }
    let mut peer = Peer::spawn(tag)?;
    // The floor's reader where the daemon would be.
    let reader_cpus = match layout {
        Layout::Free => all,
        Layout::Pinned => vec![0],
    };
    let floor = match config.floor() {
        Some(hook) => Some(Floor::attach(
            monitor::kernel::capture::ebpf_object(),
            peer.pid(),
            hook,
            &reader_cpus,
        )?),
        None => None,
    };
    let pid = u64::from(peer.pid());
    if let (Config::Watched, Some(d)) = (config, &daemon) {
        d.wait_for(WAIT, |e| {
            e["type"] == "server_started" && e["server"]["pid"] == pid
        })
        .with_context(|| format!("the daemon did not watch the server; stderr:\n{}", d.stderr()))?;
    }
    peer.calls(WARM_UP, None)?;
    peer.calls(n, Some(samples))?;
    let sent = peer.finish()?;
    if let Some(floor) = floor {
        let got = floor.finish()?;
        // The copying ones ((e), (f)); (d) copies nothing.
        if let Some(c) = (config as usize).checked_sub(Config::Floor as usize) {
            checked.floor[c].add(sent.bytes_out, sent.bytes_in, &got);
        }
    }
    let Some(d) = daemon else {
        return Ok(());
    };
    let events = events_after_exit(d, pid, config == Config::Watched, WAIT)?;
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && e["server"]["pid"] == pid)
            .count() as u64
    };
    let loss = events
        .iter()
        .filter(|e| e["type"] == "monitor_status" && e["status"] == "loss")
        .count() as u64;
    match config {
        Config::Watched => {
            checked.requests += sent.requests;
            checked.tool_calls += count("tool_call");
            checked.loss_reports += loss;
        }
        _ => {
            if count("server_started") != 0 {
                bail!("the unwatched server was watched");
            }
        }
    }
    Ok(())
}
