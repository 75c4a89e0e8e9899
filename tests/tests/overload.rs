//! Overload, as root with the real daemon: the daemon is stopped (SIGSTOP) while a real
//! MCP server (the official `server-everything`, over stdio) answers 1,000 tool calls
//! that overflow a 1 MiB ring buffer, and short-lived watched processes come and go;
//! then it is continued. What it lost is counted to the byte against what the client
//! sent and received, no exec or exit record is lost to the payload, the calls it
//! reports are exactly those whose request and response it captured, and the calls made
//! afterwards are reported again.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read as _, Write},
    ops::Range,
    process::{ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use integration_tests::{
    Daemon, Killed,
    mcp::npm_entry,
    metrics::{Sample, scrape, sum},
    unique_tag,
};
use serde_json::{Value, json};

/// Calls made while the daemon is stopped.
const CALLS: u64 = 1000;
/// Calls made once it has caught up.
const LATER: u64 = 10;
/// Watched processes started (and ended) while it is stopped, one every
/// `CALLS / SHELLS` calls, the last after the last call.
const SHELLS: u64 = 20;
/// The echo tool's `message`: ~2.1 KiB requests and responses, so 1,000 calls are
/// ~4.3 MB of payload for a 1 MiB ring. Under PIPE_BUF, so each line is one transfer.
const MESSAGE: usize = 2048;
const WAIT: Duration = Duration::from_secs(30);
/// `initialize` is id 0, the warm-up call id 1; the calls made while stopped follow.
const FIRST: u64 = 2;

/// The test process is the MCP client: it writes each request line with one write()
/// and reads the answer before the next, keeping every byte it sent and received, so
/// the server's stdin and stdout streams are known to the byte, and where each message
/// lies in them.
struct Client {
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Everything written to the server's stdin: its fd 0 read stream.
    sent: Vec<u8>,
    /// Everything read from the server's stdout: its fd 1 write stream.
    received: Vec<u8>,
    requests: BTreeMap<u64, Range<u64>>,
    responses: BTreeMap<u64, Range<u64>>,
}

impl Client {
    fn send(&mut self, msg: &Value) -> Range<u64> {
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        assert!(line.len() < 4096, "one atomic pipe write");
        let start = self.sent.len() as u64;
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(&line).expect("writing to the server");
        stdin.flush().unwrap();
        self.sent.extend_from_slice(&line);
        start..self.sent.len() as u64
    }

    /// Sends a request and reads lines until its response (anything else the server
    /// says on the way counts as received too).
    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        let range = self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.requests.insert(id, range);
        loop {
            let mut line = Vec::new();
            let n = self
                .stdout
                .read_until(b'\n', &mut line)
                .expect("reading the server");
            assert!(n > 0 && line.ends_with(b"\n"), "server closed its stdout");
            let start = self.received.len() as u64;
            self.received.extend_from_slice(&line);
            let v: Value = serde_json::from_slice(&line).expect("the server writes JSON lines");
            if v["id"] == id && v.get("method").is_none() {
                self.responses.insert(id, start..self.received.len() as u64);
                return v;
            }
        }
    }

    fn call(&mut self, id: u64) {
        let r = self.request(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": message(id)}}),
        );
        assert_eq!(
            r["result"]["content"][0]["text"],
            format!("Echo: {}", message(id)),
            "{r}"
        );
    }
}

/// A message of exactly MESSAGE bytes, different for every call.
fn message(id: u64) -> String {
    let mut m = format!("call-{id:06}-");
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while m.len() < MESSAGE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.push(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize] as char);
    }
    m
}

/// What the daemon delivered of one (pid, fd, direction) stream, from its `capture`
/// events: the captured bytes as merged `[start, end)` ranges (each chunk checked
/// against the bytes the client knows are at its offset, when it knows them), and the
/// cut markers (empty `truncated` records).
#[derive(Default)]
struct Captured {
    ranges: Vec<Range<u64>>,
    bytes: u64,
    chunks: usize,
    cut_markers: usize,
    /// The end of the last transfer the kernel counted on this stream, as far as
    /// delivered records tell.
    end: u64,
}

