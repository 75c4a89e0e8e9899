//! What the daemon adds to a real MCP server's `tools/call` round trip, next to what
//! `strace -f` and a stdio relay (a gateway at best) add, as root.
//!
//! The server is the official `@modelcontextprotocol/server-everything` (node, stdio
//! transport), installed by `tests/mcp/setup.sh`. This process is its MCP client: it
//! starts it, does `initialize` and `notifications/initialized`, then calls its `echo`
//! tool with a 64 KiB `message`, one call at a time, each timed from the request's
//! write to the end of the response line (the echo checked after the clock stops).
//! Four configurations: (a) no daemon, (b) the daemon watching the server, so that every
//! call is captured in the kernel and becomes a `tool_call` event (written to a file,
//! checked at the end: one event per call), (c) `strace -f -o /dev/null` on the server,
//! no daemon, and (d) a minimal C relay (two threads copying with read/write, compiled
//! with `cc -O2` at start) between client and server, no daemon; and, no daemon, the
//! floor of an in-kernel capture of the server's stdio (see `integration_tests::floor`):
//! (e) node's reads and writes copied into the ring by `sys_exit_floor`, a reader thread
//! woken by the ring, (f) the same without wake-ups, drained every 1 ms; the reader must
//! get every byte node read from stdin and wrote to stdout. They are interleaved over
//! several rounds, each with a fresh server (and daemon), the order rotating; the
//! median of the rounds' p50 is reported.
//!
//! Idle vCPUs are kept polling while timing: `/dev/cpu_dma_latency` held at 0 (PM QoS),
//! so that waking a CPU out of a deep idle state does not dominate the round trip; the
//! output says whether that worked. No CPU affinity is set (the scheduler's choice).
//! Needs `node`, `strace` and `cc`.
//!
//! By hand, after `cargo xtask build` and `bash tests/mcp/setup.sh`:
//! `cargo bench --package integration-tests --bench real_server`.
use std::{
    fs::File,
    io::{Read as _, Write as _},
    os::unix::fs::{FileExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{ChildStdin, ChildStdout, Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use integration_tests::{
    Daemon, Killed,
    bench::{
        Layout, TempDir, built_daemon, event_file, events_after_exit, kernel_release, main_as_root, median,
        online_cpus, paired_ratio, percentile, set_affinity,
    },
    floor::{self, Floor, Hook, Wake},
    mcp::mcp_dir,
    unique_tag,
};
use serde_json::{Value, json};

const ROUNDS: usize = 7;
/// Timed calls per configuration, over all rounds.
const CALLS: usize = 7_000;
/// Untimed calls before each timed series (node's JIT, the pipes' pages).
const WARM_UP: usize = 200;
const MESSAGE_BYTES: usize = 64 * 1024;
const WAIT: Duration = Duration::from_secs(30);
const EVERYTHING: &str = "node_modules/@modelcontextprotocol/server-everything/dist/index.js";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    NoDaemon,
    Watched,
    Strace,
    Relay,
    Floor,
    FloorPolled,
}

impl Config {
    const ALL: [Config; 6] = [
        Config::NoDaemon,
        Config::Watched,
        Config::Strace,
        Config::Relay,
        Config::Floor,
        Config::FloorPolled,
    ];

    fn label(self) -> &'static str {
        match self {
            Config::NoDaemon => "(a) no daemon",
            Config::Watched => "(b) daemon, server watched",
            Config::Strace => "(c) strace -f, no daemon",
            Config::Relay => "(d) C stdio relay, no daemon",
            Config::Floor => "(e) floor, reader woken",
            Config::FloorPolled => "(f) floor, reader polls 1 ms",
        }
    }

    /// The floor a configuration attaches; None for the others.
    fn floor(self) -> Option<Wake> {
        match self {
            Config::Floor => Some(Wake::Ring),
            Config::FloorPolled => Some(Wake::Polled),
            _ => None,
        }
    }
}

/// The relay of (d): the server's stdin and stdout are its pipes, and one thread copies
/// each direction with plain read/write; the server's stdin is closed at the client's
/// EOF, and the relay ends with the server's status once the server closes its stdout.
const RELAY_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF (1 << 16)

struct pump { int from, to; };

static void *pump(void *arg) {
    struct pump *p = arg;
    char *buf = malloc(BUF);
    if (!buf) abort();
    for (;;) {
        ssize_t n = read(p->from, buf, BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(p->to, buf + off, n - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) goto done;
            off += w;
        }
    }
done:
    close(p->to);
    free(buf);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: relay COMMAND [ARG...]\n");
        return 2;
    }
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
        perror("relay: pipe2");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("relay: fork");
        return 1;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp(argv[1], argv + 1);
        perror("relay: exec");
        _exit(127);
    }
    signal(SIGPIPE, SIG_IGN);
    close(in[0]);
    close(out[1]);
    struct pump up = {0, in[1]}, down = {out[0], 1};
    pthread_t t;
    if (pthread_create(&t, NULL, pump, &up)) {
        fprintf(stderr, "relay: pthread_create failed\n");
        return 1;
    }
    pump(&down);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("relay: waitpid");
            return 1;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
