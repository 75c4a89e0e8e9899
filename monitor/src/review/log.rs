//! Event logs read back: JSON lines written by `mcp-monitor run --events FILE` (or
//! `replay`), plain or gzip (rotated files), filtered to a time window, in time order.
//! A log is evidence, not trusted input: a line that is not a JSON object with a `type`
//! is skipped and counted with its file and line, never a reason to stop.

use std::{
    fmt,
    fs::File,
    io::{self, BufRead, BufReader, Read},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use flate2::read::MultiGzDecoder;
use serde_json::Value;

/// Longest line read back; longer ones are skipped (the daemon's own lines are bounded
/// by `--max-field-bytes`, far below this).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Skipped lines described one by one (the rest are only counted).
const SKIPS_DESCRIBED: usize = 20;

/// One event of a log: where it was, when it happened, and the object itself.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub file: Arc<Path>,
    /// 1-based line number in `file` (after decompression).
    pub line: usize,
    /// The event's `ts` (RFC 3339), when it has one that parses.
    pub ts: Option<SystemTime>,
    /// The event's `type`.
    pub kind: String,
    pub value: Value,
}

impl LogEvent {
    /// Events of an in-memory log `t.jsonl` (tests of what reads logs).
    #[cfg(test)]
    pub fn from_values(values: &[Value]) -> Vec<Self> {
        let file: Arc<Path> = Arc::from(Path::new("t.jsonl"));
        values
            .iter()
            .enumerate()
            .map(|(i, v)| LogEvent {
                file: file.clone(),
                line: i + 1,
                ts: None,
                kind: v["type"].as_str().unwrap_or("").to_string(),
                value: v.clone(),
            })
            .collect()
    }

    /// `file:line`, how a reviewer finds the event again.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// A time window: events at or after `since` and before `until`. An event without a
/// usable `ts` is kept only when the window is open on both sides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

impl Window {
    /// From `--since`/`--until` values: an RFC 3339 time (`2026-12-01T09:00:00Z`, or a
    /// date and time without zone, read as UTC) or a duration back from `now` (`24h`,
    /// `7days`).
    pub fn parse(since: Option<&str>, until: Option<&str>, now: SystemTime) -> anyhow::Result<Self> {
        let at = |flag: &str, s: &str| {
            parse_time(s, now).with_context(|| {
                format!("{flag} {s:?}: not an RFC 3339 time (2026-12-01T09:00:00Z) nor a duration back from now (24h, 7days)")
            })
        };
        let window = Window {
            since: since.map(|s| at("--since", s)).transpose()?,
            until: until.map(|s| at("--until", s)).transpose()?,
        };
        if let (Some(a), Some(b)) = (window.since, window.until)
            && a >= b
        {
            anyhow::bail!("--since must be before --until");
        }
        Ok(window)
    }

    pub fn contains(&self, ts: Option<SystemTime>) -> bool {
        match ts {
            Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u),
            None => self.since.is_none() && self.until.is_none(),
        }
    }
}

fn parse_time(s: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let back: Duration = humantime::parse_duration(s)?;
    Ok(now.checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// What was read of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub path: PathBuf,
    pub gzip: bool,
    pub lines: usize,
    /// Events kept (inside the window).
    pub events: usize,
    /// Events outside the window.
    pub outside: usize,
    pub skipped: usize,
}

/// The events of several logs, in time order (events without a time keep their place
/// after those of their file that came before them).
#[derive(Debug, Default)]
pub struct EventLog {
    pub events: Vec<LogEvent>,
    pub files: Vec<FileSummary>,
    /// The first skipped lines, each `file:line: reason`.
    pub skips: Vec<String>,
    pub skipped: usize,
}

impl EventLog {
    /// Reads `paths` (each plain or gzip, told by its first bytes) keeping the events
    /// inside `window`. An unreadable file is an error naming it; a bad line is not.
    pub fn read(paths: &[PathBuf], window: Window) -> anyhow::Result<Self> {
        let mut log = EventLog::default();
        for path in paths {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            log.read_from(path, file, window)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        // Stable: same-time events keep their order in the files.
        log.events.sort_by_key(|e| e.ts);
        Ok(log)
    }

    /// Reads one log from `input`, named `path` in locations.
    pub fn read_from<'r>(&mut self, path: &Path, input: impl Read + 'r, window: Window) -> io::Result<()> {
        let mut input = BufReader::new(input);
        let gzip = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead + 'r> = if gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(input)))
        } else {
            Box::new(input)
        };
        let file: Arc<Path> = Arc::from(path);
        let mut summary = FileSummary {
            path: path.to_path_buf(),
            gzip,
            lines: 0,
            events: 0,
            outside: 0,
            skipped: 0,
        };
        let mut lines = Lines {
            reader,
            buf: Vec::new(),
        };
        while let Some(line) = lines.next_line()? {
            summary.lines += 1;
            let number = summary.lines;
            let event = match line {
                Line::TooLong(n) => Err(Skip::TooLong(n)),
                Line::Bytes(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
                Line::Bytes(bytes) => parse_event(bytes),
            };
            match event {
                Ok((kind, ts, value)) if window.contains(ts) => {
                    summary.events += 1;
                    self.events.push(LogEvent {
                        file: file.clone(),
                        line: number,
                        ts,
                        kind,
                        value,
                    });
                }
                Ok(_) => summary.outside += 1,
                Err(skip) => {
                    summary.skipped += 1;
                    self.skipped += 1;
                    if self.skips.len() < SKIPS_DESCRIBED {
                        self.skips.push(format!("{}:{number}: {skip}", path.display()));
                    }
                }
            }
        }
        self.files.push(summary);
        Ok(())
    }

    /// The events of one `type`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a LogEvent> {
        self.events.iter().filter(move |e| e.kind == kind)
    }
}

