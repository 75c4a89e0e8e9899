//! The daemon, as root, captures exactly the bytes watched processes exchange over
//! their stdio pipes, follows forks, ignores unmatched processes and stops cleanly.
use std::{
    io::{Read, Write},
    os::fd::AsRawFd,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use integration_tests::{Daemon, captures_of, kernel_watched, stream, unique_tag};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn peer(tag: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pipe-peer"))
        .args(["--tag", tag])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting pipe-peer")
}

fn watch_args(tag: &str) -> Vec<String> {
    vec!["--watch".into(), format!("*{tag}*"), "--debug-captures".into()]
}

fn start(tag: &str) -> Daemon {
    let args = watch_args(tag);
    Daemon::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).expect("daemon starts")
}

/// Waits until the daemon announces it watches `pid`.
fn wait_watched(d: &Daemon, pid: u32) {
    d.wait_for(WAIT, |e| {
        e["type"] == "server_started" && e["server"]["pid"] == pid
    })
    .unwrap_or_else(|e| panic!("pid {pid} never watched: {e:#}\n{}", d.stderr()));
}

/// Waits until the (pid, fd, direction) stream has `len` bytes, then returns it.
fn wait_stream(d: &Daemon, pid: u32, fd: i32, dir: &str, len: usize) -> Vec<u8> {
    let _ = d.wait_until(WAIT, |events| {
        stream(events, pid, fd, dir).is_ok_and(|s| s.len() >= len)
    });
    stream(&d.events(), pid, fd, dir).expect("a gap-free stream")
}

/// Sends `input` to the child's stdin (then closes it) while reading all of its stdout.
fn exchange(child: &mut Child, input: Vec<u8>) -> Vec<u8> {
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || stdin.write_all(&input).expect("writing to the peer"));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    out
}

fn pipe_inode(fd: &impl AsRawFd) -> u64 {
    // Safety: fstat on an open fd into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
    st.st_ino
}

/// Bytes that are neither text nor repetitive, so misplaced chunks cannot go unnoticed.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Keep newlines out: they frame messages.
            match (x >> 24) as u8 {
                b'\n' => 0,
                b => b,
            }
        })
        .collect()
}

#[test]
fn stdio_exchange_is_captured_byte_exact_in_both_directions() {
    let tag = unique_tag("echo");
    let d = start(&tag);
    let mut child = peer(&tag, &["echo"]);
    let pid = child.id();
    let inode = pipe_inode(child.stdin.as_ref().unwrap());
    wait_watched(&d, pid);

    let mut input = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\n".to_vec();
    let mut big = pattern(1 << 20, 7);
    big.push(b'\n');
    input.extend_from_slice(&big);
    input.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}\n");
    let echoed = exchange(&mut child, input.clone());
    assert_eq!(echoed, input, "the peer echoes");

    let read = wait_stream(&d, pid, 0, "read", input.len());
    assert_eq!(read.len(), input.len());
    assert!(
        read == input,
        "bytes read by the watched process differ from what was sent"
    );
    let written = wait_stream(&d, pid, 1, "write", input.len());
    assert!(
        written == input,
        "bytes written by the watched process differ from what it sent"
    );

    let events = d.events();
    let caps = captures_of(&events, pid);
    assert!(
        caps.iter().all(|e| e["fd_kind"] == "pipe"),
        "stdio is classified as pipes"
    );
    assert!(
        caps.iter().filter(|e| e["fd"] == 0).all(|e| e["inode"] == inode),
        "stdin capture carries the pipe inode {inode}"
    );
    assert!(caps.iter().all(|e| e["truncated"] == false));
}

