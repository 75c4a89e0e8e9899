//! How many stdio tool calls per second the userspace pipeline turns into events.
//!
//! No root, no kernel: raw ring-buffer records are built here exactly as the `sys_exit`
//! program lays them out (`DataMeta` header, then the payload, in chunks of at most
//! `MAX_CHUNK` bytes) for a `tools/call` request the server reads from its stdin pipe and
//! the result line it writes to its stdout pipe. Each record then takes the daemon's path
//! (`daemon::State::handle`, `data`, `stdio_bytes`, `emit_outputs`): `Record::try_from`,
//! the records/captured-bytes metrics, the stream-offset gap check, `FdTable::classify`
//! (real pipes of this process, so `/proc` is read once per fd), the server lookup
//! through `ProcessTable::ancestry`, `Server::direction_of`, `Server::feed` (line
//! reassembly, JSON-RPC parsing, the MCP session), and for each completed call the
//! built-in policy's `verdict::judge`, `Server::call_fields` and `EventWriter::emit`
//! into `/dev/null`. Kept in step with the daemon by hand: the daemon's loop itself is
//! private (so are its per-call metrics, `daemon::count_call`, left out here).
//!
//! Single thread; rounds of the two workloads interleaved; the median round is reported.
//!
//! `cargo bench --package monitor --bench pipeline` (also run by `cargo xtask bench`).
use std::{
    collections::HashMap,
    hint::black_box,
    mem::{offset_of, size_of},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use monitor::{
    events::EventWriter,
    fds::{FdKind, FdTable},
    identity::Stdio,
    mcp::Output,
    metrics::Metrics,
    policy::Policy,
    procs::{Process, ProcessTable},
    records::{Direction, Record},
    servers::{ClientProcess, Server, event_type},
    verdict,
};
use monitor_common::{DataMeta, Header, MAX_CHUNK, direction, kind};

const ROUNDS: usize = 5;
/// The daemon's defaults (`--max-message-mb 64`, `--max-field-bytes 4096`).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
const MAX_FIELD: usize = 4096;
/// `--max-label-values` default.
const MAX_LABEL_VALUES: usize = 200;
const REQUEST_BYTES: usize = 200;
const RESPONSE_BYTES: usize = 300;
const BIG_ARGUMENT: usize = 64 * 1024;
/// x86_64 syscall numbers of read and write.
const SYS_READ: u32 = 0;
const SYS_WRITE: u32 = 1;

#[derive(Clone, Copy)]
struct Workload {
    label: &'static str,
    /// Calls whose records are built up front and replayed.
    batch: usize,
    /// Batches per round.
    batches: usize,
    argument_bytes: usize,
}

const WORKLOADS: [Workload; 2] = [
    Workload {
        label: "small (200 B request, 300 B result)",
        batch: 10_000,
        batches: 20,
        argument_bytes: 0,
    },
    Workload {
        label: "64 KiB argument (300 B result)",
        batch: 200,
        batches: 15,
        argument_bytes: BIG_ARGUMENT,
    },
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipeline: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One raw record as the ring buffer hands it over, and where its offsets live.
struct Raw {
    bytes: Vec<u8>,
    /// Payload bytes in it (what the daemon counts as captured).
    payload: usize,
}

/// A replayable batch of calls: every record of every call in order.
struct Batch {
    records: Vec<Raw>,
    calls: usize,
    payload_bytes: u64,
    record_bytes: u64,
    request_len: usize,
    response_len: usize,
}

/// The pipes standing for the server's stdin and stdout: real, so `FdTable::classify`
/// reads real `/proc/self/fd` links, as the daemon does for a watched process.
struct Pipes {
    pid: u32,
    stdin_fd: i32,
    stdout_fd: i32,
    fds: [i32; 4],
}

impl Pipes {
    fn new() -> anyhow::Result<Self> {
        let mut a = [0i32; 2];
        let mut b = [0i32; 2];
        // Safety: pipe2 fills the two-element arrays.
        if unsafe { libc::pipe2(a.as_mut_ptr(), libc::O_CLOEXEC) } != 0
            || unsafe { libc::pipe2(b.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        {
            bail!("pipe2: {}", std::io::Error::last_os_error());
        }
        Ok(Self {
            pid: std::process::id(),
            // The server reads its stdin's read end and writes its stdout's write end.
            stdin_fd: a[0],
            stdout_fd: b[1],
            fds: [a[0], a[1], b[0], b[1]],
        })
    }
}

impl Drop for Pipes {
    fn drop(&mut self) {
        for fd in self.fds {
            // Safety: fds from pipe2, closed once.
            unsafe { libc::close(fd) };
        }
    }
}

fn run() -> anyhow::Result<()> {
    let pipes = Pipes::new()?;
    let mut fds = FdTable::default();
    let inode = |fds: &mut FdTable, fd: i32| match fds.classify(pipes.pid, fd) {
        FdKind::Pipe { inode } => Ok(*inode),
        other => bail!("fd {fd} is not a pipe: {other:?}"),
    };
    let stdio = Stdio {
        stdin: Some(inode(&mut fds, pipes.stdin_fd)?),
        stdout: Some(inode(&mut fds, pipes.stdout_fd)?),
    };
    println!("pipeline: tool calls per second through the daemon's userspace path (one thread, no kernel)");
    println!(
        "{ROUNDS} rounds, workloads interleaved, median round reported; events go through \
         EventWriter to /dev/null; --max-field-bytes {MAX_FIELD}"
    );
    let mut batches: Vec<Batch> = WORKLOADS
        .iter()
        .map(|w| build_batch(w, &pipes))
        .collect::<anyhow::Result<_>>()?;
    for (w, b) in WORKLOADS.iter().zip(&batches) {
        println!(
            "  {}: request line {} B, result line {} B, {} records per call, {} calls per round",
            w.label,
            b.request_len,
            b.response_len,
            b.records.len() / b.calls,
            b.calls * w.batches
        );
    }

    // elapsed[round][workload]
    let mut elapsed = [[Duration::ZERO; WORKLOADS.len()]; ROUNDS];
    let mut pipeline = Pipeline::new(&pipes, stdio, fds)?;
    sample_events(&mut pipeline, &pipes)?;
    for batch in &mut batches {
        // Warm-up: caches, allocator, the fd table.
        pipeline.replay(batch, 1)?;
    }
    for (round, times) in elapsed.iter_mut().enumerate() {
        // Rotate the order so that no workload always runs first.
        for k in 0..WORKLOADS.len() {
            let w = (round + k) % WORKLOADS.len();
            times[w] = pipeline.replay(&mut batches[w], WORKLOADS[w].batches)?;
        }
        eprintln!("pipeline: round {}/{ROUNDS} done", round + 1);
    }
    pipeline.events.flush()?;

    println!();
    println!(
        "{:<37} | {:>11} {:>9} {:>11} {:>11} | {:>24}",
        "workload", "calls/s", "us/call", "MB/s data", "MB/s recs", "calls/s per round"
    );
    println!("{}", "-".repeat(37 + 3 + 46 + 3 + 24));
    for (w, workload) in WORKLOADS.iter().enumerate() {
        let b = &batches[w];
        let calls = (b.calls * workload.batches) as f64;
        let rate = |t: Duration| calls / t.as_secs_f64();
        let series: [Duration; ROUNDS] = std::array::from_fn(|r| elapsed[r][w]);
        let mut sorted = series;
        sorted.sort();
        let t = sorted[ROUNDS / 2].as_secs_f64();
        let per_round: Vec<String> = series.iter().map(|t| format!("{:.1}k", rate(*t) / 1e3)).collect();
        println!(
            "{:<37} | {:>11.0} {:>9.2} {:>11.1} {:>11.1} | {:>24}",
            workload.label,
            calls / t,
            t / calls * 1e6,
            (b.payload_bytes * workload.batches as u64) as f64 / t / 1e6,
            (b.record_bytes * workload.batches as u64) as f64 / t / 1e6,
            per_round.join(" ")
        );
    }
    println!();
    println!(
        "MB/s data: captured payload bytes (request + result lines) per second; \
         MB/s recs: the same with the {}-byte record headers; MB = 10^6 bytes",
        size_of::<DataMeta>()
    );
    println!(
        "events written: {} tool_call events for {} calls",
        pipeline.events_written, pipeline.calls_fed
    );
    if pipeline.events_written != pipeline.calls_fed {
        bail!("every call must become exactly one tool_call event");
    }
    Ok(())
}

/// One call of each workload through the pipeline into a real file: checks the event
/// and shows its size.
fn sample_events(pipeline: &mut Pipeline, pipes: &Pipes) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("mcp-monitor-pipeline-{}.jsonl", pipes.pid));
    let _ = std::fs::remove_file(&path);
    let file = EventWriter::open(&path.to_string_lossy())?;
    let devnull = std::mem::replace(&mut pipeline.events, file);
    let (fed, written) = (pipeline.calls_fed, pipeline.events_written);
    for w in &WORKLOADS {
        let one = Workload { batch: 1, ..*w };
        pipeline.replay(&mut build_batch(&one, pipes)?, 1)?;
    }
    pipeline.events.flush()?;
    pipeline.events = devnull;
    (pipeline.calls_fed, pipeline.events_written) = (fed, written);
    let text = std::fs::read_to_string(&path)?;
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != WORKLOADS.len() {
        bail!(
            "expected {} sample events, got {}:\n{text}",
            WORKLOADS.len(),
            lines.len()
        );
    }
    for (w, line) in WORKLOADS.iter().zip(&lines) {
        let e: serde_json::Value = serde_json::from_str(line)?;
        if e["type"] != "tool_call" || e["outcome"] != "ok" || e["decision"] != "allow" {
            bail!("unexpected sample event: {line}");
        }
        println!("  {}: tool_call event {} B", w.label, line.len() + 1);
    }
    Ok(())
}

/// The daemon's per-record state for one watched server.
struct Pipeline {
    pid: u32,
    procs: ProcessTable,
    policy: Policy,
    server: Server,
    fds: FdTable,
    metrics: Metrics,
    events: EventWriter,
    /// Next expected stream offset per (pid, fd, direction), as in the daemon.
    streams: HashMap<(u32, i32, Direction), u64>,
    /// Kernel clock and stream offsets of the replayed records.
    ts_ns: u64,
    offsets: [u64; 2],
    calls_fed: u64,
    events_written: u64,
}

impl Pipeline {
    fn new(pipes: &Pipes, stdio: Stdio, fds: FdTable) -> anyhow::Result<Self> {
        let cmdline: Vec<String> = vec![
            "node".into(),
            "/usr/lib/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js".into(),
            "/home/user/project".into(),
        ];
        // This process stands for the server in the process table (its real parent, read
        // from /proc, is not in the table: the ancestry walk stops there).
        let mut procs = ProcessTable::default();
        procs.exec(pipes.pid, 1000, "/usr/bin/node".into(), cmdline, 1_000_000);
        let p = procs.get_mut(pipes.pid).context("process table entry")?;
        p.watched = true;
        p.server_pattern = Some("*@modelcontextprotocol/*".into());
        let process: Process = p.clone();
        let client = ClientProcess {
            pid: 1000,
            uid: 1000,
            exe: "/usr/bin/node".into(),
            cmdline: "node /usr/lib/node_modules/some-agent/cli.js".into(),
        };
        let policy = Policy::builtin();
        let mut server = Server::new(&process, stdio, Some(client), MAX_MESSAGE);
        server.rule = policy
            .match_server(&server.cmdline, &server.exe)
            .map(|i| policy.servers[i].name.clone());
        if server.rule.is_none() {
            bail!("the built-in policy does not name the bench's server");
        }
        // An initialize exchange first, as a real client does: clientInfo and serverInfo
        // then appear in every tool_call event.
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench-agent","version":"1.2.3"}}}
"#;
        let inited = br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"secure-filesystem-server","version":"0.2.0"}}}
"#;
        use monitor::mcp::Direction as D;
        server.feed(D::ClientToServer, init, 1);
        server.feed(D::ServerToClient, inited, 2);
        if server.session.server.is_none() || server.session.client.is_none() {
            bail!("the initialize exchange did not register client and server");
        }
        Ok(Self {
            pid: pipes.pid,
            procs,
            policy,
            server,
            fds,
            metrics: Metrics::new(MAX_LABEL_VALUES)?,
            events: EventWriter::open("/dev/null").context("events to /dev/null")?,
            streams: HashMap::new(),
            ts_ns: 10_000_000,
            offsets: [init.len() as u64, inited.len() as u64],
            calls_fed: 0,
            events_written: 0,
        })
    }

    /// Feeds `batch` `times` times; returns the time spent in the pipeline only
    /// (renumbering the records' offsets and timestamps between replays is not timed).
    fn replay(&mut self, batch: &mut Batch, times: usize) -> anyhow::Result<Duration> {
        let mut total = Duration::ZERO;
        for _ in 0..times {
            self.renumber(batch);
            let start = Instant::now();
            for r in &batch.records {
                self.handle(black_box(&r.bytes))?;
            }
            total += start.elapsed();
            self.calls_fed += batch.calls as u64;
        }
        Ok(total)
    }

    /// Gives the batch's records the next kernel timestamps and stream offsets, so that
    /// a replay looks like new traffic (no gaps, time moving forward).
    fn renumber(&mut self, batch: &mut Batch) {
        for r in &mut batch.records {
            let dir = r.bytes[offset_of!(DataMeta, direction)] as usize;
            self.ts_ns += 25_000;
            put_u64(
                &mut r.bytes,
                offset_of!(DataMeta, header) + offset_of!(Header, ts_ns),
                self.ts_ns,
            );
            put_u64(
                &mut r.bytes,
                offset_of!(DataMeta, stream_offset),
                self.offsets[dir],
            );
            self.offsets[dir] += r.payload as u64;
        }
    }

    /// `daemon::State::handle` for a data record of a watched server's stdio.
    fn handle(&mut self, raw: &[u8]) -> anyhow::Result<()> {
        let record = Record::try_from(raw).map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
        self.metrics.records.with_label_values(&["data"]).inc();
        let Record::Data(d) = record else {
            bail!("not a data record");
        };
        let dir_label = match d.direction {
            Direction::Read => "read",
            Direction::Write => "write",
        };
        self.metrics
            .captured_bytes
            .with_label_values(&[dir_label])
            .inc_by(d.bytes.len() as u64);
        let key = (d.header.pid, d.fd, d.direction);
        let end = d.stream_offset + d.bytes.len() as u64;
        let gap = match self.streams.insert(key, end) {
            Some(expected) if d.stream_offset > expected => d.stream_offset - expected,
            _ => 0,
        };
        if gap > 0 {
            bail!("stream gap of {gap} bytes in the replayed records");
        }
        let kind = self.fds.classify(d.header.pid, d.fd).clone();
        let (FdKind::Pipe { inode } | FdKind::Socket { inode }) = kind else {
            bail!("fd {} is not a pipe", d.fd);
        };
        // `daemon::State::server_root`: the nearest server in the writer's ancestry.
        let root = self
            .procs
            .ancestry(d.header.pid)
            .into_iter()
            .find(|p| self.procs.get(*p).is_some_and(|p| p.server_pattern.is_some()));
        if root != Some(self.pid) {
            bail!("record of another process");
        }
        let Some(dir) = self.server.direction_of(inode, d.direction == Direction::Read) else {
            bail!("fd {} is not the server's stdio", d.fd);
        };
        let (outputs, errors) = self.server.feed(dir, &d.bytes, d.header.ts_ns);
        if !errors.is_empty() {
            bail!("parse errors: {errors:?}");
        }
        for Output::Completed(c) in outputs {
            let verdict = (c.method == "tools/call").then(|| verdict::judge(&self.policy, &self.server, &c));
            let fields = self.server.call_fields(&c, MAX_FIELD, verdict.as_ref());
            let ts = self.events.kernel_time(c.start_ts_ns);
            self.events.emit(event_type(&c.method), ts, fields)?;
            self.events_written += 1;
        }
        Ok(())
    }
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// The line `make` builds, padded inside a string field so that it is `len` bytes with
/// its newline (no padding when it is already longer).
fn padded(make: impl Fn(&str) -> String, len: usize) -> Vec<u8> {
    let base = make("").len() + 1;
    let pad = "x".repeat(len.saturating_sub(base));
    let mut line = make(&pad).into_bytes();
    line.push(b'\n');
    line
}

