//! Who is on the other end of a stdio server's pipes: the process that holds the
//! other end of its stdin (normally the parent that spawned it, but not when a shell
//! or a launcher sits in between).
use std::{fs, path::Path};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    unix::{ShowFlags, StateFlags, UnixRequest},
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG};

use crate::host::{fds::FdKind, procs::Process, workload::Workload};

/// The inodes of a server's stdin and stdout, when they are pipes or sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stdio {
    pub stdin: Option<u64>,
    pub stdout: Option<u64>,
}

pub fn stdio_of(proc_root: &Path, pid: u32) -> Stdio {
    let inode = |fd: u32| {
        let link = fs::read_link(proc_root.join(pid.to_string()).join("fd").join(fd.to_string())).ok()?;
        match FdKind::from_link(&link.to_string_lossy()) {
            FdKind::Pipe { inode } | FdKind::Socket { inode } => Some(inode),
            _ => None,
        }
    };
    Stdio {
        stdin: inode(0),
        stdout: inode(1),
    }
}

/// The processes on the other end of a server's stdin, other than those in `exclude`:
/// for a pipe, those holding it open for writing (a shell between client and server
/// holds the read end it passed on); for a Unix socketpair (Node's child_process uses
/// them), those holding the peer socket, which the kernel names through sock_diag.
/// The server's parent is looked at first: when it holds the other end (it spawned the
/// server, the common case) it is the client, and the host is not scanned. Otherwise
/// every /proc/PID/fd is read once; processes that vanish are skipped. `stdin_fd` is
/// the fd it reads its stdin on: 0, unless it moved it (Python's SDK reads a dup of it).
pub fn client_candidates(
    proc_root: &Path,
    server: u32,
    stdin_fd: i32,
    exclude: &[u32],
    parent: u32,
) -> Vec<u32> {
    let fd = format!("fd/{stdin_fd}");
    let Ok(link) = fs::read_link(proc_root.join(server.to_string()).join(fd)) else {
        return Vec::new();
    };
    let (target, writers) = match FdKind::from_link(&link.to_string_lossy()) {
        FdKind::Pipe { inode } => (format!("pipe:[{inode}]"), true),
        FdKind::Socket { inode } => match unix_peer(inode) {
            Some(peer) => (format!("socket:[{peer}]"), false),
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    if parent > 1 && !exclude.contains(&parent) && holds(proc_root, parent, &target, writers) {
        return vec![parent];
    }
    holders(proc_root, &target, exclude, writers)
}

/// Processes (not in `exclude`) with an fd whose link is `target`; with `writers`, only
/// those that opened it for writing (from /proc/PID/fdinfo).
fn holders(proc_root: &Path, target: &str, exclude: &[u32], writers: bool) -> Vec<u32> {
    let mut found = Vec::new();
    for pid in crate::host::procs::pids(proc_root) {
        if exclude.contains(&pid) {
            continue;
        }
        if holds(proc_root, pid, target, writers) {
            found.push(pid);
        }
    }
    found.sort_unstable();
    found
}

/// Whether `pid` has an fd whose link is `target` (with `writers`, opened for writing).
fn holds(proc_root: &Path, pid: u32, target: &str, writers: bool) -> bool {
    let dir = proc_root.join(pid.to_string());
    let Ok(fds) = fs::read_dir(dir.join("fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == target)
            && (!writers || opened_for_writing(&dir.join("fdinfo").join(fd.file_name())))
    })
}

/// `flags:` in fdinfo is octal; O_WRONLY is 1, O_RDWR 2.
fn opened_for_writing(fdinfo: &Path) -> bool {
    let Ok(text) = fs::read_to_string(fdinfo) else {
        return false;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|f| matches!(f & 0o3, 1 | 2))
}

/// The inode of the other end of a connected Unix socket, from the kernel's sock_diag
/// (what `ss -xp` shows as the peer); None when it has no peer or the query fails.
pub fn unix_peer(inode: u64) -> Option<u64> {
    let request = peer_request(u32::try_from(inode).ok()?);
    let socket = Socket::new(NETLINK_SOCK_DIAG).ok()?;
    // Connected to the kernel, so that only its answer is read.
    socket.connect(&NetlinkAddr::new(0, 0)).ok()?;
    if socket.send(&request, 0).ok()? != request.len() {
        return None;
    }
    // One socket's answer: a header, the socket and a few attributes.
    let mut reply = Vec::with_capacity(8192);
    socket.recv(&mut reply, 0).ok()?;
    parse_peer(&reply)
}

/// A SOCK_DIAG_BY_FAMILY request for the Unix socket `inode`, in any state, asking
/// for its peer.
fn peer_request(inode: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::UnixRequest(UnixRequest {
            // Every state: the crate names only two of the kernel's.
            state_flags: StateFlags::from_bits_retain(u32::MAX),
            inode,
            show_flags: ShowFlags::PEER,
            cookie: [0xff; 8], // no cookie
        })
        .into(),
    );
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

/// The peer attribute of a sock_diag reply; None for an error reply (no such socket)
/// or one that does not parse.
fn parse_peer(reply: &[u8]) -> Option<u64> {
    match NetlinkMessage::<SockDiagMessage>::deserialize(reply)
        .ok()?
        .payload
    {
        NetlinkPayload::InnerMessage(SockDiagMessage::UnixResponse(r)) => r.peer().map(u64::from),
        _ => None,
    }
}

/// The two ends of a TCP connection, from /proc/net/tcp and tcp6.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpEnds {
    /// `ip:port` (`[v6]:port`).
    pub local: String,
    pub peer: String,
    /// The socket of the other end, when it is on this host (loopback or a local
    /// address): the row whose ends are these, swapped.
    pub peer_inode: Option<u64>,
}

/// The ends of the TCP socket `inode` as `proc_root`'s network namespace shows them.
pub fn tcp_ends(net_dir: &Path, inode: u64) -> Option<TcpEnds> {
    let mut rows: Vec<(String, String, u64)> = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(net_dir.join(table)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let (Some(local), Some(remote), Some(ino)) = (f.get(1), f.get(2), f.get(9))
                && let (Some(local), Some(remote), Ok(ino)) =
                    (proc_net_addr(local), proc_net_addr(remote), ino.parse::<u64>())
            {
                rows.push((local, remote, ino));
            }
        }
    }
    // Decoded addresses, so that an IPv4 client of a dual-stack (tcp6) listener, which
    // sees `[::ffff:127.0.0.1]`, is matched with its own tcp row.
    let (local, remote, _) = rows.iter().find(|r| r.2 == inode)?;
    let peer_inode = rows
        .iter()
        .find(|r| &r.0 == remote && &r.1 == local && r.2 != 0)
        .map(|r| r.2);
    Some(TcpEnds {
        local: local.clone(),
        peer: remote.clone(),
        peer_inode,
    })
}

