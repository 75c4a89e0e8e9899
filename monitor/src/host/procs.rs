//! The process table: pid, parent, uid, exe, command line and start time for every
//! process on the host, kept from the kernel's exec/fork/exit records after one
//! scan of /proc at start-up.
use std::{fs, path::Path};

use crate::kernel::id_map::IdMap;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub exe: String,
    pub cmdline: Vec<String>,
    /// CLOCK_BOOTTIME nanoseconds of the fork (or exec for processes seen first at exec,
    /// or /proc's start time for those running before the daemon; 0 if it did not say).
    pub start_ns: u64,
    /// Found by the scan at start rather than by its fork or exec record.
    #[serde(default)]
    pub predates: bool,
    pub watched: bool,
    /// The watch pattern that made this process a server (children of servers are
    /// watched without being servers themselves).
    pub server_pattern: Option<String>,
    /// The server whose tree it was forked into: kept when the processes between them
    /// exit (a double fork reparents it to init), so it stays that server's.
    #[serde(default)]
    pub tree_root: Option<u32>,
}

impl Process {
    /// The command line as one string, arguments separated by spaces.
    pub fn cmdline_string(&self) -> String {
        self.cmdline.join(" ")
    }
}

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessTable {
    procs: IdMap<u32, Process>,
}

impl ProcessTable {
    /// Every process /proc shows now. Processes that vanish while being read are skipped.
    pub fn scan(proc_root: &Path) -> Self {
        let mut table = Self::default();
        for pid in pids(proc_root) {
            if let Some(p) = read_proc(proc_root, pid) {
                table.procs.insert(pid, p);
            }
        }
        table
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid)
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut Process> {
        self.procs.get_mut(&pid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Process> {
        self.procs.values()
    }

    /// A new process: it starts as a copy of its parent (same exe, cmdline, uid).
    pub fn fork(&mut self, parent: u32, child: u32, ts_ns: u64, watched: bool) -> &Process {
        let base = self.procs.get(&parent).cloned();
        let tree_root = base.as_ref().and_then(|b| match b.server_pattern {
            Some(_) => Some(parent),
            None => b.tree_root,
        });
        let p = Process {
            tree_root,
            pid: child,
            ppid: parent,
            uid: base.as_ref().map_or(0, |b| b.uid),
            exe: base.as_ref().map(|b| b.exe.clone()).unwrap_or_default(),
            cmdline: base.map(|b| b.cmdline).unwrap_or_default(),
            start_ns: ts_ns,
            predates: false,
            watched,
            server_pattern: None,
        };
        self.procs.insert(child, p);
        &self.procs[&child]
    }

    /// The process replaced its image. `ppid` is asked for a process not seen before.
    pub fn exec(
        &mut self,
        pid: u32,
        uid: u32,
        exe: String,
        cmdline: Vec<String>,
        ts_ns: u64,
        ppid: impl FnOnce() -> u32,
    ) -> &Process {
        let p = self.procs.entry(pid).or_insert_with(|| Process {
            pid,
            ppid: ppid(),
            uid,
            exe: String::new(),
            cmdline: Vec::new(),
            start_ns: ts_ns,
            predates: false,
            watched: false,
            server_pattern: None,
            tree_root: None,
        });
        p.uid = uid;
        p.exe = exe;
        p.cmdline = cmdline;
        p
    }

    /// `root` became a server: its descendants now in the table are in its tree.
    pub fn adopt_tree(&mut self, root: u32) {
        let members: Vec<u32> = self
            .procs
            .keys()
            .copied()
            .filter(|&pid| pid != root && self.ancestors(pid).any(|a| a == root))
            .collect();
        for pid in members {
            if let Some(p) = self.procs.get_mut(&pid) {
                p.tree_root.get_or_insert(root);
            }
        }
    }

    pub fn exit(&mut self, pid: u32) -> Option<Process> {
        self.procs.remove(&pid)
    }

    /// `pid` and its ancestors, nearest first (bounded, in case of a cycle).
    pub fn ancestry(&self, pid: u32) -> Vec<u32> {
        self.ancestors(pid).collect()
    }

    /// `pid` and its ancestors, nearest first, walked lazily (no allocation: the
    /// pipeline asks this for every record of a watched process).
    pub fn ancestors(&self, pid: u32) -> impl Iterator<Item = u32> + '_ {
        let mut next = Some(pid);
        let mut steps = 0;
        std::iter::from_fn(move || {
            let pid = next?;
            steps += 1;
            next = self
                .procs
                .get(&pid)
                .map(|p| p.ppid)
                .filter(|&ppid| ppid != 0 && ppid != pid && steps < 64);
            Some(pid)
        })
    }
}

fn read_proc(root: &Path, pid: u32) -> Option<Process> {
    let dir = root.join(pid.to_string());
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cmdline = fs::read(dir.join("cmdline"))
        .map(|b| split_nul(&b))
        .unwrap_or_default();
    let exe = fs::read_link(dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(Process {
        pid,
        ppid: read_ppid(root, pid).unwrap_or(0),
        uid,
        exe,
        cmdline,
        start_ns: read_start_ns(root, pid).unwrap_or(0),
        predates: true,
        watched: false,
        server_pattern: None,
        tree_root: None,
    })
}

/// The process ids /proc lists now.
pub fn pids(proc_root: &Path) -> impl Iterator<Item = u32> {
    fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
}

/// Field 4 of /proc/PID/stat; the command name in field 2 may hold spaces and parentheses.
pub fn read_ppid(root: &Path, pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat_ppid(&stat)
}

fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// When `pid` started, in CLOCK_BOOTTIME nanoseconds (field 22 of /proc/PID/stat, in
/// clock ticks): with the pid, what names one process across pid reuse.
pub fn read_start_ns(root: &Path, pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat_start(&stat)
}

fn parse_stat_start(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; starttime is field 22.
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // Safety: sysconf has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    Some(ticks.saturating_mul(1_000_000_000 / hz))
}

/// Whether two start times name the same process: /proc gives clock ticks (10 ms), the
/// kernel's records nanoseconds a little after the task's start.
pub fn same_start(a_ns: u64, b_ns: u64) -> bool {
    a_ns.abs_diff(b_ns) < 50_000_000
}

/// NUL-separated bytes (argv) as lossy UTF-8 strings.
pub fn split_nul(buf: &[u8]) -> Vec<String> {
    let buf = buf.strip_suffix(&[0]).unwrap_or(buf);
    if buf.is_empty() {
        return Vec::new();
    }
    buf.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// /proc/PID/cmdline, for a process whose argv the kernel could not give.
pub fn read_cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| split_nul(&b))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_from_stat_and_names_this_process() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(parse_stat_start(stat), Some(12345 * 10_000_000));
        let me = std::process::id();
        let start = read_start_ns(Path::new("/proc"), me).unwrap();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // Safety: clock_gettime writes into the timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        assert!(start > 0 && start <= now, "{start} {now}");
        assert!(same_start(start, start + 20_000_000) && !same_start(start, start + 60_000_000));
    }

