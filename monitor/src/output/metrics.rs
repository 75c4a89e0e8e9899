//! Prometheus metrics and the small HTTP endpoint that serves them.
use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::Bytes,
    header::{ALLOW, CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{debug, warn};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::net::TcpListener;

/// Label values taken from watched processes (tool names, client names) are capped per
/// server: past `max_label_values` distinct values, the rest count as `__other__`, and
/// `mcp_monitor_label_overflow_total` says how often that happened.
pub const OTHER: &str = "__other__";

/// Label values known in advance. Every combination exists from the start at 0, so
/// that rules and dashboards see 0 rather than no data, and `increase()` sees the first
/// loss (Prometheus instrumentation guidelines).
pub const LOSS_WHERE: &[&str] = &[
    "kernel_ringbuf_full_data",
    "kernel_ringbuf_full_lifecycle",
    "kernel_ringbuf_full_other",
    "kernel_data_headroom",
    "kernel_transfer_cut_ring",
    "kernel_transfer_cut_read",
    "kernel_transfer_cut_limit",
    "kernel_transfer_cut_invisible",
    "kernel_read_failed",
    "kernel_watch_full",
    "kernel_tls_unpaired",
    "userspace_stream_gap",
    "userspace_stream_overlap",
    "http_connections_full",
    "sessions_full",
    "tls_unmapped",
    "requests_evicted",
    "exits_unseen",
];
pub const PARSE_ERROR_WHAT: &[&str] = &[
    "record",
    "message",
    "message_oversized",
    "http",
    "http_encoded_body",
    "http_oversized",
    "environ",
];
pub const MESSAGE_DIRECTIONS: &[&str] = &["to_server", "to_client"];
pub const CAPTURE_DIRECTIONS: &[&str] = &["read", "write"];
/// `stdio_server`, `http_server`: an MCP server found; `not_mcp`: released.
pub const DISCOVERY_RESULTS: &[&str] = &["stdio_server", "http_server", "not_mcp"];

pub struct Metrics {
    pub registry: Registry,
    pub tool_calls: IntCounterVec,
    pub violations: IntCounterVec,
    pub secret_access: IntCounterVec,
    pub call_duration: HistogramVec,
    pub requests: IntCounterVec,
    pub servers_watched: IntGauge,
    /// Secret-looking environment variables of running servers, by server and class.
    pub static_secrets: IntGaugeVec,
    pub processes_watched: IntGauge,
    pub events_lost: IntCounterVec,
    /// Events the event stream could not take (its reader gone, a full disk).
    pub events_dropped: IntCounterVec,
    pub parse_errors: IntCounterVec,
    pub records: IntCounterVec,
    pub captured_bytes: IntCounterVec,
    pub messages: IntCounterVec,
    pub noise_opens: IntCounter,
    pub label_overflow: IntCounterVec,
    /// Reads the kernel flagged as possibly MCP, by what userspace found them to be.
    pub discovery: IntCounterVec,
    /// TLS ciphertext records of watched processes, not parsed (the plaintext is read
    /// through the OpenSSL uprobes).
    pub tls_ciphertext_dropped: IntCounter,
    /// Watched processes doing TLS the monitor cannot read, by reason.
    pub tls_unreadable: IntCounterVec,
    /// Processes whose OpenSSL got the uprobes.
    pub tls_probed: IntCounter,
    /// Kernel watched-set entries dropped because no record backed them.
    pub watch_reconciled: IntCounter,
    /// Syscalls of watched processes through a 32-bit entry (not decoded).
    pub compat_syscalls: IntCounter,
    /// Watched processes that set up an io_uring (its I/O is not seen).
    pub io_uring: IntCounter,
    pub ready: Arc<AtomicBool>,
    max_label_values: usize,
    /// Distinct values seen per server and label name (looked up by `&str`: no key is
    /// built per call).
    seen: Mutex<Small<String, Small<&'static str, Values>>>,
}

/// The maps behind `bounded`, looked up twice or more per call: keyed by policy entry
/// names, label names, and at most `max_label_values` values from peers each. A peer
/// that made its values collide would cost at most that many comparisons per lookup,
/// so a fast hash with a per-map random seed (foldhash) serves where std's SipHash was
/// a fifth of this function's time.
type Small<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Values = HashSet<String, foldhash::fast::RandomState>;

impl Metrics {
    pub fn new(max_label_values: usize) -> anyhow::Result<Self> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name, help), labels);
        let tool_calls = counter(
            "mcp_tool_calls_total",
            "Completed tool calls, by server entry, agent, tool and policy decision.",
            &["server", "agent", "tool", "decision"],
        )?;
        let violations = counter(
            "mcp_scope_violations_total",
            "Policy violations, by server entry, agent and kind.",
            &["server", "agent", "kind"],
        )?;
        let secret_access = counter(
            "mcp_secret_access_total",
            "Opens of files matching a secret pattern, in calls or outside them.",
            &["server", "agent"],
        )?;
        let call_duration = HistogramVec::new(
            HistogramOpts::new(
                "mcp_tool_call_duration_seconds",
                "Tool call duration, from the server reading the request to it writing the response.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                120.0, 300.0,
            ]),
            &["server", "tool"],
        )?;
        let requests = counter(
            "mcp_requests_total",
            "JSON-RPC requests seen on servers' stdio, by method and who sent them.",
            &["server", "method", "from"],
        )?;
        let servers_watched = IntGauge::new(
            "mcp_servers_watched",
            "MCP servers being watched (one per server process tree).",
        )?;
        let static_secrets = IntGaugeVec::new(
            Opts::new(
                "mcp_server_static_secrets",
                "Secret-looking environment variables (by name, never value) that running MCP servers were started with, by server entry and class.",
            ),
            &["server", "class"],
        )?;
        let processes_watched = IntGauge::new(
            "mcp_monitor_processes_watched",
            "Processes in the kernel's watched set: servers and every process they started.",
        )?;
        let events_lost = counter(
            "mcp_monitor_events_lost_total",
            "Records or bytes lost before they could be used, by where.",
            &["where"],
        )?;
        let events_dropped = counter(
            "mcp_monitor_events_dropped_total",
            "Events that could not be written to the event stream, by reason.",
            &["reason"],
        )?;
        let parse_errors = counter(
            "mcp_monitor_parse_errors_total",
            "Input that could not be decoded: kernel records, or stdio lines that are not JSON-RPC.",
            &["what"],
        )?;
        let records = counter(
            "mcp_monitor_records_total",
            "Records received from the kernel, by kind.",
            &["kind"],
        )?;
        let captured_bytes = counter(
            "mcp_monitor_captured_bytes_total",
            "Payload bytes captured from watched processes.",
            &["direction"],
        )?;
        let messages = counter(
            "mcp_monitor_messages_total",
            "JSON-RPC messages reassembled from servers' stdio, by direction.",
            &["direction"],
        )?;
        let noise_opens = IntCounter::new(
            "mcp_monitor_noise_opens_total",
            "Files opened by servers that the runtime-noise list covers (counted, not listed).",
        )?;
        let label_overflow = counter(
            "mcp_monitor_label_overflow_total",
            "Label values folded into __other__ because a server went past the per-server cap.",
            &["server", "label"],
        )?;
        let discovery = counter(
            "mcp_monitor_discovery_total",
            "First reads of unwatched processes that looked like a request (JSON on stdin, an HTTP POST), by what they were.",
            &["result"],
        )?;
        let tls_ciphertext_dropped = IntCounter::new(
            "mcp_monitor_tls_ciphertext_dropped_total",
            "TLS ciphertext records on watched processes' sockets, dropped before HTTP (their plaintext is read from OpenSSL).",
        )?;
        let tls_unreadable = counter(
            "mcp_monitor_tls_unreadable_total",
            "Watched processes seen doing TLS the monitor cannot read, by reason.",
            &["reason"],
        )?;
        let tls_probed = IntCounter::new(
            "mcp_monitor_tls_probed_total",
            "Watched processes whose OpenSSL got the plaintext uprobes.",
        )?;
        let watch_reconciled = IntCounter::new(
            "mcp_monitor_watch_reconciled_total",
            "Entries of the kernel's watched set dropped because no record backed them (a lost exec, fork or exit record).",
        )?;
        let compat_syscalls = IntCounter::new(
            "mcp_monitor_compat_syscalls_total",
            "Syscalls of watched processes made through a 32-bit entry (int 0x80, a 32-bit program): not decoded, a blind spot.",
        )?;
        let io_uring = IntCounter::new(
            "mcp_monitor_io_uring_total",
            "Watched processes (counted once per exec) that set up or used an io_uring: the reads, writes and opens they submit through it are not seen.",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("mcp_monitor_build_info", "Build information; always 1."),
            &["version"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for (vec, values) in [
            (&events_lost, LOSS_WHERE),
            (&events_dropped, crate::output::events::DROP_REASONS),
            (&parse_errors, PARSE_ERROR_WHAT),
            (&records, crate::kernel::records::Record::KINDS),
            (&messages, MESSAGE_DIRECTIONS),
            (&captured_bytes, CAPTURE_DIRECTIONS),
            (&discovery, DISCOVERY_RESULTS),
            (&tls_unreadable, crate::host::tls_probes::REASONS),
        ] {
            for v in values {
                vec.with_label_values(&[*v]);
            }
        }
        for c in [
            Box::new(tool_calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(violations.clone()),
            Box::new(secret_access.clone()),
            Box::new(call_duration.clone()),
            Box::new(requests.clone()),
            Box::new(servers_watched.clone()),
            Box::new(static_secrets.clone()),
            Box::new(processes_watched.clone()),
            Box::new(events_lost.clone()),
            Box::new(events_dropped.clone()),
            Box::new(parse_errors.clone()),
            Box::new(records.clone()),
            Box::new(captured_bytes.clone()),
            Box::new(messages.clone()),
            Box::new(noise_opens.clone()),
            Box::new(label_overflow.clone()),
            Box::new(discovery.clone()),
            Box::new(tls_ciphertext_dropped.clone()),
            Box::new(tls_unreadable.clone()),
            Box::new(tls_probed.clone()),
            Box::new(watch_reconciled.clone()),
            Box::new(compat_syscalls.clone()),
            Box::new(io_uring.clone()),
            Box::new(build_info),
        ] {
            registry.register(c)?;
        }
        Ok(Self {
            registry,
            tool_calls,
            violations,
            secret_access,
            call_duration,
            requests,
            servers_watched,
            static_secrets,
            processes_watched,
            events_lost,
            events_dropped,
            parse_errors,
            records,
            captured_bytes,
            messages,
            noise_opens,
            label_overflow,
            discovery,
            tls_ciphertext_dropped,
            tls_unreadable,
            tls_probed,
            watch_reconciled,
            compat_syscalls,
            io_uring,
            ready: Arc::new(AtomicBool::new(false)),
            max_label_values,
            seen: Mutex::default(),
        })
    }

    /// `value` if the server has used fewer than the cap of distinct values for this
    /// label (or used this one before); otherwise `__other__`, counted.
    pub fn bounded<'v>(&self, server: &str, label: &'static str, value: &'v str) -> Cow<'v, str> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains_key(server) {
            seen.insert(server.to_string(), Small::default());
        }
        let Some(per_label) = seen.get_mut(server) else {
            return Cow::Borrowed(OTHER);
        };
        let values = per_label.entry(label).or_default();
        if values.contains(value) {
            return Cow::Borrowed(value);
        }
        if values.len() < self.max_label_values {
            values.insert(value.to_string());
            return Cow::Borrowed(value);
        }
        self.label_overflow.with_label_values(&[server, label]).inc();
        Cow::Borrowed(OTHER)
    }

    /// Binds now (so a busy port is a start-up error) and serves in the background,
    /// on the caller's runtime.
    pub async fn serve(&self, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("binding the metrics endpoint on {addr} (use --metrics-addr to pick another)")
        })?;
        let local = listener.local_addr()?;
        let endpoint = Endpoint {
            registry: self.registry.clone(),
            ready: self.ready.clone(),
        };
        tokio::spawn(endpoint.accept_loop(listener, http_config(HEAD_TIMEOUT)));
        Ok(local)
    }
}

