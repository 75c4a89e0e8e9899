//! What the OpenSSL uprobes cost, as root: an HTTPS round trip of a watched server with
//! and without them, and of an unwatched process that maps the same libssl.
//!
//! Two Python TLS servers (system `python3`, stdlib `ssl` on asyncio's memory BIOs,
//! as uvicorn does; `libssl.so.3`) answer HTTP/1.1 keep-alive requests: a client sends
//! `POST /mcp` with a 1 KiB JSON-RPC `tools/call` body in one write, and the server
//! answers `200` with a 1 KiB JSON-RPC result. A Python client (never watched: nothing
//! on its command line matches) opens one TLS connection, does `WARM_UP` untimed round
//! trips, then `N` timed ones, each from before its request's write to the end of its
//! response's body (`time.perf_counter_ns`), and prints the samples as JSON; this
//! process pools them per configuration and takes nearest-rank percentiles.
//!
//! Workload `watched`: the server has a unique tag on its command line, and the daemon
//! runs with `--watch '*TAG*'`. (a) no daemon; (b) the daemon watching the server with
//! its uprobes on (the default): every request and response is read as plaintext from
//! `SSL_read_ex`/`SSL_write_ex`, parsed (HTTP, JSON-RPC) and becomes a `tool_call`
//! event, on top of the ciphertext its syscall hooks capture and drop; (c) the same
//! daemon with `--no-tls`: the server is watched and its socket ciphertext captured and
//! dropped, but no uprobe is attached. (b) over (c) is what the probes cost a watched
//! server, including reading what they deliver; (c) over (a) is the syscall capture.
//!
//! Workload `unwatched`: the second server, with no tag (never watched), same loop, with
//! (a) no daemon and (b) the daemon of (b) running, its uprobes attached to the watched
//! server's `libssl.so.3`, the file this one maps too. The uprobes are attached per
//! process (pid-filtered), so this process should hit no breakpoint: no difference
//! beyond noise.
//!
//! Both servers are started once and live through the whole run: each daemon finds the
//! tagged one among the processes running at its start (and probes the libssl it maps),
//! and stopping a daemon detaches everything it attached. Every measurement is a fresh
//! client and connection, so the daemon sees each TLS handshake. After one untimed
//! client run per server, the rounds interleave the three daemon states (none, uprobes,
//! `--no-tls`; a fresh daemon each time) with the order rotating, and alternate the
//! order of the workloads within a state. Before
//! timing, (b) waits for the daemon's `tls_probed` event for the server and (c) for its
//! `server_started`. Each daemon's CPU time (utime + stime of all its threads) over a
//! client's run is reported per round trip. At the end of each daemon session, it is
//! checked that the setup measured what it claims, else the bench fails: (b) one
//! `tool_call` event per request sent to the watched server (the plaintext was read)
//! and a nonzero `mcp_monitor_tls_ciphertext_dropped_total`; (c) no `tool_call`, no
//! `tls_probed`, a `tls_unreadable` event with reason `disabled`, and ciphertext
//! dropped (the server was watched); in both, no event about the unwatched server.
//!
//! Every configuration is measured in two CPU layouts, as in `stdio_roundtrip`: `free`
//! (the scheduler's choice: what users get) and `pinned` (clients and servers on the
//! last CPU, the daemon on CPU 0; the running servers' affinity is set before each
//! session). `pinned` keeps the daemon's own work off the servers' CPU, so what is left
//! is what the probes add in the path of the server's `SSL_*` calls.
//!
//! `cargo xtask bench` builds the daemon and runs this; by hand, after
//! `cargo xtask build`: `cargo bench --package integration-tests --bench tls_cost`.
use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use integration_tests::{
    Daemon, Killed,
    bench::{
        Layout, TempDir, built_daemon, cpu_time, event_file, kernel_release, main_as_root, online_cpus,
        percentile, set_affinity,
    },
    mcp::{free_port, make_cert, wait_listening},
    metrics::{scrape, sum},
    unique_tag,
};
use serde_json::Value;

