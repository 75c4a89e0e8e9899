//! Scripted recordings of what goes wrong in real life (loss, crossed records, a pid
//! used again, garbage on a stdout, floods), replayed without root through the real
//! pipeline (`monitor::replay::run`). Each recording is built here record by record, laid
//! out as the kernel lays them out (`monitor::kernel::encode`), with the host facts the
//! pipeline asks for written after the frame that asks them. Each test checks what a
//! user of a security monitor reads: the tool, the outcome, and the loss counted.
//!
//! Memory is measured with a counting global allocator, per thread (the tests of this
//! binary run in parallel; a replay runs on its test's thread).
mod common;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    collections::HashMap,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use common::{Buffer, metrics_text};
use monitor::{
    kernel::{KernelStats, encode},
    output::{events::EventWriter, metrics::Metrics},
    pipeline::Pipeline,
    record::{Frame, Header, Writer},
    replay,
};
use monitor_common::{DataMeta, ExecMeta, ExitRecord, ForkRecord, MAX_CHUNK, OpenMeta, direction, resolved};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Live heap bytes of the current thread.

struct Counting;

thread_local! {
    /// Bytes this thread allocated and has not freed (frees of another thread's
    /// allocations count against it: only differences are used).
    static LIVE: Cell<i64> = const { Cell::new(0) };
    /// The most `LIVE` has been since `reset_peak`.
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn account(delta: i64) {
    // `try_with`: nothing is counted while the thread is torn down. Const-initialised
    // cells without a destructor never allocate.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

// Safety: every call is forwarded to `System`; only sizes are counted on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Safety: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Safety: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Safety: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> i64 {
    LIVE.with(Cell::get)
}

fn reset_peak() {
    let live = live_bytes();
    PEAK.with(|p| p.set(live));
}

fn peak_bytes() -> i64 {
    PEAK.with(Cell::get)
}

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------
// Scripts: a recording written frame by frame.

/// The scripted server's pid, its stdin and stdout pipes, and the agent on the other end.
const SERVER: u32 = 5000;
const STDIN: u64 = 7001;
const STDOUT: u64 = 7002;
const AGENT: u32 = 400;
/// An unrelated shell.
const SHELL: u32 = 77;
/// Matched by the `--watch` glob of every script.
const SERVER_ARGV: &[&str] = &["/usr/bin/node", "/opt/scenario-server/index.js"];
const BOOT_EPOCH_NS: u64 = 1_700_000_000_000_000_000;

/// What /proc shows of a process: its stdin and stdout pipes, and its client.
#[derive(Clone, Copy)]
struct Host {
    stdin: u64,
    stdout: u64,
    client: Option<u32>,
}

fn test_header() -> Header {
    Header {
        version: "scenario".into(),
        boot_epoch_ns: BOOT_EPOCH_NS,
        watch: vec!["*scenario-server*".into()],
        discovery: false,
        tls: false,
        debug_captures: false,
        max_message_bytes: 1 << 20,
        max_field_bytes: 4096,
        max_label_values: 200,
        metrics_addr: "127.0.0.1:9464".into(),
        policy: None,
        policy_path: None,
    }
}

static SCRIPTS: AtomicU64 = AtomicU64::new(0);

struct Script {
    w: Writer,
    path: PathBuf,
    max_label_values: usize,
    /// Kernel clock of the last record.
    ts_ns: u64,
    /// The kernel's stream offsets per (pid, fd, direction).
    offsets: HashMap<(u32, i32, u8), u64>,
    hosts: HashMap<u32, Host>,
    /// What the kernel counted so far (its counters only grow).
    kernel: KernelStats,
}

impl Script {
    fn new(name: &str, header: Header) -> Self {
        let n = SCRIPTS.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "replay-scenario-{}-{n}-{name}.mcprec",
            std::process::id()
        ));
        let mut s = Self {
            w: Writer::create(&path, &header).unwrap(),
            path,
            max_label_values: header.max_label_values,
            ts_ns: 1_000_000_000,
            offsets: HashMap::new(),
            hosts: HashMap::from([(
                SERVER,
                Host {
                    stdin: STDIN,
                    stdout: STDOUT,
                    client: Some(AGENT),
                },
            )]),
            kernel: KernelStats::default(),
        };
        // Running at start: the agent and a shell, neither a server.
        let process = |pid: u32, exe: &str, cmdline: &[&str]| json!({"pid": pid, "ppid": 1, "uid": 1000, "exe": exe, "cmdline": cmdline, "start_ns": 0, "watched": false, "server_pattern": null});
        s.fact(
            "procs",
            json!({"procs": {
                AGENT.to_string(): process(AGENT, "/usr/bin/agent", &["agent", "--chat"]),
                SHELL.to_string(): process(SHELL, "/bin/bash", &["bash"]),
            }}),
        );
        s
    }

    fn fact(&mut self, key: &str, value: Value) {
        self.w
            .write(&Frame::Fact {
                key: key.into(),
                nth: 0,
                value,
            })
            .unwrap();
    }

    /// The next kernel timestamp (1 µs later).
    fn tick_clock(&mut self) -> u64 {
        self.ts_ns += 1_000;
        self.ts_ns
    }

    fn record(&mut self, bytes: &[u8]) {
        self.w.write_record(bytes).unwrap();
    }

    /// What /proc will show of `pid` from now on (a new process on a used pid).
    fn host(&mut self, pid: u32, host: Host) {
        self.hosts.insert(pid, host);
    }

    /// `pid` execs `argv`; the facts a new server's start asks: its stdio, its client,
    /// its parent.
    fn exec(&mut self, pid: u32, argv: &[&str]) -> u64 {
        let ts = self.tick_clock();
        let meta = ExecMeta {
            header: encode::header(pid, pid, ts),
            uid: 1000,
            gid: 1000,
            old_tid: pid,
            ..ExecMeta::default()
        };
        self.record(&encode::exec(meta, argv[0], argv));
        if let Some(h) = self.hosts.get(&pid).copied() {
            self.fact(
                &format!("stdio/{pid}"),
                json!({"stdin": h.stdin, "stdout": h.stdout}),
            );
            if let Some(c) = h.client {
                self.fact(&format!("client_candidates/{pid}/0"), json!([c]));
                self.fact(&format!("ppid/{pid}"), json!(c));
            }
        }
        ts
    }

    fn fork(&mut self, parent: u32, child: u32) -> u64 {
        let ts = self.tick_clock();
        self.record(&encode::fork(ForkRecord {
            header: encode::header(parent, parent, ts),
            child_pid: child,
            watched: 0,
        }));
        ts
    }

    /// `pid` exits; the pipeline asks where the kernel's count of each of its streams
    /// stands (to find bytes lost at their end).
    fn exit(&mut self, pid: u32) -> u64 {
        let ts = self.tick_clock();
        self.record(&encode::exit(ExitRecord {
            header: encode::header(pid, pid, ts),
        }));
        let mut ends: Vec<_> = self
            .offsets
            .iter()
            .filter(|&(&(p, _, _), _)| p == pid)
            .map(|(&(_, fd, dir), &end)| (fd, dir, end))
            .collect();
        ends.sort();
        for (fd, dir, end) in ends {
            let write = dir == direction::WRITE;
            self.fact(&format!("kernel.stream_end/{pid}/{fd}/{write}"), json!(end));
        }
        self.offsets.retain(|&(p, _, _), _| p != pid);
        ts
    }

    /// A write to stdout whose records the kernel could not queue, cut marker included
    /// (the ring was full): its bytes count in the kernel's stream offset only.
    fn write_lost(&mut self, pid: u32, len: usize) {
        self.tick_clock();
        *self.offsets.entry((pid, 1, direction::WRITE)).or_default() += len as u64;
    }

    /// An exit the kernel could not queue (the ring buffer was full): the process is
    /// gone, the pipeline never hears of it.
    fn exit_lost(&mut self, pid: u32) {
        self.tick_clock();
        self.offsets.retain(|&(p, _, _), _| p != pid);
    }

    /// The fd fact for a data record of `pid` on `fd` (asked once per fd).
    fn fd_fact(&mut self, pid: u32, fd: i32) {
        let Some(h) = self.hosts.get(&pid).copied() else {
            return;
        };
        let inode = match fd {
            0 => h.stdin,
            1 => h.stdout,
            _ => return,
        };
        self.fact(&format!("fd/{pid}/{fd}"), json!({"Pipe": {"inode": inode}}));
    }

    fn meta(&self, pid: u32, tid: u32, fd: i32, dir: u8, ts_ns: u64) -> DataMeta {
        DataMeta {
            header: encode::header(pid, tid, ts_ns),
            fd,
            syscall: if dir == direction::READ { 0 } else { 1 },
            direction: dir,
            ..DataMeta::default()
        }
    }

    /// One syscall that transferred `bytes` whole, in chunks of `MAX_CHUNK`.
    fn transfer(&mut self, pid: u32, tid: u32, fd: i32, dir: u8, bytes: &[u8]) {
        let start = *self.offsets.get(&(pid, fd, dir)).unwrap_or(&0);
        let ts = self.tick_clock();
        for (i, chunk) in bytes.chunks(MAX_CHUNK).enumerate() {
            let meta = DataMeta {
                total: bytes.len() as u64,
                chunk_offset: (i * MAX_CHUNK) as u64,
                stream_offset: start + (i * MAX_CHUNK) as u64,
                ..self.meta(pid, tid, fd, dir, ts)
            };
            self.record(&encode::data(meta, chunk));
            self.fd_fact(pid, fd);
        }
        self.offsets.insert((pid, fd, dir), start + bytes.len() as u64);
    }

    /// The server reads `bytes` from its stdin in one read.
    fn read(&mut self, pid: u32, bytes: &[u8]) {
        self.transfer(pid, pid, 0, direction::READ, bytes);
    }

    /// The server writes `bytes` to its stdout in one write.
    fn write(&mut self, pid: u32, bytes: &[u8]) {
        self.transfer(pid, pid, 1, direction::WRITE, bytes);
    }

    /// A write of `bytes` to stdout whose copy stopped after `sent` bytes: a record with
    /// those, then the cut marker (no bytes, TRUNCATED) saying the rest is missing.
    fn write_cut(&mut self, pid: u32, bytes: &[u8], sent: usize) {
        let (fd, dir) = (1, direction::WRITE);
        let start = *self.offsets.get(&(pid, fd, dir)).unwrap_or(&0);
        let ts = self.tick_clock();
        let first = DataMeta {
            total: bytes.len() as u64,
            stream_offset: start,
            ..self.meta(pid, pid, fd, dir, ts)
        };
        self.record(&encode::data(first, &bytes[..sent]));
        self.fd_fact(pid, fd);
        let marker = DataMeta {
            chunk_offset: sent as u64,
            stream_offset: start + sent as u64,
            ..first
        };
        self.record(&encode::cut(marker));
        self.offsets.insert((pid, fd, dir), start + bytes.len() as u64);
    }

    /// A write by thread `tid` that the kernel placed at `stream_offset` of stdout
    /// (whatever the order its record comes in).
    fn write_at(&mut self, pid: u32, tid: u32, stream_offset: u64, bytes: &[u8]) {
        let ts = self.tick_clock();
        let meta = DataMeta {
            total: bytes.len() as u64,
            stream_offset,
            ..self.meta(pid, tid, 1, direction::WRITE, ts)
        };
        self.record(&encode::data(meta, bytes));
        self.fd_fact(pid, 1);
    }

    fn open(&mut self, pid: u32, path: &str) {
        self.open_as(pid, path, OpenMeta::default(), &[]);
    }

    /// An open of `asked` that the kernel resolved to the file at `opened`.
    fn open_reached(&mut self, pid: u32, asked: &str, opened: &str) {
        let found = OpenMeta {
            resolved: resolved::WHOLE,
            ino: 1234,
            dev: 8 << 20 | 1,
            mode: 0o100644,
            nlink: 1,
            ..OpenMeta::default()
        };
        self.open_as(pid, asked, found, &encode::walk_of(opened));
    }

    /// A successful openat of `path` (fd 3), with what the kernel found in `found`.
    fn open_as(&mut self, pid: u32, path: &str, found: OpenMeta, walk: &[u8]) {
        let ts = self.tick_clock();
        let meta = OpenMeta {
            header: encode::header(pid, pid, ts),
            syscall: 257,
            dirfd: -100,
            ret: 3,
            ..found
        };
        self.record(&encode::open(meta, path, walk));
    }

    /// The once-a-second loss report (a second goes by), with the kernel's counters.
    fn tick(&mut self) {
        self.ts_ns += 1_000_000_000;
        self.w.write(&Frame::Tick).unwrap();
        if self.kernel != KernelStats::default() {
            self.fact("kernel.stats", json!({"Ok": self.kernel}));
        }
    }

    /// The loss report, the kernel having counted `kernel` since the start.
    fn tick_with(&mut self, kernel: KernelStats) {
        self.kernel = kernel;
        self.tick();
    }

    /// SIGHUP, the policy file then holding `policy`.
    fn hangup(&mut self, policy: &str) {
        self.w.write(&Frame::Hangup).unwrap();
        self.fact("policy_file", json!(policy));
    }

    /// Ends the recording (the daemon stopped) and replays it.
    fn replay(mut self) -> Replayed {
        self.w.write(&Frame::End).unwrap();
        self.w.flush().unwrap();
        drop(self.w);
        let r = replay_file(&self.path, self.max_label_values);
        let _ = std::fs::remove_file(&self.path);
        r
    }
}

