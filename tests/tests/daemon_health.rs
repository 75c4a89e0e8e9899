//! The daemon's own health, as root with the real daemon: its event stream losing its
//! reader or its disk does not end it (what it could not write is counted and
//! reported), SIGHUP reopens a moved event file, and every counter whose labels are
//! known in advance exists at 0 from the start.
mod common;

use std::{
    ffi::CString,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{TempDir, http_get, parse_exposition};
use integration_tests::{Daemon, daemon_binary, require_root, unique_tag};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A pipe-peer the daemon watches (its command line holds `tag`); it exits when its
/// stdin closes, so each one is `server_started`, an `unregistered_server` violation
/// and `server_exited`: three events.
fn peer(tag: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pipe-peer"))
        .args(["--tag", tag, "echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting pipe-peer")
}

/// Starts a peer, lets it live `life`, ends it, returns its pid.
fn peer_session(tag: &str, life: Duration) -> u32 {
    let mut p = peer(tag);
    std::thread::sleep(life);
    drop(p.stdin.take());
    assert!(p.wait().unwrap().success());
    p.id()
}

/// The value of one sample of the daemon's /metrics (None: no such series).
fn metric(addr: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    parse_exposition(&body)
        .unwrap()
        .into_iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn wait_metric(addr: &str, name: &str, labels: &[(&str, &str)], ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = metric(addr, name, labels);
        if let Some(v) = v
            && ok(v)
        {
            return v;
        }
        assert!(Instant::now() < deadline, "{name}{labels:?} is {v:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(pid: u32) {
    // Safety: signalling a child of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
}

#[test]
fn the_daemon_outlives_the_reader_of_its_event_stream() {
    require_root();
    let tag = unique_tag("readergone");
    let mut child = Command::new(daemon_binary())
        .args([
            "run",
            "--no-discovery",
            "--watch",
            &format!("*{tag}*"),
            "--events",
            "-",
        ])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready: Value = loop {
        let line = lines.next().expect("daemon wrote no ready event").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["status"] == "ready" {
            break v;
        }
    };
    let addr = ready["metrics_addr"].as_str().unwrap().to_string();
    assert_eq!(
        metric(
            &addr,
            "mcp_monitor_events_dropped_total",
            &[("reason", "broken_pipe")]
        ),
        Some(0.0)
    );
    // The reader goes away (a `| head`, a crashed log shipper).
    drop(lines);
    peer_session(&tag, Duration::from_millis(200));
    let dropped = wait_metric(
        &addr,
        "mcp_monitor_events_dropped_total",
        &[("reason", "broken_pipe")],
        |v| v >= 3.0,
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died with its reader"
    );
    // Still watching: a second server is seen (its events dropped and counted too).
    peer_session(&tag, Duration::from_millis(200));
    wait_metric(
        &addr,
        "mcp_monitor_events_dropped_total",
        &[("reason", "broken_pipe")],
        |v| v >= dropped + 3.0,
    );
    assert_eq!(metric(&addr, "mcp_servers_watched", &[]), Some(0.0));
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_reopens_a_moved_event_file() {
    let tag = unique_tag("logrotate");
    let dir = TempDir::new(&tag);
    let file = dir.path().join("events.jsonl");
    let d = Daemon::start_with_events(&["--watch", &format!("*{tag}*")], &file).unwrap();
    let started = |pid: u32| move |e: &Value| e["type"] == "server_started" && e["server"]["pid"] == pid;
    let a = peer_session(&tag, Duration::ZERO);
    d.wait_for(WAIT, started(a)).unwrap();
    let rotated = dir.path().join("events.jsonl.1");
    std::fs::rename(&file, &rotated).unwrap();
    // Safety: signalling our own child.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + WAIT;
    while !file.exists() {
        assert!(Instant::now() < deadline, "no new event file after SIGHUP");
        std::thread::sleep(Duration::from_millis(10));
    }
    let b = peer_session(&tag, Duration::ZERO);
    d.wait_for(WAIT, |e| e["type"] == "server_exited" && e["server"]["pid"] == b)
        .unwrap();
    let old = integration_tests::read_events(&rotated).unwrap();
    let new = d.events();
    assert!(old.iter().any(started(a)), "{old:#?}");
    assert!(!old.iter().any(started(b)), "b went to the moved file: {old:#?}");
    assert!(new.iter().any(started(b)), "{new:#?}");
    assert!(!new.iter().any(started(a)), "{new:#?}");
}

/// A small tmpfs: a disk that fills up. Unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, bytes: usize) -> Self {
        let c = |s: &str| CString::new(s).unwrap();
        let target = c(dir.to_str().unwrap());
        let opts = c(&format!("size={bytes}"));
        // Safety: valid C strings.
        let rc = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Self(dir.to_path_buf())
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![b'x'; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                return path;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let target = CString::new(self.0.to_str().unwrap()).unwrap();
        // Safety: a valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_full_disk_drops_events_counted_and_reported_once_space_returns() {
    let tag = unique_tag("diskfull");
    let dir = TempDir::new(&tag);
    let disk = SmallDisk::mount(dir.path(), 256 * 1024);
    let file = dir.path().join("events.jsonl");
    let d = Daemon::start_with_events(&["--watch", &format!("*{tag}*")], &file).unwrap();
    let addr = d.ready["metrics_addr"].as_str().unwrap().to_string();
    let filler = disk.fill();
    // The event file's last page may still take a few events: servers come and go
    // until their events are dropped.
    let no_space = || {
        metric(
            &addr,
            "mcp_monitor_events_dropped_total",
            &[("reason", "no_space")],
        )
    };
    for _ in 0..100 {
        if no_space() >= Some(3.0) {
            break;
        }
        peer_session(&tag, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(20));
    }
    let dropped = no_space().unwrap();
    assert!(dropped >= 3.0, "nothing dropped on a full disk");
    std::fs::remove_file(filler).unwrap();
    let c = peer_session(&tag, Duration::ZERO);
    // The file as a reader sees it: at most one torn line (the write that filled the
    // disk may have put out part of one), every other line JSON.
    let deadline = Instant::now() + WAIT;
    let events = loop {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        let parsed: Vec<Option<Value>> = text.lines().map(|l| serde_json::from_str(l).ok()).collect();
        assert!(
            parsed.iter().filter(|p| p.is_none()).count() <= 1,
            "more than one broken line:\n{text}"
        );
        let events: Vec<Value> = parsed.into_iter().flatten().collect();
        if events
            .iter()
            .any(|e| e["type"] == "server_exited" && e["server"]["pid"] == c)
        {
            break events;
        }
        assert!(Instant::now() < deadline, "c never reported:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let reports: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "monitor_status" && e["status"] == "events_dropped")
        .collect();
    assert_eq!(reports.len(), 1, "{events:#?}");
    // Every drop is in the one report, the first ones and any after them.
    let counted = metric(
        &addr,
        "mcp_monitor_events_dropped_total",
        &[("reason", "no_space")],
    )
    .unwrap();
    assert!(counted >= dropped);
    assert_eq!(reports[0]["dropped"].as_f64(), Some(counted), "{:#}", reports[0]);
    assert_eq!(reports[0]["by_reason"]["no_space"].as_f64(), Some(counted));
    let at = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
    assert!(
        at(&|e| e["status"] == "events_dropped")
            < at(&|e| e["type"] == "server_started" && e["server"]["pid"] == c),
        "the report comes first, with the first write that works"
    );
    drop(d);
}

#[test]
fn every_counter_with_known_labels_exists_at_zero_from_the_start() {
    let tag = unique_tag("zeros");
    let d = Daemon::start(&["--watch", &format!("/nothing/{tag}")]).unwrap();
    let addr = d.ready["metrics_addr"].as_str().unwrap();
    let known: &[(&str, &str, &[&str])] = &[
        (
            "mcp_monitor_events_lost_total",
            "where",
            &[
                "kernel_ringbuf_full_data",
                "kernel_ringbuf_full_lifecycle",
                "kernel_transfer_cut_ring",
                "kernel_read_failed",
                "kernel_watch_full",
                "userspace_stream_gap",
                "http_connections_full",
                "sessions_full",
            ],
        ),
        (
            "mcp_monitor_events_dropped_total",
            "reason",
            &["broken_pipe", "no_space", "io_error"],
        ),
        (
            "mcp_monitor_parse_errors_total",
            "what",
            &[
                "record",
                "message",
                "message_oversized",
                "http",
                "http_encoded_body",
                "http_oversized",
                "environ",
            ],
        ),
        (
            "mcp_monitor_discovery_total",
            "result",
            &["stdio_server", "http_server", "not_mcp"],
        ),
        (
            "mcp_monitor_messages_total",
            "direction",
            &["to_server", "to_client"],
        ),
        (
            "mcp_monitor_captured_bytes_total",
            "direction",
            &["read", "write"],
        ),
    ];
    for (name, label, values) in known {
        for v in *values {
            assert_eq!(
                metric(addr, name, &[(label, v)]),
                Some(0.0),
                "{name}{{{label}={v:?}}}"
            );
        }
    }
    // Records flow from the host at once; each kind is there, whatever its count.
    for kind in ["exec", "fork", "exit", "data", "open", "connect", "fd_change"] {
        assert!(
            metric(addr, "mcp_monitor_records_total", &[("kind", kind)]).is_some(),
            "records_total{{kind={kind:?}}} missing"
        );
    }
}
