//! What the benches that run the real daemon share: the root check around their `run`,
//! the daemon binary, CPU layouts and affinity, a process's CPU time, where events and
//! scripts go, percentiles.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, bail};

/// A bench's `main`: `run` as root (it starts the daemon), its error printed as
/// `NAME: error: ...` and a failure exit status.
pub fn main_as_root(name: &str, run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{name}: must run as root (it starts the daemon): run `cargo xtask bench` as root");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The daemon binary, which must have been built before (a bench does not build it).
pub fn built_daemon() -> anyhow::Result<PathBuf> {
    let bin = crate::daemon_binary();
    if !bin.exists() {
        bail!(
            "{} missing: build it first (`cargo xtask build`, or set MCP_MONITOR_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// CPUs online.
pub fn online_cpus() -> usize {
    // Safety: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command name (in parentheses, maybe with spaces): field 3 onwards.
    let rest = stat.rsplit_once(')').context("/proc/PID/stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // Safety: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// The running kernel's release, for the report's machine line.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Where CPUs the bench's processes run on. On a small VM, `Free` round trips are
/// dominated by waking an idle CPU, which a busy daemon can make cheaper; `Pinned` takes
/// idle CPUs out of the path and shows what the daemon adds to the measured processes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// No affinity set: the scheduler places the measured processes and the daemon
    /// (what users get).
    Free,
    /// The measured processes (clients and servers) on the last CPU, the daemon on CPU 0.
    Pinned,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::Free, Layout::Pinned];

    pub fn label(self) -> &'static str {
        match self {
            Layout::Free => "free",
            Layout::Pinned => "pinned",
        }
    }
}

/// Sets the CPU affinity of thread `tid` (0: the calling thread, whose affinity the
/// processes and threads it starts inherit).
pub fn set_affinity(tid: i32, cpus: &[usize]) -> anyhow::Result<()> {
    // Safety: a zeroed cpu_set_t is an empty set; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity({tid}): {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Where a daemon's events go, `NAME-PID.jsonl`: memory-backed when possible, so that
/// the file system does not weigh on the daemon.
pub fn event_file(name: &str) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("{name}-{}.jsonl", std::process::id()))
}

/// A directory `NAME-PID` under the temporary directory, for the scripts a bench runs;
/// removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median over rounds of `now`'s value over `base`'s in the same round: less
/// sensitive to a slow round than the ratio of medians.
pub fn paired_ratio(now: &[f64], base: &[f64]) -> f64 {
    let ratios: Vec<f64> = now.iter().zip(base).map(|(n, b)| n / b).collect();
    median(&ratios)
}

/// Nearest-rank percentile of sorted nanoseconds.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// `pipe-peer --tag TAG jsonrpc` (`pipe_peer`: the bench's `CARGO_BIN_EXE_pipe-peer`),
/// a minimal stdio MCP server, with its stdin and stdout piped to this process.
pub fn jsonrpc_peer(pipe_peer: &str, tag: &str) -> anyhow::Result<std::process::Child> {
    use std::process::{Command, Stdio};
    Command::new(pipe_peer)
        .args(["--tag", tag, "jsonrpc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting pipe-peer")
}

/// Stops the daemon once it has seen server `pid` exit (when `watched`), and returns
/// every event it wrote; an error when it did not see the exit or did not exit cleanly.
pub fn events_after_exit(
    d: crate::Daemon,
    pid: u64,
    watched: bool,
    wait: Duration,
) -> anyhow::Result<Vec<serde_json::Value>> {
    if watched {
        d.wait_for(wait, |e| {
            e["type"] == "server_exited" && e["server"]["pid"] == pid
        })
        .with_context(|| format!("no server_exited for the server; stderr:\n{}", d.stderr()))?;
    }
    let (status, _, events) = d.stop(wait)?;
    if !status.success() {
        bail!("the daemon exited with {status}");
    }
    Ok(events)
}

/// A `tools/call` request line (a `read_text_file` of a padded path) of exactly `bytes`
/// bytes with its newline, when `bytes` is at least its unpadded length.
pub fn tools_call_line(id: u64, bytes: usize) -> Vec<u8> {
    let make = |pad: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"read_text_file","arguments":{{"path":"/home/user/project/{pad}.rs"}}}}}}"#
        )
    };
    let pad = "x".repeat(bytes.saturating_sub(make("").len() + 1));
    let mut line = make(&pad).into_bytes();
    line.push(b'\n');
    line
}