struct Replayed {
    events: Vec<Value>,
    metrics: String,
    summary: replay::Summary,
    /// Kept alive for memory measurements.
    pipeline: Pipeline,
    /// Live heap bytes of this thread: just before the replay, just after it (the
    /// pipeline alive), and at most during it.
    live_before: i64,
    live_after: i64,
    peak: i64,
}

impl Replayed {
    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == t).collect()
    }

    fn tool_calls(&self) -> Vec<&Value> {
        self.of_type("tool_call")
    }

    /// The tool call of `tool`, exactly one.
    fn call(&self, tool: &str) -> &Value {
        let calls: Vec<&Value> = self
            .tool_calls()
            .into_iter()
            .filter(|c| c["tool"] == tool)
            .collect();
        assert_eq!(calls.len(), 1, "one tool_call of {tool}: {:#?}", self.events);
        calls[0]
    }

    /// Where the first event matching `f` is.
    fn index(&self, f: impl Fn(&Value) -> bool) -> usize {
        self.events
            .iter()
            .position(f)
            .unwrap_or_else(|| panic!("no such event in {:#?}", self.events))
    }

    /// The `monitor_status` loss reports.
    fn losses(&self) -> Vec<&Value> {
        self.of_type("monitor_status")
            .into_iter()
            .filter(|e| e["status"] == "loss")
            .collect()
    }

    /// The sum of the samples of metric `name` whose labels include `labels`.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut sum = 0.0;
        for line in self.metrics.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                continue;
            }
            let has = |(k, v): &(&str, &str)| rest.split(',').any(|kv| kv == format!("{k}=\"{v}\""));
            if labels.iter().all(has) {
                sum += value.parse::<f64>().unwrap();
            }
        }
        sum
    }

    fn lost(&self, place: &str) -> f64 {
        self.metric("mcp_monitor_events_lost_total", &[("where", place)])
    }
}

