//! The JSON event stream: one object per line on stdout or a file.
//!
//! Losing the reader (EPIPE) or the disk (ENOSPC) must not end the daemon: the host
//! would be unwatched from then on. A failed write drops the events it held, counts
//! them by reason, and the first write that succeeds afterwards starts with a
//! `monitor_status` event saying how many were dropped and why.
use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{self, Write},
    os::fd::AsFd,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use log::{info, warn};
use prometheus::IntCounterVec;
use serde::Serialize;
use serde_json::json;

use super::text::{self, Format, Style};

/// Why events were dropped: the `reason` label of `mcp_monitor_events_dropped_total`.
pub const DROP_REASONS: &[&str] = &["broken_pipe", "no_space", "io_error"];

/// Events are written out once this many bytes are buffered (and at every flush).
const BUFFER_BYTES: usize = 64 * 1024;

pub struct EventWriter {
    out: Box<dyn Write + Send>,
    /// The file given with `--events PATH`, reopened on SIGHUP; None for stdout.
    path: Option<PathBuf>,
    /// Complete lines not yet written, and how many events they hold.
    buf: Vec<u8>,
    buffered: u64,
    /// Dropped since the last `monitor_status` that reported drops, by reason.
    unreported: BTreeMap<&'static str, u64>,
    /// Dropped since start, by reason.
    dropped_total: BTreeMap<&'static str, u64>,
    /// A failed write left half a line: the next write starts a new line first.
    torn: bool,
    dropped_counter: Option<IntCounterVec>,
    /// Wall-clock time of CLOCK_BOOTTIME zero, to turn kernel timestamps into dates.
    boot_epoch: SystemTime,
    /// Nanoseconds since the epoch now (a recording's, in replay); None: the system's.
    clock: Option<Box<dyn Fn() -> u64>>,
    /// `--format text`: each line is turned into a readable one as it is queued.
    text: Option<Style>,
}

impl EventWriter {
    /// `-` is stdout; anything else a file opened for appending. JSON lines.
    pub fn open(target: &str) -> anyhow::Result<Self> {
        Self::open_as(target, Format::Json)
    }

    /// As `open`, in `format`: `auto` is text when `target` is a terminal's stdout.
    pub fn open_as(target: &str, format: Format) -> anyhow::Result<Self> {
        if target == "-" {
            // Straight to fd 1: std's stdout is line-buffered and would split our writes.
            let fd = io::stdout().as_fd().try_clone_to_owned()?;
            let out = File::from(fd);
            let style = format.resolve_for(true, &out);
            let mut w = Self::new(Box::new(out), None);
            w.text = style;
            return Ok(w);
        }
        let path = PathBuf::from(target);
        let f = open_append(&path).map_err(|e| anyhow::anyhow!("opening event file {target}: {e}"))?;
        let style = format.resolve_for(false, &f);
        let mut w = Self::new(Box::new(f), Some(path));
        w.text = style;
        Ok(w)
    }

    /// Readable lines (`--format text`) instead of JSON from now on, or JSON (None).
    pub fn set_text(&mut self, style: Option<Style>) {
        self.text = style;
    }

    /// Events to any writer (a bench's sink, a test's buffer).
    pub fn from_writer(out: Box<dyn Write + Send>) -> Self {
        Self::new(out, None)
    }

    fn new(out: Box<dyn Write + Send>, path: Option<PathBuf>) -> Self {
        Self {
            out,
            path,
            buf: Vec::with_capacity(BUFFER_BYTES),
            buffered: 0,
            unreported: BTreeMap::new(),
            dropped_total: BTreeMap::new(),
            torn: false,
            dropped_counter: None,
            boot_epoch: boot_epoch(),
            clock: None,
            text: None,
        }
    }

    /// Where `now` comes from (the pipeline's facts: recorded, or replayed).
    pub fn set_clock(&mut self, clock: Box<dyn Fn() -> u64>) {
        self.clock = Some(clock);
    }

