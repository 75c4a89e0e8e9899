//! `mcp-monitor replay`: a recording through the same pipeline the daemon runs, without
//! root, the kernel or the processes: records come from the file, and every host fact
//! the daemon looked up is answered as it was then.
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::{
    kernel::recorded::FactKernel,
    output::{events::EventWriter, metrics::Metrics},
    pipeline::{Pipeline, Settings},
    policy::Policy,
    record::{Frame, Reader, facts::Facts, facts::ReplayStats},
};

pub struct Options {
    pub recording: PathBuf,
    /// Judge calls by this policy rather than the recorded one (it stays in force
    /// through the recording's SIGHUPs).
    pub policy: Option<PathBuf>,
    pub events: EventWriter,
    pub metrics: Metrics,
}

/// What a replay went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub ticks: u64,
    /// Policy reloads: SIGHUPs and policy file changes.
    pub hangups: u64,
    /// The recording ended mid-frame (the daemon was killed, or the disk filled).
    pub truncated: bool,
    /// The recording's `End`: the daemon stopped cleanly.
    pub ended: bool,
    pub facts: ReplayStats,
}

/// Replays `opts.recording`; returns the pipeline (its events flushed, its metrics
/// readable) and what was replayed.
pub fn run(opts: Options) -> anyhow::Result<(Pipeline, Summary)> {
    let (mut reader, header, first) = Reader::open(&opts.recording)?;
    let facts = Facts::replaying();
    facts.begin_frame(&Frame::Header(Box::new(header.clone())), first);
    let fixed_policy = opts.policy.is_some();
    let (policy, policy_path) = match opts.policy {
        Some(path) => (
            Policy::load_file(&path).map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?,
            Some(path),
        ),
        None => match (&header.policy, &header.policy_path) {
            (Some(text), path) => {
                let source = path.clone().unwrap_or_else(|| "recorded policy".into());
                let policy =
                    Policy::parse(&source, text).map_err(|e| anyhow::anyhow!("the recorded policy:\n{e}"))?;
                (policy, path.as_ref().map(PathBuf::from))
            }
            (None, _) => (Policy::builtin(), None),
        },
    };
    let settings = Settings {
        watch: header.watch.clone(),
        discovery: header.discovery,
        tls: header.tls,
        debug_captures: header.debug_captures,
        max_message_bytes: header.max_message_bytes,
        max_field_bytes: header.max_field_bytes,
        policy,
        policy_path,
    };
    let mut events = opts.events;
    events.set_boot_epoch_ns(header.boot_epoch_ns);
    let kernel = FactKernel::replayed(facts.clone());
    let procs = facts.look(|| "procs".into(), Default::default);
    let mut pipeline = Pipeline::new(
        settings,
        Box::new(kernel),
        facts.clone(),
        procs,
        events,
        opts.metrics,
    )?;
    let metrics_addr = header
        .metrics_addr
        .parse()
        .with_context(|| format!("the recorded metrics address {:?}", header.metrics_addr))?;
    pipeline.ready(metrics_addr);
    let mut summary = Summary::default();
    while let Some((frame, frame_facts)) = reader.next_with_facts()? {
        facts.begin_frame(&frame, frame_facts);
        match frame {
            Frame::Record(bytes) => {
                summary.records += 1;
                pipeline.handle(&bytes);
            }
            Frame::Tick => {
                summary.ticks += 1;
                pipeline.report_loss();
            }
            Frame::TlsTick => pipeline.tls_outcomes(),
            Frame::Hangup => {
                summary.hangups += 1;
                pipeline.events.reopen();
                if !fixed_policy {
                    pipeline.reload_policy();
                }
            }
            Frame::PolicyChanged => {
                summary.hangups += 1;
                if !fixed_policy {
                    pipeline.reload_policy_because("policy file changed");
                }
            }
            Frame::End => {
                summary.ended = true;
                pipeline.stopped();
            }
            Frame::Header(_) | Frame::Fact { .. } => {}
        }
    }
    pipeline.events.flush();
    summary.truncated = reader.truncated;
    summary.facts = facts.replay_stats();
    Ok((pipeline, summary))
}

/// `mcp-monitor replay FILE`: events to `events` (a file or `-`), a summary to stderr.
pub fn main(
    recording: &Path,
    policy: Option<PathBuf>,
    events: &str,
    format: crate::output::text::Format,
) -> anyhow::Result<()> {
    let header_labels = Reader::open(recording)?.1.max_label_values;
    let (_, summary) = run(Options {
        recording: recording.to_path_buf(),
        policy,
        events: EventWriter::open_as(events, format)?,
        metrics: Metrics::new(header_labels)?,
    })?;
    eprintln!(
        "mcp-monitor: replayed {} records, {} loss reports, {} reloads from {}{}{}",
        summary.records,
        summary.ticks,
        summary.hangups,
        recording.display(),
        if summary.truncated {
            " (the recording ends mid-frame: the daemon did not stop cleanly)"
        } else if !summary.ended {
            " (the recording has no end: the daemon did not stop cleanly)"
        } else {
            ""
        },
        match summary.facts {
            ReplayStats {
                unused: 0,
                malformed: 0,
            } => String::new(),
            s => format!(
                "; {} recorded host facts went unused and {} did not parse (another policy takes other paths)",
                s.unused, s.malformed
            ),
        }
    );
    Ok(())
}