const ROUNDS: usize = 5;
/// Timed round trips per client run (one per configuration and round).
const N: usize = 3_000;
/// Untimed round trips before the timed ones, on the same connection.
const WARM_UP: usize = 300;
/// Request and response body size.
const BODY_BYTES: usize = 1024;
const WAIT: Duration = Duration::from_secs(30);

/// The HTTPS server: HTTP/1.1 keep-alive over asyncio's TLS (memory BIOs), answering
/// each POST with a JSON-RPC result of BODY_BYTES carrying the request's id. Arguments
/// after PORT CERT KEY BYTES are ignored (the watched one's tag goes there).
const SERVER: &str = r#"
import asyncio, ssl, sys
port, cert, key, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def result(rid):
    make = lambda pad: b'{"jsonrpc":"2.0","id":' + rid + b',"result":{"content":[{"type":"text","text":"' + pad + b'"}],"isError":false}}'
    return make(b"y" * max(0, size - len(make(b""))))
async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":", 1)[1])
            body = await r.readexactly(n)
            i = body.index(b'"id":') + 5
            out = result(body[i:body.index(b",", i)])
            w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(out) + out)
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        w.close()
async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    s = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    async with s:
        await s.serve_forever()
asyncio.run(main())
"#;

/// The client: one blocking TLS connection (TCP_NODELAY), WARM UP untimed then N timed
/// sequential POSTs of a BODY_BYTES tools/call, each request in one write; prints
/// {"samples_ns": [...]} (the timed ones) and {"requests": total}.
const CLIENT: &str = r#"
import json, socket, ssl, sys, time
port, ca, warm, n, size = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
ctx = ssl.create_default_context(cafile=ca)
def request(i):
    make = lambda pad: ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"read_text_file","arguments":{"path":"/home/user/project/%s.rs"}}}' % (i, pad)).encode()
    body = make("x" * max(0, size - len(make(""))))
    return b"POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(body) + body
def length(head):
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    sys.exit("no content-length in %r" % head)
def recv(s):
    part = s.recv(65536)
    if not part:
        sys.exit("the server closed the connection")
    return part
samples = []
with socket.create_connection(("127.0.0.1", port)) as c:
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(c, server_hostname="localhost")
    buf = b""
    for i in range(warm + n):
        req = request(i + 1)
        t0 = time.perf_counter_ns()
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            buf += recv(s)
        head, _, buf = buf.partition(b"\r\n\r\n")
        want = length(head)
        while len(buf) < want:
            buf += recv(s)
        body, buf = buf[:want], buf[want:]
        t = time.perf_counter_ns() - t0
        if not head.startswith(b"HTTP/1.1 200 ") or b'"id":%d,' % (i + 1) not in body:
            sys.exit("unexpected response: %r" % (head + body[:100]))
        if i >= warm:
            samples.append(t)
    s.close()
json.dump({"samples_ns": samples, "requests": warm + n}, sys.stdout)
"#;

/// Sets the CPU affinity of every thread of process `pid`.
fn set_process_affinity(pid: u32, cpus: &[usize]) -> anyhow::Result<()> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let tid: i32 = task?.file_name().to_string_lossy().parse()?;
        set_affinity(tid, cpus)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Watched,
    Unwatched,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Watched => "watched",
            Workload::Unwatched => "unwatched",
        }
    }
}

/// What runs beside the servers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DaemonState {
    None,
    /// `--watch '*TAG*'`: the tagged server watched, its OpenSSL probed.
    Probes,
    /// `--watch '*TAG*' --no-tls`: watched, no uprobes.
    NoTls,
}

impl DaemonState {
    const ALL: [DaemonState; 3] = [DaemonState::None, DaemonState::Probes, DaemonState::NoTls];