#[test]
fn message_split_over_100_writes_reassembles() {
    let tag = unique_tag("split");
    let d = start(&tag);
    let mut msg = pattern(100 * 1000 - 1, 11);
    msg.push(b'\n');
    let file = std::env::temp_dir().join(format!("{tag}.bin"));
    std::fs::write(&file, &msg).unwrap();
    let mut child = peer(&tag, &["split", "100", file.to_str().unwrap()]);
    let pid = child.id();
    wait_watched(&d, pid);
    let out = exchange(&mut child, b"go\n".to_vec());
    assert!(out == msg);
    let written = wait_stream(&d, pid, 1, "write", msg.len());
    assert!(written == msg, "reassembled stream differs");
    let events = d.events();
    let writes: Vec<_> = captures_of(&events, pid)
        .into_iter()
        .filter(|e| e["fd"] == 1)
        .collect();
    assert_eq!(writes.len(), 100, "one capture per write()");
    assert!(
        writes
            .iter()
            .all(|e| e["syscall"] == "write" && e["length"] == 1000)
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn one_megabyte_write_is_captured_in_chunks_of_one_syscall() {
    let tag = unique_tag("burst");
    let d = start(&tag);
    let mut msg = pattern((1 << 20) - 1, 3);
    msg.push(b'\n');
    let file = std::env::temp_dir().join(format!("{tag}.bin"));
    std::fs::write(&file, &msg).unwrap();
    let mut child = peer(&tag, &["burst", file.to_str().unwrap()]);
    let pid = child.id();
    wait_watched(&d, pid);
    let out = exchange(&mut child, b"go\n".to_vec());
    assert!(out == msg);
    let written = wait_stream(&d, pid, 1, "write", msg.len());
    assert!(written == msg, "reassembled 1 MiB write differs");
    let events = d.events();
    let writes: Vec<_> = captures_of(&events, pid)
        .into_iter()
        .filter(|e| e["fd"] == 1)
        .collect();
    assert!(
        writes.iter().all(|e| e["total"] == msg.len() as u64),
        "all chunks belong to one write()"
    );
    assert_eq!(writes.len(), msg.len().div_ceil(16384), "16 KiB chunks");
    let _ = std::fs::remove_file(file);
}

#[test]
fn writev_is_captured_as_the_concatenation_of_its_iovecs() {
    let tag = unique_tag("writev");
    let d = start(&tag);
    let mut child = peer(&tag, &["writev", "{\"jsonrpc\":\"2.0\",", "", "\"id\":3}\n"]);
    let pid = child.id();
    wait_watched(&d, pid);
    let out = exchange(&mut child, b"go\n".to_vec());
    let expected = b"{\"jsonrpc\":\"2.0\",\"id\":3}\n".to_vec();
    assert_eq!(out, expected);
    assert_eq!(wait_stream(&d, pid, 1, "write", expected.len()), expected);
    let events = d.events();
    let writes: Vec<&Value> = captures_of(&events, pid)
        .into_iter()
        .filter(|e| e["fd"] == 1)
        .collect();
    assert!(writes.iter().all(|e| e["syscall"] == "writev"), "{writes:?}");
    // The stdin "go" line is captured too.
    assert_eq!(wait_stream(&d, pid, 0, "read", 3), b"go\n");
}

#[test]
fn child_forked_by_a_watched_process_is_watched() {
    let tag = unique_tag("fork");
    let d = start(&tag);
    let mut child = peer(&tag, &["fork"]);
    let pid = child.id();
    wait_watched(&d, pid);
    let out = String::from_utf8(exchange(&mut child, b"go\n".to_vec())).unwrap();
    let child_pid: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .and_then(|p| p.parse().ok())
        .expect("child line");
    let line = format!("child {child_pid}\n");
    assert_eq!(
        wait_stream(&d, child_pid, 1, "write", line.len()),
        line.as_bytes()
    );
    assert_eq!(
        wait_stream(&d, pid, 1, "write", 1),
        format!("parent {pid}\n").as_bytes()
    );
}

#[test]
fn first_bytes_of_a_server_that_talks_at_once_are_captured() {
    let tag = unique_tag("hello");
    let d = start(&tag);
    // Writes at its first instruction, before the daemon can have read its exec: the
    // kernel captures new images until the daemon has decided.
    for _ in 0..5 {
        let mut child = peer(&tag, &["hello"]);
        let pid = child.id();
        let out = exchange(&mut child, b"bye\n".to_vec());
        let hello = format!("hello {pid}\nbye\n");
        assert_eq!(out, hello.as_bytes());
        assert_eq!(
            wait_stream(&d, pid, 1, "write", hello.len()),
            hello.as_bytes(),
            "pid {pid}"
        );
    }
}

#[test]
fn unmatched_process_is_not_captured() {
    let tag = unique_tag("unmatched");
    let d = start(&tag);
    // Same program, same traffic, but a command line the watch glob does not match.
    // It stays alive until the end: an exited process leaves the watched set anyway.
    let mut other = peer("someone-else", &["echo"]);
    let other_pid = other.id();
    let mut other_in = other.stdin.take().unwrap();
    other_in.write_all(b"not for you\n").unwrap();
    let mut echoed = [0u8; 12];
    other.stdout.as_mut().unwrap().read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"not for you\n");
    // A matched process afterwards: once its exec is handled, the earlier one's is too.
    let mut child = peer(&tag, &["echo"]);
    let pid = child.id();
    wait_watched(&d, pid);
    // The kernel side: the daemon has released the unmatched process from the watched
    // set it entered as pending at its exec. Userspace dropping its bytes is not
    // enough: the kernel would still copy every byte it reads and writes.
    let in_kernel = kernel_watched(&d).unwrap();
    assert!(
        in_kernel.contains(&pid),
        "the matched peer {pid} is watched: {in_kernel:?}"
    );
    assert!(
        !in_kernel.contains(&other_pid),
        "unmatched pid {other_pid} is still in the kernel's watched set"
    );
    assert_eq!(exchange(&mut child, b"for you\n".to_vec()), b"for you\n");
    assert_eq!(wait_stream(&d, pid, 1, "write", 8), b"for you\n");
    drop(other_in);
    assert!(other.wait().unwrap().success());
    let events = d.events();
    assert!(
        captures_of(&events, other_pid).is_empty(),
        "unmatched pid {other_pid} was captured"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "server_started" && e["server"]["pid"] == other_pid),
        "unmatched pid reported as a server"
    );
}