/// How long a client has to send a request head: the first one, and each next one on
/// a kept-alive connection, so an idle or slow client does not hold a connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head (request line and headers); past it the client gets 431.
const MAX_HEAD: usize = 8192;
/// A pause after a failed accept (out of fds, say), so that it is not retried in a
/// busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

fn http_config(head_timeout: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_header_size(MAX_HEAD)
        .keep_alive(true);
    http
}

/// What the endpoint's connections share.
#[derive(Clone)]
struct Endpoint {
    registry: Registry,
    ready: Arc<AtomicBool>,
}

impl Endpoint {
    async fn accept_loop(self, listener: TcpListener, http: http1::Builder) {
        loop {
            match listener.accept().await {
                Ok((sock, peer)) => {
                    let endpoint = self.clone();
                    let service = service_fn(move |req| {
                        let reply = endpoint.answer(&req);
                        async move { Ok::<_, Infallible>(reply) }
                    });
                    let conn = http.serve_connection(TokioIo::new(sock), service);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            debug!("metrics endpoint: connection from {peer}: {e}");
                        }
                    });
                }
                Err(e) => {
                    warn!("metrics endpoint: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// The response to one request (its body, if any, is never read). HEAD gets the
    /// headers of GET's response: hyper leaves the body out.
    fn answer<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let ready = self.ready.load(Ordering::Relaxed);
        let (status, ctype, body) = respond(req.method(), req.uri().path(), &self.registry, ready);
        let mut reply = Response::new(Full::new(Bytes::from(body)));
        *reply.status_mut() = status;
        let headers = reply.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        reply
    }
}

/// The status, content type and body for a request, by method and path (without query).
fn respond(
    method: &Method,
    path: &str,
    registry: &Registry,
    ready: bool,
) -> (StatusCode, &'static str, Vec<u8>) {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"only GET\n".to_vec(),
        );
    }
    match path {
        "/metrics" => {
            let mut body = Vec::new();
            let encoder = TextEncoder::new();
            match encoder.encode(&registry.gather(), &mut body) {
                Ok(()) => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", body),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("{e}\n").into_bytes(),
                ),
            }
        }
        "/healthz" if ready => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        "/healthz" => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", b"starting\n".to_vec()),
        "/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            b"<html><head><title>mcp-monitor</title></head><body><h1>mcp-monitor</h1>\
