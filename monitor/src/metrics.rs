//! Prometheus metrics and the small HTTP endpoint that serves them.
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use log::{debug, warn};
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

pub struct Metrics {
    pub registry: Registry,
    pub servers_watched: IntGauge,
    pub events_lost: IntCounterVec,
    pub parse_errors: IntCounter,
    pub records: IntCounterVec,
    pub captured_bytes: IntCounterVec,
    pub noise_opens: IntCounter,
    pub ready: Arc<AtomicBool>,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let servers_watched =
            IntGauge::new("mcp_servers_watched", "Processes currently in the watched set.")?;
        let events_lost = IntCounterVec::new(
            Opts::new(
                "mcp_monitor_events_lost_total",
                "Records lost before userspace could use them, by where they were lost.",
            ),
            &["where"],
        )?;
        let parse_errors = IntCounter::new(
            "mcp_monitor_parse_errors_total",
            "Records from the kernel that could not be decoded.",
        )?;
        let records = IntCounterVec::new(
            Opts::new(
                "mcp_monitor_records_total",
                "Records received from the kernel, by kind.",
            ),
            &["kind"],
        )?;
        let captured_bytes = IntCounterVec::new(
            Opts::new(
                "mcp_monitor_captured_bytes_total",
                "Payload bytes captured from watched processes.",
            ),
            &["direction"],
        )?;
        let noise_opens = IntCounter::new(
            "mcp_monitor_noise_opens_total",
            "Files opened by servers that the runtime-noise list covers (counted, not listed).",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("mcp_monitor_build_info", "Build information; always 1."),
            &["version"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(servers_watched.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(events_lost.clone()),
            Box::new(parse_errors.clone()),
            Box::new(records.clone()),
            Box::new(captured_bytes.clone()),
            Box::new(noise_opens.clone()),
            Box::new(build_info),
        ] {
            registry.register(c)?;
        }
        Ok(Self {
            registry,
            servers_watched,
            events_lost,
            parse_errors,
            records,
            captured_bytes,
            noise_opens,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Binds now (so a busy port is a start-up error) and serves in the background.
    pub async fn serve(&self, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("binding the metrics endpoint on {addr} (use --metrics-addr to pick another)")
        })?;
        let local = listener.local_addr()?;
        let registry = self.registry.clone();
        let ready = self.ready.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!("metrics endpoint: accept failed: {e}");
                        continue;
                    }
                };
                let registry = registry.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                        .await
                    {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                    let (status, ctype, body) = respond(&buf[..n], &registry, ready.load(Ordering::Relaxed));
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    if let Err(e) = async {
                        sock.write_all(head.as_bytes()).await?;
                        sock.write_all(&body).await?;
                        sock.shutdown().await
                    }
                    .await
                    {
                        debug!("metrics endpoint: writing to {peer}: {e}");
                    }
                });
            }
        });
        Ok(local)
    }
}

fn respond(request: &[u8], registry: &Registry, ready: bool) -> (&'static str, &'static str, Vec<u8>) {
    let line = request
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", "text/plain", b"only GET\n".to_vec());
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let mut body = Vec::new();
            let encoder = TextEncoder::new();
            match encoder.encode(&registry.gather(), &mut body) {
                Ok(()) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body),
                Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n").into_bytes()),
            }
        }
        "/healthz" if ready => ("200 OK", "text/plain", b"ok\n".to_vec()),
        "/healthz" => ("503 Service Unavailable", "text/plain", b"starting\n".to_vec()),
        "/" => (
            "200 OK",
            "text/html; charset=utf-8",
            b"<html><head><title>mcp-monitor</title></head><body><h1>mcp-monitor</h1>\
<ul><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/healthz\">/healthz</a></li></ul></body></html>\n"
                .to_vec(),
        ),
        _ => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_metrics_health_and_index() {
        let m = Metrics::new().unwrap();
        m.parse_errors.inc();
        let (status, _, body) = respond(b"GET /metrics HTTP/1.1\r\n\r\n", &m.registry, false);
        assert_eq!(status, "200 OK");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("mcp_monitor_parse_errors_total 1"), "{text}");
        assert!(text.contains("mcp_monitor_build_info{version=\""), "{text}");
        assert_eq!(
            respond(b"GET /healthz HTTP/1.1\r\n", &m.registry, false).0,
            "503 Service Unavailable"
        );
        assert_eq!(
            respond(b"GET /healthz HTTP/1.1\r\n", &m.registry, true).0,
            "200 OK"
        );
        assert_eq!(
            respond(b"GET /nope HTTP/1.1\r\n", &m.registry, true).0,
            "404 Not Found"
        );
        assert_eq!(
            respond(b"POST /metrics HTTP/1.1\r\n", &m.registry, true).0,
            "405 Method Not Allowed"
        );
        assert!(
            String::from_utf8(respond(b"GET / HTTP/1.1\r\n", &m.registry, true).2)
                .unwrap()
                .contains("/metrics")
        );
    }
}
