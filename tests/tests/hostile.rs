//! Servers that try to blind or fool the monitor (issue 13), run for real under the
//! daemon as root, with the programs in tests/hostile:
//! - syscalls through the 32-bit entry (`int 0x80`) are not decoded as native ones: no
//!   capture holds bytes the process did not write natively, and the process is flagged
//!   (`monitor_status` `compat_syscall`, `mcp_monitor_compat_syscalls_total`);
//! - an fd's kind comes from the kernel at the syscall: responses written through
//!   /proc/self/fd/1 reopened or through a FIFO opened by path are captured and the
//!   calls reported, and so is the last response of a server that closes its stdout
//!   and exits at once;
//! - a server that writes a forged `tools/call` into its own stdin is flagged
//!   (`violation` `stdin_forged`) and the forged call is not reported as the client's;
//! - transports that bypass read/write: a response sent with vmsplice is captured; one
//!   spliced or sent (sendfile) from a file never passes through user memory: the call
//!   ends `lost` and `events_lost{where="kernel_transfer_cut_invisible"}` counts it; a
//!   server that sets up an io_uring is flagged (`monitor_status` `io_uring`,
//!   `mcp_monitor_io_uring_total`); a server on socket stdio that reads with recvmmsg
//!   and writes with sendmmsg has its calls reported (the first message of each call is
//!   copied: a response sent as the second ends `lost`, counted).
use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_tests::{Daemon, mcp::server_events, metrics::wait_metric, stream, unique_tag};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("hostile")
        .join(name)
}

/// A temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(tag);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real python3 (not a launcher script that execs it), so that the watched
/// process is the server from its exec.
fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn start(tag: &str, debug: bool) -> Daemon {
    let glob = format!("*{tag}*");
    let mut args = vec!["--watch", glob.as_str()];
    if debug {
        args.push("--debug-captures");
    }
    Daemon::start(&args).expect("daemon starts")
}

fn wait_watched(d: &Daemon, pid: u32) {
    d.wait_for(WAIT, |e| {
        e["type"] == "server_started" && e["server"]["pid"] == pid
    })
    .unwrap_or_else(|e| panic!("pid {pid} never watched: {e:#}\n{}", d.stderr()));
}

/// The test is the client: it writes requests to the server's stdin and reads its
/// responses from `out` (its stdout, or a FIFO).
struct Client {
    child: Child,
    stdin: Option<Box<dyn Write>>,
    out: BufReader<Box<dyn Read>>,
}

impl Client {
    fn server(tag: &str, mode: &str, fifo: Option<&Path>) -> Self {
        let mut cmd = Command::new(python());
        cmd.arg(fixture("server.py")).args([tag, mode]);
        if let Some(f) = fifo {
            cmd.arg(f).stdout(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped());
        }
        let mut child = cmd.stdin(Stdio::piped()).spawn().expect("starting server.py");
        let stdin = child.stdin.take().map(|s| Box::new(s) as Box<dyn Write>);
        let out: Box<dyn Read> = match fifo {
            // Opened once the server opens its end for writing.
            Some(f) => Box::new(std::fs::File::open(f).expect("opening the FIFO")),
            None => Box::new(child.stdout.take().unwrap()),
        };
        Self {
            child,
            stdin,
            out: BufReader::new(out),
        }
    }

    /// A server whose stdin and stdout are sockets (a socketpair each).
    fn socket_server(tag: &str, mode: &str) -> Self {
        let (stdin, child_in) = UnixStream::pair().unwrap();
        let (out, child_out) = UnixStream::pair().unwrap();
        let child = Command::new(python())
            .arg(fixture("server.py"))
            .args([tag, mode])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(child_in)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(child_out)))
            .spawn()
            .expect("starting server.py");
        Self {
            child,
            stdin: Some(Box::new(stdin)),
            out: BufReader::new(Box::new(out)),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, msg: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{msg}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The response to request `id` (other lines skipped).
    fn response(&mut self, id: u64) -> Value {
        loop {
            let mut line = String::new();
            assert!(
                self.out.read_line(&mut line).unwrap() > 0,
                "server closed before answering {id}"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }

    /// initialize, initialized, then one tools/call of `echo` (id 2).
    fn session(&mut self) -> Value {
        self.send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hostile-test", "version": "1.0"}}}),
        );
        self.response(1);
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        self.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}}}));
        self.response(2)
    }

    /// Closes its stdin and waits for it to exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The one `echo` call the client made, reported ok, and nothing else.
fn assert_echo_reported(d: &Daemon, pid: u32) {
    let calls = server_events(d, "tool_call", &json!(pid));
    assert_eq!(calls.len(), 1, "one tool_call: {calls:#?}\n{}", d.stderr());
    let c = &calls[0];
    assert_eq!(c["tool"], "echo", "{c:#}");
    assert_eq!(c["request_id"], 2, "{c:#}");
    assert_eq!(c["outcome"], "ok", "{c:#}");
    assert_eq!(c["agent"]["client"]["name"], "hostile-test", "{c:#}");
}