fn replay_file(path: &std::path::Path, max_label_values: usize) -> Replayed {
    let out = Buffer::default();
    let metrics = Metrics::new(max_label_values).unwrap();
    let events = EventWriter::from_writer(Box::new(out.clone()));
    let live_before = live_bytes();
    reset_peak();
    let (pipeline, summary) = replay::run(replay::Options {
        recording: path.to_path_buf(),
        policy: None,
        events,
        metrics,
    })
    .unwrap();
    let (live_after, peak) = (live_bytes(), peak_bytes());
    assert!(summary.ended && !summary.truncated, "{summary:?}");
    assert_eq!(summary.facts.malformed, 0, "every recorded fact parses");
    Replayed {
        events: out.events(),
        metrics: metrics_text(&pipeline),
        summary,
        pipeline,
        live_before,
        live_after,
        peak,
    }
}

// ---------------------------------------------------------------------------------------
// Messages.

fn call(id: u64, tool: &str) -> Vec<u8> {
    format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"path": "/srv/data/a.txt"}}})
    )
    .into_bytes()
}

fn result(id: u64, text: &str) -> Vec<u8> {
    format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}], "isError": false}})
    )
    .into_bytes()
}

/// A `tools/call` request line of exactly `len` bytes (its newline included).
fn padded_call(id: u64, len: usize) -> Vec<u8> {
    let base = call_with_pad(id, "").len();
    let line = call_with_pad(id, &"x".repeat(len.saturating_sub(base)));
    assert_eq!(line.len(), len.max(base));
    line
}

fn call_with_pad(id: u64, pad: &str) -> Vec<u8> {
    format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "slow", "arguments": {"pad": pad}}})
    )
    .into_bytes()
}

/// A script with the server started.
fn started(name: &str, header: Header) -> Script {
    let mut s = Script::new(name, header);
    s.exec(SERVER, SERVER_ARGV);
    s
}

/// One `server_started`: the scripted server, with the agent as its client.
fn assert_one_server(r: &Replayed) {
    let started = r.of_type("server_started");
    assert_eq!(started.len(), 1, "{:#?}", r.events);
    assert_eq!(started[0]["server"]["pid"], SERVER);
    assert_eq!(started[0]["server"]["cmdline"], SERVER_ARGV.join(" "));
    assert_eq!(started[0]["client"]["pid"], AGENT, "{:#?}", started[0]);
}

// ---------------------------------------------------------------------------------------
// 1. A response cut short, then whole messages again.

#[test]
fn a_response_cut_short_is_counted_and_the_next_call_is_read_whole() {
    let mut s = started("cut", test_header());
    s.read(SERVER, &call(1, "first_tool"));
    let first = result(1, &"a".repeat(300));
    let sent = 40;
    s.write_cut(SERVER, &first, sent);
    s.read(SERVER, &call(2, "second_tool"));
    s.write(SERVER, &result(2, "fine"));
    s.tick();
    s.exit(SERVER);
    s.tick();
    let r = s.replay();
    assert_one_server(&r);
    let missing = (first.len() - sent) as u64;

    // The call after the loss is read whole, with its tool and outcome.
    let second = r.call("second_tool");
    assert_eq!(second["outcome"], "ok", "{second:#}");
    assert_eq!(second["request_id"], 2);

    // The loss is reported at the next tick, to the byte.
    let losses = r.losses();
    assert_eq!(losses.len(), 1, "{:#?}", r.events);
    assert_eq!(losses[0]["stream_gaps"], 1, "{:#}", losses[0]);
    assert_eq!(losses[0]["bytes_missing"], missing, "{:#}", losses[0]);
    assert_eq!(losses[0]["stream_overlaps"], 0);
    assert!(r.index(|e| e["status"] == "loss") > r.index(|e| e["tool"] == "second_tool"));
    assert_eq!(r.lost("userspace_stream_gap"), 1.0, "{}", r.metrics);
    assert_eq!(r.lost("userspace_stream_overlap"), 0.0);

    // The call whose response was cut stays open until the server exits: then it is
    // lost (its answer was in what the capture lost), not merely incomplete.
    let first = r.call("first_tool");
    assert_eq!(first["outcome"], "lost", "{first:#}");
    assert_eq!(
        first["error"],
        "the capture lost bytes of the server's answers while it was open"
    );
    let exited = r.index(|e| e["type"] == "server_exited");
    assert!(r.index(|e| e["tool"] == "first_tool") < exited);
    assert!(r.index(|e| e["tool"] == "first_tool") > r.index(|e| e["status"] == "loss"));
    let exited = &r.events[exited];
    assert_eq!(exited["bytes_lost"], missing, "{exited:#}");
    assert_eq!(exited["bytes_discarded"], sent, "the part written before the cut");
    assert_eq!(exited["requests"]["tools/call"], 2);
    assert_eq!(r.metric("mcp_tool_calls_total", &[("tool", "second_tool")]), 1.0);
    assert_eq!(r.metric("mcp_tool_calls_total", &[("tool", "first_tool")]), 1.0);
}

