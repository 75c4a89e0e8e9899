//! Side effects of a server's process tree, as the kernel reported them: files opened,
//! programs executed, addresses connected to. Turned into plain facts here (absolute
//! paths, `host:port`), judged by the policy elsewhere.
use std::{
    fs,
    path::{Component, Path, PathBuf},
};

use serde_json::{Value, json};

use crate::kernel::records::{KernelPath, Opened};

const AT_FDCWD: i32 = -100;
const O_ACCMODE: u64 = 0o3;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const EINPROGRESS: i64 = 115;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Effect {
    File {
        /// The file opened: the path the kernel reached when it resolved one, else the
        /// path asked for (made absolute).
        path: String,
        write: bool,
        /// The open succeeded (failed attempts matter only for secrets).
        ok: bool,
        /// Other names of the same file, which secrets are judged on too.
        other: OtherNames,
    },
    Exec {
        path: String,
        argv: Vec<String>,
    },
    Connect {
        address: String,
        ok: bool,
    },
}

/// Names of an opened file besides the one the kernel reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OtherNames {
    /// The path asked for, when it is not the path opened: a symlink, a path through
    /// `/proc/*/root`, a relative path whose folder changed.
    pub asked: Option<String>,
    /// A secret this file is a hard link of (same device and inode).
    pub hard_link_of: Option<String>,
}

impl OtherNames {
    /// Every name of the file: `path` (the one opened), then these.
    pub fn with<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a str> {
        std::iter::once(path).chain(self.asked.iter().chain(&self.hard_link_of).map(String::as_str))
    }

    /// `path` described with the name that made it a secret when that is another one.
    pub fn describe(&self, path: &str, secret_name: &str) -> String {
        if secret_name == path {
            path.to_string()
        } else if self.hard_link_of.as_deref() == Some(secret_name) {
            format!("{path} (a hard link of {secret_name})")
        } else {
            format!("{path} (asked for as {secret_name})")
        }
    }

    /// Adds `asked_path` and `hard_link_of` to an event's JSON when there are.
    pub fn add_to(&self, v: &mut Value) {
        if let Some(asked) = &self.asked {
            v["asked_path"] = json!(asked);
        }
        if let Some(of) = &self.hard_link_of {
            v["hard_link_of"] = json!(of);
        }
    }
}

impl Effect {
    /// A file effect known by one name.
    pub fn file(path: impl Into<String>, write: bool, ok: bool) -> Self {
        Effect::File {
            path: path.into(),
            write,
            ok,
            other: OtherNames::default(),
        }
    }

    /// The effect as events show it; `ambiguous` when several calls were in flight.
    pub fn to_json(&self, ambiguous: bool) -> Value {
        let mut v = match self {
            Effect::File {
                path,
                write,
                ok,
                other,
            } => {
                let mut v = json!({"path": path, "access": if *write { "write" } else { "read" }, "ok": ok});
                other.add_to(&mut v);
                v
            }
            Effect::Exec { path, argv } => json!({"path": path, "argv": argv}),
            Effect::Connect { address, ok } => json!({"address": address, "ok": ok}),
        };
        if ambiguous {
            v["ambiguous"] = json!(true);
        }
        v
    }
}

/// The path an open is judged by, and the path asked for when that is another: the
/// kernel's path of the opened file when it walked it to the root, else `asked`.
pub fn opened_path(asked: String, opened: Option<&Opened>) -> (String, OtherNames) {
    let kernel = opened.and_then(|f| match &f.path {
        KernelPath::Whole(p) => Some(String::from_utf8_lossy(p).into_owned()),
        _ => None,
    });
    match kernel {
        Some(path) if path != asked => (
            path,
            OtherNames {
                asked: Some(asked),
                hard_link_of: None,
            },
        ),
        _ => (asked, OtherNames::default()),
    }
}

/// Whether the opened file is a regular file with other names than this one.
pub fn is_hard_linked(f: &Opened) -> bool {
    f.mode & S_IFMT == S_IFREG && f.nlink > 1
}

/// Whether open flags ask for writing.
pub fn is_write(flags: u64) -> bool {
    matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR) || flags & (O_CREAT | O_TRUNC) != 0
}

/// The absolute path an open referred to: relative paths start at the process's
/// working directory or at `dirfd`, which `dir` reads from /proc now (the process may
/// have moved on; then the path is kept relative, prefixed with `?/`).
pub fn resolve(raw: &str, dir: impl FnOnce() -> Option<PathBuf>) -> String {
    if raw.starts_with('/') {
        return normalize(Path::new(raw));
    }
    match dir() {
        Some(b) => normalize(&b.join(raw)),
        None => format!("?/{raw}"),
    }
}

/// The folder a relative path given with `dirfd` starts at, as /proc shows it now.
pub fn start_dir(pid: u32, dirfd: i32) -> Option<PathBuf> {
    let link = if dirfd == AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{dirfd}")
    };
    fs::read_link(link).ok()
}

