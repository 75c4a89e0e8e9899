//! Who is on the other end of a stdio server's pipes: the process that holds the
//! other end of its stdin pipe (normally the parent that spawned it).
use std::{fs, path::Path};

use crate::fds::FdKind;

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

/// Processes other than those in `exclude` that hold `inode` (a pipe: both ends share
/// one inode). Reads every /proc/PID/fd once; processes that vanish are skipped.
pub fn holders_of(proc_root: &Path, inode: u64, exclude: &[u32]) -> Vec<u32> {
    let pipe = format!("pipe:[{inode}]");
    let mut found = Vec::new();
    for pid in crate::procs::pids(proc_root) {
        if exclude.contains(&pid) {
            continue;
        }
        let Ok(fds) = fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == pipe.as_str()))
        {
            found.push(pid);
        }
    }
    found.sort_unstable();
    found
}

/// The client of a server: among the holders of its stdin pipe, its parent if the
/// parent is one, else the first; with no holder (a socketpair, whose peer has its own
/// inode, or a pipe already closed by the client), the parent.
pub fn pick_client(holders: &[u32], parent: u32) -> Option<u32> {
    if holders.contains(&parent) || holders.is_empty() {
        return (parent > 1).then_some(parent);
    }
    holders.first().copied()
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
    fn finds_the_other_holder_of_a_real_pipe() {
        use std::process::{Command, Stdio as S};
        let mut child = Command::new("sleep").arg("5").stdin(S::piped()).spawn().unwrap();
        let stdio = stdio_of(Path::new("/proc"), child.id());
        let inode = stdio.stdin.expect("child stdin is a pipe");
        let holders = holders_of(Path::new("/proc"), inode, &[child.id()]);
        assert_eq!(
            holders,
            vec![std::process::id()],
            "this test process holds the write end"
        );
        assert_eq!(
            pick_client(&holders, std::process::id()),
            Some(std::process::id())
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