    /// CLOCK_BOOTTIME zero in nanoseconds since the epoch (a recording keeps it).
    pub fn boot_epoch_ns(&self) -> u64 {
        self.boot_epoch
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    pub fn set_boot_epoch_ns(&mut self, ns: u64) {
        self.boot_epoch = SystemTime::UNIX_EPOCH + Duration::from_nanos(ns);
    }

    /// Counts dropped events in `counter` (label: reason) as well.
    pub fn count_drops_in(&mut self, counter: IntCounterVec) {
        self.dropped_counter = Some(counter);
    }

    /// RFC 3339 UTC time of a CLOCK_BOOTTIME timestamp from the kernel.
    pub fn kernel_time(&self, ts_ns: u64) -> String {
        humantime::format_rfc3339_nanos(self.boot_epoch + Duration::from_nanos(ts_ns)).to_string()
    }

    pub fn now(&self) -> String {
        let now = match &self.clock {
            Some(clock) => SystemTime::UNIX_EPOCH + Duration::from_nanos(clock()),
            None => SystemTime::now(),
        };
        humantime::format_rfc3339_nanos(now).to_string()
    }

    /// Queues one event; `type` and `ts` come first so lines read well.
    pub fn emit(&mut self, kind: &str, ts: String, fields: impl Serialize) {
        let start = self.buf.len();
        line_into(&mut self.buf, kind, &ts, &fields);
        as_text(&mut self.buf, start, self.text);
        self.buffered += 1;
        if self.buf.len() >= BUFFER_BYTES {
            self.flush();
        }
    }

    /// Writes what is queued. A failure drops it, counted; it is never an error.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // What goes before the queued events (rarely anything): the end of a torn line,
        // then the drop report. Put in front of the queue, which is written in place.
        let mut prefix = Vec::new();
        if self.torn {
            prefix.push(b'\n');
        }
        let status_lines = match self.drop_report() {
            Some(line) => {
                prefix.extend_from_slice(&line);
                1
            }
            None => 0,
        };
        let status_end = prefix.len();
        if !prefix.is_empty() {
            self.buf.splice(0..0, prefix);
        }
        let out = std::mem::take(&mut self.buf);
        let events = std::mem::take(&mut self.buffered);
        let written = write_all_counted(&mut *self.out, &out)
            .and_then(|n| self.out.flush().map(|()| n).map_err(|e| (e, n)));
        match written {
            Ok(_) => {
                self.torn = false;
                if status_lines > 0 {
                    self.unreported.clear();
                }
            }
            Err((e, n)) => {
                if n > 0 {
                    self.torn = out[n - 1] != b'\n';
                }
                if n >= status_end {
                    self.unreported.clear();
                }
                let done = out[status_end.min(n)..n].iter().filter(|&&b| b == b'\n').count() as u64;
                self.dropped(reason(&e), events - done.min(events), &e);
            }
        }
        // The queue's memory is kept for the next events.
        self.buf = out;
        self.buf.clear();
        if self.buf.capacity() > 4 * BUFFER_BYTES {
            self.buf.shrink_to(BUFFER_BYTES);
        }
    }

    fn dropped(&mut self, reason: &'static str, n: u64, e: &io::Error) {
        if n == 0 {
            return;
        }
        let first = self.unreported.is_empty();
        *self.unreported.entry(reason).or_default() += n;
        *self.dropped_total.entry(reason).or_default() += n;
        if let Some(c) = &self.dropped_counter {
            c.with_label_values(&[reason]).inc_by(n);
        }
        if first {
            warn!("writing events: {e}; dropping them (counted) until a write succeeds");
        }
    }

    /// The `monitor_status` line for drops not reported yet.
    fn drop_report(&self) -> Option<Vec<u8>> {
        if self.unreported.is_empty() {
            return None;
        }
        let mut line = Vec::new();
        let fields = json!({
            "status": "events_dropped",
            "dropped": self.unreported.values().sum::<u64>(),
            "by_reason": self.unreported,
            "dropped_since_start": self.dropped_total.values().sum::<u64>(),
        });
        line_into(&mut line, "monitor_status", &self.now(), &fields);
        as_text(&mut line, 0, self.text);
        Some(line)
    }

    /// Events dropped since start, by reason.
    pub fn dropped_total(&self) -> &BTreeMap<&'static str, u64> {
        &self.dropped_total
    }

    /// SIGHUP: a file given with `--events PATH` is opened again by name, so that a
    /// log rotator can move it away and the daemon goes on in a new one. What is
    /// queued goes to the old file first.
    pub fn reopen(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        self.flush();
        match open_append(&path) {
            Ok(f) => {
                self.out = Box::new(f);
                self.torn = false;
                info!("SIGHUP: event file {} reopened", path.display());
            }
            Err(e) => warn!(
                "SIGHUP: cannot reopen event file {}: {e}; still writing to the old one",
                path.display()
            ),
        }
    }
}