/// The file a path through a process's root in /proc names: `/proc/self/root/etc/shadow`
/// (or `/proc/PID/root/...`, `/proc/thread-self/root/...`) is `/etc/shadow` for what it
/// opens, and must be judged as that, not as runtime noise under `/proc`. (Another
/// process's root may be a container's: then the path is inside that container.)
pub fn through_proc_root(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/proc/")?;
    let (who, rest) = rest.split_once('/')?;
    let valid = who == "self" || who == "thread-self" || who.bytes().all(|b| b.is_ascii_digit());
    let inner = rest.strip_prefix("root")?;
    if !valid || !(inner.is_empty() || inner.starts_with('/')) {
        return None;
    }
    // A root inside a root: unwrap until it is a path of its own.
    let inner = if inner.is_empty() { "/" } else { inner };
    Some(through_proc_root(inner).unwrap_or_else(|| normalize(Path::new(inner))))
}

/// Removes `.` and `..` lexically (no symlinks are followed: the process may be gone).
fn normalize(p: &Path) -> String {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

/// `host:port` (IPv6 in brackets) or `unix:/path` from a `struct sockaddr`.
pub fn sockaddr(bytes: &[u8]) -> Option<String> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    let port = || bytes.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]));
    match family {
        2 => {
            let a = bytes.get(4..8)?;
            Some(format!("{}.{}.{}.{}:{}", a[0], a[1], a[2], a[3], port()?))
        }
        10 => {
            let a: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            Some(format!("[{}]:{}", std::net::Ipv6Addr::from(a), port()?))
        }
        1 => {
            let path = bytes.get(2..)?;
            let path = match path.first() {
                // Abstract socket: a leading NUL, name not NUL-terminated.
                Some(0) => format!("@{}", String::from_utf8_lossy(&path[1..]).trim_end_matches('\0')),
                _ => String::from_utf8_lossy(path.split(|&b| b == 0).next().unwrap_or_default()).into_owned(),
            };
            Some(format!("unix:{path}"))
        }
        _ => None,
    }
}

/// A connect that succeeded or is under way (non-blocking).
pub fn connect_ok(ret: i64) -> bool {
    ret == 0 || ret == -EINPROGRESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_socket_addresses() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(sockaddr(&v4).as_deref(), Some("127.0.0.1:8080"));
        let mut v6 = vec![10, 0, 0x01, 0xbb, 0, 0, 0, 0];
        v6.extend(std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(sockaddr(&v6).as_deref(), Some("[::1]:443"));
        let mut unix = vec![1, 0];
        unix.extend(b"/run/x.sock\0junk");
        assert_eq!(sockaddr(&unix).as_deref(), Some("unix:/run/x.sock"));
        assert_eq!(sockaddr(&[1, 0, 0, b'a', b'b']).as_deref(), Some("unix:@ab"));
        assert_eq!(sockaddr(&[2, 0, 1]), None, "short");
        assert_eq!(
            sockaddr(&[17, 0, 0, 0]),
            None,
            "AF_PACKET is not a connect target"
        );
    }

    #[test]
    fn resolves_relative_paths_against_cwd_and_dirfd() {
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            resolve("a/../b.txt", || start_dir(me, AT_FDCWD)),
            cwd.join("b.txt").display().to_string()
        );
        assert_eq!(
            resolve("/etc/./x/../hosts", || start_dir(me, AT_FDCWD)),
            "/etc/hosts"
        );
        let dir = fs::File::open("/usr").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(resolve("lib/x", || start_dir(me, dir.as_raw_fd())), "/usr/lib/x");
        assert_eq!(resolve("rel", || start_dir(u32::MAX, AT_FDCWD)), "?/rel");
    }

    #[test]
    fn a_path_through_a_proc_root_is_the_file_it_names() {
        assert_eq!(
            through_proc_root("/proc/self/root/etc/shadow").as_deref(),
            Some("/etc/shadow")
        );
        assert_eq!(
            through_proc_root("/proc/1234/root/etc/../etc/shadow").as_deref(),
            Some("/etc/shadow")
        );
        assert_eq!(
            through_proc_root("/proc/thread-self/root/proc/self/root/home/u/.ssh/id_rsa").as_deref(),
            Some("/home/u/.ssh/id_rsa")
        );
        assert_eq!(through_proc_root("/proc/self/root").as_deref(), Some("/"));
        assert_eq!(through_proc_root("/proc/self/rootfs/x"), None);
        assert_eq!(through_proc_root("/proc/self/maps"), None);
        assert_eq!(through_proc_root("/proc/abc/root/etc/shadow"), None);
        assert_eq!(through_proc_root("/etc/shadow"), None);
    }

    #[test]
    fn write_flags() {
        assert!(!is_write(0));
        assert!(is_write(O_WRONLY));
        assert!(is_write(O_RDWR));
        assert!(is_write(O_CREAT));
        assert!(connect_ok(0) && connect_ok(-115) && !connect_ok(-111));
    }
}
