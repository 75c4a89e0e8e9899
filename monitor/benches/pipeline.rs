//! How many stdio tool calls per second the userspace pipeline turns into events.
//!
//! No root, no kernel: raw ring-buffer records are built exactly as the kernel programs
//! lay them out (`monitor::kernel::encode`), and fed to the daemon's own
//! `monitor::pipeline::Pipeline` (`handle`, the same code `mcp-monitor run` runs for
//! each record): first an exec record that makes a stand-in server process a watched
//! server, then, per call, the `tools/call` request it reads from its stdin pipe and the
//! result line it writes to its stdout pipe (`DataMeta` header, then the payload, in
//! chunks of at most `MAX_CHUNK` bytes). The stand-in is a real child process (`sleep`)
//! whose stdin and stdout are real pipes, so fd classification, client lookup and the
//! process table read real `/proc` entries. Each completed call goes through the
//! built-in policy's verdict, the metrics and `EventWriter` into a sink.
//!
//! Single thread; rounds of the two workloads interleaved; the median round is reported.
//!
//! `cargo bench --package monitor --bench pipeline` (also run by `cargo xtask bench`).
//!
//! For instruction counts that repeat (seconds here move by ±20% from run to run),
//! `PIPELINE_BATCHES=1 PIPELINE_WORKLOAD=0` (or `1`) runs one batch of one workload per
//! round, short enough for `valgrind --tool=callgrind`.
use std::{
    hint::black_box,
    io::{PipeReader, PipeWriter},
    mem::{offset_of, size_of},
    process::{Child, Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use monitor::{
    host::procs::ProcessTable,
    kernel::{Kernel, KernelStats, encode},
    output::{events::EventWriter, metrics::Metrics},
    pipeline::{Pipeline, Settings},
    policy::Policy,
    record::facts::Facts,
};
use monitor_common::{DataMeta, ExecMeta, Header, MAX_CHUNK, direction};

// The daemon's own allocator (monitor::allocator), so the figures are its.
monitor::daemon_allocator!();

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

/// The stand-in server: a child process whose stdin and stdout are pipes this bench
/// holds the other ends of (so the pipeline finds this process as its client).
struct Pipes {
    pid: u32,
    child: Child,
    _ends: (PipeWriter, PipeReader),
}

/// Marks the stand-in's command line, so the watch glob matches it and nothing else.
const MARKER: &str = "mcp-monitor-pipeline-bench-server";

impl Pipes {
    fn new() -> anyhow::Result<Self> {
        let (stdin_r, stdin_w) = std::io::pipe()?;
        let (stdout_r, stdout_w) = std::io::pipe()?;
        let child = Command::new("sleep")
            .arg("100000")
            .stdin(Stdio::from(stdin_r))
            .stdout(Stdio::from(stdout_w))
            .spawn()
            .context("starting the stand-in server (sleep)")?;
        Ok(Self {
            pid: child.id(),
            child,
            _ends: (stdin_w, stdout_r),
        })
    }
}

impl Drop for Pipes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel side stands still: nothing to attach, nothing lost.
struct NoKernel;

impl Kernel for NoKernel {
    fn watch(&mut self, _pid: u32) -> anyhow::Result<()> {
        Ok(())
    }

    fn unwatch(&mut self, _pid: u32) {}

    fn stop_probing(&mut self, _pid: u32) {}

    fn probe(&mut self, _pid: u32, _fds: u64) {}

    fn stats(&self) -> anyhow::Result<KernelStats> {
        Ok(KernelStats::default())
    }

    fn attached(&self) -> &[(String, u32)] {
        &[]
    }

    fn attach_tls(&mut self, _pid: u32, _path: &std::path::Path, _functions: &[(u64, u64)]) {}

    fn detach_tls(&mut self, _pid: u32) {}

    fn tls_attached(&mut self) -> Vec<monitor::kernel::TlsAttached> {
        Vec::new()
    }

    fn connector(&self, _local: std::net::SocketAddr) -> Option<u32> {
        None
    }

    fn watched_set(&self) -> Vec<(u32, u32)> {
        Vec::new()
    }

    fn stream_end(&self, _pid: u32, _fd: i32, _write: bool) -> Option<u64> {
        None
    }
}

fn run() -> anyhow::Result<()> {
    let pipes = Pipes::new()?;
    println!("pipeline: tool calls per second through the daemon's userspace path (one thread, no kernel)");
    println!(
        "{ROUNDS} rounds, workloads interleaved, median round reported; events go through \
         EventWriter to /dev/null; --max-field-bytes {MAX_FIELD}"
    );
    let workloads = workloads_to_run()?;
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
    let mut pipeline = Bench::new(&pipes)?;
    sample_events(&mut pipeline, &pipes)?;
    for batch in &mut batches {
        // Warm-up: caches, allocator, the fd table.
        pipeline.replay(batch, 1)?;
    }
    for (round, times) in elapsed.iter_mut().enumerate() {
        // Rotate the order so that no workload always runs first.
        for k in 0..WORKLOADS.len() {
            let w = (round + k) % WORKLOADS.len();
            if workloads[w].batches > 0 {
                times[w] = pipeline.replay(&mut batches[w], workloads[w].batches)?;
            }
        }
        eprintln!("pipeline: round {}/{ROUNDS} done", round + 1);
    }
    pipeline.pipeline.events.flush();

    println!();
    println!(
        "{:<37} | {:>11} {:>9} {:>11} {:>11} | {:>24}",
        "workload", "calls/s", "us/call", "MB/s data", "MB/s recs", "calls/s per round"
    );
    println!("{}", "-".repeat(37 + 3 + 46 + 3 + 24));
    let mut summaries = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        if workload.batches == 0 {
            continue;
        }
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
        // For `cargo xtask bench`'s summary table.
        let (figure, budget) = if w == 0 {
            (format!("{:.0} calls/s", calls / t), ">= 200000 calls/s")
        } else {
            let mb = (b.payload_bytes * workload.batches as u64) as f64 / t / 1e6;
            (format!("{mb:.0} MB/s"), ">= 1000 MB/s")
        };
        summaries.push(format!(
            "summary | userspace pipeline, {}, one core | {figure} | - | - | {budget}",
            workload.label
        ));
    }
    println!();
    println!(
        "MB/s data: captured payload bytes (request + result lines) per second; \
         MB/s recs: the same with the {}-byte record headers; MB = 10^6 bytes",
        size_of::<DataMeta>()
    );
    summaries.iter().for_each(|line| println!("{line}"));
    let counted = pipeline.tool_calls_counted();
    println!(
        "tool calls counted by the pipeline: {counted} for {} calls fed",
        pipeline.calls_fed
    );
    if counted != pipeline.calls_fed + WORKLOADS.len() as u64 {
        bail!("every call must become exactly one tool_call (the samples included)");
    }
    Ok(())
}

/// `WORKLOADS`, with `PIPELINE_BATCHES` batches per round if set, and only workload
/// `PIPELINE_WORKLOAD` (an index) if set: 0 batches for the others.
fn workloads_to_run() -> anyhow::Result<[Workload; WORKLOADS.len()]> {
    let number = |name: &str| -> anyhow::Result<Option<usize>> {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().with_context(|| format!("{name}={v}: not a number")))
            .transpose()
    };
    let batches = number("PIPELINE_BATCHES")?;
    let only = number("PIPELINE_WORKLOAD")?;
    if only.is_some_and(|w| w >= WORKLOADS.len()) {
        bail!("PIPELINE_WORKLOAD: 0 to {}", WORKLOADS.len() - 1);
    }
    let mut workloads = WORKLOADS;
    for (w, workload) in workloads.iter_mut().enumerate() {
        if only.is_some_and(|o| o != w) {
            workload.batches = 0;
        } else if let Some(b) = batches {
            workload.batches = b;
        }
    }
    Ok(workloads)
}