"#;

fn main() -> ExitCode {
    main_as_root("real_server", run)
}

/// What every configuration needs: the server's entry script, its tag, the wrappers.
struct Setup {
    entry: PathBuf,
    tag: String,
    events_path: PathBuf,
    strace: PathBuf,
    relay: PathBuf,
    /// The message, and the echo expected back.
    message: String,
    echo: String,
}

/// The server under test (maybe behind strace or the relay), and the client's ends of
/// its pipes.
struct Server {
    child: Killed,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Bytes read and not yet taken as a line.
    pending: Vec<u8>,
    scratch: Vec<u8>,
    next_id: u64,
    /// Bytes written to the server's stdin and read from its stdout.
    bytes_out: u64,
    bytes_in: u64,
}

/// What the client exchanged with one server.
struct Exchanged {
    calls: u64,
    /// What the server read from its stdin.
    bytes_out: u64,
    /// What the server wrote to its stdout.
    bytes_in: u64,
}

impl Server {
    fn spawn(setup: &Setup, config: Config) -> anyhow::Result<Self> {
        let mut cmd = match config {
            Config::NoDaemon | Config::Watched | Config::Floor | Config::FloorPolled => Command::new("node"),
            Config::Strace => {
                let mut c = Command::new(&setup.strace);
                c.args(["-f", "-o", "/dev/null", "node"]);
                c
            }
            Config::Relay => {
                let mut c = Command::new(&setup.relay);
                c.arg("node");
                c
            }
        };
        // Its stderr says only "Starting default (STDIO) server...". The tag, which it
        // ignores, is for the daemon's watch glob.
        let mut child = cmd
            .arg(&setup.entry)
            .args(["stdio", &setup.tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}: is node installed?", config.label()))?;
        let stdin = child.stdin.take().context("server stdin")?;
        let stdout = child.stdout.take().context("server stdout")?;
        Ok(Self {
            child: Killed(child),
            stdin: Some(stdin),
            stdout,
            pending: Vec::with_capacity(4 * MESSAGE_BYTES),
            scratch: vec![0; 2 * MESSAGE_BYTES],
            next_id: 1,
            bytes_out: 0,
            bytes_in: 0,
        })
    }

    /// Sends `message` and waits for the response to request `id`: the time from the
    /// write to the end of its line, and the response. Notifications in between are
    /// skipped (the server sends `tools/list_changed` after initialisation).
    fn exchange(&mut self, id: u64, message: &[u8]) -> anyhow::Result<(Duration, Value)> {
        let start = Instant::now();
        self.send(message)?;
        loop {
            let line = self.line()?;
            let elapsed = start.elapsed();
            let v: Value = serde_json::from_slice(&line).with_context(|| {
                format!(
                    "the server wrote a line that is not JSON: {}",
                    String::from_utf8_lossy(&line)
                )
            })?;
            if v["id"] == id {
                return Ok((elapsed, v));
            }
            if v.get("id").is_some() || v.get("method").is_none() {
                bail!("unexpected message from the server: {v}");
            }
        }
    }

    /// The next line from the server's stdout, its newline included.
    fn line(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.pending[searched..].iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(searched + i + 1);
                return Ok(std::mem::replace(&mut self.pending, rest));
            }
            searched = self.pending.len();
            let n = self.stdout.read(&mut self.scratch)?;
            if n == 0 {
                bail!("the server closed its stdout");
            }
            self.pending.extend_from_slice(&self.scratch[..n]);
            self.bytes_in += n as u64;
        }
    }

    fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stdin.as_mut().context("stdin closed")?.write_all(bytes)?;
        self.bytes_out += bytes.len() as u64;
        Ok(())
    }

    fn initialize(&mut self) -> anyhow::Result<()> {
        let request = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "real-server-bench", "version": "1.0.0"}}});
        let (_, v) = self.exchange(0, &line_of(&request))?;
        if v["result"]["serverInfo"]["name"] != "mcp-servers/everything" {
            bail!("unexpected initialize result: {v}");
        }
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.send(&line_of(&initialized))
    }

    /// `n` echo calls, each timed into `samples` when given, each echo checked.
    fn calls(&mut self, setup: &Setup, n: usize, mut samples: Option<&mut Vec<u64>>) -> anyhow::Result<()> {
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": setup.message}}});
            let request = line_of(&request);
            let (t, v) = self.exchange(id, &request)?;
            if v["result"]["content"][0]["text"] != setup.echo.as_str() {
                let shown: String = v.to_string().chars().take(300).collect();
                bail!("call {id}: not the echo of the message: {shown}");
            }
            if let Some(s) = samples.as_deref_mut() {
                s.push(t.as_nanos() as u64);
            }
        }
        Ok(())
    }

    /// Closes the server's stdin (it exits at EOF), waits for it and reads what it left
    /// in its stdout.
    fn finish(mut self) -> anyhow::Result<Exchanged> {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.0.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("the server still runs {WAIT:?} after its stdin closed");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !status.success() {
            bail!("the server exited with {status}");
        }
        let mut rest = Vec::new();
        self.stdout.read_to_end(&mut rest)?;
        Ok(Exchanged {
            calls: self.next_id - 1,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in + rest.len() as u64,
        })
    }
}

