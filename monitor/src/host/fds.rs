//! What each fd of a watched process is (pipe with its inode, socket, file, tty). A data
//! record says what its fd was at the syscall, read by the kernel from the fd's `struct
//! file` (`at_syscall`): whatever path, dup or inheritance produced the fd, and however
//! soon it was closed. /proc is the fallback, for records the kernel could not resolve
//! (and recordings made before it did): cached per (pid, fd) until the kernel says the
//! fd changed.
use std::rc::Rc;

use monitor_common::file_type;

use crate::{
    kernel::{id_map::IdMap, records::FileInfo},
    record::facts::Facts,
};

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FdKind {
    Pipe {
        inode: u64,
    },
    Socket {
        inode: u64,
    },
    /// A connection the kernel said a server's tree accepted, numbered by that server
    /// (set at accept: a short-lived one may be gone from /proc before it is read).
    Accepted {
        conn: u64,
    },
    File {
        path: String,
    },
    Tty {
        path: String,
    },
    Other {
        target: String,
    },
    /// Gone before it could be looked at.
    #[default]
    Unknown,
}

impl FdKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pipe { .. } => "pipe",
            Self::Socket { .. } | Self::Accepted { .. } => "socket",
            Self::File { .. } => "file",
            Self::Tty { .. } => "tty",
            Self::Other { .. } => "other",
            Self::Unknown => "unknown",
        }
    }

    /// Whether bytes on it are a stream the transports follow (pipe, FIFO, socket).
    pub fn is_stream(&self) -> bool {
        matches!(
            self,
            Self::Pipe { .. } | Self::Socket { .. } | Self::Accepted { .. }
        )
    }

    /// What the kernel's view of an fd's inode says it is. A FIFO reached by its path
    /// is a pipe like any other; files and devices have no path here.
    pub fn from_file(file: &FileInfo) -> Self {
        match file.file_type() {
            file_type::FIFO => Self::Pipe { inode: file.inode },
            file_type::SOCK => Self::Socket { inode: file.inode },
            file_type::REG => Self::File { path: String::new() },
            // The kernel copies a character device's bytes only for a terminal.
            file_type::CHR => Self::Tty { path: String::new() },
            t => Self::Other {
                target: format!("mode {t:o}, inode {}", file.inode),
            },
        }
    }

    /// Classifies the target of a /proc/PID/fd/N link.
    pub fn from_link(target: &str) -> Self {
        let inode = |prefix: &str| {
            target
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
        };
        if let Some(inode) = inode("pipe:[") {
            Self::Pipe { inode }
        } else if let Some(inode) = inode("socket:[") {
            Self::Socket { inode }
        } else if target.starts_with("/dev/pts/")
            || target.starts_with("/dev/tty")
            || target == "/dev/console"
        {
            Self::Tty {
                path: target.to_string(),
            }
        } else if target.starts_with('/') {
            Self::File {
                path: target.to_string(),
            }
        } else {
            Self::Other {
                target: target.to_string(),
            }
        }
    }
}

pub struct FdTable {
    kinds: IdMap<(u32, i32), FdKind>,
    facts: Rc<Facts>,
}

impl FdTable {
    pub fn new(facts: Rc<Facts>) -> Self {
        Self {
            kinds: IdMap::default(),
            facts,
        }
    }

    /// What `fd` of `pid` is: as told before, else its /proc link now.
    pub fn classify(&mut self, pid: u32, fd: i32) -> &FdKind {
        let facts = &self.facts;
        self.kinds.entry((pid, fd)).or_insert_with(|| {
            facts.look(
                || format!("fd/{pid}/{fd}"),
                || {
                    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                        .map(|t| FdKind::from_link(&t.to_string_lossy()))
                        .unwrap_or(FdKind::Unknown)
                },
            )
        })
    }