/// Opens the event file for appending; a file it creates is readable and writable by
/// its owner only (events hold what agents sent, however redacted). A file that
/// already exists keeps its mode, with a warning when group or others may read it.
fn open_append(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if let Ok(meta) = f.metadata() {
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_file() && mode & 0o077 != 0 {
            warn!(
                "event file {} has mode {mode:04o}: group or others can read the events (chmod 600 {} to keep them to its owner)",
                path.display(),
                path.display()
            );
        }
    }
    Ok(f)
}

/// One event as a JSON line: `type` and `ts` first, then the members of `fields` (an
/// object; anything else is left out). Written straight into `buf`, with no map built
/// to put the two first.
fn line_into(buf: &mut Vec<u8>, kind: &str, ts: &str, fields: &impl Serialize) {
    let line_start = buf.len();
    buf.extend_from_slice(b"{\"type\":");
    // Writing into a Vec fails only when a Serialize impl does; the line is then undone.
    let head = serde_json::to_writer(&mut *buf, kind).and_then(|()| {
        buf.extend_from_slice(b",\"ts\":");
        serde_json::to_writer(&mut *buf, ts)
    });
    let at = buf.len();
    if head.is_err() {
        buf.truncate(line_start);
        return;
    }
    match serde_json::to_writer(&mut *buf, fields) {
        Ok(()) if buf.len() > at + 2 && buf[at] == b'{' => buf[at] = b',',
        Ok(()) if buf.get(at) == Some(&b'{') => {
            // `{}`: nothing to add.
            buf.truncate(at);
            buf.push(b'}');
        }
        _ => {
            buf.truncate(at);
            buf.push(b'}');
        }
    }
    buf.push(b'\n');
}

/// With `--format text`, turns the JSON line queued in `buf` from `start` into its
/// readable line: still one line, so that drops are counted the same.
fn as_text(buf: &mut Vec<u8>, start: usize, style: Option<Style>) {
    let Some(style) = style else {
        return;
    };
    if buf.len() <= start {
        return;
    }
    let line = text::line(&buf[start..], style);
    buf.truncate(start);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
}

/// Writes all of `bytes`; on failure, the error and how many bytes got out.
fn write_all_counted(out: &mut dyn Write, bytes: &[u8]) -> Result<usize, (io::Error, usize)> {
    let mut done = 0;
    while done < bytes.len() {
        match out.write(&bytes[done..]) {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), done)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, done)),
        }
    }
    Ok(done)
}

fn reason(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPIPE) => "broken_pipe",
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => "no_space",
        _ => "io_error",
    }
}

