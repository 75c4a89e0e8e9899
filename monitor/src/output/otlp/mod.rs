//! OpenTelemetry export (`run --otlp-endpoint URL`): every MCP request seen as a span
//! following the MCP semantic conventions (`span`), joined to the agent's trace when
//! its `_meta` carries `traceparent`, and the conventions' duration metrics (`meters`),
//! over OTLP/HTTP with protobuf. The pipeline never waits on it: spans go on a bounded
//! queue (`QUEUE`) to the export thread (`export`); a full queue or a failed export
//! drops spans, counted in `mcp_monitor_otlp_spans_dropped_total{reason}`.

pub mod export;
pub mod meters;
pub mod span;

use std::{
    sync::mpsc::{self, SyncSender, TrySendError},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use self::{export::Counters, meters::Meters};

/// Spans waiting for the export thread at most; past this they are dropped (counted).
pub const QUEUE: usize = 8192;

/// What `run` was told.
#[derive(Debug, Clone)]
pub struct Config {
    /// The receiver's base URL (`http://127.0.0.1:4318`): spans go to `/v1/traces`,
    /// metrics to `/v1/metrics` under it.
    pub endpoint: String,
    /// Put the (redacted) arguments of tool calls in `gen_ai.tool.call.arguments`.
    pub arguments: bool,
    /// How often the OTLP metrics are sent.
    pub metrics_interval: Duration,
    /// How long one export may take.
    pub timeout: Duration,
}

impl Config {
    /// Checks the endpoint: an `http://` URL without a signal path (`https://` would
    /// need a TLS stack the daemon does not carry: send to a local collector).
    pub fn new(endpoint: &str, arguments: bool) -> anyhow::Result<Self> {
        let endpoint = endpoint.trim_end_matches('/');
        let Some(rest) = endpoint.strip_prefix("http://") else {
            anyhow::bail!(
                "--otlp-endpoint {endpoint:?}: give an http:// URL of an OTLP/HTTP receiver, such as http://127.0.0.1:4318 (https is not supported: export to a collector on this host or node)"
            );
        };
        if rest.is_empty() || rest.ends_with("/v1/traces") || rest.ends_with("/v1/metrics") {
            anyhow::bail!(
                "--otlp-endpoint {endpoint:?}: give the receiver's base URL (http://HOST:4318); /v1/traces and /v1/metrics are added"
            );
        }
        Ok(Self {
            endpoint: endpoint.to_string(),
            arguments,
            metrics_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        })
    }
}

pub struct Otlp {
    tx: Option<SyncSender<SpanData>>,
    thread: Option<JoinHandle<()>>,
    meters: Meters,
    ids: RandomIdGenerator,
    counters: Counters,
    pub arguments: bool,
    /// Dropped spans by reason when last reported (`drops_to_report`).
    reported: [u64; 3],
}

const DROP_REASONS: [&str; 3] = ["queue_full", "export_failed", "shutdown"];

impl Otlp {
    /// Starts the export thread; its counters go into `registry` (the `/metrics` one).
    pub fn start(config: Config, registry: &Registry) -> anyhow::Result<Self> {
        let counters = Counters {
            exported: IntCounter::with_opts(Opts::new(
                "mcp_monitor_otlp_spans_exported_total",
                "Spans the OTLP receiver accepted.",
            ))?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "mcp_monitor_otlp_spans_dropped_total",
                    "Spans not exported, by reason: queue_full (the receiver was slower than the calls), export_failed (the receiver refused or could not be reached), shutdown.",
                ),
                &["reason"],
            )?,
        };
        registry.register(Box::new(counters.exported.clone()))?;
        registry.register(Box::new(counters.dropped.clone()))?;
        for reason in DROP_REASONS {
            counters.dropped.with_label_values(&[reason]);
        }
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let arguments = config.arguments;
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || export::run(config, rx, ready_tx, thread_counters))
            .context("starting the OTLP export thread")?;
        let meters = match ready_rx.recv() {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => anyhow::bail!("OTLP: {e}"),
            Err(_) => anyhow::bail!("OTLP: the export thread ended while starting"),
        };
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            meters,
            ids: RandomIdGenerator::default(),
            counters,
            arguments,
            reported: [0; 3],
        })
    }

    pub fn ids(&self) -> &dyn IdGenerator {
        &self.ids
    }

    /// Queues a span; never waits (a full queue drops it, counted).
    pub fn send(&self, span: SpanData) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.counters.dropped.with_label_values(&["queue_full"]).inc(),
            Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.with_label_values(&["shutdown"]).inc()
            }
        }
    }

    pub fn record_operation(&self, seconds: f64, attributes: &meters::OperationAttributes) {
        self.meters.operation.record(seconds, &attributes.key_values());
    }

    pub fn record_session(&self, seconds: f64, transport: &'static str, protocol_version: Option<&str>) {
        let mut a = vec![KeyValue::new("network.transport", transport)];
        if let Some(v) = protocol_version {
            a.push(KeyValue::new("mcp.protocol.version", v.to_string()));
        }
        self.meters.session.record(seconds, &a);
    }

    /// Spans dropped so far by reason, when more were dropped since the last call.
    pub fn drops_to_report(&mut self) -> Option<[(&'static str, u64); 3]> {
        let now = DROP_REASONS.map(|r| self.counters.dropped.with_label_values(&[r]).get());
        if now == self.reported {
            return None;
        }
        self.reported = now;
        Some(std::array::from_fn(|i| (DROP_REASONS[i], now[i])))
    }

    /// Sends what is queued and the last metrics, then stops the thread (each export
    /// is bounded by the timeout).
    pub fn shutdown(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Otlp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A protocol version as a metric attribute: a revision date (`2025-11-25`) as it is,
/// anything else a peer sends as `other` (metric attributes stay bounded).
pub fn protocol_label(v: Option<&str>) -> Option<&str> {
    v.map(|v| {
        let date = v.len() == 10
            && v.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if date { v } else { "other" }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_must_be_an_http_base_url() {
        assert_eq!(
            Config::new("http://127.0.0.1:4318/", false).unwrap().endpoint,
            "http://127.0.0.1:4318"
        );
        for bad in [
            "https://collector:4318",
            "127.0.0.1:4318",
            "http://",
            "http://h:4318/v1/traces",
        ] {
            assert!(Config::new(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn protocol_versions_are_bounded_as_metric_attributes() {
        assert_eq!(protocol_label(Some("2025-11-25")), Some("2025-11-25"));
        assert_eq!(protocol_label(Some("2025-11-2x")), Some("other"));
        assert_eq!(protocol_label(Some(&"9".repeat(100))), Some("other"));
        assert_eq!(protocol_label(None), None);
    }
}