#[test]
fn a_response_lost_with_its_cut_marker_at_the_end_is_a_counted_gap_and_the_call_lost() {
    let mut s = started("trailing", test_header());
    s.read(SERVER, &call(1, "answered"));
    s.write(SERVER, &result(1, "fine"));
    s.read(SERVER, &call(2, "unlucky"));
    let lost = result(2, &"b".repeat(500));
    s.write_lost(SERVER, lost.len());
    s.exit(SERVER);
    s.tick();
    let r = s.replay();
    assert_one_server(&r);
    assert_eq!(r.call("answered")["outcome"], "ok");
    let unlucky = r.call("unlucky");
    assert_eq!(unlucky["outcome"], "lost", "{unlucky:#}");
    let losses = r.losses();
    assert_eq!(losses.len(), 1, "{:#?}", r.events);
    assert_eq!(losses[0]["stream_gaps"], 1, "{:#}", losses[0]);
    assert_eq!(losses[0]["bytes_missing"], lost.len(), "{:#}", losses[0]);
    assert_eq!(r.lost("userspace_stream_gap"), 1.0, "{}", r.metrics);
}

// ---------------------------------------------------------------------------------------
// 2. The server exits with calls in flight.

#[test]
fn calls_in_flight_when_the_server_exits_are_incomplete_then_it_exited() {
    let mut s = started("exit", test_header());
    s.read(SERVER, &call(1, "never_answered"));
    s.read(SERVER, &call(2, "also_never_answered"));
    s.exit(SERVER);
    let r = s.replay();
    assert_one_server(&r);
    let calls = r.tool_calls();
    assert_eq!(calls.len(), 2, "{:#?}", r.events);
    // Oldest first.
    assert_eq!(calls[0]["tool"], "never_answered");
    assert_eq!(calls[1]["tool"], "also_never_answered");
    for c in &calls {
        assert_eq!(c["outcome"], "incomplete", "{c:#}");
        assert_eq!(c["error"], "no response before the server exited");
        assert_eq!(c["agent"]["pid"], AGENT);
    }
    let exited = r.index(|e| e["type"] == "server_exited");
    assert_eq!(
        exited,
        r.events.len() - 2,
        "then server_exited, then stopped: {:#?}",
        r.events
    );
    assert!(r.index(|e| e["tool"] == "also_never_answered") < exited);
    assert_eq!(r.events[exited]["server"]["pid"], SERVER);
    assert_eq!(r.events[exited]["requests"]["tools/call"], 2);
    assert_eq!(r.metric("mcp_servers_watched", &[]), 0.0);
}

// ---------------------------------------------------------------------------------------
// 3. A pid used again.

/// An unrelated program execs on the server's pid: no agent at the other end of its
/// stdio.
fn backup_execs_on_the_servers_pid(s: &mut Script) {
    s.host(
        SERVER,
        Host {
            stdin: 9001,
            stdout: 9002,
            client: None,
        },
    );
    s.exec(SERVER, &["/usr/bin/python3", "backup.py", "--all"]);
}

/// After the server at SERVER is gone, an unrelated program on the same pid: a shell's
/// child that writes a line and reads /etc/shadow.
fn unrelated_process_on_the_servers_pid(s: &mut Script) -> u64 {
    let forked = s.fork(SHELL, SERVER);
    backup_execs_on_the_servers_pid(s);
    s.write(SERVER, b"backup done\n");
    s.read(SERVER, b"yes\n");
    s.open(SERVER, "/etc/shadow");
    s.open(SERVER, "/srv/data/backup.tar");
    forked
}

/// Nothing after `after` (an event index) is about the pid that was the server.
fn nothing_attributed_after(r: &Replayed, after: usize) {
    for e in &r.events[after + 1..] {
        assert_eq!(e["type"], "monitor_status", "an event for the new process: {e:#}");
    }
    assert!(r.of_type("secret_access").is_empty(), "{:#?}", r.events);
    assert!(
        r.of_type("violation")
            .iter()
            .all(|v| v["kind"] == "unregistered_server")
    );
    assert_eq!(r.metric("mcp_secret_access_total", &[]), 0.0);
}

#[test]
fn a_pid_used_again_after_the_servers_exit_is_not_the_server() {
    let mut s = started("pid-reuse", test_header());
    s.read(SERVER, &call(1, "before_exit"));
    s.write(SERVER, &result(1, "done"));
    s.exit(SERVER);
    unrelated_process_on_the_servers_pid(&mut s);
    s.exit(SERVER);
    s.tick();
    let r = s.replay();
    assert_one_server(&r);
    assert_eq!(r.call("before_exit")["outcome"], "ok");
    let exited = r.of_type("server_exited");
    assert_eq!(exited.len(), 1, "{:#?}", r.events);
    nothing_attributed_after(&r, r.index(|e| e["type"] == "server_exited"));
    assert!(r.losses().is_empty(), "{:#?}", r.losses());
    assert_eq!(r.metric("mcp_servers_watched", &[]), 0.0);
    assert_eq!(r.metric("mcp_monitor_processes_watched", &[]), 0.0);
}

