//! `mcp-monitor report`: the access review from event logs. Reads the logs (`log`),
//! builds the model (`access`), writes it as Markdown, JSON or HTML to stdout or a
//! file. Lines that were not events are counted in the report and on stderr.
//! No events in the window is an error (exit 1): an empty review must not pass for a
//! clean one.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Context as _;

use super::{
    access,
    log::{EventLog, Window},
    report_html, report_json, report_md,
};
use crate::policy::Policy;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Event logs (`run --events FILE`; rotated and gzip-compressed ones too).
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub events: Vec<PathBuf>,
    /// Only events at or after this time: RFC 3339 (2026-12-01T09:00:00Z) or a duration back from now (24h, 7days).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// `md` (Markdown tables), `json` (the documented model) or `html` (one self-contained page).
    #[arg(long, value_name = "FORMAT", default_value = "md", value_parser = ["md", "json", "html"])]
    pub format: String,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// The policy the logs were written under: shows each server's declared tools, files, programs, connections and agents.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

pub fn main(args: ReportArgs) -> anyhow::Result<()> {
    let window = Window::parse(args.since.as_deref(), args.until.as_deref(), SystemTime::now())?;
    let policy = match &args.policy {
        Some(path) => Some(Policy::load_file(path).map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?),
        None => None,
    };
    let log = EventLog::read(&args.events, window)?;
    if log.skipped > 0 {
        eprintln!(
            "mcp-monitor: report: {} line(s) skipped, not events; first: {}",
            log.skipped,
            log.skips.join("; ")
        );
    }
    if log.events.is_empty() {
        anyhow::bail!("{}", no_events(&log));
    }
    let shown = |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339(t).to_string());
    let report = access::build(&log, (shown(window.since), shown(window.until)), policy.as_ref());
    let text = match args.format.as_str() {
        "json" => report_json::render(&report)?,
        "html" => report_html::render(&report),
        _ => report_md::render(&report),
    };
    match &args.out {
        Some(path) => write_file(path, &text)?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing the report to stdout")?,
    }
    let t = &report.totals;
    eprintln!(
        "mcp-monitor: report: {} events, {} servers, {} agents, {} calls, {} violations, {} secret reads, {} consistency differences{}",
        t.events,
        t.servers,
        t.agents,
        t.calls,
        t.violations,
        t.secret_reads,
        t.differences,
        args.out
            .as_ref()
            .map(|p| format!("; written to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// Why there is nothing to review, with what was read.
fn no_events(log: &EventLog) -> String {
    let lines: usize = log.files.iter().map(|f| f.lines).sum();
    let outside: usize = log.files.iter().map(|f| f.outside).sum();
    format!(
        "no events in the window: {} file(s), {lines} line(s), {outside} event(s) outside the window, {} line(s) that are not events",
        log.files.len(),
        log.skipped
    )
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