impl Captured {
    fn of(events: &[Value], pid: u32, fd: i64, direction: &str, truth: Option<&[u8]>) -> Self {
        let mut c = Self::default();
        let mut chunks: Vec<Range<u64>> = Vec::new();
        for e in events {
            if e["type"] != "capture" || e["pid"] != pid || e["fd"] != fd || e["direction"] != direction {
                continue;
            }
            let offset = e["offset"].as_u64().unwrap();
            let data = base64::engine::general_purpose::STANDARD
                .decode(e["data"].as_str().unwrap())
                .unwrap();
            c.end = c
                .end
                .max(offset - e["chunk_offset"].as_u64().unwrap() + e["total"].as_u64().unwrap());
            if data.is_empty() {
                assert_eq!(e["truncated"], true, "an empty record is a cut marker: {e}");
                c.cut_markers += 1;
                continue;
            }
            let range = offset..offset + data.len() as u64;
            if let Some(truth) = truth {
                assert!(
                    range.end <= truth.len() as u64
                        && truth[range.start as usize..range.end as usize] == data[..],
                    "pid {pid} fd {fd} {direction}: the chunk at {offset} ({} bytes) is not what went through there",
                    data.len()
                );
            }
            chunks.push(range);
        }
        c.chunks = chunks.len();
        chunks.sort_by_key(|r| r.start);
        for r in chunks {
            c.bytes += r.end - r.start;
            match c.ranges.last_mut() {
                Some(last) if r.start < last.end => {
                    panic!("pid {pid} fd {fd} {direction}: overlapping chunks at {}", r.start)
                }
                Some(last) if r.start == last.end => last.end = r.end,
                _ => c.ranges.push(r),
            }
        }
        c
    }

    fn covers(&self, r: &Range<u64>) -> bool {
        self.ranges.iter().any(|c| c.start <= r.start && r.end <= c.end)
    }