fn boot_epoch() -> SystemTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: clock_gettime writes into the timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let since_boot = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    SystemTime::now() - since_boot
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that takes `budget` bytes, then fails with `errno` until refilled.
    #[derive(Clone)]
    struct Flaky {
        got: Arc<Mutex<Vec<u8>>>,
        budget: Arc<Mutex<usize>>,
        errno: i32,
    }

    impl Write for Flaky {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut budget = self.budget.lock().unwrap();
            if *budget == 0 {
                return Err(io::Error::from_raw_os_error(self.errno));
            }
            let n = b.len().min(*budget);
            *budget -= n;
            self.got.lock().unwrap().extend_from_slice(&b[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(f: &Flaky) -> Vec<String> {
        String::from_utf8(f.got.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_failed_write_is_counted_and_reported_once_writing_works_again() {
        let f = Flaky {
            got: Arc::default(),
            budget: Arc::new(Mutex::new(usize::MAX)),
            errno: libc::ENOSPC,
        };
        let mut w = EventWriter::from_writer(Box::new(f.clone()));
        w.emit("a", "t".into(), json!({"n": 1}));
        w.flush();
        // The disk fills up in the middle of the second of three events.
        let first = lines(&f)[0].len() + 1;
        *f.budget.lock().unwrap() = first + 10;
        for n in 2..=4 {
            w.emit("a", "t".into(), json!({"n": n}));
        }
        w.flush();
        assert_eq!(w.dropped_total().get("no_space"), Some(&2));
        // Still full: the next event is dropped too, and nothing is reported yet.
        w.emit("a", "t".into(), json!({"n": 5}));
        w.flush();
        assert_eq!(w.dropped_total().get("no_space"), Some(&3));
        *f.budget.lock().unwrap() = usize::MAX;
        w.emit("a", "t".into(), json!({"n": 6}));
        w.flush();
        let got = lines(&f);
        // n=1, n=2 whole, half of n=3 on a line of its own, the report, n=6.
        assert_eq!(got.len(), 5, "{got:#?}");
        let parsed: Vec<Option<serde_json::Value>> =
            got.iter().map(|l| serde_json::from_str(l).ok()).collect();
        assert_eq!(parsed[0].as_ref().unwrap()["n"], 1);
        assert_eq!(parsed[1].as_ref().unwrap()["n"], 2);
        assert!(parsed[2].is_none(), "the torn line stays alone: {}", got[2]);
        let report = parsed[3].as_ref().unwrap();
        assert_eq!(report["type"], "monitor_status");
        assert_eq!(report["status"], "events_dropped");
        assert_eq!(report["dropped"], 3);
        assert_eq!(report["by_reason"], json!({"no_space": 3}));
        assert_eq!(parsed[4].as_ref().unwrap()["n"], 6);
        // Reported once.
        w.emit("a", "t".into(), json!({"n": 7}));
        w.flush();
        assert_eq!(lines(&f).len(), 6);
    }

    #[test]
    fn an_event_file_is_created_for_its_owner_only_and_an_existing_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("events-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let _ = std::fs::remove_file(&path);
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let mut w = EventWriter::open(path.to_str().unwrap()).unwrap();
        assert_eq!(mode(&path), 0o600);
        // Rotated away: SIGHUP makes a new file, again 0600.
        std::fs::rename(&path, dir.join("events.jsonl.1")).unwrap();
        w.reopen();
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        w.reopen();
        assert_eq!(mode(&path), 0o640, "an existing file keeps its mode");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn text_lines_are_written_counted_and_reported_like_json_ones() {
        let f = Flaky {
            got: Arc::default(),
            budget: Arc::new(Mutex::new(usize::MAX)),
            errno: libc::ENOSPC,
        };
        let mut w = EventWriter::from_writer(Box::new(f.clone()));
        w.set_text(Some(Style { color: false }));
        w.emit(
            "monitor_status",
            "2026-12-02T16:14:49.428038056Z".into(),
            json!({"status": "stopped"}),
        );
        w.flush();
        assert_eq!(lines(&f), ["16:14:49.428  monitor_status  stopped"]);
        // Full disk in the middle of the second of two lines.
        *f.budget.lock().unwrap() = 50;
        for _ in 0..2 {
            w.emit(
                "monitor_status",
                "2026-12-02T16:14:50.000000000Z".into(),
                json!({"status": "stopped"}),
            );
        }
        w.flush();
        assert_eq!(w.dropped_total().get("no_space"), Some(&1));
        *f.budget.lock().unwrap() = usize::MAX;
        w.emit(
            "monitor_status",
            "2026-12-02T16:14:51.000000000Z".into(),
            json!({"status": "stopped"}),
        );
        w.flush();
        let got = lines(&f);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert_eq!(got[1], "16:14:50.000  monitor_status  stopped");
        assert_eq!(got[2], "16:14:50.000", "the torn line stays alone");
        assert!(
            got[3]
                .ends_with("  monitor_status  events_dropped  1 events dropped (no_space 1), 1 since start"),
            "{}",
            got[3]
        );
        assert_eq!(got[4], "16:14:51.000  monitor_status  stopped");
    }

    #[test]
    fn a_reader_gone_for_good_is_counted_as_broken_pipe() {
        let f = Flaky {
            got: Arc::default(),
            budget: Arc::new(Mutex::new(0)),
            errno: libc::EPIPE,
        };
        let mut w = EventWriter::from_writer(Box::new(f));
        let counter = IntCounterVec::new(prometheus::Opts::new("d", "d"), &["reason"]).unwrap();
        w.count_drops_in(counter.clone());
        for n in 0..3 {
            w.emit("a", "t".into(), json!({"n": n}));
            w.flush();
        }
        assert_eq!(counter.with_label_values(&["broken_pipe"]).get(), 3);
    }
}