fn line_of(v: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(v).expect("JSON");
    line.push(b'\n');
    line
}

/// `name` in PATH, or an error naming the Debian package that has it.
fn tool(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .with_context(|| {
            format!(
                "`{name}` not found in PATH: install the Debian package {package} (apt-get install {package})"
            )
        })
}

/// Compiles the relay of (d) into `dir`.
fn build_relay(cc: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let source = dir.join("relay.c");
    let bin = dir.join("relay");
    std::fs::write(&source, RELAY_C)?;
    let out = Command::new(cc)
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&source)
        .output()
        .with_context(|| format!("running {}", cc.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed to compile the relay: {}",
            cc.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(bin)
}

/// Holds `/dev/cpu_dma_latency` at 0 while open (PM QoS: idle CPUs stay in their
/// shallowest state, polling where the idle driver has such a state); the file, and a
/// sentence saying whether it worked.
fn hold_cpu_latency() -> (Option<File>, String) {
    let driver = std::fs::read_to_string("/sys/devices/system/cpu/cpuidle/current_driver")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "none".into());
    let held = (|| {
        let mut f = File::options()
            .read(true)
            .write(true)
            .open("/dev/cpu_dma_latency")?;
        f.write_all(&0i32.to_ne_bytes())?;
        // The effective limit, all requests on the host combined.
        let mut limit = [0u8; 4];
        let limit = f.read_exact_at(&mut limit, 0).map(|()| i32::from_ne_bytes(limit));
        std::io::Result::Ok((f, limit))
    })();
    match held {
        Ok((f, Ok(0))) => (
            Some(f),
            format!("held at 0 us (effective limit 0 us; cpuidle driver {driver}): idle vCPUs kept polling"),
        ),
        Ok((f, Ok(limit))) => (
            Some(f),
            format!("written 0 us, but the effective limit reads {limit} us (cpuidle driver {driver})"),
        ),
        Ok((f, Err(e))) => (
            Some(f),
            format!("held at 0 us (effective limit unreadable: {e}; cpuidle driver {driver})"),
        ),
        Err(e) => (
            None,
            format!("NOT held ({e}): idle vCPUs may sleep deeply (cpuidle driver {driver})"),
        ),
    }
}

/// What the watched rounds left in the event file, and what the floor's reader got.
#[derive(Default)]
struct Checked {
    calls: u64,
    tool_calls: u64,
    not_ok: u64,
    loss_reports: u64,
    /// By floor configuration ((e), (f)).
    floor: [floor::Check; 2],
}

