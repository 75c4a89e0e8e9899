//! Who is on the other end of a stdio server's pipes: the process that holds the
//! other end of its stdin (normally the parent that spawned it, but not when a shell
//! or a launcher sits in between).
use std::{fs, path::Path};

use crate::host::{fds::FdKind, procs::Process};

/// The inodes of a server's stdin and stdout, when they are pipes or sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
/// Reads every /proc/PID/fd once; processes that vanish are skipped.
pub fn client_candidates(proc_root: &Path, server: u32, exclude: &[u32]) -> Vec<u32> {
    let Ok(link) = fs::read_link(proc_root.join(server.to_string()).join("fd/0")) else {
        return Vec::new();
    };
    match FdKind::from_link(&link.to_string_lossy()) {
        FdKind::Pipe { inode } => holders(proc_root, &format!("pipe:[{inode}]"), exclude, true),
        FdKind::Socket { inode } => match unix_peer(inode) {
            Some(peer) => holders(proc_root, &format!("socket:[{peer}]"), exclude, false),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Processes (not in `exclude`) with an fd whose link is `target`; with `writers`, only
/// those that opened it for writing (from /proc/PID/fdinfo).
fn holders(proc_root: &Path, target: &str, exclude: &[u32], writers: bool) -> Vec<u32> {
    let mut found = Vec::new();
    for pid in crate::host::procs::pids(proc_root) {
        if exclude.contains(&pid) {
            continue;
        }
        let dir = proc_root.join(pid.to_string());
        let Ok(fds) = fs::read_dir(dir.join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == target)
                && (!writers || opened_for_writing(&dir.join("fdinfo").join(fd.file_name())))
        });
        if holds {
            found.push(pid);
        }
    }
    found.sort_unstable();
    found
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
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_PEER: u32 = 0x4;
    const UNIX_DIAG_PEER: u16 = 2;
    const NLMSG_ERROR: u16 = 2;
    // struct nlmsghdr (16 bytes) + struct unix_diag_req (24 bytes).
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req[24..28].copy_from_slice(&u32::try_from(inode).ok()?.to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
    // Safety: plain socket calls on an fd owned (and closed) here, buffers in bounds.
    let reply = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return None;
        }
        let mut buf = vec![0u8; 8192];
        let sent = libc::send(fd, req.as_ptr().cast(), req.len(), 0);
        let n = if sent == req.len() as isize {
            libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)
        } else {
            -1
        };
        libc::close(fd);
        buf.truncate(usize::try_from(n).ok()?);
        buf
    };
    parse_peer(&reply, NLMSG_ERROR, UNIX_DIAG_PEER)
}

/// The UNIX_DIAG_PEER attribute of the first message of a sock_diag reply.
fn parse_peer(reply: &[u8], nlmsg_error: u16, peer_attr: u16) -> Option<u64> {
    let u16_at = |b: &[u8], i: usize| b.get(i..i + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]));
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
    };
    let len = u32_at(reply, 0)? as usize;
    if u16_at(reply, 4)? == nlmsg_error {
        return None;
    }
    let msg = reply.get(..len.min(reply.len()))?;
    // nlmsghdr (16) + unix_diag_msg (16), then 4-byte aligned attributes.
    let mut at = 32;
    while at + 4 <= msg.len() {
        let rta_len = u16_at(msg, at)? as usize;
        if rta_len < 4 {
            return None;
        }
        if u16_at(msg, at + 2)? == peer_attr {
            return u32_at(msg, at + 4).map(u64::from);
        }
        at += (rta_len + 3) & !3;
    }
    None
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
}

impl ClientProcess {
    pub fn from_process(p: &Process) -> Self {
        Self {
            pid: p.pid,
            uid: p.uid,
            exe: p.exe.clone(),
            cmdline: p.cmdline_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let got = client_candidates(Path::new("/proc"), sleep_pid, &[sleep_pid]);
        assert_eq!(got, vec![std::process::id()]);
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
}
