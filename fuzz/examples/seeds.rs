//! Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*) from real
//! data: the kernel records of the recordings in monitor/tests/fixtures (`records`), the
//! bytes of their stdio pipes (`stdio_session`) and HTTP connections (`http`), the
//! recordings themselves cut short (`recording`), the policies of the tests and the
//! built-in one (`policy`), the HTTP exchanges of monitor/src/transport/http.rs's
//! tests, and the fixtures' event logs (`suggest`). Run from fuzz/: `cargo run
//! --example seeds`. Seeds found by fuzzing (crashes fixed since, kept as regression
//! inputs) are named `regression-*` and left alone.
use std::{
    collections::{BTreeMap, HashSet},
    fs,
    path::{Path, PathBuf},
};

use monitor::{
    kernel::records::{Direction, Record},
    record::{Frame, Reader},
};
use monitor_fuzz::encode_op;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Corpus {
    dir: PathBuf,
    written: usize,
    bytes: usize,
    seen: HashSet<Vec<u8>>,
}

impl Corpus {
    /// Starts the corpus of `target` afresh (its earlier `seed-*` files removed).
    fn new(target: &str) -> Self {
        let dir = root().join("fuzz/corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().starts_with("seed-") {
                fs::remove_file(p).unwrap();
            }
        }
        Self {
            dir,
            written: 0,
            bytes: 0,
            seen: HashSet::new(),
        }
    }

    fn add(&mut self, name: &str, bytes: &[u8]) {
        if !self.seen.insert(bytes.to_vec()) {
            return;
        }
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        fs::write(self.dir.join(format!("seed-{name}")), bytes).unwrap();
        self.written += 1;
        self.bytes += bytes.len();
    }

    fn done(self) {
        println!(
            "{}: {} seeds, {} bytes",
            self.dir.display(),
            self.written,
            self.bytes
        );
    }
}

/// A recording's kernel records, in order.
fn records(path: &Path) -> Vec<Vec<u8>> {
    let (mut reader, _, _) = Reader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some((frame, _)) = reader.next_with_facts().unwrap() {
        if let Frame::Record(bytes) = frame {
            out.push(bytes);
        }
    }
    out
}