fn run() -> anyhow::Result<()> {
    let bin = built_daemon()?;
    let strace = tool("strace", "strace")?;
    let cc = tool("cc", "gcc")?;
    let entry = mcp_dir().join(EVERYTHING);
    if !entry.exists() {
        bail!("{} missing: run `bash tests/mcp/setup.sh`", entry.display());
    }
    let dir = TempDir::new("mcp-monitor-real-server")?;
    let relay = build_relay(&cc, dir.path())?;
    let text = "the quick brown fox jumps over the lazy dog; ";
    let message: String = text.repeat(MESSAGE_BYTES / text.len() + 1)[..MESSAGE_BYTES].to_string();
    let setup = Setup {
        entry,
        tag: unique_tag("realserver"),
        events_path: event_file("mcp-monitor-bench-real-server"),
        strace,
        relay,
        echo: format!("Echo: {message}"),
        message,
    };
    let online = online_cpus();
    let all: Vec<usize> = (0..online).collect();
    // Free layout: whatever this process inherited, every CPU is the scheduler's to use.
    let layout = Layout::Free;
    set_affinity(0, &all)?;
    let (qos, qos_note) = hold_cpu_latency();
    let per_round = CALLS / ROUNDS;
    println!(
        "real_server: latency of a 64 KiB echo tools/call to server-everything (node, stdio), \
         with the daemon watching it, under strace -f, behind a C relay"
    );
    println!(
        "machine: nproc {online}, Linux {}; daemon {}",
        kernel_release(),
        bin.display()
    );
    println!("/dev/cpu_dma_latency: {qos_note}");
    println!(
        "{ROUNDS} rounds, configurations interleaved (order rotating), a fresh server (and daemon) \
         each; per configuration and round: {WARM_UP} warm-up then {per_round} timed sequential \
         echo calls with a {MESSAGE_BYTES}-byte message; layout {}",
        layout.label()
    );
    let n = Config::ALL.len();
    // samples[config]: nanoseconds per round trip, all rounds.
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); n];
    // round_p50[config]: each round's median, in run order.
    let mut round_p50: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut checked = Checked::default();
    let result = (|| {
        for round in 0..ROUNDS {
            for k in 0..n {
                let i = (round + k) % n;
                let config = Config::ALL[i];
                let mut sample = Vec::with_capacity(per_round);
                measure(config, &setup, per_round, &mut sample, &mut checked)
                    .with_context(|| format!("{}, round {}", config.label(), round + 1))?;
                sample.sort_unstable();
                round_p50[i].push(percentile(&sample, 50.0));
                samples[i].extend(sample);
            }
            eprintln!("real_server: round {}/{ROUNDS} done", round + 1);
        }
        anyhow::Ok(())
    })();
    drop(qos);
    let _ = std::fs::remove_file(&setup.events_path);
    result?;

    let p50: Vec<f64> = round_p50.iter().map(|r| median(r)).collect();
    // Each round's p50 over (a)'s in the same round, the median of those.
    let paired: Vec<f64> = round_p50.iter().map(|r| paired_ratio(r, &round_p50[0])).collect();
    let tails: Vec<[f64; 2]> = samples
        .iter_mut()
        .map(|s| {
            s.sort_unstable();
            [percentile(s, 90.0), percentile(s, 99.0)]
        })
        .collect();
    println!();
    println!(
        "{:<30} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} | {:>9}",
        "configuration", "p50 ms", "p90 ms", "p99 ms", "p50 x", "paired x", "p90 x", "p99 x", "+p50 us"
    );
    println!("{}", "-".repeat(30 + 3 + 26 + 3 + 35 + 3 + 9));
    for (i, config) in Config::ALL.into_iter().enumerate() {
        println!(
            "{:<30} | {:>8.3} {:>8.3} {:>8.3} | {:>8} {:>8} {:>8} {:>8} | {:>+9.1}",
            config.label(),
            p50[i] / 1e6,
            tails[i][0] / 1e6,
            tails[i][1] / 1e6,
            format!("x{:.3}", p50[i] / p50[0]),
            format!("x{:.3}", paired[i]),
            format!("x{:.2}", tails[i][0] / tails[0][0]),
            format!("x{:.2}", tails[i][1] / tails[0][1]),
            (p50[i] - p50[0]) / 1e3,
        );
    }
    println!();
    println!(
        "p50: the median round's; p90, p99: over all {} timed calls of a configuration; \
         x: over (a)'s; paired x: the median over rounds of that round's p50 over (a)'s; \
         +p50 us: added median latency",
        samples[0].len()
    );
    println!("per-round p50 ms (rounds in run order):");
    for (i, config) in Config::ALL.into_iter().enumerate() {
        let shown: Vec<String> = round_p50[i].iter().map(|ns| format!("{:.3}", ns / 1e6)).collect();
        println!("  {:<30} {}", config.label(), shown.join(" "));
    }
    println!(
        "(b) event file check: {} tool_call events for {} calls sent (warm-up included), {} not ok, \
         {} loss reports",
        checked.tool_calls, checked.calls, checked.not_ok, checked.loss_reports
    );
    for (f, config) in [Config::Floor, Config::FloorPolled].into_iter().enumerate() {
        println!(
            "{} reader check (initialize and warm-up included): {}",
            &config.label()[..3],
            checked.floor[f]
        );
    }
    // For `cargo xtask bench`'s summary table.
    let polling = if qos_note.contains("kept polling") {
        ""
    } else {
        " (PM QoS not confirmed)"
    };
    for (now, base, what, budget) in [
        (
            Config::Watched,
            Config::NoDaemon,
            "watched real server (server-everything echo)",
            "<= x1.10",
        ),
        (
            Config::Strace,
            Config::NoDaemon,
            "strace -f on the real server (server-everything echo)",
            "-",
        ),
        (
            Config::Relay,
            Config::NoDaemon,
            "C stdio relay before the real server (server-everything echo)",
            "-",
        ),
        (
            Config::Floor,
            Config::NoDaemon,
            "capture floor (copy into the ring, reader woken) on the real server (server-everything echo)",
            "stated",
        ),
        (
            Config::Watched,
            Config::Floor,
            "watched real server vs the capture floor (server-everything echo)",
            "stated",
        ),
    ] {
        let (now, base) = (p50[now as usize], p50[base as usize]);
        println!(
            "summary | {what}, 64 KiB, p50{polling} | {:.3} ms | {:.3} ms | x{:.3} | {budget}",
            now / 1e6,
            base / 1e6,
            now / base
        );
    }
    if checked.tool_calls != checked.calls || checked.not_ok != 0 {
        bail!("every call to the watched server must be one tool_call event, its outcome ok");
    }
    if !checked.floor.iter().all(floor::Check::complete) {
        bail!("the floor's reader must get every byte the server read from stdin and wrote to stdout");
    }
    Ok(())
}

