//! Harness for tests that run the real daemon as root: start it with arguments, read
//! its JSON events as they come (from its stdout, or from an event file), stop it with
//! SIGTERM.
pub mod bench;
pub mod drain;
pub mod floor;
pub mod http;
pub mod mcp;
pub mod metrics;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::Value;

/// The daemon binary: `MCP_MONITOR_BIN` (set by `cargo xtask test`), else the release build.
pub fn daemon_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MCP_MONITOR_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/mcp-monitor")
}

/// A tag unique to one test, for `--watch '*TAG*'` and the command lines it should match.
pub fn unique_tag(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "t{}x{}x{}",
        name.replace(['_', ' '], ""),
        std::process::id(),
        nanos % 1_000_000_000
    )
}

pub fn require_root() {
    // Safety: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests load eBPF programs: run them as root (`cargo xtask test`)"
    );
}

/// A child process, killed and reaped when dropped, so that a failing test or bench
/// leaves no server behind.
pub struct Killed(pub Child);

impl Killed {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default)]
struct Shared {
    events: Vec<Value>,
    closed: bool,
}

pub struct Daemon {
    child: Child,
    shared: Arc<(Mutex<Shared>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    /// `--events PATH` when the events go to a file rather than stdout.
    events_file: Option<PathBuf>,
    pub ready: Value,
}

impl Daemon {
    /// Starts `mcp-monitor run ARGS --no-discovery --events - --metrics-addr 127.0.0.1:0`
    /// and waits for its `ready` status event. Without discovery it watches only what
    /// ARGS name: tests run side by side on one host, and a discovering daemon would
    /// find the other tests' servers too.
    pub fn start(args: &[&str]) -> anyhow::Result<Self> {
        Self::spawn(args, None, false)
    }

    /// Starts the daemon as `start` does, finding servers by what they speak (the
    /// default a user gets): its events hold every MCP server on the host.
    pub fn start_discovering(args: &[&str]) -> anyhow::Result<Self> {
        Self::spawn(args, None, true)
    }

    /// Starts `mcp-monitor run ARGS --events PATH --metrics-addr 127.0.0.1:0`, with the
    /// regular file `path` emptied first, and waits for the `ready` status event in it.
    /// The harness reads the file only when asked ([`Daemon::events`],
    /// [`Daemon::wait_for`], [`Daemon::stop`]), so it costs a busy daemon nothing.
    pub fn start_with_events(args: &[&str], path: &Path) -> anyhow::Result<Self> {
        Self::spawn(args, Some(path), false)
    }

    fn spawn(args: &[&str], events_file: Option<&Path>, discovery: bool) -> anyhow::Result<Self> {
        require_root();
        let bin = daemon_binary();
        let events_arg = match events_file {
            Some(path) => {
                // Emptied, since the daemon appends; a regular file, so that it can be read back.
                let f = std::fs::File::create(path)
                    .with_context(|| format!("emptying the event file {}", path.display()))?;
                if !f.metadata()?.is_file() {
                    bail!("{} is not a regular file", path.display());
                }
                path.as_os_str().to_owned()
            }
            None => "-".into(),
        };
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .args(args)
            .args((!discovery).then_some("--no-discovery"))
            .arg("--events")
            .arg(&events_arg)
            .args(["--metrics-addr", "127.0.0.1:0"]);
        Self::launch(cmd, events_file)
    }

    /// Starts exactly `program ARGS`, nothing added (a deployment's command line, as a
    /// unit's ExecStart gives it), whose events go to the file `events`, and waits for
    /// the `ready` status event in it. The file is not emptied: the daemon creates it
    /// (0600) when it is not there.
    pub fn start_exact(program: &Path, args: &[&str], events: &Path) -> anyhow::Result<Self> {
        require_root();
        let mut cmd = Command::new(program);
        cmd.args(args);
        Self::launch(cmd, Some(events))
    }

