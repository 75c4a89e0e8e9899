//! `mcp-monitor run`: attach the kernel programs, feed what they send through the
//! pipeline, report loss every second, reload the policy on SIGHUP or when its file
//! changes (`policy_watch`), stop cleanly on SIGTERM/SIGINT. Once the programs are
//! attached and the metrics port is bound, it drops the capabilities it no longer
//! needs (`caps`).
pub mod caps;
pub mod policy_watch;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use log::info;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    host::procs::ProcessTable,
    kernel::{capture::Capture, recorded::FactKernel},
    output::{events::EventWriter, metrics::Metrics},
    pipeline::{Pipeline, Settings},
    record::{Frame, Header, facts::Facts},
};

/// Records handled before the event loop looks at its other work (about a ms' worth):
/// /metrics and the signals wait at most that long under a flood.
const DRAIN_BATCH: usize = 1024;

/// Handles up to `DRAIN_BATCH` queued records; returns how many.
fn drain(rb: &mut RingBuf<MapData>, state: &mut Pipeline, facts: &Facts) -> usize {
    let mut drained = 0;
    while drained < DRAIN_BATCH
        && let Some(item) = rb.next()
    {
        facts.begin_record(&item);
        state.handle(&item);
        drained += 1;
    }
    state.release_pending();
    drained
}

/// How often the ring is drained when the kernel has not woken the loop: the most a
/// lone record waits (the kernel wakes it at once only when a record takes the queue
/// across a multiple of `WAKEUP_QUEUED` bytes, `monitor_common::forces_wakeup`).
const DRAIN_TICK: Duration = Duration::from_millis(5);

/// After SIGTERM, what is queued is drained for at most this long: a watched process
/// that keeps writing would otherwise keep the daemon from ever stopping.
const FINAL_DRAIN: Duration = Duration::from_secs(1);

pub struct Options {
    pub events: String,
    /// `--format`: JSON, text, or text on a terminal.
    pub format: crate::output::text::Format,
    pub metrics_addr: SocketAddr,
    pub ring_buffer_bytes: u32,
    /// Distinct tool and client names per server in metric labels.
    pub max_label_values: usize,
    /// `--record FILE`: what the kernel delivered and the host facts looked up.
    pub record: Option<PathBuf>,
    /// Spans and metrics over OTLP, when given.
    pub otlp: Option<crate::output::otlp::Config>,
    pub settings: Settings,
}