#[test]
fn sigterm_exits_zero_within_two_seconds_and_detaches_every_program() {
    let tag = unique_tag("sigterm");
    let d = start(&tag);
    let ids: Vec<u32> = d.ready["programs"]
        .as_array()
        .expect("ready event lists programs")
        .iter()
        .map(|p| p["id"].as_u64().unwrap() as u32)
        .collect();
    // The six capture programs, the connect tracker and the two TLS uprobes (loaded
    // at start, attached per process).
    assert_eq!(ids.len(), 9, "{:?}", d.ready);
    let loaded = |ids: &[u32]| -> Vec<u32> {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .filter(|id| ids.contains(id))
            .collect()
    };
    assert_eq!(
        loaded(&ids).len(),
        ids.len(),
        "programs are loaded while the daemon runs"
    );
    let (status, elapsed, events) = d.stop(Duration::from_secs(2)).expect("stops");
    assert!(status.success(), "exit status {status:?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(events.last().unwrap()["status"], "stopped");
    // Program objects are freed asynchronously (RCU) after their last fd closes.
    let mut left = loaded(&ids);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
        left = loaded(&ids);
    }
    assert!(left.is_empty(), "programs still loaded after exit: {left:?}");
}

#[test]
fn not_root_is_refused_with_one_clear_line() {
    integration_tests::require_root();
    // A copy anyone may run: the build folder may sit under a private home.
    let dir = std::env::temp_dir().join(unique_tag("notroot"));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("mcp-monitor");
    std::fs::copy(integration_tests::daemon_binary(), &bin).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["run", "--metrics-addr", "127.0.0.1:0"])
        .output()
        .expect("setpriv (util-linux)");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("mcp-monitor: error: must run as root: it loads eBPF programs"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// A process that exec'd while the ring buffer was full lost its exec record: the
/// kernel made it pending and no one decided. The daemon finds such entries against
/// its own process table and drops them (two checks 5 s apart), counted. (Payload
/// cannot fill the ring's last eighth, kept for exec/fork/exit records: it takes a
/// storm of execs to lose one.)
#[test]
fn a_process_pending_with_its_exec_record_lost_is_dropped_from_the_watched_set() {
    let tag = unique_tag("lostexec");
    let d = Daemon::start(&["--watch", &format!("*{tag}*"), "--ring-buffer-mb", "1"]).expect("daemon starts");
    let daemon = d.pid().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &daemon])
                .status()
                .unwrap()
                .success()
        );
    };
    // A watched shell whose execs fill the 1 MiB ring while the daemon is stopped.
    let dir = std::env::temp_dir();
    let go = dir.join(format!("{tag}.go"));
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; i=0; \
         while [ $i -lt 5000 ]; do /bin/true; i=$((i+1)); done # {tag}",
        go = go.display()
    );
    let mut flood = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    wait_watched(&d, flood.id());
    signal("-STOP");
    // The flood starts once the daemon is stopped.
    std::fs::write(&go, b"").unwrap();
    assert!(flood.wait().unwrap().success());
    let _ = std::fs::remove_file(&go);
    // Its exec is pending in the kernel; its record has no room.
    let mut lost = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = lost.id();
    thread::sleep(Duration::from_millis(200));
    signal("-CONT");
    assert!(
        kernel_watched(&d).unwrap().contains(&pid),
        "pending without its exec record"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while kernel_watched(&d).unwrap().contains(&pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "still in the watched set: {}",
            d.stderr()
        );
        thread::sleep(Duration::from_millis(250));
    }
    let _ = lost.kill();
    let _ = lost.wait();
    assert!(
        d.stderr()
            .contains(&format!("pid {pid}: in the kernel's watched set"))
    );
}

