//! What the daemon adds to starting programs anywhere on the host, as root.
//!
//! Every exec, fork and exit on the host is a record for the daemon, and every freshly
//! exec'ed program is captured as pending until the daemon has decided it is no server.
//! This times a storm of `/bin/true` runs (spawn, exec, wait) from this process with
//! (a) no daemon and (b) the daemon running with a `--watch` glob that matches nothing,
//! interleaved over several rounds; the median round is reported.
//!
//! `cargo xtask bench` builds the daemon and runs this; by hand, after
//! `cargo xtask build`: `cargo bench --package integration-tests --bench exec_storm`.
use std::{
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::bail;
use integration_tests::{Daemon, unique_tag};

const ROUNDS: usize = 5;
const RUNS: usize = 2_000;

fn storm() -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..RUNS {
        let status = Command::new("/bin/true").stdin(Stdio::null()).status()?;
        if !status.success() {
            bail!("/bin/true failed: {status}");
        }
    }
    Ok(start.elapsed())
}

fn run() -> anyhow::Result<()> {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the daemon loads eBPF programs: run as root (`cargo xtask bench`)");
    }
    println!("exec_storm: what a running daemon adds to spawn + exec + wait of /bin/true");
    println!("{ROUNDS} rounds of {RUNS} runs per configuration, interleaved; median round");
    let events = std::env::temp_dir().join(format!("{}.jsonl", unique_tag("execstorm")));
    let nothing = format!("/nothing/{}", unique_tag("execstorm"));
    storm()?; // warm-up: page cache, allocator
    let (mut bare, mut daemon) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        bare.push(storm()?);
        let d = Daemon::start_with_events(&["--watch", &nothing], &events)?;
        daemon.push(storm()?);
        d.stop(Duration::from_secs(5))?;
        eprintln!("exec_storm: round {}/{ROUNDS} done", round + 1);
    }
    let _ = std::fs::remove_file(&events);
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() / RUNS as f64 * 1e6
    };
    let (a, b) = (median(&mut bare), median(&mut daemon));
    println!(
        "{:<36} | {:>12} | {:>7} | {:>9}",
        "configuration", "us per run", "rate", "+us"
    );
    println!("{}", "-".repeat(36 + 3 + 12 + 3 + 7 + 3 + 9));
    println!(
        "{:<36} | {a:>12.1} | {:>7} | {:>9}",
        "(a) no daemon", "x1.00", "+0.0"
    );
    println!(
        "{:<36} | {b:>12.1} | {:>7} | {:>+9.1}",
        "(b) daemon, watching nothing",
        format!("x{:.2}", a / b),
        b - a
    );
    // For `cargo xtask bench`'s summary table.
    println!(
        "summary | exec storm (spawn /bin/true), daemon watching nothing vs no daemon | {b:.1} us | {a:.1} us | x{:.3} | >= x0.95",
        a / b
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exec_storm: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