/// One call of each workload through the pipeline into a real file: checks the event
/// and shows its size.
fn sample_events(pipeline: &mut Bench, pipes: &Pipes) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("mcp-monitor-pipeline-{}.jsonl", pipes.pid));
    let _ = std::fs::remove_file(&path);
    let file = EventWriter::open(&path.to_string_lossy())?;
    let sink = std::mem::replace(&mut pipeline.pipeline.events, file);
    let fed = pipeline.calls_fed;
    for w in &WORKLOADS {
        let one = Workload { batch: 1, ..*w };
        pipeline.replay(&mut build_batch(&one, pipes)?, 1)?;
    }
    pipeline.pipeline.events.flush();
    pipeline.pipeline.events = sink;
    pipeline.calls_fed = fed;
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
        if std::env::var_os("PIPELINE_SHOW_EVENT").is_some() {
            println!("{line}");
        }
    }
    Ok(())
}

/// The daemon's pipeline with one stand-in server, and the clock and stream offsets
/// of the records replayed so far.
struct Bench {
    pipeline: Pipeline,
    ts_ns: u64,
    offsets: [u64; 2],
    calls_fed: u64,
}

impl Bench {
    fn new(pipes: &Pipes) -> anyhow::Result<Self> {
        let settings = Settings {
            watch: vec![format!("*{MARKER}*")],
            discovery: false,
            tls: false,
            debug_captures: false,
            max_message_bytes: MAX_MESSAGE,
            max_field_bytes: MAX_FIELD,
            policy: Policy::builtin(),
            policy_path: None,
        };
        let sink = EventWriter::from_writer(Box::new(std::io::sink()));
        let mut pipeline = Pipeline::new(
            settings,
            Box::new(NoKernel),
            Facts::live(),
            ProcessTable::default(),
            sink,
            Metrics::new(MAX_LABEL_VALUES)?,
        )?;
        // The stand-in execs into a filesystem server, as far as the pipeline can tell.
        let argv = [
            "node",
            "/usr/lib/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
            MARKER,
        ];
        let exec = ExecMeta {
            header: encode::header(pipes.pid, pipes.pid, 1_000_000),
            uid: 1000,
            gid: 1000,
            old_tid: pipes.pid,
            ..ExecMeta::default()
        };
        pipeline.handle(&encode::exec(exec, "/usr/bin/node", &argv));
        // An initialize exchange first, as a real client does: clientInfo and serverInfo
        // then appear in every tool_call event.
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench-agent","version":"1.2.3"}}}
"#;
        let inited = br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"secure-filesystem-server","version":"0.2.0"}}}