    /// The workloads timed in this state.
    fn workloads(self) -> &'static [Workload] {
        match self {
            DaemonState::None | DaemonState::Probes => &[Workload::Watched, Workload::Unwatched],
            DaemonState::NoTls => &[Workload::Watched],
        }
    }
}

/// The rows of the table, in order: (workload, daemon state, label).
const CONFIGS: [(Workload, DaemonState, &str); 5] = [
    (Workload::Watched, DaemonState::None, "(a) no daemon"),
    (Workload::Watched, DaemonState::Probes, "(b) daemon, uprobes"),
    (Workload::Watched, DaemonState::NoTls, "(c) daemon, --no-tls"),
    (Workload::Unwatched, DaemonState::None, "(a) no daemon"),
    (
        Workload::Unwatched,
        DaemonState::Probes,
        "(b) daemon of (b) running",
    ),
];

fn config_index(w: Workload, s: DaemonState) -> usize {
    CONFIGS
        .iter()
        .position(|c| c.0 == w && c.1 == s)
        .expect("every timed pair is a row")
}

fn main() -> ExitCode {
    main_as_root("tls_cost", run)
}

/// The fixed parts of the run.
struct Setup {
    dir: PathBuf,
    cert: PathBuf,
    tag: String,
    events_path: PathBuf,
    /// Port and pid of each server.
    watched: (u16, u32),
    unwatched: (u16, u32),
    /// CPUs online.
    online: usize,
}

impl Setup {
    fn server(&self, w: Workload) -> (u16, u32) {
        match w {
            Workload::Watched => self.watched,
            Workload::Unwatched => self.unwatched,
        }
    }
}