/// A pid a watched process held, recycled for another watched process, names the new
/// one: the fds the first opened by path (not captured, as files) do not make the
/// second's pipes on the same fd numbers files too.
#[test]
fn a_recycled_pid_does_not_inherit_the_files_its_last_holder_opened() {
    let tag = unique_tag("pidreuse");
    let d = start(&tag);
    // The first holder opens a file and moves it to fd 9, then waits for its stdin.
    let first_script = "import os, sys\nf = os.open('/etc/hostname', os.O_RDONLY)\nos.dup2(f, 9)\nprint('ready', flush=True)\nsys.stdin.read()\n";
    let mut first = Command::new("python3")
        .args(["-c", first_script, &tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(first.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    wait_watched(&d, pid);
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    d.wait_for(WAIT, |e| {
        e["type"] == "server_exited" && e["server"]["pid"] == pid
    })
    .unwrap();
    // The same pid for the second (the host may take it first: try again), with a pipe
    // on fd 9 from before its exec: nothing the kernel saw it open or dup.
    let second_script = "import os, time\nos.write(9, b'recycled' * 8)\ntime.sleep(30)\n";
    let mut fds = [0; 2];
    // Safety: a two-int array for pipe2(2). Close-on-exec: only fd 9 of the second
    // (dup2 clears the flag) gets it, not other tests' children.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let write_end = fds[1];
    let mut second = None;
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", second_script, &tag]);
        // Safety: only dup2 between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::dup2(write_end, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        if child.id() == pid {
            second = Some(child);
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut second = second.expect("pid recycled within 50 tries");
    wait_watched(&d, pid);
    let written = wait_stream(&d, pid, 9, "write", 64);
    assert_eq!(written, b"recycled".repeat(8));
    let _ = second.kill();
    let _ = second.wait();
    // Safety: the pipe's two fds, unused from here.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}