/// `0100007F:1F90` -> `127.0.0.1:8080`; 32 hex digits of IPv6 (four host-order
/// words) -> `[::1]:8080`.
fn proc_net_addr(s: &str) -> Option<String> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    match ip.len() {
        8 => {
            let v = u32::from_str_radix(ip, 16).ok()?;
            Some(format!("{}:{port}", std::net::Ipv4Addr::from(v.to_le_bytes())))
        }
        32 => {
            let mut bytes = [0u8; 16];
            for (w, chunk) in bytes.chunks_mut(4).enumerate() {
                let v = u32::from_str_radix(&ip[w * 8..w * 8 + 8], 16).ok()?;
                chunk.copy_from_slice(&v.to_le_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => format!("{v4}:{port}"),
                None => format!("[{v6}]:{port}"),
            })
        }
        _ => None,
    }
}

/// The fds below 64 of `pid` that are read ends of pipes or sockets (a bit each): where
/// a stdio server already running reads its requests.
pub fn stream_read_ends(proc_root: &Path, pid: u32) -> u64 {
    let dir = proc_root.join(pid.to_string());
    let Ok(fds) = fs::read_dir(dir.join("fd")) else {
        return 0;
    };
    let mut mask = 0u64;
    for fd in fds.flatten() {
        let Some(n) = fd.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if n >= 64 || n == 1 || n == 2 {
            continue;
        }
        let stream = fs::read_link(fd.path()).is_ok_and(|t| {
            matches!(
                FdKind::from_link(&t.to_string_lossy()),
                FdKind::Pipe { .. } | FdKind::Socket { .. }
            )
        });
        // A pipe's write end is never read; a socket reads both ways.
        let readable = !opened_for_writing(&dir.join("fdinfo").join(n.to_string()))
            || fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if stream && readable {
            mask |= 1 << n;
        }
    }
    mask
}