"#;
        let mut bench = Self {
            pipeline,
            ts_ns: 10_000_000,
            offsets: [0, 0],
            calls_fed: 0,
        };
        let mut records = Vec::new();
        records_of(pipes, direction::READ, init, &mut records);
        records_of(pipes, direction::WRITE, inited, &mut records);
        let mut batch = Batch {
            records,
            calls: 0,
            payload_bytes: 0,
            record_bytes: 0,
            request_len: 0,
            response_len: 0,
        };
        bench.replay(&mut batch, 1)?;
        Ok(bench)
    }

    /// `mcp_tool_calls_total` over every label set.
    fn tool_calls_counted(&self) -> u64 {
        self.pipeline
            .metrics
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "mcp_tool_calls_total")
            .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value() as u64))
            .sum()
    }

    /// Feeds `batch` `times` times; returns the time spent in the pipeline only
    /// (renumbering the records' offsets and timestamps between replays is not timed).
    fn replay(&mut self, batch: &mut Batch, times: usize) -> anyhow::Result<Duration> {
        let mut total = Duration::ZERO;
        for _ in 0..times {
            self.renumber(batch);
            let start = Instant::now();
            for r in &batch.records {
                self.pipeline.handle(black_box(&r.bytes));
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
        direction::READ => (0, SYS_READ),
        _ => (1, SYS_WRITE),
    };
    for (i, chunk) in payload.chunks(MAX_CHUNK).enumerate() {
        // Timestamp and stream offset: set by `Bench::renumber` before each replay.
        let meta = DataMeta {
            header: encode::header(pipes.pid, pipes.pid, 0),
            fd,
            syscall,
            direction: dir,
            total: payload.len() as u64,
            chunk_offset: (i * MAX_CHUNK) as u64,
            ..DataMeta::default()
        };
        out.push(Raw {
            bytes: encode::data(meta, chunk),
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