/// The server exits with the call `in_flight` unanswered and its exit record lost (the
/// ring buffer was full); the next loss report has the kernel count `lifecycle_lost`
/// exec, fork and exit records lost.
fn gone_unseen_with_a_call_in_flight(name: &str, lifecycle_lost: u64) -> Script {
    let mut s = started(name, test_header());
    s.read(SERVER, &call(1, "in_flight"));
    s.exit_lost(SERVER);
    s.tick_with(KernelStats {
        ringbuf_full_lifecycle: lifecycle_lost,
        ..KernelStats::default()
    });
    s
}

/// The server's exit record was lost (the ring buffer was full), then a shell forks a
/// child that gets the same pid: a fork onto a pid the table holds says its holder is
/// gone. The dead server's call in flight is incomplete and the server exited as of the
/// fork; nothing the new process does is the server's.
#[test]
fn a_pid_used_again_after_a_lost_exit_ends_the_dead_server_at_the_fork() {
    let mut s = gone_unseen_with_a_call_in_flight("pid-reuse-lost-exit", 1);
    let forked = unrelated_process_on_the_servers_pid(&mut s);
    let new_exit = s.exit(SERVER);
    s.tick();
    let r = s.replay();
    assert_one_server(&r);
    let calls = r.tool_calls();
    assert_eq!(calls.len(), 1, "{:#?}", r.events);
    assert_eq!(calls[0]["tool"], "in_flight");
    assert_eq!(calls[0]["outcome"], "incomplete");
    assert_eq!(calls[0]["effects"]["secrets"], json!([]), "{:#}", calls[0]);
    let exited = r.of_type("server_exited");
    assert_eq!(exited.len(), 1, "{:#?}", r.events);
    let ts = exited[0]["ts"].as_str().unwrap();
    assert_eq!(
        ts,
        kernel_time(forked),
        "gone by the fork, not at the new process's exit ({})",
        kernel_time(new_exit)
    );
    nothing_attributed_after(&r, r.index(|e| e["type"] == "server_exited"));
    assert_eq!(r.lost("kernel_ringbuf_full_lifecycle"), 1.0);
    assert_eq!(r.lost("exits_unseen"), 1.0, "{}", r.metrics);
    assert_eq!(r.losses().last().unwrap()["exits_unseen"], 1);
    assert_eq!(r.metric("mcp_servers_watched", &[]), 0.0);
}

/// The event time of a kernel timestamp.
fn kernel_time(ns: u64) -> String {
    humantime::format_rfc3339_nanos(
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(BOOT_EPOCH_NS + ns),
    )
    .to_string()
}

/// The exit and the fork records were both lost: the pid's next exec is the first the
/// pipeline hears of the new process.
#[test]
fn a_pid_execed_again_after_lost_exit_and_fork_is_not_the_server() {
    let mut s = gone_unseen_with_a_call_in_flight("pid-reuse-lost-fork", 2);
    backup_execs_on_the_servers_pid(&mut s);
    // /proc says the process on that pid started a second after the server did.
    let later = s.ts_ns + 1_000_000_000;
    s.fact(&format!("start/{SERVER}"), json!(later));
    s.write(SERVER, b"backup done\n");
    s.open(SERVER, "/etc/shadow");
    s.exit(SERVER);
    s.tick();
    let r = s.replay();
    assert!(r.of_type("secret_access").is_empty(), "{:#?}", r.events);
    let calls = r.tool_calls();
    assert_eq!(calls.len(), 1, "{:#?}", r.events);
    assert!(
        calls[0]["effects"]["secrets"].as_array().unwrap().is_empty(),
        "{:#}",
        calls[0]
    );
}

// ---------------------------------------------------------------------------------------
// 4. A log line on the server's stdout.

#[test]
fn a_log_line_on_stdout_between_responses_is_counted_and_the_calls_are_fine() {
    let mut s = started("log-line", test_header());
    s.read(SERVER, &call(1, "one"));
    s.read(SERVER, &call(2, "two"));
    s.write(SERVER, &result(1, "first"));
    s.write(SERVER, b"Server listening... (debug log on stdout)\n");
    s.write(SERVER, &result(2, "second"));
    s.tick();
    s.exit(SERVER);
    let r = s.replay();
    assert_eq!(r.call("one")["outcome"], "ok");
    assert_eq!(r.call("two")["outcome"], "ok");
    let losses = r.losses();
    assert_eq!(losses.len(), 1, "{:#?}", r.events);
    assert_eq!(losses[0]["message_errors"], 1, "{:#}", losses[0]);
    assert_eq!(losses[0]["parse_errors"], 0, "parse_errors counts kernel records");
    assert_eq!(losses[0]["stream_gaps"], 0);
    assert_eq!(
        r.metric("mcp_monitor_parse_errors_total", &[("what", "message")]),
        1.0
    );
    assert_eq!(
        r.metric("mcp_monitor_parse_errors_total", &[("what", "record")]),
        0.0
    );
    let exited = r.of_type("server_exited");
    assert_eq!(exited[0]["parse_errors"], 1, "{:#}", exited[0]);
    assert_eq!(exited[0]["bytes_lost"], 0);
}

// ---------------------------------------------------------------------------------------
// 5. A message over max_message_bytes.

fn oversized_script(name: &str) -> (Script, usize) {
    let mut h = test_header();
    h.max_message_bytes = 4096;
    let mut s = started(name, h);
    // 20 KiB: two chunks, the first already over the bound.
    let big = padded_call(1, 20 * 1024);
    s.read(SERVER, &big);
    s.read(SERVER, &call(2, "small"));
    s.write(SERVER, &result(1, "answer to the dropped one"));
    s.write(SERVER, &result(2, "ok"));
    s.tick();
    (s, big.len())
}

#[test]
fn a_message_over_the_bound_is_dropped_and_the_next_one_is_read() {
    let (mut s, big) = oversized_script("oversized");
    s.exit(SERVER);
    let r = s.replay();
    // The next message is read and paired.
    let calls = r.tool_calls();
    assert_eq!(calls.len(), 1, "the dropped request is no call: {:#?}", r.events);
    assert_eq!(calls[0]["tool"], "small");
    assert_eq!(calls[0]["outcome"], "ok");
    // Counted only in the server's exit report (bytes_discarded); its response matched
    // nothing.
    let exited = r.of_type("server_exited");
    assert_eq!(exited[0]["bytes_discarded"], big, "{:#}", exited[0]);
    assert_eq!(exited[0]["bytes_lost"], 0);
    assert_eq!(exited[0]["parse_errors"], 0);
    assert_eq!(exited[0]["requests"]["tools/call"], 1);
}