/// Whether two processes share a network namespace: the connect tracker keys by
/// address, and two namespaces each have their own 127.0.0.1.
pub fn same_netns(proc_root: &Path, a: u32, b: u32) -> bool {
    let ns = |pid: u32| fs::read_link(proc_root.join(pid.to_string()).join("ns/net")).ok();
    matches!((ns(a), ns(b)), (Some(x), Some(y)) if x == y)
}

/// A process holding socket `inode`, looked for from the newest process down, and the
/// search ends at the first: a connection's client is usually a recent process, and
/// reading every process's fds took 10-50 ms per accepted connection here, enough for
/// the daemon to fall behind a client's short connections. A socket shared across a
/// fork names the child.
pub fn socket_holder(proc_root: &Path, inode: u64, exclude: &[u32]) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    let mut pids: Vec<u32> = crate::host::procs::pids(proc_root).collect();
    pids.sort_unstable_by(|a, b| b.cmp(a));
    pids.into_iter()
        .filter(|p| !exclude.contains(p))
        .find(|&pid| holds(proc_root, pid, &target, false))
}

/// The client among the candidates: the server's parent when it is one (it spawned the
/// server), else the first; with none (the client closed its end), the parent.
pub fn pick_client(candidates: &[u32], parent: u32) -> Option<u32> {
    if candidates.contains(&parent) || candidates.is_empty() {
        return (parent > 1).then_some(parent);
    }
    candidates.first().copied()
}

/// The process on the other end of the server's stdio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProcess {
    pub pid: u32,
    pub uid: u32,
    pub exe: String,
    pub cmdline: String,
    /// Its cgroup, container and pod (looked up by the pipeline, which records it).
    pub workload: Option<Workload>,
}