<ul><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/healthz\">/healthz</a></li></ul></body></html>\n"
                .to_vec(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpStream,
    };

    /// One response read off a kept-alive connection: its head, and its body as long as
    /// Content-Length says (none with `head_only`, as for HEAD).
    async fn read_response(c: &mut TcpStream, head_only: bool) -> (String, Vec<u8>) {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert_ne!(c.read_buf(&mut buf).await.unwrap(), 0, "closed mid-head");
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .expect("a Content-Length")
            .parse()
            .unwrap();
        let mut body = buf.split_off(head_end);
        let want = if head_only { 0 } else { len };
        while body.len() < want {
            assert_ne!(c.read_buf(&mut body).await.unwrap(), 0, "closed mid-body");
        }
        assert_eq!(body.len(), want, "nothing past the response");
        (head, body)
    }

    async fn serving() -> (Metrics, TcpStream) {
        let m = Metrics::new(10).unwrap();
        let addr = m.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        (m, TcpStream::connect(addr).await.unwrap())
    }

    #[tokio::test]
    async fn a_request_sent_in_pieces_is_answered() {
        let (_m, mut c) = serving().await;
        for piece in ["GET /metr", "ics HTTP/1.1\r\nHost: x\r\n", "\r\n"] {
            c.write_all(piece.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (head, body) = read_response(&mut c, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("mcp_monitor_build_info"), "{body}");
    }

    #[tokio::test]
    async fn head_gets_the_headers_and_no_body() {
        let (_m, mut c) = serving().await;
        c.write_all(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = read_response(&mut c, true).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(!head.contains("content-length: 0\r\n"), "GET's length: {head}");
        // Had a body been sent, it would come before this answer.
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut c, false).await;
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable"), "{head}");
        assert_eq!(body, b"starting\n");
    }

    #[tokio::test]
    async fn two_requests_are_answered_on_one_kept_alive_connection() {
        let (m, mut c) = serving().await;
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let (head, body) = read_response(&mut c, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(String::from_utf8(body).unwrap().contains("/metrics"));
        m.ready.store(true, Ordering::Relaxed);
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut c, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(body, b"ok\n");
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused_and_a_silent_client_dropped() {
        let (_m, mut c) = serving().await;
        let long = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        c.write_all(long.as_bytes()).await.unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

        // The header timeout, shortened: a client that never finishes its head is closed.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let endpoint = Endpoint {
            registry: Registry::new(),
            ready: Arc::default(),
        };
        tokio::spawn(endpoint.accept_loop(listener, http_config(Duration::from_millis(200))));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?} {rest:?}");
    }

    #[test]
    fn label_values_are_capped_per_server_and_the_overflow_counted() {
        let m = Metrics::new(3).unwrap();
        let got: Vec<String> = ["a", "b", "a", "c", "d", "e", "b"]
            .iter()
            .map(|t| m.bounded("fs", "tool", t).into_owned())
            .collect();
        assert_eq!(got, ["a", "b", "a", "c", OTHER, OTHER, "b"]);
        assert_eq!(
            m.bounded("other-server", "tool", "d"),
            "d",
            "the cap is per server"
        );
        assert_eq!(m.bounded("fs", "agent", "d"), "d", "and per label");
        assert_eq!(m.label_overflow.with_label_values(&["fs", "tool"]).get(), 2);
    }

    #[test]
    fn serves_metrics_health_and_index() {
        let m = Metrics::new(10).unwrap();
        m.parse_errors.with_label_values(&["record"]).inc();
        let (status, ctype, body) = respond(&Method::GET, "/metrics", &m.registry, false);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains("mcp_monitor_parse_errors_total{what=\"record\"} 1"),
            "{text}"
        );
        assert!(text.contains("mcp_monitor_build_info{version=\""), "{text}");
        let status = |method: Method, path: &str, ready: bool| respond(&method, path, &m.registry, ready).0;
        assert_eq!(
            status(Method::GET, "/healthz", false),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(Method::GET, "/healthz", true), StatusCode::OK);
        assert_eq!(status(Method::HEAD, "/healthz", true), StatusCode::OK);
        assert_eq!(status(Method::GET, "/nope", true), StatusCode::NOT_FOUND);
        assert_eq!(
            status(Method::POST, "/metrics", true),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(
            String::from_utf8(respond(&Method::GET, "/", &m.registry, true).2)
                .unwrap()
                .contains("/metrics")
        );
        let endpoint = Endpoint {
            registry: m.registry.clone(),
            ready: m.ready.clone(),
        };
        let post = Request::post("/metrics").body(()).unwrap();
        let reply = endpoint.answer(&post);
        assert_eq!(reply.headers()[ALLOW], "GET, HEAD", "a 405 says what is allowed");
    }
}