/// Splits a long op stream into seeds of at most `max` bytes, at op boundaries.
fn windows(ops: &[Vec<u8>], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for op in ops {
        if !cur.is_empty() && cur.len() + op.len() > max {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(op);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn main() {
    let fixtures = root().join("monitor/tests/fixtures");
    let mut recs = Corpus::new("records");
    let mut stdio = Corpus::new("stdio_session");
    let mut http = Corpus::new("http");
    let mut recording = Corpus::new("recording");
    let mut names: Vec<PathBuf> = fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcprec"))
        .collect();
    names.sort();
    for path in names {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let all = records(&path);
        // Every record that is not data, one per kind and size; a few data records of
        // each size class.
        let mut kinds: BTreeMap<(String, usize), usize> = BTreeMap::new();
        for (i, bytes) in all.iter().enumerate() {
            let Ok(r) = Record::try_from(bytes.as_slice()) else {
                continue;
            };
            let class = match &r {
                Record::Data(d) => (d.bytes.len().max(1)).ilog2() as usize,
                _ => bytes.len(),
            };
            let of_kind: usize = kinds
                .iter()
                .filter(|((k, _), _)| k == r.kind())
                .map(|(_, n)| *n)
                .sum();
            let n = kinds.entry((r.kind().to_string(), class)).or_default();
            *n += 1;
            if *n <= 2 && of_kind < 24 {
                recs.add(&format!("{stem}-{i:04}-{}", r.kind()), bytes);
            }
        }
        // The MCP traffic of each process: the data of its fds that carry JSON-RPC, in
        // order, one op per record (a stdio server's reads are its client's messages,
        // its writes its own, whichever fds it moved them to).
        let mut by_fd: BTreeMap<(u32, i32), Vec<u8>> = BTreeMap::new();
        let mut data = Vec::new();
        for bytes in &all {
            let Ok(Record::Data(d)) = Record::try_from(bytes.as_slice()) else {
                continue;
            };
            if d.bytes.is_empty() || d.tls_conn.is_some() {
                continue;
            }
            by_fd
                .entry((d.header.pid, d.fd))
                .or_default()
                .extend_from_slice(&d.bytes);
            data.push(d);
        }
        let jsonrpc = |text: &[u8]| text.windows(10).any(|w| w == b"\"jsonrpc\":");
        let mut sessions: BTreeMap<u32, Vec<(bool, Vec<u8>)>> = BTreeMap::new();
        for d in data {
            if jsonrpc(&by_fd[&(d.header.pid, d.fd)]) {
                let to_client = d.direction == Direction::Write;
                sessions
                    .entry(d.header.pid)
                    .or_default()
                    .push((to_client, d.bytes.into_owned()));
            }
        }
        for (pid, messages) in &sessions {
            let ops: Vec<Vec<u8>> = messages
                .iter()
                .map(|(to_client, bytes)| {
                    let mut op = Vec::new();
                    encode_op(&mut op, *to_client, 0, bytes);
                    op
                })
                .collect();
            for (w, window) in windows(&ops, 8 << 10).into_iter().enumerate() {
                // Stdio known; and learnt from the first request and response.
                for config in [0x03u8, 0x43, 0x01] {
                    let mut seed = vec![config];
                    seed.extend_from_slice(&window);
                    stdio.add(&format!("{stem}-{pid}-{w:02}-c{config:02x}"), &seed);
                }
            }
            // The same messages over Streamable HTTP: one server's connection, and one
            // HttpConnection on its own.
            let over_http = as_http(messages);
            for (w, window) in windows(&over_http, 8 << 10).into_iter().enumerate() {
                for config in [0x43u8, 0x03, 0x00] {
                    let mut seed = vec![config];
                    seed.extend_from_slice(&window);
                    http.add(&format!("{stem}-{pid}-as-http-{w:02}-c{config:02x}"), &seed);
                }
            }
        }
        // The recording cut short: its start (the header, the process table) and a
        // stretch of records and facts, cut inside a frame.
        let file = fs::read(&path).unwrap();
        let body = &file[12..];
        recording.add(&format!("{stem}-start"), &body[..body.len().min(6 << 10)]);
        let mid = body.len() / 2;
        recording.add(
            &format!("{stem}-middle"),
            &body[mid..(mid + (6 << 10)).min(body.len())],
        );
    }
    for (name, seed) in http_tests() {
        for config in [0x43u8, 0x00] {
            let mut s = vec![config];
            s.extend_from_slice(&seed);
            http.add(&format!("test-{name}-c{config:02x}"), &s);
        }
    }
    recs.done();
    stdio.done();
    http.done();
    recording.done();
    policies();
    event_logs(&fixtures);
}

/// Stdio messages (newline-framed, as captured) as Streamable HTTP exchanges: each
/// request a POST, each response a JSON body or an event stream (alternately), each
/// notification a 202; the session id handed out with the first response.
fn as_http(messages: &[(bool, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut lines: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (to_client, bytes) in messages {
        let buf = &mut pending[usize::from(*to_client)];
        buf.extend_from_slice(bytes);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            lines.push((*to_client, line[..line.len() - 1].to_vec()));
        }
    }
    let mut ops = Vec::new();
    let mut responses = 0;
    for (to_client, body) in lines {
        let mut msg = Vec::new();
        if !to_client {
            let session = if responses > 0 {
                "Mcp-Session-Id: 7f3c2a\r\n"
            } else {
                ""
            };
            msg.extend_from_slice(
                format!(
                    "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\n{session}Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            msg.extend_from_slice(&body);
        } else {
            responses += 1;
            let session = if responses == 1 {
                "mcp-session-id: 7f3c2a\r\n"
            } else {
                ""
            };
            if responses % 2 == 1 {
                msg.extend_from_slice(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{session}content-length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                msg.extend_from_slice(&body);
            } else {
                let mut event = b"event: message\r\ndata: ".to_vec();
                event.extend_from_slice(&body);
                event.extend_from_slice(b"\r\n\r\n");
                msg.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                msg.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
                msg.extend_from_slice(&event);
                msg.extend_from_slice(b"\r\n0\r\n\r\n");
            }
        }
        let mut op = Vec::new();
        encode_op(&mut op, to_client, 0, &msg);
        ops.push(op);
        // A notification is answered with 202 and no body.
        if !to_client && !body.windows(5).any(|w| w == b"\"id\":") {
            let mut op = Vec::new();
            encode_op(
                &mut op,
                true,
                0,
                b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
            );
            ops.push(op);
        }
    }
    ops
}

/// The exchanges of monitor/src/transport/http.rs's tests, as op streams.
fn http_tests() -> Vec<(&'static str, Vec<u8>)> {
    const STATELESS_REQ: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8771\r\ncontent-type: application/json\r\nmcp-method: tools/call\r\nContent-Length: 24\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2}";
    const STATELESS_RESP: &[u8] = b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\ncontent-length: 30\r\ncontent-type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"r\":1}";
    let init = b"POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let sse = b"event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}\r\n\r\n";
    let mut chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nmcp-session-id: abc-123\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in sse.chunks(20) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let op = |ops: &[(bool, &[u8])]| {
        let mut out = Vec::new();
        for (to_client, bytes) in ops {
            encode_op(&mut out, *to_client, 0, bytes);
        }
        out
    };
    let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSIsImF6cCI6ImN1cnNvciIsImlzcyI6Imh0dHBzOi8vaWRwLmV4YW1wbGUiLCJhdWQiOlsibWNwIiwiYXBpIl0sInNjcCI6WyJmaWxlczpyZWFkIl0sImV4cCI6MTkwMDAwMDAwMH0.c2lnbmF0dXJl";
    let bearer = format!(
        "POST /mcp HTTP/1.1\r\nAuthorization: Bearer {jwt}\r\nContent-Length: 69\r\n\r\n{{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{{\"name\":\"t\"}}}}"
    );
    vec![
        (
            "stateless",
            op(&[(false, STATELESS_REQ), (true, STATELESS_RESP)]),
        ),
        (
            "pipelined",
            op(&[(false, &[STATELESS_REQ, STATELESS_REQ].concat()), (true, STATELESS_RESP)]),
        ),
        ("chunked-sse", op(&[(false, init), (true, &chunked)])),
        (
            "standing-get",
            op(&[
                (false, b"GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: s1\r\n\r\n"),
                (true, b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"),
                (true, b"data: {\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"roots/list\"}\n\n"),
                (false, b"POST /mcp HTTP/1.1\r\nMcp-Session-Id: s1\r\nContent-Length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}"),
            ]),
        ),
        (
            "bearer",
            op(&[
                (false, bearer.as_bytes()),
                (true, b"HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}"),
            ]),
        ),
        (
            "malformed",
            op(&[
                (false, b"POST /mcp HTTP/1.1\r\nContent-Length: nope\r\n\r\n"),
                (false, STATELESS_REQ),
                (true, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
                (true, b"HTTP/1.1 202 Accepted\r\ncontent-encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00"),
            ]),
        ),
    ]
}

/// The event logs the live daemon wrote for the recordings (`suggest`): whole, and
/// each cut to its first lines.
fn event_logs(fixtures: &Path) {
    let mut corpus = Corpus::new("suggest");
    let mut logs: Vec<PathBuf> = fs::read_dir(fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".events.jsonl"))
        .collect();
    logs.sort();
    for path in logs {
        let text = fs::read_to_string(&path).unwrap();
        let stem = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".events.jsonl", "");
        corpus.add(&stem, text.as_bytes());
        let lines: Vec<&str> = text.lines().collect();
        for n in [2, 4] {
            corpus.add(
                &format!("{stem}-{n}"),
                (lines[..n.min(lines.len())].join("\n") + "\n").as_bytes(),
            );
        }
    }
    corpus.done();
}

/// The policies of the tests (YAML in string literals that name `servers:` or
/// `secrets:`), and the built-in one.
fn policies() {
    let mut corpus = Corpus::new("policy");
    corpus.add("default-policy", monitor::policy::DEFAULT_POLICY.as_bytes());
    for file in [
        "tests/tests/policy.rs",
        "tests/tests/discovery.rs",
        "tests/tests/http_mcp.rs",
        "tests/tests/cardinality.rs",
        "tests/tests/prometheus.rs",
        "monitor/src/policy/load.rs",
        "monitor/src/policy/eval.rs",
        "monitor/tests/replay_fixtures.rs",
        "monitor/tests/replay_scenarios.rs",
    ] {
        let Ok(text) = fs::read_to_string(root().join(file)) else {
            continue;
        };
        let stem = Path::new(file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (i, lit) in string_literals(&text).into_iter().enumerate() {
            if lit.contains("servers:") || lit.contains("secrets:") {
                corpus.add(&format!("{stem}-{i:03}"), lit.as_bytes());
            }
        }
    }
    corpus.done();
}

/// The string literals of Rust source, raw (`r#"..."#`) or not (escapes undone); a
/// `format!` string (one with `{{`) gets its placeholders filled in.
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"r#\"") {
            let start = i + 3;
            let Some(end) = src[start..].find("\"#") else {
                break;
            };
            out.push(fill(&src[start..start + end]));
            i = start + end + 2;
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            let mut s = String::new();
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' && j + 1 < b.len() {
                    match b[j + 1] {
                        b'n' => s.push('\n'),
                        b't' => s.push('\t'),
                        b'\n' => {
                            // A continued line: the next line's indentation is dropped.
                            j += 2;
                            while j < b.len() && b[j].is_ascii_whitespace() {
                                j += 1;
                            }
                            continue;
                        }
                        c => s.push(c as char),
                    }
                    j += 2;
                    continue;
                }
                let c = src[j..].chars().next().unwrap();
                s.push(c);
                j += c.len_utf8();
            }
            out.push(fill(&s));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

fn fill(s: &str) -> String {
    if !s.contains("{{") {
        return s.to_string();
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let r = &rest[i..];
        if r.starts_with("{{") || r.starts_with("}}") {
            out.push_str(&r[..1]);
            rest = &r[2..];
        } else if r.starts_with('{') {
            let end = r.find('}').unwrap_or(r.len() - 1);
            let name = &r[1..end];
            out.push_str(match name {
                n if n.contains("tools") => "[echo, add]",
                n if n.contains("files") => "[\"/tmp/fuzz/**\"]",
                n if n.contains("glob") || n == "py" => "*python3* *server.py*",
                _ => "/tmp/fuzz",
            });
            rest = &r[end + 1..];
        } else {
            out.push('}');
            rest = &r[1..];
        }
    }
    out.push_str(rest);
    out
}