    #[test]
    fn ppid_survives_odd_command_names() {
        assert_eq!(parse_stat_ppid("123 (a) b (c)) S 77 123 123 0"), Some(77));
        assert_eq!(parse_stat_ppid("1 (systemd) S 0 1 1"), Some(0));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

    #[test]
    fn fork_copies_parent_and_tracks_ancestry() {
        let mut t = ProcessTable::default();
        t.exec(
            10,
            1000,
            "/usr/bin/node".into(),
            vec!["node".into(), "srv.js".into()],
            5,
            || 0,
        );
        t.get_mut(10).unwrap().ppid = 1;
        let child = t.fork(10, 11, 9, true).clone();
        assert_eq!(child.ppid, 10);
        assert_eq!(child.uid, 1000);
        assert_eq!(child.cmdline_string(), "node srv.js");
        assert!(child.watched);
        t.fork(11, 12, 10, true);
        assert_eq!(t.ancestry(12), vec![12, 11, 10, 1]);
        assert_eq!(t.ancestry(10), vec![10, 1]);
        assert!(t.exit(11).is_some());
        assert!(t.get(11).is_none());
    }

    #[test]
    fn scan_sees_this_process() {
        let t = ProcessTable::scan(Path::new("/proc"));
        let me = t.get(std::process::id()).expect("own pid in /proc scan");
        assert!(!me.cmdline.is_empty());
        assert!(
            me.exe.ends_with(
                &*std::env::current_exe()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
            )
        );
    }

    #[test]
    fn split_nul_handles_trailing_and_empty() {
        assert_eq!(split_nul(b"a\0b c\0"), vec!["a".to_string(), "b c".to_string()]);
        assert!(split_nul(b"").is_empty());
        assert_eq!(split_nul(&[0xff, 0]), vec!["\u{fffd}".to_string()]);
    }
}