    fn launch(mut cmd: Command, events_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {cmd:?} (build it with `cargo xtask build`)"))?;
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let stdout = child.stdout.take().context("daemon stdout")?;
        let s = shared.clone();
        // With an event file, stdout stays silent: its end still tells that the daemon exited.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("daemon wrote a line that is not JSON ({e}): {line}"));
                s.0.lock().unwrap().events.push(v);
                s.1.notify_all();
            }
            s.0.lock().unwrap().closed = true;
            s.1.notify_all();
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().context("daemon stderr")?;
        let e = stderr.clone();
        thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                e.lock().unwrap().push_str(&line);
                e.lock().unwrap().push('\n');
            }
        });
        let mut d = Self {
            child,
            shared,
            stderr,
            events_file: events_file.map(Path::to_path_buf),
            ready: Value::Null,
        };
        let ready = d.wait_for(Duration::from_secs(60), |e| {
            e["type"] == "monitor_status" && e["status"] == "ready"
        });
        match ready {
            Ok(r) => d.ready = r,
            Err(err) => bail!("{err:#}\ndaemon stderr:\n{}", d.stderr()),
        }
        Ok(d)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Value> {
        match &self.events_file {
            None => self.shared.0.lock().unwrap().events.clone(),
            Some(path) => read_events(path).unwrap_or_else(|e| panic!("{e:#}")),
        }
    }

    /// The `--events` file, when the daemon was started with one.
    pub fn events_file(&self) -> Option<&Path> {
        self.events_file.as_deref()
    }

    /// The first event matching `pred`, waiting up to `timeout` for it.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let mut found = Value::Null;
        self.wait_until(timeout, |events| match events.iter().find(|e| pred(e)) {
            Some(e) => {
                found = e.clone();
                true
            }
            None => false,
        })?;
        Ok(found)
    }

    /// Waits up to `timeout` until `pred` holds for the events so far.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        if let Some(path) = &self.events_file {
            return self.poll_file(path, deadline, timeout, pred);
        }
        let (lock, cv) = &*self.shared;
        let mut g = lock.lock().unwrap();
        loop {
            if pred(&g.events) {
                return Ok(());
            }
            if g.closed {
                bail!("daemon exited before the expected event");
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "no matching event within {timeout:?}; {} events so far",
                    g.events.len()
                );
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// `wait_until` for an event file: reads it again every few milliseconds.
    fn poll_file(
        &self,
        path: &Path,
        deadline: Instant,
        timeout: Duration,
        mut pred: impl FnMut(&[Value]) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            // Whether the daemon had exited before this read: then nothing more will come.
            let closed = self.shared.0.lock().unwrap().closed;
            // Not there yet: a daemon started by `start_exact` creates it.
            let events = if path.exists() {
                read_events(path)?
            } else {
                Vec::new()
            };
            if pred(&events) {
                return Ok(());
            }
            if closed {
                bail!("daemon exited before the expected event");
            }
            if Instant::now() >= deadline {
                bail!(
                    "no matching event within {timeout:?}; {} events so far",
                    events.len()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    pub fn stop(mut self, timeout: Duration) -> anyhow::Result<(ExitStatus, Duration, Vec<Value>)> {
        let started = Instant::now();
        // Safety: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = self.child.try_wait()? {
                let elapsed = started.elapsed();
                // Let the reader thread take the last lines.
                let (lock, cv) = &*self.shared;
                let g = lock.lock().unwrap();
                let g = cv
                    .wait_timeout_while(g, Duration::from_secs(5), |s| !s.closed)
                    .unwrap()
                    .0;
                let events = match &self.events_file {
                    None => g.events.clone(),
                    Some(path) => read_events(path)?,
                };
                return Ok((status, elapsed, events));
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                bail!(
                    "daemon still running {timeout:?} after SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The complete lines of an event file, each a JSON event. A last line without its
/// newline is still being written and left out.
pub fn read_events(path: &Path) -> anyhow::Result<Vec<Value>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the event file {}", path.display()))?;
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => return Ok(Vec::new()),
    };
    complete
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).with_context(|| {
                format!(
                    "daemon wrote a line that is not JSON: {}",
                    String::from_utf8_lossy(l)
                )
            })
        })
        .collect()
}

/// The bytes of one (pid, fd, direction) stream, from `capture` events, in stream order,
/// from the stream's first byte (offset 0). Fails on a gap or overlap, lost bytes at the
/// start included, so a test sees lost bytes as an error.
pub fn stream(events: &[Value], pid: u32, fd: i32, direction: &str) -> anyhow::Result<Vec<u8>> {
    let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
    for e in events {
        if e["type"] == "capture" && e["pid"] == pid && e["fd"] == fd && e["direction"] == direction {
            let data = base64::engine::general_purpose::STANDARD
                .decode(e["data"].as_str().context("capture without data")?)?;
            chunks.push((e["offset"].as_u64().context("capture without offset")?, data));
        }
    }
    chunks.sort_by_key(|c| c.0);
    let mut out = Vec::new();
    for (off, data) in chunks {
        if off != out.len() as u64 {
            bail!(
                "stream pid {pid} fd {fd} {direction}: chunk at {off}, expected {}",
                out.len()
            );
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// The pids in a daemon's kernel watched set: its `WATCHED` map, found through the
/// programs its `ready` event lists. What the kernel copies, whatever userspace keeps.
pub fn kernel_watched(d: &Daemon) -> anyhow::Result<Vec<u32>> {
    use aya::{
        maps::{HashMap, Map, MapData},
        programs::loaded_programs,
    };
    let ids: Vec<u64> = d.ready["programs"]
        .as_array()
        .context("ready event lists no programs")?
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    for info in loaded_programs().filter_map(Result::ok) {
        if !ids.contains(&u64::from(info.id())) {
            continue;
        }
        for map_id in info.map_ids()?.unwrap_or_default() {
            let map = MapData::from_id(map_id)?;
            if map.info()?.name_as_str() != Some("WATCHED") {
                continue;
            }
            let watched: HashMap<_, u32, monitor_common::WatchState> = HashMap::try_from(Map::HashMap(map))?;
            // Probed processes are only looked at, not watched.
            return Ok(watched
                .iter()
                .filter_map(Result::ok)
                .filter(|(_, s)| s.pending != monitor_common::watch_state::PROBED)
                .map(|(pid, _)| pid)
                .collect());
        }
    }
    bail!("no WATCHED map among the daemon's programs {ids:?}")
}

/// `capture` events of one process.
pub fn captures_of(events: &[Value], pid: u32) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "capture" && e["pid"] == pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    fn capture(offset: u64, data: &[u8]) -> serde_json::Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        json!({"type": "capture", "pid": 7, "fd": 1, "direction": "write", "offset": offset, "data": b64})
    }

    #[test]
    fn a_stream_must_start_at_its_first_byte_and_have_no_gap() {
        let whole = [capture(3, b"def"), capture(0, b"abc")];
        assert_eq!(super::stream(&whole, 7, 1, "write").unwrap(), b"abcdef");
        let lost_start = [capture(3, b"def")];
        let e = super::stream(&lost_start, 7, 1, "write").unwrap_err();
        assert!(e.to_string().contains("chunk at 3, expected 0"), "{e}");
        let gap = [capture(0, b"abc"), capture(4, b"ef")];
        assert!(super::stream(&gap, 7, 1, "write").is_err());
    }
}