fn measure(
    config: Config,
    setup: &Setup,
    n: usize,
    samples: &mut Vec<u64>,
    checked: &mut Checked,
) -> anyhow::Result<()> {
    let daemon = match config {
        Config::Watched => Some(Daemon::start_with_events(
            &["--watch", &format!("*{}*", setup.tag)],
            &setup.events_path,
        )?),
        _ => None,
    };
    let mut server = Server::spawn(setup, config)?;
    // Before `initialize`: the floor must see every byte of stdin and stdout.
    let floor = match config.floor() {
        Some(wake) => Some(Floor::attach(
            monitor::kernel::capture::ebpf_object(),
            server.child.pid(),
            Hook::Copy(wake),
            &(0..online_cpus()).collect::<Vec<_>>(),
        )?),
        None => None,
    };
    let pid = u64::from(server.child.pid());
    if let Some(d) = &daemon {
        d.wait_for(WAIT, |e| {
            e["type"] == "server_started" && e["server"]["pid"] == pid
        })
        .with_context(|| format!("the daemon did not watch the server; stderr:\n{}", d.stderr()))?;
    }
    server.initialize()?;
    server.calls(setup, WARM_UP, None)?;
    server.calls(setup, n, Some(samples))?;
    let sent = server.finish()?;
    if let Some(floor) = floor {
        let got = floor.finish()?;
        checked.floor[config as usize - Config::Floor as usize].add(sent.bytes_out, sent.bytes_in, &got);
    }
    let Some(d) = daemon else {
        return Ok(());
    };
    let events = events_after_exit(d, pid, true, WAIT)?;
    let calls: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call" && e["server"]["pid"] == pid)
        .collect();
    checked.calls += sent.calls;
    checked.tool_calls += calls.len() as u64;
    checked.not_ok += calls.iter().filter(|e| e["outcome"] != "ok").count() as u64;
    checked.loss_reports += events
        .iter()
        .filter(|e| e["type"] == "monitor_status" && e["status"] == "loss")
        .count() as u64;
    Ok(())
}