impl ClientProcess {
    pub fn from_process(p: &Process) -> Self {
        Self {
            pid: p.pid,
            uid: p.uid,
            exe: p.exe.clone(),
            cmdline: p.cmdline_string(),
            workload: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket_inode(fd: &impl std::os::fd::AsRawFd) -> u64 {
        let link = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        match FdKind::from_link(&link.to_string_lossy()) {
            FdKind::Socket { inode } => inode,
            other => panic!("not a socket: {other:?}"),
        }
    }

    #[test]
    fn the_other_end_of_a_loopback_connection_is_found() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let listener = std::net::TcpListener::bind(bind).unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            let ends = tcp_ends(Path::new("/proc/self/net"), socket_inode(&accepted)).unwrap();
            assert_eq!(ends.local, listener.local_addr().unwrap().to_string());
            assert_eq!(ends.peer, client.local_addr().unwrap().to_string());
            assert_eq!(ends.peer_inode, Some(socket_inode(&client)));
            let me = std::process::id();
            assert_eq!(
                holders(
                    Path::new("/proc"),
                    &format!("socket:[{}]", socket_inode(&client)),
                    &[],
                    false
                ),
                [me]
            );
        }
        // An IPv4 client of a dual-stack listener (Node's default).
        let listener = std::net::TcpListener::bind("[::]:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let ends = tcp_ends(Path::new("/proc/self/net"), socket_inode(&accepted)).unwrap();
        assert_eq!(ends.peer, client.local_addr().unwrap().to_string());
        assert_eq!(ends.peer_inode, Some(socket_inode(&client)));
        assert_eq!(proc_net_addr("0100007F:1F90").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(
            proc_net_addr("0000000000000000FFFF00000100007F:1F90").as_deref(),
            Some("127.0.0.1:8080"),
            "IPv4-mapped"
        );
        assert_eq!(proc_net_addr("junk"), None);
    }

    #[test]
    fn picks_parent_when_it_holds_the_pipe_or_nobody_does() {
        assert_eq!(pick_client(&[10, 20], 20), Some(20));
        assert_eq!(pick_client(&[10, 30], 20), Some(10));
        assert_eq!(pick_client(&[], 20), Some(20));
        assert_eq!(pick_client(&[], 1), None);
    }

    #[test]
    fn finds_the_writer_of_a_real_pipe_not_the_reader_in_between() {
        use std::process::{Command, Stdio as S};
        // This process writes into `sh`'s stdin; sh passes it on to `sleep`: sh holds the
        // read end too, but only this process holds the write end.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 5; true"])
            .stdin(S::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let sleep_pid: u32 = std::fs::read_to_string(format!("/proc/{}/task/{}/children", sh.id(), sh.id()))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let me = std::process::id();
        let got = client_candidates(Path::new("/proc"), sleep_pid, 0, &[sleep_pid], 0);
        assert_eq!(got, vec![me]);
        // Its parent (sh) holds only a read end: not the client, the host is scanned.
        let got = client_candidates(Path::new("/proc"), sleep_pid, 0, &[sleep_pid], sh.id());
        assert_eq!(got, vec![me]);
        // A parent that holds the write end is the client, without a scan.
        let got = client_candidates(Path::new("/proc"), sleep_pid, 0, &[sleep_pid], me);
        assert_eq!(got, vec![me]);
        sh.kill().unwrap();
        sh.wait().unwrap();
    }

    #[test]
    fn finds_the_peer_of_a_socketpair() {
        use std::os::unix::{io::AsRawFd, net::UnixStream};
        let (a, b) = UnixStream::pair().unwrap();
        let inode = |fd: i32| match FdKind::from_link(
            &fs::read_link(format!("/proc/self/fd/{fd}"))
                .unwrap()
                .to_string_lossy(),
        ) {
            FdKind::Socket { inode } => inode,
            other => panic!("{other:?}"),
        };
        assert_eq!(unix_peer(inode(a.as_raw_fd())), Some(inode(b.as_raw_fd())));
        assert_eq!(unix_peer(inode(b.as_raw_fd())), Some(inode(a.as_raw_fd())));
        assert_eq!(unix_peer(u32::MAX as u64 - 7), None);
    }

    #[test]
    fn the_peer_request_is_the_kernels_layout_and_junk_replies_have_no_peer() {
        let req = peer_request(0x1234_5678);
        // nlmsghdr (16 bytes) + unix_diag_req (24 bytes).
        assert_eq!(req.len(), 40);
        assert_eq!(req[0..4], 40u32.to_ne_bytes());
        assert_eq!(req[4..6], 20u16.to_ne_bytes(), "SOCK_DIAG_BY_FAMILY");
        assert_eq!(req[6..8], (libc::NLM_F_REQUEST as u16).to_ne_bytes());
        assert_eq!(req[16], libc::AF_UNIX as u8);
        assert_eq!(req[20..24], u32::MAX.to_ne_bytes(), "every state");
        assert_eq!(req[24..28], 0x1234_5678u32.to_ne_bytes());
        assert_eq!(req[28..32], 4u32.to_ne_bytes(), "UDIAG_SHOW_PEER");
        assert_eq!(req[32..40], [0xff; 8], "no cookie");
        assert_eq!(parse_peer(&[]), None);
        assert_eq!(parse_peer(&[0xff; 7]), None);
        assert_eq!(parse_peer(&req[..30]), None, "cut short");
    }

    #[test]
    fn a_tcp_client_is_found_newest_first_and_namespaces_are_told_apart() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _accepted = listener.accept().unwrap();
        let me = std::process::id();
        let inode = socket_inode(&client);
        // This process, or a child another test is forking (it holds our fds until its
        // exec closes them).
        let ours = |pid: u32| {
            pid == me
                || fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                    s.lines()
                        .any(|l| l.split_whitespace().eq(["PPid:", &me.to_string()]))
                })
        };
        let holder = socket_holder(Path::new("/proc"), inode, &[]);
        assert!(holder.is_some_and(ours), "{holder:?}");
        assert!(socket_holder(Path::new("/proc"), inode, &[me]).is_none_or(|p| p != me));
        assert!(same_netns(Path::new("/proc"), me, me));
        assert!(!same_netns(Path::new("/proc"), me, u32::MAX), "no such process");
        // A process in a network namespace of its own has a 127.0.0.1 of its own.
        let mut other = std::process::Command::new("unshare")
            .args(["--net", "sleep", "30"])
            .spawn()
            .unwrap();
        let pid = other.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // `unshare` execs `sleep` once the namespace is made.
        while fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| !e.ends_with("sleep")) {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare --net did not exec sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!same_netns(Path::new("/proc"), me, pid));
        let _ = other.kill();
        let _ = other.wait();
    }
}