/// A daemon, and the fixture server `c` started in `mode` (on a socketpair with
/// `socket`), watched, through the client's echo session: the server answered.
fn answered(d: &Daemon, mut c: Client) -> (Client, u32) {
    let pid = c.pid();
    wait_watched(d, pid);
    let r = c.session();
    assert_eq!(r["result"]["content"][0]["text"], "called echo");
    (c, pid)
}

/// The echo session of a fixture server in `mode`, reported as one `ok` call.
fn echo_is_reported(tag: &str, mode: &str, fifo: Option<&Path>) {
    let d = start(tag, false);
    let (c, pid) = answered(&d, Client::server(tag, mode, fifo));
    c.finish();
    assert_echo_reported(&d, pid);
}

/// The server's one call ended `lost`, and `events_lost{where}` counted it.
fn assert_lost_and_counted(d: &Daemon, pid: u32, place: &str) {
    d.wait_for(WAIT, |e| {
        e["type"] == "server_exited" && e["server"]["pid"] == pid
    })
    .unwrap();
    let calls = server_events(d, "tool_call", &json!(pid));
    assert_eq!(calls.len(), 1, "one tool_call: {calls:#?}\n{}", d.stderr());
    assert_eq!(calls[0]["tool"], "echo", "{:#}", calls[0]);
    assert_eq!(calls[0]["outcome"], "lost", "{:#}", calls[0]);
    wait_metric(
        d,
        WAIT,
        "mcp_monitor_events_lost_total",
        |s| s.labels.get("where").is_some_and(|w| w == place),
        |n| n >= 1.0,
    );
}

#[test]
fn syscalls_through_the_32_bit_entry_are_flagged_not_misread() {
    let tag = unique_tag("compat");
    let dir = TempDir::new(&tag);
    let bin = dir.0.join(format!("compat-{tag}"));
    let cc = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg(fixture("compat.c"))
        .status()
        .expect("gcc runs");
    assert!(cc.success(), "compat.c compiles");
    let d = start(&tag, true);
    let mut child = Command::new(&bin)
        .arg(&tag)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_watched(&d, pid);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut got = String::new();
    for _ in 0..3 {
        out.read_line(&mut got).unwrap();
    }
    // What the process really wrote: natively, and once through the 32-bit write.
    assert_eq!(got, "native-1\ncompat-write\nnative-2\n");
    let flagged = d
        .wait_for(WAIT, |e| e["status"] == "compat_syscall" && e["pid"] == pid)
        .unwrap_or_else(|e| panic!("no compat_syscall event: {e:#}\n{}", d.stderr()));
    assert_eq!(flagged["type"], "monitor_status");
    assert_eq!(flagged["server"]["pid"], pid, "{flagged:#}");
    assert!(
        flagged["exe"]
            .as_str()
            .unwrap()
            .ends_with(&format!("compat-{tag}")),
        "{flagged:#}"
    );
    assert_eq!(
        flagged["syscall_nr"], 4,
        "the 32-bit write came first: {flagged:#}"
    );
    assert!(
        flagged["detail"].as_str().unwrap().contains("blind spot"),
        "{flagged:#}"
    );
    wait_metric(
        &d,
        WAIT,
        "mcp_monitor_compat_syscalls_total",
        |_| true,
        |n| n >= 2.0,
    );
    drop(stdin);
    let _ = child.wait();
    d.wait_for(WAIT, |e| {
        e["type"] == "server_exited" && e["server"]["pid"] == pid
    })
    .unwrap();
    let events = d.events();
    // Only what it wrote natively: the 32-bit getpid with a writev's registers is not a
    // writev, and the 32-bit write is not decoded either.
    let written = stream(&events, pid, 1, "write").unwrap();
    assert_eq!(String::from_utf8_lossy(&written), "native-1\nnative-2\n");
    let flags: Vec<_> = events
        .iter()
        .filter(|e| e["status"] == "compat_syscall" && e["pid"] == pid)
        .collect();
    assert_eq!(flags.len(), 1, "flagged once per process");
}

#[test]
fn responses_through_a_reopened_proc_fd_are_captured() {
    echo_is_reported(&unique_tag("procfd"), "procfd", None);
}

#[test]
fn responses_through_a_fifo_opened_by_path_are_captured() {
    let tag = unique_tag("fifo");
    let dir = TempDir::new(&tag);
    let fifo = dir.0.join("responses");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // Safety: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    echo_is_reported(&tag, "fifo", Some(&fifo));
}

#[test]
fn the_last_response_of_a_server_that_closes_and_exits_at_once_is_reported() {
    let tag = unique_tag("exit");
    let d = start(&tag, false);
    for _ in 0..3 {
        let (c, pid) = answered(&d, Client::server(&tag, "exit", None));
        c.finish();
        assert_echo_reported(&d, pid);
    }
}