/// What a recording needs to replay this run the same way.
fn header(opts: &Options, events: &EventWriter, metrics_addr: SocketAddr) -> Header {
    let s = &opts.settings;
    Header {
        version: env!("CARGO_PKG_VERSION").to_string(),
        boot_epoch_ns: events.boot_epoch_ns(),
        watch: s.watch.clone(),
        discovery: s.discovery,
        tls: s.tls,
        debug_captures: s.debug_captures,
        max_message_bytes: s.max_message_bytes,
        max_field_bytes: s.max_field_bytes,
        max_label_values: opts.max_label_values,
        metrics_addr: metrics_addr.to_string(),
        policy: s
            .policy_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok()),
        policy_path: s.policy_path.as_ref().map(|p| p.display().to_string()),
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::kernel::capture::preflight()?;
    // Handlers first: a SIGTERM right after `ready` must stop us cleanly, not kill us.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut events = EventWriter::open_as(&opts.events, opts.format)?;
    let metrics = Metrics::new(opts.max_label_values)?;
    events.count_drops_in(metrics.events_dropped.clone());
    let metrics_addr = metrics.serve(opts.metrics_addr).await?;
    info!("metrics on http://{metrics_addr}/metrics");

    let facts = match &opts.record {
        Some(path) => {
            info!("recording to {}", path.display());
            Facts::recording(path, &header(&opts, &events, metrics_addr))?
        }
        None => Facts::live(),
    };
    let (capture, ring) = Capture::load(opts.ring_buffer_bytes, opts.settings.discovery)?;
    // Loaded and attached, the metrics port bound: what is left needs far less.
    let kept = caps::drop_all_but(caps::needed_here(opts.settings.tls))
        .context("dropping the capabilities the daemon no longer needs")?;
    info!(
        "capabilities: kept {} (effective, permitted and bounding sets of every thread); every other one dropped, inheritable and ambient sets empty",
        caps::names(kept).join(", ")
    );
    for why in caps::reasons(kept) {
        info!("capabilities: {why}");
    }
    if opts.settings.debug_captures {
        log::warn!(
            "--debug-captures: `capture` events carry the bytes watched processes sent as they are, credentials included (nothing is redacted in them)"
        );
    }
    if !opts.settings.discovery {
        info!("--no-discovery: only processes matched by the policy or --watch are servers");
    }
    let kernel = FactKernel::live(Box::new(capture), facts.clone());
    // Attached first, scanned second: a process started in between shows up as an exec record.
    let procs = facts.look(|| "procs".into(), || ProcessTable::scan(Path::new("/proc")));
    // Before the policy is loaded: a change from here on is not missed.
    let mut policy_watch = opts
        .settings
        .policy_path
        .as_deref()
        .and_then(policy_watch::PolicyWatch::new);
    let mut state = Pipeline::new(
        opts.settings,
        Box::new(kernel),
        facts.clone(),
        procs,
        events,
        metrics,
    )?;
    if let Some(config) = opts.otlp.clone() {
        let endpoint = config.endpoint.clone();
        state.otlp = Some(crate::output::otlp::Otlp::start(config, &state.metrics.registry)?);
        info!("OTLP: spans and metrics to {endpoint} (/v1/traces, /v1/metrics)");
    }
    state.ready(metrics_addr);
    facts.flush();

    // Safety: the ring buffer owns its fd, and the fd lives as long as the AsyncFd.
    let mut ring =
        unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }.map_err(|e| {
            anyhow::anyhow!(
                "registering the ring buffer with the event loop: {}",
                e.into_parts().1
            )
        })?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Uprobe attaches are answered by their own thread: looked at before every record,
    // and this often when no record comes.
    let mut tls_tick = tokio::time::interval(Duration::from_millis(100));
    // The kernel wakes this loop only once records pile up (see `WAKEUP_QUEUED` in
    // monitor-ebpf's emit.rs): lone records are drained on this tick.
    let mut drain_tick = tokio::time::interval(DRAIN_TICK);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = drain_tick.tick() => {
                if drain(ring.get_mut(), &mut state, &facts) > 0 {
                    state.events.flush();
                    facts.flush();
                }
            }
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let drained = drain(guard.get_inner_mut(), &mut state, &facts);
                if drained < DRAIN_BATCH {
                    guard.clear_ready();
                }
                state.events.flush();
                facts.flush();
                if drained == DRAIN_BATCH {
                    // More is queued: let /metrics, /healthz and the signals in first.
                    tokio::task::yield_now().await;
                }
            }
            _ = tick.tick() => {
                facts.begin_frame(&Frame::Tick, Vec::new());
                state.report_loss();
                state.events.flush();
                facts.flush();
            }
            _ = tls_tick.tick() => {
                facts.begin_frame(&Frame::TlsTick, Vec::new());
                state.tls_outcomes();
                state.events.flush();
            }
            _ = sighup.recv() => {
                facts.begin_frame(&Frame::Hangup, Vec::new());
                // The logrotate convention: a moved event file is replaced by a new one.
                state.events.reopen();
                state.reload_policy();
                if let Some(w) = policy_watch.as_mut() {
                    w.note_reloaded();
                }
                state.events.flush();
                facts.flush();
            }
            _ = async {
                match policy_watch.as_mut() {
                    Some(w) => w.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                facts.begin_frame(&Frame::PolicyChanged, Vec::new());
                state.reload_policy_because("policy file changed");
                state.events.flush();
                facts.flush();
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    // Drain what is already queued so nothing captured before the signal is lost.
    let rb = ring.get_mut();
    let deadline = std::time::Instant::now() + FINAL_DRAIN;
    let mut cut_short = false;
    while let Some(item) = rb.next() {
        facts.begin_record(&item);
        state.handle(&item);
        if std::time::Instant::now() > deadline {
            cut_short = true;
            break;
        }
    }
    state.release_pending();
    if cut_short {
        log::warn!(
            "stopping with records still queued: the kernel went on sending for {FINAL_DRAIN:?} after the signal"
        );
    }
    facts.begin_frame(&Frame::Tick, Vec::new());
    state.report_loss();
    facts.begin_frame(&Frame::End, Vec::new());
    // Spans still queued go before `stopped`, so that a drop while sending them is
    // reported in the stream.
    if let Some(otlp) = state.otlp.as_mut() {
        info!("OTLP: sending what is queued");
        otlp.shutdown();
        state.report_otlp_drops();
    }
    state.stopped();
    facts.flush();
    if let Some(bytes) = facts.recorded_bytes() {
        info!("recording: {bytes} bytes");
    }
    info!("stopping: detaching programs");
    Ok(())
}