/// Why a line was skipped.
#[derive(Debug)]
enum Skip {
    TooLong(usize),
    NotJson(serde_json::Error),
    NotAnEvent,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::TooLong(n) => write!(f, "line longer than {MAX_LINE_BYTES} bytes ({n} read)"),
            Skip::NotJson(e) => write!(f, "not JSON: {e}"),
            Skip::NotAnEvent => f.write_str("not an event (a JSON object with a string `type`)"),
        }
    }
}

fn parse_event(bytes: &[u8]) -> Result<(String, Option<SystemTime>, Value), Skip> {
    let value: Value = serde_json::from_slice(bytes).map_err(Skip::NotJson)?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(Skip::NotAnEvent)?;
    let ts = value
        .get("ts")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    Ok((kind.to_string(), ts, value))
}

enum Line<'a> {
    Bytes(&'a [u8]),
    TooLong(usize),
}

/// Lines of at most `MAX_LINE_BYTES`; a longer one is read through, not kept.
struct Lines<'r> {
    reader: Box<dyn BufRead + 'r>,
    buf: Vec<u8>,
}

impl Lines<'_> {
    fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut total = 0;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let (take, end) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if total + take <= MAX_LINE_BYTES + 1 {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            total += take;
            self.reader.consume(take);
            if end {
                break;
            }
        }
        if total == 0 {
            return Ok(None);
        }
        if total > MAX_LINE_BYTES + 1 {
            return Ok(Some(Line::TooLong(total)));
        }
        let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        Ok(Some(Line::Bytes(line.strip_suffix(b"\r").unwrap_or(line))))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, write::GzEncoder};

    use super::*;

    const A: &str = r#"{"type":"tool_call","ts":"2026-12-01T10:00:02Z","tool":"b"}"#;
    const B: &str = r#"{"type":"server_started","ts":"2026-12-01T10:00:01Z"}"#;

    fn read(name: &str, bytes: &[u8], window: Window) -> EventLog {
        let mut log = EventLog::default();
        log.read_from(Path::new(name), bytes, window).unwrap();
        log
    }

    #[test]
    fn plain_and_gzip_logs_read_the_same_and_merge_in_time_order() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        writeln!(gz, "{A}").unwrap();
        let gz = gz.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("review-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (p1, p2) = (dir.join("events.jsonl.1.gz"), dir.join("events.jsonl"));
        std::fs::write(&p1, &gz).unwrap();
        std::fs::write(&p2, format!("{B}\n")).unwrap();
        let log = EventLog::read(&[p1.clone(), p2.clone()], Window::default()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let kinds: Vec<_> = log
            .events
            .iter()
            .map(|e| (e.kind.as_str(), e.location()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("server_started", format!("{}:1", p2.display())),
                ("tool_call", format!("{}:1", p1.display()))
            ]
        );
        assert!(log.files[0].gzip && !log.files[1].gzip);
    }

    #[test]
    fn bad_lines_are_skipped_counted_and_located() {
        let text = format!("{A}\nnot json\n[1,2]\n\n{{\"type\":7}}\n{B}\r\n");
        let log = read("x.jsonl", text.as_bytes(), Window::default());
        assert_eq!(log.events.len(), 2);
        assert_eq!(log.skipped, 3);
        assert!(log.skips[0].starts_with("x.jsonl:2: not JSON"), "{:?}", log.skips);
        assert!(log.skips[1].starts_with("x.jsonl:3: not an event"));
        assert!(log.skips[2].starts_with("x.jsonl:5: not an event"));
        assert_eq!(log.files[0].lines, 6);
    }

    #[test]
    fn an_overlong_line_is_skipped_without_keeping_it() {
        let mut text = vec![b'x'; MAX_LINE_BYTES + 10];
        text.push(b'\n');
        text.extend_from_slice(A.as_bytes());
        let log = read("big", &text, Window::default());
        assert_eq!((log.events.len(), log.skipped), (1, 1));
        assert!(log.skips[0].contains("line longer than"));
        assert_eq!(log.events[0].line, 2);
    }

    #[test]
    fn the_window_keeps_events_from_since_until_before_until() {
        let now = humantime::parse_rfc3339("2026-12-01T12:00:00Z").unwrap();
        let w = Window::parse(Some("2026-12-01T10:00:02Z"), None, now).unwrap();
        let log = read("x", format!("{A}\n{B}\n").as_bytes(), w);
        assert_eq!(log.events.len(), 1);
        assert_eq!(log.files[0].outside, 1);
        let w = Window::parse(None, Some("2026-12-01T10:00:02Z"), now).unwrap();
        assert_eq!(
            read("x", format!("{A}\n{B}\n").as_bytes(), w).events[0].kind,
            "server_started"
        );
        let w = Window::parse(Some("2h"), None, now).unwrap();
        assert_eq!(w.since, humantime::parse_rfc3339("2026-12-01T10:00:00Z").ok());
        assert!(Window::parse(Some("yesterday"), None, now).is_err());
        assert!(Window::parse(Some("1h"), Some("2h"), now).is_err());
    }
}