#[test]
fn a_server_writing_into_its_own_stdin_is_flagged_and_not_taken_for_its_client() {
    let tag = unique_tag("forge");
    let d = start(&tag, false);
    let mut c = Client::server(&tag, "forge", None);
    let pid = c.pid();
    wait_watched(&d, pid);
    let r = c.session();
    assert_eq!(r["result"]["content"][0]["text"], "called echo");
    c.finish();
    // The client's call, and only it: the forged tools/call (id 999) is not reported.
    assert_echo_reported(&d, pid);
    let violations = server_events(&d, "violation", &json!(pid));
    let forged: Vec<_> = violations
        .iter()
        .filter(|v| v["kind"] == "stdin_forged")
        .collect();
    assert_eq!(forged.len(), 1, "{violations:#?}");
    let v = forged[0];
    assert_eq!(v["writer"]["pid"], pid, "{v:#}");
    assert!(v["data"].as_str().unwrap().contains("forged_tool"), "{v:#}");
    assert!(
        v["detail"].as_str().unwrap().contains("cannot be told apart"),
        "{v:#}"
    );
    wait_metric(
        &d,
        WAIT,
        "mcp_scope_violations_total",
        |s| s.labels.get("kind").is_some_and(|k| k == "stdin_forged"),
        |n| n >= 1.0,
    );
    assert!(
        !d.events().iter().any(|e| e["status"] == "stdin_forged_unmatched"),
        "the forged line was found whole"
    );
}

#[test]
fn a_response_sent_with_vmsplice_is_captured() {
    echo_is_reported(&unique_tag("vmsplice"), "vmsplice", None);
}

/// vmsplice on a pipe's read end copies out of it, as readv would: requests read so
/// are the client's, not writes into the server's own stdin.
#[test]
fn requests_read_with_vmsplice_are_captured_as_reads() {
    let tag = unique_tag("vmsplicein");
    echo_is_reported(&tag, "vmsplice_in", None);
}

/// A response that moved inside the kernel (from a file into the stdout pipe): its
/// bytes are missing, counted, and the call ends lost rather than incomplete.
fn a_response_moved_in_the_kernel_is_lost_and_counted(mode: &str) {
    let tag = unique_tag(mode);
    let d = start(&tag, false);
    let (c, pid) = answered(&d, Client::server(&tag, mode, None));
    c.finish();
    assert_lost_and_counted(&d, pid, "kernel_transfer_cut_invisible");
}

#[test]
fn a_response_spliced_from_a_file_is_lost_and_counted() {
    a_response_moved_in_the_kernel_is_lost_and_counted("splice");
}

#[test]
fn a_response_sent_with_sendfile_is_lost_and_counted() {
    a_response_moved_in_the_kernel_is_lost_and_counted("sendfile");
}

#[test]
fn a_server_setting_up_an_io_uring_is_flagged() {
    let tag = unique_tag("io_uring");
    let d = start(&tag, false);
    let (c, pid) = answered(&d, Client::server(&tag, "io_uring", None));
    let flagged = d
        .wait_for(WAIT, |e| e["status"] == "io_uring" && e["pid"] == pid)
        .unwrap_or_else(|e| panic!("no io_uring event: {e:#}\n{}", d.stderr()));
    assert_eq!(flagged["type"], "monitor_status");
    assert_eq!(flagged["server"]["pid"], pid, "{flagged:#}");
    assert!(flagged["exe"].as_str().unwrap().contains("python"), "{flagged:#}");
    assert!(
        flagged["detail"].as_str().unwrap().contains("not see"),
        "{flagged:#}"
    );
    wait_metric(&d, WAIT, "mcp_monitor_io_uring_total", |_| true, |n| n >= 1.0);
    c.finish();
    // Its calls are still reported; the flag is raised once.
    assert_echo_reported(&d, pid);
    let flags = d
        .events()
        .iter()
        .filter(|e| e["status"] == "io_uring" && e["pid"] == pid)
        .count();
    assert_eq!(flags, 1, "flagged once per process");
}

#[test]
fn a_server_on_sockets_using_recvmmsg_and_sendmmsg_is_captured() {
    let tag = unique_tag("mmsg");
    let d = start(&tag, false);
    let (c, pid) = answered(&d, Client::socket_server(&tag, "mmsg"));
    c.finish();
    assert_echo_reported(&d, pid);
}

#[test]
fn a_response_in_a_second_sendmmsg_message_is_lost_and_counted() {
    let tag = unique_tag("mmsg2");
    let d = start(&tag, false);
    let (c, pid) = answered(&d, Client::socket_server(&tag, "mmsg2"));
    c.finish();
    assert_lost_and_counted(&d, pid, "kernel_transfer_cut_limit");
}