fn request_line(id: usize, argument_bytes: usize) -> Vec<u8> {
    if argument_bytes == 0 {
        return padded(
            |pad| {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"read_text_file","arguments":{{"path":"/home/user/project/src/{pad}.rs"}}}}}}"#
                )
            },
            REQUEST_BYTES,
        );
    }
    // A write of about `argument_bytes` of source text (with the escapes JSON needs).
    let unit = r#"fn main() {\n    println!(\"hello, world\");\n}\n"#;
    let content = unit.repeat(argument_bytes / unit.len() + 1);
    let content = &content[..argument_bytes];
    // Do not cut an escape in half.
    let content = content.trim_end_matches('\\');
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"/home/user/project/src/main.rs","content":"{content}"}}}}}}"#
    )
    .into_bytes()
    .into_iter()
    .chain([b'\n'])
    .collect()
}

fn response_line(id: usize) -> Vec<u8> {
    padded(
        |pad| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"use std::io;\n\nfn main() {{\n    // {pad}\n}}\n"}}],"isError":false}}}}"#
            )
        },
        RESPONSE_BYTES,
    )
}

/// The records the kernel sends for one syscall that transferred `payload`.
fn records_of(pipes: &Pipes, dir: u8, payload: &[u8], out: &mut Vec<Raw>) {
    let (fd, syscall) = match dir {
        direction::READ => (pipes.stdin_fd, SYS_READ),
        _ => (pipes.stdout_fd, SYS_WRITE),
    };
    for (i, chunk) in payload.chunks(MAX_CHUNK).enumerate() {
        let meta = DataMeta {
            header: Header {
                kind: kind::DATA,
                pid: pipes.pid,
                tid: pipes.pid,
                _pad: 0,
                ts_ns: 0,
            },
            fd,
            syscall,
            direction: dir,
            flags: 0,
            _pad: 0,
            len: chunk.len() as u32,
            total: payload.len() as u64,
            chunk_offset: (i * MAX_CHUNK) as u64,
            stream_offset: 0,
        };
        // Safety: DataMeta is plain #[repr(C)] integers without padding (64 bytes).
        let head = unsafe {
            std::slice::from_raw_parts((&meta as *const DataMeta).cast::<u8>(), size_of::<DataMeta>())
        };
        let mut bytes = Vec::with_capacity(head.len() + chunk.len());
        bytes.extend_from_slice(head);
        bytes.extend_from_slice(chunk);
        out.push(Raw {
            bytes,
            payload: chunk.len(),
        });
    }
}

fn build_batch(w: &Workload, pipes: &Pipes) -> anyhow::Result<Batch> {
    let mut records = Vec::new();
    let (mut request_len, mut response_len) = (0, 0);
    for i in 0..w.batch {
        let id = i + 1;
        let req = request_line(id, w.argument_bytes);
        let resp = response_line(id);
        (request_len, response_len) = (req.len(), resp.len());
        // Check the lines are what a real peer would send.
        for line in [&req, &resp] {
            serde_json::from_slice::<serde_json::Value>(line).context("bench line is not JSON")?;
        }
        records_of(pipes, direction::READ, &req, &mut records);
        records_of(pipes, direction::WRITE, &resp, &mut records);
    }
    let payload_bytes = records.iter().map(|r| r.payload as u64).sum();
    let record_bytes = records.iter().map(|r| r.bytes.len() as u64).sum();
    Ok(Batch {
        records,
        calls: w.batch,
        payload_bytes,
        record_bytes,
        request_len,
        response_len,
    })
}