    /// What `fd` of `pid` was at the syscall of a record: `file`, the kernel's view of
    /// it, when it has one (kept for the fd: it is what the fd is until it changes),
    /// else as told before or /proc now. A connection numbered at its accept stays so;
    /// a file or device keeps the path /proc gives it when /proc still agrees.
    pub fn at_syscall(&mut self, pid: u32, fd: i32, file: Option<FileInfo>) -> &FdKind {
        let Some(file) = file else {
            return self.classify(pid, fd);
        };
        let kind = FdKind::from_file(&file);
        let keep = match (self.kinds.get(&(pid, fd)), &kind) {
            (Some(FdKind::Accepted { .. }), FdKind::Socket { .. }) => true,
            (Some(cached), k) => cached == k || (!cached.is_stream() && !k.is_stream()),
            (None, k) if !k.is_stream() => {
                // For its path: what /proc shows, unless the fd is already something else.
                self.classify(pid, fd);
                self.kinds
                    .get(&(pid, fd))
                    .is_some_and(|c| !c.is_stream() && *c != FdKind::Unknown)
            }
            (None, _) => false,
        };
        if !keep {
            self.kinds.insert((pid, fd), kind);
        }
        &self.kinds[&(pid, fd)]
    }

    /// What `fd` is, as the kernel told us (cached until it changes).
    pub fn set(&mut self, pid: u32, fd: i32, kind: FdKind) {
        self.kinds.insert((pid, fd), kind);
    }

    /// What `fd` was last classified as, without looking it up.
    pub fn cached(&self, pid: u32, fd: i32) -> Option<&FdKind> {
        self.kinds.get(&(pid, fd))
    }

    /// The fd now refers to something else; -1 means every fd of the process.
    pub fn changed(&mut self, pid: u32, fd: i32) {
        if fd < 0 {
            self.forget_process(pid);
        } else {
            self.kinds.remove(&(pid, fd));
        }
    }

    pub fn forget_process(&mut self, pid: u32) {
        self.kinds.retain(|&(p, _), _| p != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_links() {
        assert_eq!(FdKind::from_link("pipe:[12345]"), FdKind::Pipe { inode: 12345 });
        assert_eq!(FdKind::from_link("socket:[9]"), FdKind::Socket { inode: 9 });
        assert_eq!(FdKind::from_link("/dev/pts/3").name(), "tty");
        assert_eq!(FdKind::from_link("/home/u/.ssh/id_rsa").name(), "file");
        assert_eq!(FdKind::from_link("anon_inode:[eventfd]").name(), "other");
        assert_eq!(FdKind::from_link("pipe:[junk]").name(), "other");
    }

    #[test]
    fn the_kernels_view_wins_over_a_stale_entry_and_keeps_accepted_connections() {
        let mut t = FdTable::new(Facts::live());
        let pid = u32::MAX - 1; // no such process: /proc has nothing
        let fifo = FileInfo {
            mode: file_type::FIFO | 0o644,
            inode: 77,
            dev: 30,
        };
        t.set(
            pid,
            5,
            FdKind::File {
                path: "/tmp/x".into(),
            },
        );
        assert_eq!(t.at_syscall(pid, 5, Some(fifo)), &FdKind::Pipe { inode: 77 });
        assert_eq!(t.at_syscall(pid, 5, None), &FdKind::Pipe { inode: 77 }, "kept");
        t.set(pid, 6, FdKind::Accepted { conn: 3 });
        let sock = FileInfo {
            mode: file_type::SOCK | 0o777,
            inode: 9,
            dev: 8,
        };
        assert_eq!(t.at_syscall(pid, 6, Some(sock)), &FdKind::Accepted { conn: 3 });
        let reg = FileInfo {
            mode: file_type::REG | 0o600,
            inode: 1,
            dev: 2,
        };
        assert_eq!(t.at_syscall(pid, 7, Some(reg)).name(), "file");
        assert_eq!(t.at_syscall(pid, 5, Some(reg)).name(), "file", "a pipe no more");
    }

    #[test]
    fn classifies_a_real_pipe_and_forgets_on_change() {
        let mut fds = [0; 2];
        // Safety: pipe(2) writes two fds into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut t = FdTable::new(Facts::live());
        let pid = std::process::id();
        assert!(matches!(t.classify(pid, fds[0]), FdKind::Pipe { .. }));
        // Safety: closing the fds opened above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert!(
            matches!(t.classify(pid, fds[0]), FdKind::Pipe { .. }),
            "cached until told"
        );
        t.changed(pid, fds[0]);
        assert!(!t.kinds.contains_key(&(pid, fds[0])));
        t.classify(pid, fds[1]);
        t.changed(pid, -1);
        assert!(t.kinds.is_empty());
    }
}