    fn touches(&self, r: &Range<u64>) -> bool {
        self.ranges.iter().any(|c| c.start < r.end && r.start < c.end)
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // Safety: signalling a process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

fn lost(samples: &[Sample], place: &str) -> u64 {
    sum(samples, "mcp_monitor_events_lost_total", |s| {
        s.labels.get("where").map(String::as_str) == Some(place)
    }) as u64
}

/// Non-zero series of one counter, by the value of `label`.
fn by_label(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, u64> {
    samples
        .iter()
        .filter(|s| s.name == name && s.value != 0.0)
        .map(|s| (s.labels.get(label).cloned().unwrap_or_default(), s.value as u64))
        .collect()
}

/// Runs `sh -c 'true # TAG'` to its end: a watched process's fork, exec and exit.
fn shell(tag: &str) -> u32 {
    let mut c = Command::new("sh")
        .args(["-c", &format!("true # {tag}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("running sh");
    assert!(c.wait().unwrap().success());
    c.id()
}

fn is_event(e: &Value, kind: &str, pid: u32) -> bool {
    e["type"] == kind && e["server"]["pid"] == pid
}

#[test]
fn a_stopped_daemon_counts_what_it_lost_exactly_keeps_every_lifecycle_record_and_catches_up() {
    let started_at = Instant::now();
    let tag = unique_tag("overload");
    let d = Daemon::start(&[
        "--watch",
        &format!("*{tag}*"),
        "--ring-buffer-mb",
        "1",
        "--debug-captures",
    ])
    .expect("daemon starts");

    // The real server, its stderr to /dev/null; `tag` is an argument it ignores.
    let mut child = Command::new("node")
        .args([
            npm_entry("@modelcontextprotocol/server-everything").as_str(),
            "stdio",
            &tag,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting node server-everything");
    let server = child.id();
    let mut client = Client {
        stdin: child.stdin.take(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        sent: Vec::new(),
        received: Vec::new(),
        requests: BTreeMap::new(),
        responses: BTreeMap::new(),
    };
    let mut child = Killed(child);
    let init = client.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "overload-client", "version": "1.0.0"}}),
    );
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcp-servers/everything",
        "{init}"
    );
    client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    // A warm-up call, reported before the daemon is stopped: its ring is drained then.
    client.call(1);
    d.wait_for(WAIT, |e| is_event(e, "tool_call", server) && e["request_id"] == 1)
        .unwrap_or_else(|e| panic!("the warm-up call is not reported: {e:#}\n{}", d.stderr()));
    let before = scrape(&d).unwrap();

    // Stopped: 1,000 calls, and a watched shell every 50 of them.
    signal(d.pid(), libc::SIGSTOP);
    let stopped_at = Instant::now();
    let mut shells = Vec::new();
    for i in 0..CALLS {
        client.call(FIRST + i);
        if (i + 1) % (CALLS / SHELLS) == 0 {
            shells.push(shell(&tag));
        }
    }
    let stopped_for = stopped_at.elapsed();
    signal(d.pid(), libc::SIGCONT);
    let continued_at = Instant::now();

    // Caught up: the last shell, started after the last call, has exited for the
    // daemon; or, should its records be lost, no captured byte has come for half a
    // second (the backlog of 1 MiB takes milliseconds; other records never stop on a
    // busy host).
    let last_shell = *shells.last().unwrap();
    let records = |s: &[Sample]| sum(s, "mcp_monitor_captured_bytes_total", |_| true);
    let (mut last_count, mut quiet_since) = (-1.0, Instant::now());
    let last_shell_seen = loop {
        if d.events()
            .iter()
            .any(|e| is_event(e, "server_exited", last_shell))
        {
            break true;
        }
        let n = records(&scrape(&d).unwrap());
        if n != last_count {
            (last_count, quiet_since) = (n, Instant::now());
        } else if quiet_since.elapsed() > Duration::from_millis(500) {
            break false;
        }
        assert!(continued_at.elapsed() < WAIT, "the daemon never caught up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let caught_up_in = continued_at.elapsed();

    // Later calls, then the server ends (its stdin closed; SIGINT if it lingers).
    for i in 0..LATER {
        client.call(FIRST + CALLS + i);
    }
    let last_id = FIRST + CALLS + LATER - 1;
    let later_seen = d
        .wait_for(WAIT, |e| {
            is_event(e, "tool_call", server) && e["request_id"] == last_id
        })
        .is_ok();
    drop(client.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.0.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            signal(server, libc::SIGINT);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut tail = Vec::new();
    client.stdout.read_to_end(&mut tail).unwrap();
    client.received.extend_from_slice(&tail);
    let _ = child.0.wait();
    let exited = d
        .wait_for(WAIT, |e| is_event(e, "server_exited", server))
        .unwrap_or_else(|e| panic!("server {server} exit not seen: {e:#}\n{}", d.stderr()));
    // Past the next loss report (every second).
    std::thread::sleep(Duration::from_millis(1500));
    let after = scrape(&d).unwrap();
    // The watched set has emptied of them: no dead pid left behind.
    let still_watched: Vec<u32> = integration_tests::kernel_watched(&d)
        .unwrap()
        .into_iter()
        .filter(|p| *p == server || shells.contains(p))
        .collect();
    let stderr = d.stderr();
    let (_, _, events) = d.stop(Duration::from_secs(10)).expect("daemon stops");
    let (sent, received) = (&client.sent[..], &client.received[..]);

    // What the kernel delivered of the server's streams: its stdio, known to the byte,
    // and the rest (node's eventfd), known only from the records.
    let stdin_cap = Captured::of(&events, server, 0, "read", Some(sent));
    let stdout_cap = Captured::of(&events, server, 1, "write", Some(received));
    let missing_in = sent.len() as u64 - stdin_cap.bytes;
    let missing_out = received.len() as u64 - stdout_cap.bytes;
    let mut others = BTreeMap::new();
    for e in &events {
        if e["type"] == "capture" {
            let key = (
                e["pid"].as_u64().unwrap(),
                e["fd"].as_i64().unwrap(),
                e["direction"].as_str().unwrap().to_string(),
            );
            if !matches!((key.1, key.2.as_str()), (0, "read") | (1, "write")) || key.0 != u64::from(server) {
                others
                    .entry(key)
                    .or_insert(e["fd_kind"].as_str().unwrap_or("?").to_string());
            }
        }
    }
    let (mut others_missing, mut others_markers) = (0, 0);
    let mut others_text = Vec::new();
    for ((pid, fd, dir), kind) in &others {
        let c = Captured::of(&events, *pid as u32, *fd, dir, None);
        others_missing += c.end - c.bytes;
        others_markers += c.cut_markers;
        others_text.push(format!(
            "pid {pid} fd {fd} {dir} {kind}: {} B in {} chunks, {} cut markers, end {}",
            c.bytes, c.chunks, c.cut_markers, c.end
        ));
    }

    // Each call: reported ok when both its request and response were captured,
    // lost (at the server's exit: its answer was in what the capture lost) when only its
    // request was, not at all otherwise.
    let calls: Vec<&Value> = events
        .iter()
        .filter(|e| is_event(e, "tool_call", server))
        .collect();
    let mut by_id: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for e in &calls {
        by_id
            .entry(e["request_id"].as_u64().expect("numeric ids"))
            .or_default()
            .push(e);
    }
    let (mut expect_ok, mut expect_incomplete, mut expect_none, mut torn) = (0, 0, 0, 0);
    let mut misreported = Vec::new();
    for id in 1..=last_id {
        let (request, response) = (&client.requests[&id], &client.responses[&id]);
        let (req, resp) = (stdin_cap.covers(request), stdout_cap.covers(response));
        if (!req && stdin_cap.touches(request)) || (!resp && stdout_cap.touches(response)) {
            torn += 1;
        }
        let expected: &[&str] = match (req, resp) {
            (true, true) => {
                expect_ok += 1;
                &["ok"]
            }
            // Its answer was in the bytes the capture lost while it was open.
            (true, false) => {
                expect_incomplete += 1;
                &["lost"]
            }
            (false, _) => {
                expect_none += 1;
                &[]
            }
        };
        let got: Vec<&str> = by_id
            .get(&id)
            .map(|v| v.iter().map(|e| e["outcome"].as_str().unwrap_or("?")).collect())
            .unwrap_or_default();
        if got != expected {
            misreported.push(format!(
                "id {id}: request captured {req}, response {resp}, reported {got:?}"
            ));
        }
    }
    let reported_ok = calls.iter().filter(|e| e["outcome"] == "ok").count() as u64;
    let reported_incomplete = calls.iter().filter(|e| e["outcome"] == "lost").count() as u64;
    let stopped_ids = FIRST..FIRST + CALLS;
    let stopped_reported = calls
        .iter()
        .filter(|e| {
            e["request_id"]
                .as_u64()
                .is_some_and(|id| stopped_ids.contains(&id))
        })
        .count() as u64;

    let loss = events
        .iter()
        .rev()
        .find(|e| e["type"] == "monitor_status" && e["status"] == "loss")
        .cloned()
        .unwrap_or(Value::Null);
    let k = &loss["kernel"];
    let kn = |name: &str| k[name].as_u64().unwrap_or(0);
    let seen = |kind: &str| {
        shells
            .iter()
            .filter(|&&p| events.iter().any(|e| is_event(e, kind, p)))
            .count() as u64
    };
    let (shells_started, shells_exited) = (seen("server_started"), seen("server_exited"));
    let captured_metric = |dir: &str| {
        sum(&after, "mcp_monitor_captured_bytes_total", |x| {
            x.labels.get("direction").map(String::as_str) == Some(dir)
        }) as u64
    };
    let all_caps = |dir: &str| -> u64 {
        events
            .iter()
            .filter(|e| e["type"] == "capture" && e["direction"] == dir)
            .map(|e| e["length"].as_u64().unwrap())
            .sum()
    };
    let records_during: BTreeMap<String, u64> = by_label(&after, "mcp_monitor_records_total", "kind")
        .into_iter()
        .map(|(kind, n)| {
            let b = by_label(&before, "mcp_monitor_records_total", "kind");
            let b = b.get(&kind).copied().unwrap_or(0);
            (kind, n - b)
        })
        .collect();
    let reconciled: Vec<&str> = stderr.lines().filter(|l| l.contains("watched set")).collect();

    eprintln!(
        "overload: daemon stopped {stopped_for:?} for {CALLS} calls + {SHELLS} shells; caught up {caught_up_in:?} \
         after SIGCONT; test ran {:?}\n\
         stdin (fd 0 read): sent {} B, captured {} B in {} chunks, missing {missing_in} B, {} cut markers, kernel end {}\n\
         stdout (fd 1 write): received {} B, captured {} B in {} chunks, missing {missing_out} B, {} cut markers, kernel end {}\n\
         other streams: {}\n\
         calls 1..={last_id}: reported ok {reported_ok} (expected {expect_ok}), incomplete {reported_incomplete} \
         (expected {expect_incomplete}), not reported {expect_none}; of the {CALLS} made while stopped {stopped_reported} reported\n\
         server_exited: bytes_lost {} bytes_discarded {} requests {}\n\
         last loss status: {}\n\
         events_lost: {:?}\n\
         records delivered during the test: {records_during:?}\n\
         captured_bytes metric: read {} write {}\n\
         shells: started {shells_started}/{SHELLS}, exited {shells_exited}/{SHELLS} (last one seen: {last_shell_seen}) {shells:?}\n\
         still watched: {still_watched:?}; reconciled: {reconciled:#?}",
        started_at.elapsed(),
        sent.len(),
        stdin_cap.bytes,
        stdin_cap.chunks,
        stdin_cap.cut_markers,
        stdin_cap.end,
        received.len(),
        stdout_cap.bytes,
        stdout_cap.chunks,
        stdout_cap.cut_markers,
        stdout_cap.end,
        others_text.join("; "),
        exited["bytes_lost"],
        exited["bytes_discarded"],
        exited["requests"],
        loss.to_string().replace(",\"", ", \""),
        by_label(&after, "mcp_monitor_events_lost_total", "where"),
        captured_metric("read"),
        captured_metric("write"),
    );

    let mut failed: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failed.push(what);
        }
    };

    // No exec or exit record was lost: every shell started and ended for the daemon,
    // and the kernel counted no lifecycle record without room.
    check(
        lost(&after, "kernel_ringbuf_full_lifecycle") == 0 && kn("ringbuf_full_lifecycle") == 0,
        format!(
            "lifecycle records lost: {} (events_lost), {} (loss status)",
            lost(&after, "kernel_ringbuf_full_lifecycle"),
            kn("ringbuf_full_lifecycle")
        ),
    );
    check(
        shells_started == SHELLS && shells_exited == SHELLS,
        format!("of {SHELLS} shells, {shells_started} server_started and {shells_exited} server_exited"),
    );

    check(
        still_watched.is_empty(),
        format!("exited pids still in the kernel's watched set: {still_watched:?}"),
    );

    // The overload happened, and was held off by the headroom: data was refused and
    // transfers cut.
    check(
        expect_none > 0,
        "1,000 calls did not overflow a 1 MiB ring".into(),
    );
    check(
        kn("data_headroom") > 0 && kn("cut_ring") > 0 && kn("cut_read") == 0 && kn("cut_limit") == 0,
        format!("kernel counts: {k}"),
    );
    check(
        loss["stream_gaps"].as_u64().unwrap_or(0) > 0,
        format!("no stream gap counted: {loss}"),
    );
    // Each cut transfer sent its marker, or the marker found the ring full (more cut
    // transfers when processes the daemon does not follow were cut too: their markers
    // come through but make no event).
    let markers = (stdin_cap.cut_markers + stdout_cap.cut_markers + others_markers) as u64;
    check(
        kn("cut_ring") >= markers + kn("ringbuf_full_data"),
        format!(
            "cut transfers {} versus markers delivered {markers} + refused {}",
            kn("cut_ring"),
            kn("ringbuf_full_data")
        ),
    );

    // The kernel counted every byte the server moved, captured or not.
    check(
        stdin_cap.end == sent.len() as u64 && stdout_cap.end == received.len() as u64,
        format!(
            "kernel stream ends: stdin {} of {}, stdout {} of {}",
            stdin_cap.end,
            sent.len(),
            stdout_cap.end,
            received.len()
        ),
    );
    // The loss is counted exactly: what the daemon captured plus what it says it
    // missed is what went through the server's stdio, to the byte.
    check(missing_in > 0 && missing_out > 0, "no byte missing".into());
    check(
        exited["bytes_lost"].as_u64() == Some(missing_in + missing_out),
        format!(
            "server_exited.bytes_lost {} versus sent {} + received {} - captured {} - {} = {}",
            exited["bytes_lost"],
            sent.len(),
            received.len(),
            stdin_cap.bytes,
            stdout_cap.bytes,
            missing_in + missing_out
        ),
    );
    check(
        loss["bytes_missing"].as_u64() == Some(missing_in + missing_out + others_missing),
        format!(
            "loss status bytes_missing {} versus stdio {} + other streams {others_missing}",
            loss["bytes_missing"],
            missing_in + missing_out
        ),
    );
    // Whole messages were captured or lost: nothing captured was thrown away.
    check(
        exited["bytes_discarded"] == 0,
        format!("bytes discarded: {}", exited["bytes_discarded"]),
    );
    check(torn == 0, format!("{torn} messages partly captured"));
    // The counters agree with the records.
    check(
        captured_metric("read") == all_caps("read") && captured_metric("write") == all_caps("write"),
        format!(
            "captured_bytes read {} write {} versus capture events {} {}",
            captured_metric("read"),
            captured_metric("write"),
            all_caps("read"),
            all_caps("write")
        ),
    );
    for (place, status) in [
        ("userspace_stream_gap", loss["stream_gaps"].as_u64().unwrap_or(0)),
        ("kernel_transfer_cut_ring", kn("cut_ring")),
        ("kernel_data_headroom", kn("data_headroom")),
        ("kernel_ringbuf_full_data", kn("ringbuf_full_data")),
    ] {
        check(
            lost(&after, place) == status,
            format!(
                "events_lost{{where={place}}} {} versus loss status {status}",
                lost(&after, place)
            ),
        );
    }

    // Reported calls are exactly those the daemon saw both halves of (or the request
    // of, when the server exited without its answer captured).
    check(
        misreported.is_empty(),
        format!(
            "{} calls misreported:\n  {}",
            misreported.len(),
            misreported.join("\n  ")
        ),
    );
    check(
        calls.len() as u64 == reported_ok + reported_incomplete
            && reported_ok + reported_incomplete + expect_none == last_id,
        format!(
            "{} tool_call events: ok {reported_ok} + incomplete {reported_incomplete} + unreported {expect_none} \
             for {last_id} calls",
            calls.len()
        ),
    );

    // The later calls are reported whole: tool, arguments, outcome, client.
    check(later_seen, "the last later call was never reported".into());
    for id in FIRST + CALLS..=last_id {
        let e = by_id.get(&id).map(|v| v[0]);
        check(
            e.is_some_and(|e| {
                e["tool"] == "echo"
                    && e["arguments"] == json!({"message": message(id)})
                    && e["outcome"] == "ok"
                    && e["agent"]["client"]["name"] == "overload-client"
                    && e["agent"]["pid"] == std::process::id()
            }),
            format!(
                "later call {id}: {}",
                e.map_or("not reported".to_string(), |e| e
                    .to_string()
                    .chars()
                    .take(300)
                    .collect())
            ),
        );
    }

    assert!(
        failed.is_empty(),
        "{} checks failed:\n- {}",
        failed.len(),
        failed.join("\n- ")
    );
}