#[test]
fn a_message_over_the_bound_is_reported_while_the_server_runs() {
    let (s, _) = oversized_script("oversized-reported");
    let r = s.replay();
    let losses = r.losses();
    assert_eq!(losses.len(), 1, "a loss report at the tick: {:#?}", r.events);
    assert_eq!(losses[0]["message_errors"], 1, "{:#}", losses[0]);
    assert_eq!(
        r.metric("mcp_monitor_parse_errors_total", &[("what", "message_oversized")]),
        1.0
    );
}

// ---------------------------------------------------------------------------------------
// 6. Two threads writing the same stdout, their records crossed.

/// A script whose call "first" was answered in order: the stdout stream is under way,
/// at the offset returned.
fn first_call_answered(name: &str) -> (Script, u64) {
    let mut s = started(name, test_header());
    s.read(SERVER, &call(1, "first"));
    let r1 = result(1, "in order");
    s.write(SERVER, &r1);
    (s, r1.len() as u64)
}

fn crossed_threads_script() -> Script {
    let (mut s, at) = first_call_answered("threads");
    s.read(SERVER, &call(2, "by_thread_a"));
    s.read(SERVER, &call(3, "by_thread_b"));
    // Thread A wrote its response first (at stream offset `at`), thread B right after it;
    // B's record reached the ring buffer first.
    let (a, b) = (result(2, "from thread A"), result(3, "from thread B"));
    s.write_at(SERVER, SERVER + 1, at + a.len() as u64, &b);
    s.write_at(SERVER, SERVER + 2, at, &a);
    // The next write, back in order after both.
    s.read(SERVER, &call(4, "after"));
    s.write_at(
        SERVER,
        SERVER,
        at + (a.len() + b.len()) as u64,
        &result(4, "after both"),
    );
    s.tick();
    s.exit(SERVER);
    s
}

#[test]
fn crossed_records_of_two_threads_give_every_response_and_lose_nothing() {
    let s = crossed_threads_script();
    let r = s.replay();
    for tool in ["first", "by_thread_a", "by_thread_b", "after"] {
        assert_eq!(r.call(tool)["outcome"], "ok", "{tool}: {:#?}", r.events);
    }
    assert!(r.losses().is_empty(), "no loss: {:#?}", r.losses());
    assert_eq!(r.lost("userspace_stream_gap"), 0.0);
    assert_eq!(r.lost("userspace_stream_overlap"), 0.0);
    let exited = r.of_type("server_exited");
    assert_eq!(exited[0]["bytes_lost"], 0, "{:#}", exited[0]);
    assert_eq!(exited[0]["bytes_discarded"], 0, "{:#}", exited[0]);
}

/// Records lost whole (no cut marker: the ring had no room for one): the record after
/// them waits for them until the loss report, then the gap is counted to the byte and
/// the stream goes on at that record.
#[test]
fn a_gap_nothing_fills_is_counted_at_the_next_loss_report_and_the_stream_goes_on() {
    let (mut s, at) = first_call_answered("unfilled-gap");
    s.read(SERVER, &call(2, "lost"));
    s.read(SERVER, &call(3, "after"));
    // The response to 2 (50 bytes) never reached the ring; 3's did.
    let r3 = result(3, "after the gap");
    s.write_at(SERVER, SERVER, at + 50, &r3);
    s.tick();
    s.exit(SERVER);
    let r = s.replay();
    assert_eq!(r.call("first")["outcome"], "ok");
    assert_eq!(r.call("after")["outcome"], "ok", "{:#?}", r.events);
    assert_eq!(r.call("lost")["outcome"], "lost", "{:#?}", r.events);
    let losses = r.losses();
    assert_eq!(losses.len(), 1, "{:#?}", r.events);
    assert_eq!(losses[0]["stream_gaps"], 1, "{:#}", losses[0]);
    assert_eq!(losses[0]["bytes_missing"], 50, "{:#}", losses[0]);
    assert_eq!(r.lost("userspace_stream_gap"), 1.0);
}

// ---------------------------------------------------------------------------------------
// 7. SIGHUP in the middle of a call.

const POLICY_PATH: &str = "/etc/mcp-monitor/policy.yaml";

fn policy(entry: &str, tools: &str) -> String {
    format!(
        "servers:\n  {entry}:\n    match: {{ cmdline: \"*scenario-server*\" }}\n    tools: [{tools}]\nunregistered_servers: ignore\n"
    )
}

#[test]
fn a_reload_mid_call_judges_the_call_by_the_policy_it_started_under() {
    let mut h = test_header();
    h.policy = Some(policy("scn-v1", "alpha"));
    h.policy_path = Some(POLICY_PATH.into());
    let mut s = started("sighup", h);
    s.read(SERVER, &call(1, "beta"));
    s.hangup(&policy("scn-v2", "beta"));
    s.write(SERVER, &result(1, "done under v1"));
    s.read(SERVER, &call(2, "beta"));
    s.write(SERVER, &result(2, "done under v2"));
    s.read(SERVER, &call(3, "alpha"));
    s.write(SERVER, &result(3, "alpha under v2"));
    s.exit(SERVER);
    let r = s.replay();
    assert_eq!(r.summary.hangups, 1);
    let started = r.of_type("server_started");
    assert_eq!(started[0]["detected_by"], "policy_match");
    assert_eq!(started[0]["server"]["name"], "scn-v1");
    let loaded: Vec<&Value> = r
        .of_type("monitor_status")
        .into_iter()
        .filter(|e| e["status"] == "policy_loaded")
        .collect();
    assert_eq!(loaded.len(), 1, "{:#?}", r.events);
    assert_eq!(loaded[0]["epoch"], 1);
    assert_eq!(loaded[0]["policies_in_use"], 2, "v1 kept for the call in flight");
    let calls = r.tool_calls();
    assert_eq!(calls.len(), 3, "{:#?}", r.events);
    // Started under v1 (alpha only): out of scope, named as v1 names the server.
    let c = calls[0];
    assert_eq!((&c["tool"], &c["request_id"]), (&json!("beta"), &json!(1)));
    assert_eq!(c["server"]["name"], "scn-v1", "{c:#}");
    assert_eq!(c["decision"], "violation", "{c:#}");
    assert_eq!(c["violations"][0]["kind"], "tool_out_of_scope");
    assert_eq!(c["violations"][0]["rule"], "servers.scn-v1.tools");
    // Later calls: v2 (beta only).
    let c = calls[1];
    assert_eq!(
        (&c["tool"], &c["server"]["name"], &c["decision"]),
        (&json!("beta"), &json!("scn-v2"), &json!("allow")),
        "{c:#}"
    );
    let c = calls[2];
    assert_eq!(
        (&c["tool"], &c["server"]["name"], &c["decision"]),
        (&json!("alpha"), &json!("scn-v2"), &json!("violation")),
        "{c:#}"
    );
    assert_eq!(c["violations"][0]["rule"], "servers.scn-v2.tools");
    let count = |server: &str, tool: &str, decision: &str| {
        r.metric(
            "mcp_tool_calls_total",
            &[("server", server), ("tool", tool), ("decision", decision)],
        )
    };
    assert_eq!(count("scn-v1", "beta", "violation"), 1.0, "{}", r.metrics);
    assert_eq!(count("scn-v2", "beta", "allow"), 1.0);
    assert_eq!(count("scn-v2", "alpha", "violation"), 1.0);
}