/// Starts the server script on a free port with `extra` arguments and waits until it
/// listens.
fn start_server(dir: &Path, cert: &Path, key: &Path, extra: &[&str]) -> anyhow::Result<(Killed, u16)> {
    let port = free_port();
    let child = Command::new("python3")
        .arg(dir.join("server.py"))
        .arg(port.to_string())
        .arg(cert)
        .arg(key)
        .arg(BODY_BYTES.to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting python3 (the TLS server)")?;
    let child = Killed(child);
    wait_listening(port);
    Ok((child, port))
}

/// One client run against `port`: the timed samples (ns) and the requests sent.
fn client(setup: &Setup, port: u16) -> anyhow::Result<(Vec<u64>, u64)> {
    let out = Command::new("python3")
        .arg(setup.dir.join("client.py"))
        .arg(port.to_string())
        .arg(&setup.cert)
        .args([WARM_UP.to_string(), N.to_string(), BODY_BYTES.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("starting python3 (the TLS client)")?;
    if !out.status.success() {
        bail!("the client exited with {}", out.status);
    }
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "client output is not JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let samples: Vec<u64> = report["samples_ns"]
        .as_array()
        .context("no samples_ns")?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    if samples.len() != N {
        bail!("{} samples from the client, expected {N}", samples.len());
    }
    Ok((samples, report["requests"].as_u64().context("no requests")?))
}

/// What the daemon sessions showed, for the final report.
#[derive(Default)]
struct Checked {
    /// Requests sent to the watched server under (b), and its `tool_call` events.
    requests: u64,
    tool_calls: u64,
    /// Sums over the sessions of each kind.
    ciphertext_dropped_b: f64,
    ciphertext_dropped_c: f64,
    events_lost: f64,
    tls_probed_events: u64,
    tls_unreadable_disabled: u64,
}

/// Per configuration: samples (ns), each round's median, daemon CPU and round trips
/// it was measured over.
#[derive(Default)]
struct Series {
    samples: Vec<u64>,
    round_p50: Vec<f64>,
    daemon_cpu: Duration,
    round_trips: u64,
}

fn run() -> anyhow::Result<()> {
    let bin = built_daemon()?;
    let started = Instant::now();
    let online = online_cpus();
    let all: Vec<usize> = (0..online).collect();
    let python = Command::new("python3")
        .args([
            "-c",
            "import ssl, sys; print(sys.version.split()[0], ssl.OPENSSL_VERSION)",
        ])
        .output()
        .context("running python3")?;
    println!(
        "tls_cost: latency of an HTTPS round trip with the daemon's OpenSSL uprobes, without them, and without a daemon"
    );
    println!(
        "machine: nproc {online}, Linux {}; python3 {}; daemon {}",
        kernel_release(),
        String::from_utf8_lossy(&python.stdout).trim(),
        bin.display()
    );
    println!(
        "{ROUNDS} rounds, daemon states interleaved (order rotating), a fresh daemon and client each; \
         per configuration and round: one TLS connection, {WARM_UP} warm-up then {N} timed sequential \
         HTTP/1.1 POSTs ({BODY_BYTES}-byte JSON-RPC body each way); layouts: free (no affinity) and \
         pinned (clients and servers on CPU {}, daemon on CPU 0)",
        online - 1
    );

    // The directory's name holds no tag: the client's command line names files in it.
    let dir = TempDir::new("mcp-monitor-tls-cost")?;
    let (cert, key) = make_cert(dir.path());
    std::fs::write(dir.path().join("server.py"), SERVER)?;
    std::fs::write(dir.path().join("client.py"), CLIENT)?;
    let tag = unique_tag("tlscost");
    let (watched_server, watched_port) = start_server(dir.path(), &cert, &key, &["--name", &tag])?;
    let (unwatched_server, unwatched_port) = start_server(dir.path(), &cert, &key, &[])?;
    let setup = Setup {
        dir: dir.path().to_path_buf(),
        cert,
        tag,
        events_path: event_file("mcp-monitor-tls-cost"),
        watched: (watched_port, watched_server.0.id()),
        unwatched: (unwatched_port, unwatched_server.0.id()),
        online,
    };

    // series[layout][config]
    let mut series: [Vec<Series>; 2] = Default::default();
    for s in &mut series {
        s.resize_with(CONFIGS.len(), Series::default);
    }
    let mut checked = Checked::default();
    let result = (|| {
        // Untimed: the servers' first connections, the page cache, the CPUs' clocks.
        for w in [Workload::Watched, Workload::Unwatched] {
            client(&setup, setup.server(w).0).context("warm-up")?;
        }
        for round in 0..ROUNDS {
            for (l, layout) in Layout::ALL.into_iter().enumerate() {
                for k in 0..DaemonState::ALL.len() {
                    let state = DaemonState::ALL[(round + k) % DaemonState::ALL.len()];
                    session(&setup, layout, state, round, &mut series[l], &mut checked)
                        .with_context(|| format!("{} layout, round {}", layout.label(), round + 1))?;
                }
            }
            eprintln!("tls_cost: round {}/{ROUNDS} done", round + 1);
        }
        anyhow::Ok(())
    })();
    set_affinity(0, &all)?;
    let _ = std::fs::remove_file(&setup.events_path);
    result?;
    drop((watched_server, unwatched_server));

    println!();
    println!(
        "{:<6} {:<9} {:<26} | {:>8} {:>8} | {:>7} {:>7} | {:>8} | {:>11}",
        "layout", "workload", "configuration", "p50 us", "p90 us", "p50 x", "p90 x", "+p50 us", "daemon CPU"
    );
    println!("{}", "-".repeat(7 + 10 + 26 + 3 + 17 + 3 + 15 + 3 + 8 + 3 + 11));
    for (l, layout) in Layout::ALL.into_iter().enumerate() {
        let pct: Vec<[f64; 2]> = series[l]
            .iter_mut()
            .map(|s| {
                s.samples.sort_unstable();
                [percentile(&s.samples, 50.0), percentile(&s.samples, 90.0)]
            })
            .collect();
        for (i, (workload, state, label)) in CONFIGS.into_iter().enumerate() {
            let bare = pct[config_index(workload, DaemonState::None)];
            let p = pct[i];
            let s = &series[l][i];
            let cpu = if state == DaemonState::None {
                "-".to_string()
            } else {
                format!(
                    "{:.1} us/rt",
                    s.daemon_cpu.as_nanos() as f64 / 1e3 / s.round_trips.max(1) as f64
                )
            };
            println!(
                "{:<6} {:<9} {:<26} | {:>8.1} {:>8.1} | {:>7} {:>7} | {:>+8.1} | {:>11}",
                layout.label(),
                workload.label(),
                label,
                p[0] / 1e3,
                p[1] / 1e3,
                format!("x{:.2}", p[0] / bare[0]),
                format!("x{:.2}", p[1] / bare[1]),
                (p[0] - bare[0]) / 1e3,
                cpu,
            );
        }
    }
    println!();
    println!(
        "{} timed round trips per layout and configuration; x: this configuration's percentile \
         over (a)'s of the same layout and workload; +p50 us: added median latency; daemon CPU: \
         the daemon's user + system time over the client runs, per round trip (warm-up and \
         handshake included)",
        series[0][0].samples.len()
    );
    println!("per-round p50 us (rounds in run order):");
    for (l, layout) in Layout::ALL.into_iter().enumerate() {
        for (i, (workload, _, label)) in CONFIGS.into_iter().enumerate() {
            let shown: Vec<String> = series[l][i]
                .round_p50
                .iter()
                .map(|ns| format!("{:.1}", ns / 1e3))
                .collect();
            println!(
                "  {:<6} {:<9} {:<26} {}",
                layout.label(),
                workload.label(),
                label,
                shown.join(" ")
            );
        }
    }
    println!(
        "checks: (b) {} tool_call events for {} requests sent to the watched server (warm-up \
         included), {} tls_probed events, {} TLS ciphertext records dropped; (c) {} \
         tls_unreadable (disabled) events, {} ciphertext records dropped; {} events lost \
         (all sessions); the unwatched server in no event",
        checked.tool_calls,
        checked.requests,
        checked.tls_probed_events,
        checked.ciphertext_dropped_b,
        checked.tls_unreadable_disabled,
        checked.ciphertext_dropped_c,
        checked.events_lost,
    );
    println!("runtime: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One daemon state of one round in one layout: starts the daemon (unless none), times
/// its workloads, then checks what the daemon saw.
fn session(
    setup: &Setup,
    layout: Layout,
    state: DaemonState,
    round: usize,
    series: &mut [Series],
    checked: &mut Checked,
) -> anyhow::Result<()> {
    let all: Vec<usize> = (0..setup.online).collect();
    let (daemon_cpus, work_cpus) = match layout {
        Layout::Free => (all.clone(), all),
        Layout::Pinned => (vec![0], vec![setup.online - 1]),
    };
    // The daemon inherits this thread's affinity, the clients too.
    set_affinity(0, &daemon_cpus)?;
    let glob = format!("*{}*", setup.tag);
    let daemon = match state {
        DaemonState::None => None,
        DaemonState::Probes => Some(Daemon::start_with_events(
            &["--watch", &glob],
            &setup.events_path,
        )?),
        DaemonState::NoTls => Some(Daemon::start_with_events(
            &["--watch", &glob, "--no-tls"],
            &setup.events_path,
        )?),
    };
    set_affinity(0, &work_cpus)?;
    let watched_pid = setup.watched.1;
    let unwatched_pid = setup.unwatched.1;
    for pid in [watched_pid, unwatched_pid] {
        set_process_affinity(pid, &work_cpus)?;
    }
    if let Some(d) = &daemon {
        let what = if state == DaemonState::Probes {
            "tls_probed"
        } else {
            "server_started"
        };
        let e = d
            .wait_for(WAIT, |e| match state {
                DaemonState::Probes => {
                    e["type"] == "monitor_status" && e["status"] == "tls_probed" && e["pid"] == watched_pid
                }
                _ => e["type"] == "server_started" && e["server"]["pid"] == watched_pid,
            })
            .with_context(|| format!("no {what} for the watched server; stderr:\n{}", d.stderr()))?;
        if state == DaemonState::Probes && !e["library"].as_str().unwrap_or("").contains("libssl.so") {
            bail!("the probes went on no libssl: {e}");
        }
    }
    let mut sent_to_watched = 0;
    let workloads = state.workloads();
    for j in 0..workloads.len() {
        let workload = workloads[(round + j) % workloads.len()];
        let i = config_index(workload, state);
        let cpu_before = daemon.as_ref().map(|d| cpu_time(d.pid())).transpose()?;
        let (mut samples, sent) = client(setup, setup.server(workload).0)
            .with_context(|| format!("{} {}", workload.label(), CONFIGS[i].2))?;
        if let (Some(d), Some(before)) = (&daemon, cpu_before) {
            series[i].daemon_cpu += cpu_time(d.pid())?.saturating_sub(before);
        }
        series[i].round_trips += sent;
        if workload == Workload::Watched {
            sent_to_watched += sent;
        }
        samples.sort_unstable();
        series[i].round_p50.push(percentile(&samples, 50.0));
        series[i].samples.extend(samples);
    }
    let Some(d) = daemon else {
        return Ok(());
    };
    let is_tool_call = |e: &Value| e["type"] == "tool_call" && e["server"]["pid"] == watched_pid;
    if state == DaemonState::Probes {
        // The events of the last requests may still be on their way.
        let _ = d.wait_until(WAIT, |events| {
            events.iter().filter(|e| is_tool_call(e)).count() as u64 >= sent_to_watched
        });
    } else {
        d.wait_for(WAIT, |e| {
            e["type"] == "monitor_status"
                && e["status"] == "tls_unreadable"
                && e["pid"] == watched_pid
                && e["reason"] == "disabled"
        })
        .with_context(|| {
            format!(
                "--no-tls: no tls_unreadable (disabled) event; stderr:\n{}",
                d.stderr()
            )
        })?;
    }
    let samples = scrape(&d)?;
    let dropped = sum(&samples, "mcp_monitor_tls_ciphertext_dropped_total", |_| true);
    let lost = sum(&samples, "mcp_monitor_events_lost_total", |_| true);
    let (status, _, events) = d.stop(WAIT)?;
    if !status.success() {
        bail!("the daemon exited with {status}");
    }
    let count = |pred: &dyn Fn(&Value) -> bool| events.iter().filter(|e| pred(e)).count() as u64;
    let tool_calls = count(&is_tool_call);
    let probed = count(&|e| e["status"] == "tls_probed" && e["pid"] == watched_pid);
    let about_unwatched = count(&|e| e["pid"] == unwatched_pid || e["server"]["pid"] == unwatched_pid);
    if about_unwatched != 0 {
        bail!("the daemon reported on the unwatched server ({about_unwatched} events)");
    }
    if dropped <= 0.0 {
        bail!("the daemon dropped no TLS ciphertext: the watched server's socket bytes were not captured");
    }
    checked.events_lost += lost;
    match state {
        DaemonState::Probes => {
            if tool_calls != sent_to_watched {
                bail!(
                    "uprobes: {tool_calls} tool_call events for {sent_to_watched} requests: the plaintext was not all read"
                );
            }
            checked.requests += sent_to_watched;
            checked.tool_calls += tool_calls;
            checked.tls_probed_events += probed;
            checked.ciphertext_dropped_b += dropped;
        }
        _ => {
            if tool_calls != 0 || probed != 0 {
                bail!("--no-tls: {tool_calls} tool_call and {probed} tls_probed events, expected none");
            }
            checked.tls_unreadable_disabled += 1;
            checked.ciphertext_dropped_c += dropped;
        }
    }
    Ok(())
}
