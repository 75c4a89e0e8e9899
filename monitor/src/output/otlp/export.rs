//! The export thread: spans come off a bounded queue in batches and go to the OTLP
//! receiver; the OTLP metrics are read and sent by the SDK's periodic reader, on its
//! own thread. Everything that talks to the network is built and dropped here, off
//! the pipeline's runtime: the pipeline only ever `try_send`s.

use std::{
    future::Future,
    pin::pin,
    sync::{
        Arc,
        mpsc::{Receiver, RecvTimeoutError, SyncSender},
    },
    task::{Context, Poll, Wake, Waker},
    thread::{self, Thread},
    time::{Duration, Instant},
};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::{SpanData, SpanExporter as _},
};
use prometheus::{IntCounter, IntCounterVec};

use super::{Config, meters::Meters};

/// Spans sent in one request at most.
pub const MAX_BATCH: usize = 512;
/// How long a span waits for others before its batch goes.
const BATCH_DELAY: Duration = Duration::from_millis(500);

/// The monitor's counters of what the export did.
#[derive(Clone)]
pub struct Counters {
    pub exported: IntCounter,
    /// By reason: `queue_full`, `export_failed`, `shutdown`.
    pub dropped: IntCounterVec,
}

/// What the thread hands back once its exporters are built.
pub type Ready = Result<Meters, String>;

/// Builds the exporters and the meter provider, reports them on `ready`, then exports
/// what comes on `spans` until every sender is gone.
pub fn run(config: Config, spans: Receiver<SpanData>, ready: SyncSender<Ready>, counters: Counters) {
    let resource = resource();
    let built = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", config.endpoint))
        .with_timeout(config.timeout)
        .build()
        .map_err(|e| format!("the OTLP span exporter: {e}"))
        .and_then(|spans| {
            let metrics = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{}/v1/metrics", config.endpoint))
                .with_timeout(config.timeout)
                .build()
                .map_err(|e| format!("the OTLP metric exporter: {e}"))?;
            Ok((spans, metrics))
        });
    let (mut exporter, metric_exporter) = match built {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    exporter.set_resource(&resource);
    let reader = PeriodicReader::builder(metric_exporter)
        .with_interval(config.metrics_interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build();
    if ready.send(Ok(Meters::new(&provider))).is_err() {
        return;
    }
    drop(ready);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut open = true;
    while open {
        // Wait for a first span, then up to BATCH_DELAY for the batch to fill.
        match spans.recv() {
            Ok(s) => batch.push(s),
            Err(_) => break,
        }
        let deadline = Instant::now() + BATCH_DELAY;
        while batch.len() < MAX_BATCH {
            match spans.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(s) => batch.push(s),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let n = batch.len() as u64;
        match block_on(exporter.export(std::mem::take(&mut batch))) {
            Ok(()) => counters.exported.inc_by(n),
            Err(e) => {
                log::warn!("OTLP: {n} span(s) not exported: {e}");
                counters.dropped.with_label_values(&["export_failed"]).inc_by(n);
            }
        }
    }
    // Stopping: the metrics' last reading goes out (bounded by the exporter timeout).
    if let Err(e) = provider.shutdown() {
        log::warn!("OTLP: last metrics not exported: {e}");
    }
    let _ = exporter.shutdown();
}

/// The resource of every span and metric: the monitor on this host (the server each
/// span is about is in its `mcp_monitor.server.*` attributes).
fn resource() -> Resource {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Resource::builder()
        .with_service_name("mcp-monitor")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("host.name", host.trim().to_string()),
        ])
        .build()
}

/// Runs a future to completion on this thread (the exporters' HTTP client blocks; the
/// futures they return are ready at once or wake this thread).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park(),
        }
    }
}
