//! `mcp-monitor run`: attach the kernel programs, feed what they send through the
//! pipeline, report loss every second, reload the policy on SIGHUP, stop cleanly on
//! SIGTERM/SIGINT.
use std::{net::SocketAddr, path::Path, time::Duration};

use log::info;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    host::procs::ProcessTable,
    kernel::capture::Capture,
    output::{events::EventWriter, metrics::Metrics},
    pipeline::{Pipeline, Settings},
};

pub struct Options {
    pub events: String,
    pub metrics_addr: SocketAddr,
    pub ring_buffer_bytes: u32,
    /// Distinct tool and client names per server in metric labels.
    pub max_label_values: usize,
    pub settings: Settings,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::kernel::capture::preflight()?;
    // Handlers first: a SIGTERM right after `ready` must stop us cleanly, not kill us.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut events = EventWriter::open(&opts.events)?;
    let metrics = Metrics::new(opts.max_label_values)?;
    events.count_drops_in(metrics.events_dropped.clone());
    let metrics_addr = metrics.serve(opts.metrics_addr).await?;
    info!("metrics on http://{metrics_addr}/metrics");

    let (capture, ring) = Capture::load(opts.ring_buffer_bytes, opts.settings.discovery)?;
    if !opts.settings.discovery {
        info!("--no-discovery: only processes matched by the policy or --watch are servers");
    }
    // Attached first, scanned second: a process started in between shows up as an exec record.
    let procs = ProcessTable::scan(Path::new("/proc"));
    let mut state = Pipeline::new(opts.settings, Box::new(capture), procs, events, metrics)?;
    state.ready(metrics_addr);

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
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                while let Some(item) = rb.next() {
                    state.handle(&item);
                }
                guard.clear_ready();
                state.events.flush();
            }
            _ = tick.tick() => {
                state.report_loss();
                state.events.flush();
            }
            _ = tls_tick.tick() => {
                state.tls_outcomes();
                state.events.flush();
            }
            _ = sighup.recv() => {
                // The logrotate convention: a moved event file is replaced by a new one.
                state.events.reopen();
                state.reload_policy();
                state.events.flush();
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    // Drain what is already queued so nothing captured before the signal is lost.
    let rb = ring.get_mut();
    while let Some(item) = rb.next() {
        state.handle(&item);
    }
    state.report_loss();
    state.stopped();
    info!("stopping: detaching programs");
    Ok(())
}