#[test]
fn a_symlink_in_a_noise_folder_does_not_hide_its_target() {
    let mut h = test_header();
    h.policy = Some(
        "servers:\n  scn:\n    match: { cmdline: \"*scenario-server*\" }\n    files: [\"/srv/app/**\"]\nunregistered_servers: ignore\n"
            .to_string(),
    );
    h.policy_path = Some(POLICY_PATH.into());
    let mut s = started("noise-symlink", h);
    s.read(SERVER, &call(1, "load"));
    // Its own package, really under node_modules: noise.
    s.open_reached(
        SERVER,
        "node_modules/pkg/index.js",
        "/srv/app/node_modules/pkg/index.js",
    );
    // A link under node_modules to a file out of scope: that file.
    s.open_reached(
        SERVER,
        "/srv/app/node_modules/x/data.csv",
        "/srv/private/data.csv",
    );
    s.write(SERVER, &result(1, "loaded"));
    s.exit(SERVER);
    let r = s.replay();
    let calls = r.tool_calls();
    assert_eq!(calls.len(), 1, "{:#?}", r.events);
    let c = calls[0];
    assert_eq!(c["effects"]["noise"], 1, "{c:#}");
    assert_eq!(
        c["effects"]["files"],
        json!([{"path": "/srv/private/data.csv", "access": "read", "ok": true,
                "asked_path": "/srv/app/node_modules/x/data.csv"}]),
        "{c:#}"
    );
    assert_eq!(c["violations"][0]["kind"], "file_out_of_scope", "{c:#}");
}

// ---------------------------------------------------------------------------------------
// 8. Bounds.

/// `n` unanswered 1 KiB requests, read 15 to a read (15 KiB), then the answer to the
/// last one and to the first one.
fn flood(n: u64) -> Replayed {
    let mut s = started(&format!("flood-{n}"), test_header());
    let per_read = 15;
    let mut batch = Vec::with_capacity(per_read * 1024);
    for id in 1..=n {
        batch.extend_from_slice(&padded_call(id, 1024));
        if id % per_read as u64 == 0 || id == n {
            s.read(SERVER, &batch);
            batch.clear();
        }
    }
    s.write(SERVER, &result(n, "the newest is still in flight"));
    s.write(SERVER, &result(1, "the oldest was forgotten"));
    s.tick();
    s.replay()
}

#[test]
fn a_flood_of_unanswered_requests_is_bounded_counted_and_flat_in_memory() {
    let small = flood(10_000);
    let big = flood(100_000);
    let evicted = 100_000 - 1024;
    let losses = big.losses();
    assert_eq!(losses.len(), 1, "{:#?}", big.events);
    assert_eq!(losses[0]["requests_evicted"], evicted, "{:#}", losses[0]);
    assert_eq!(big.lost("requests_evicted"), evicted as f64);
    assert_eq!(small.lost("requests_evicted"), (10_000 - 1024) as f64);
    // A request still kept pairs with its answer; the oldest's answer matches nothing.
    let calls = big.tool_calls();
    assert_eq!(calls.len(), 1, "{:#?}", big.events);
    assert_eq!(calls[0]["request_id"], 100_000);
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(
        big.metric("mcp_requests_total", &[("method", "tools/call")]),
        100_000.0
    );

    let growth = |r: &Replayed| r.live_after - r.live_before;
    let peak = |r: &Replayed| r.peak - r.live_before;
    eprintln!(
        "flood: live growth {:.2} MiB for 10k requests, {:.2} MiB for 100k; peak {:.2} / {:.2} MiB",
        growth(&small) as f64 / MIB,
        growth(&big) as f64 / MIB,
        peak(&small) as f64 / MIB,
        peak(&big) as f64 / MIB,
    );
    // 1024 requests kept of 1 KiB each, as parsed JSON (their text and a map each),
    // and the pipeline itself (policy globs, metrics): measured ~4 MiB; 16 MiB leaves
    // room and is still far from the 100 MB of requests read, which must not show.
    assert!(growth(&big) < 16 << 20, "{} bytes", growth(&big));
    assert!(peak(&big) < 24 << 20, "{} bytes", peak(&big));
    // Flat: ten times the requests, the same memory within 2 MiB. (The one step seen:
    // the table of requests in flight, churned by evictions, may rehash once from
    // 2048 to 4096 buckets of ~450 bytes, ~0.9 MiB; at 4096 it always rehashes in place.)
    assert!(
        (growth(&big) - growth(&small)).abs() < 2 << 20,
        "10k: {} bytes, 100k: {} bytes",
        growth(&small),
        growth(&big)
    );
    assert!((peak(&big) - peak(&small)).abs() < 2 << 20);
    drop(small.pipeline);
    drop(big.pipeline);
}

#[test]
fn method_names_past_the_bound_are_counted_as_other() {
    let mut s = started("methods", test_header());
    let mut lines = Vec::new();
    for i in 0..300u64 {
        lines.extend_from_slice(
            format!(
                "{}\n",
                json!({"jsonrpc": "2.0", "id": i, "method": format!("vendor/method-{i}"), "params": {}})
            )
            .as_bytes(),
        );
    }
    for chunk in lines.chunks(MAX_CHUNK) {
        s.read(SERVER, chunk);
    }
    s.exit(SERVER);
    let r = s.replay();
    let exited = r.of_type("server_exited");
    let requests = exited[0]["requests"].as_object().unwrap();
    assert_eq!(requests.len(), 257, "256 names and __other__");
    assert_eq!(requests["__other__"], 44);
    assert_eq!(requests["vendor/method-0"], 1);
    assert!(!requests.contains_key("vendor/method-299"));
    // The metric's method label is bounded to the known methods.
    assert_eq!(r.metric("mcp_requests_total", &[("method", "other")]), 300.0);
    assert!(!r.metrics.contains("vendor/method"));
    assert!(r.tool_calls().is_empty());
}

/// A call in flight while the server opens `opens` distinct files; then its answer
/// when `answered` (else the recording ends with the call still in flight, its effects
/// held: what `live_after` measures).
fn many_effects(opens: usize, answered: bool) -> Replayed {
    let mut s = started(&format!("effects-{opens}"), test_header());
    s.read(SERVER, &call(1, "crawl"));
    for i in 0..opens {
        s.open(SERVER, &format!("/srv/data/{i:07}.txt"));
    }
    if answered {
        s.write(SERVER, &result(1, "crawled"));
        s.exit(SERVER);
    }
    s.replay()
}

#[test]
fn a_call_with_more_effects_than_the_bound_lists_4096_and_counts_the_rest() {
    let r = many_effects(5_000, true);
    let c = r.call("crawl");
    assert_eq!(c["outcome"], "ok");
    assert_eq!(c["effects"]["files"].as_array().unwrap().len(), 4096);
    assert_eq!(c["effects"]["files"][0]["path"], "/srv/data/0000000.txt");
    assert_eq!(
        c["effects"]["dropped"],
        5_000 - 4096,
        "{:#}",
        c["effects"]["dropped"]
    );
    assert_eq!(
        r.metric("mcp_monitor_records_total", &[("kind", "open")]),
        5_000.0
    );
}

/// Live heap bytes held by one call in flight with 10k and with 200k distinct effects
/// (4096 listed, the rest counted).
fn effects_growth() -> (i64, i64) {
    let small = many_effects(10_000, false);
    let big = many_effects(200_000, false);
    let growth = |r: &Replayed| r.live_after - r.live_before;
    eprintln!(
        "effects: live growth {:.2} MiB with 10k distinct opens in one call in flight, {:.2} MiB with 200k; peak {:.2} / {:.2} MiB",
        growth(&small) as f64 / MIB,
        growth(&big) as f64 / MIB,
        (small.peak - small.live_before) as f64 / MIB,
        (big.peak - big.live_before) as f64 / MIB,
    );
    assert_eq!(
        big.metric("mcp_monitor_records_total", &[("kind", "open")]),
        200_000.0
    );
    (growth(&small), growth(&big))
}

#[test]
fn a_call_with_many_effects_stays_within_a_few_mib() {
    let (small, big) = effects_growth();
    // 4096 effects kept (a path string and an enum each, ~100 bytes with the hash set
    // that keeps them distinct) and the pipeline: a few MiB at most.
    assert!(small < 16 << 20, "{small} bytes");
    assert!(big < 24 << 20, "{big} bytes");
}

#[test]
fn a_call_with_many_effects_is_flat_in_memory() {
    let (small, big) = effects_growth();
    assert!(
        (big - small).abs() < 1 << 20,
        "10k: {small} bytes, 200k: {big} bytes"
    );
}

// ---------------------------------------------------------------------------------------
// Static secrets: a server's environment names, as `run --record` keeps them.

#[test]
fn static_secrets_come_from_the_recorded_names_under_the_recorded_policy() {
    let mut header = test_header();
    header.policy = Some(
        "secret_env: [{name: \"SCENARIO_*\", class: scenario_key}]\nstatic_secrets: violation\nservers:\n  scenario:\n    match: {cmdline: \"*scenario-server*\"}\n"
            .into(),
    );
    header.policy_path = Some("/etc/mcp-monitor/policy.yaml".into());
    let mut s = Script::new("static-secrets", header);
    s.exec(SERVER, SERVER_ARGV);
    // What the reader kept of a hostile environment: names, and what it counted.
    s.fact(
        &format!("server_environ/{SERVER}"),
        json!({"names": ["PATH", "GITHUB_TOKEN", "SCENARIO_KEY", "OPENAI_API_KEY"],
               "problems": {"malformed": 2, "truncated": true}}),
    );
    s.tick();
    s.exit(SERVER);
    s.tick();
    let r = s.replay();
    assert_one_server(&r);
    let started = r.of_type("server_started")[0];
    let want = json!([
        {"name": "GITHUB_TOKEN", "class": "vcs_token"},
        {"name": "SCENARIO_KEY", "class": "scenario_key"},
        {"name": "OPENAI_API_KEY", "class": "api_key"},
    ]);
    assert_eq!(started["static_secrets"], want, "{started:#}");
    assert_eq!(
        started["environ_problems"],
        json!({"malformed": 2, "non_utf8": 0, "long_names": 0, "dropped": 0, "truncated": true})
    );
    let violations = r.of_type("violation");
    assert_eq!(violations.len(), 1, "{:#?}", r.events);
    assert_eq!(violations[0]["kind"], "static_secret");
    assert_eq!(violations[0]["rule"], "static_secrets");
    assert_eq!(violations[0]["static_secrets"], want);
    assert_eq!(
        r.metric(
            "mcp_scope_violations_total",
            &[("server", "scenario"), ("kind", "static_secret")]
        ),
        1.0
    );
    assert_eq!(
        r.metric("mcp_monitor_parse_errors_total", &[("what", "environ")]),
        3.0,
        "{}",
        r.metrics
    );
    // The server exited: its secrets are no longer held.
    assert_eq!(
        r.metric("mcp_server_static_secrets", &[("server", "scenario")]),
        0.0
    );
    assert!(
        r.metrics
            .contains("mcp_server_static_secrets{class=\"scenario_key\",server=\"scenario\"} 0")
    );
}

#[test]
fn a_recording_without_environment_names_has_no_static_secrets_field() {
    let mut s = started("no-environ", test_header());
    s.tick();
    s.exit(SERVER);
    s.tick();
    let r = s.replay();
    assert_one_server(&r);
    let started = r.of_type("server_started")[0];
    assert!(
        started.get("static_secrets").is_none(),
        "unknown, not empty: {started:#}"
    );
    assert!(
        r.of_type("violation")
            .iter()
            .all(|v| v["kind"] != "static_secret")
    );
}
