//! Dropping the capabilities the daemon no longer needs once its programs are loaded
//! and attached and the metrics port is bound.
//!
//! Capabilities belong to threads, not processes, and by then the uprobe threads are
//! running: every thread of the process is made to drop them (a signal whose handler
//! does it, the way libc makes `setuid` apply to every thread), and the daemon reads
//! each thread's sets back from /proc before it goes on.
use std::{
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_BPF: u32 = 39;

/// Capabilities the daemon may keep: number, name, and why (the README says the same).
const WHY: &[(u32, &str, &str)] = &[
    (
        CAP_DAC_READ_SEARCH,
        "cap_dac_read_search",
        "reading servers' programs, scripts and libraries (and their folders) that mode bits keep from root",
    ),
    (
        CAP_SYS_PTRACE,
        "cap_sys_ptrace",
        "/proc/PID/fd, environ, maps, exe and root/ of processes it does not own or that hold more capabilities",
    ),
    (
        CAP_SYS_ADMIN,
        "cap_sys_admin",
        "perf_event_open() of the uprobe PMU, for the TLS uprobes attached as servers appear",
    ),
    (
        CAP_BPF,
        "cap_bpf",
        "bpf() on its maps: before Linux 6.5, unprivileged_bpf_disabled refuses every bpf() command without it (or CAP_SYS_ADMIN)",
    ),
];

/// What the daemon still needs once loaded: `tls`, whether it attaches TLS uprobes
/// later; `kernel` (major, minor) and `unprivileged_bpf_disabled` decide whether bpf()
/// on the maps it already holds needs CAP_BPF (it does before 6.5 when the sysctl is
/// set: the check was on every command then, and is on map and program creation
/// since). CAP_SYS_ADMIN, kept for the uprobes, passes that check too.
pub fn needed(tls: bool, kernel: (u32, u32), unprivileged_bpf_disabled: bool) -> u64 {
    let mut caps = 1 << CAP_DAC_READ_SEARCH | 1 << CAP_SYS_PTRACE;
    if tls {
        caps |= 1 << CAP_SYS_ADMIN;
    } else if unprivileged_bpf_disabled && kernel < (6, 5) {
        caps |= 1 << CAP_BPF;
    }
    caps
}

/// `needed` for this host.
pub fn needed_here(tls: bool) -> u64 {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let kernel = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let disabled = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map_or(true, |s| s.trim() != "0");
    needed(tls, kernel, disabled)
}

/// Why each capability in `mask` is kept, one line each.
pub fn reasons(mask: u64) -> Vec<String> {
    WHY.iter()
        .filter(|(c, _, _)| mask & 1 << c != 0)
        .map(|(_, name, why)| format!("{name}: {why}"))
        .collect()
}

/// What each thread's handler applies.
static TARGET: AtomicU64 = AtomicU64::new(0);
static LAST_CAP: AtomicU32 = AtomicU32::new(40);
static DROP_BOUNDING: AtomicBool = AtomicBool::new(true);
static FAILED: AtomicUsize = AtomicUsize::new(0);

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops every capability but `TARGET` from the calling thread's bounding, ambient,
/// inheritable, permitted and effective sets. Only raw syscalls: it runs in a signal
/// handler too. Returns the errno of what failed.
fn drop_here() -> Result<(), i32> {
    let keep = TARGET.load(Ordering::SeqCst);
    let last = LAST_CAP.load(Ordering::SeqCst).min(63);
    // Safety: prctl and capset with valid arguments; errno is the thread's own.
    unsafe {
        if DROP_BOUNDING.load(Ordering::SeqCst) {
            for cap in 0..=last {
                if keep & (1 << cap) != 0 || libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong) != 1 {
                    continue;
                }
                if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) != 0 {
                    let e = *libc::__errno_location();
                    if e != libc::EINVAL {
                        return Err(e);
                    }
                }
            }
        }
        // Kernels before 4.3 have no ambient set: nothing to clear there.
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            let e = *libc::__errno_location();
            if e != libc::EINVAL {
                return Err(e);
            }
        }
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: keep as u32,
                permitted: keep as u32,
                inheritable: 0,
            },
            CapData {
                effective: (keep >> 32) as u32,
                permitted: (keep >> 32) as u32,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) != 0 {
            return Err(*libc::__errno_location());
        }
    }
    Ok(())
}

extern "C" fn on_signal(_: libc::c_int) {
    // Safety: the thread's own errno, put back as it was.
    let saved = unsafe { *libc::__errno_location() };
    if drop_here().is_err() {
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
    unsafe { *libc::__errno_location() = saved };
}

/// A thread's capability sets, from its /proc status: (inheritable, permitted,
/// effective, bounding, ambient). None when the thread is gone.
fn sets_of(status_path: &str) -> Option<[u64; 5]> {
    let text = std::fs::read_to_string(status_path).ok()?;
    let mut out = [0u64; 5];
    for (i, name) in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"]
        .iter()
        .enumerate()
    {
        let line = text.lines().find(|l| l.starts_with(name))?;
        out[i] = u64::from_str_radix(line[name.len()..].trim(), 16).ok()?;
    }
    Some(out)
}

/// The names of the capabilities in `mask` (by number for those `WHY` does not list).
pub fn names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|c| mask & (1 << c) != 0)
        .map(|c| {
            WHY.iter()
                .find(|(k, _, _)| *k == c)
                .map_or_else(|| format!("cap_{c}"), |(_, n, _)| n.to_string())
        })
        .collect()
}

/// Drops, in every thread of the process, every capability but those in `keep` that it
/// has, from all five sets (the bounding set only when it may: CAP_SETPCAP). Returns
/// the mask kept; fails when a thread could not be brought down to it.
pub fn drop_all_but(keep: u64) -> anyhow::Result<u64> {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let [_, permitted, effective, _, _] =
        sets_of("/proc/thread-self/status").context("reading this thread's capabilities")?;
    let target = keep & permitted;
    TARGET.store(target, Ordering::SeqCst);
    LAST_CAP.store(last_cap, Ordering::SeqCst);
    DROP_BOUNDING.store(effective & (1 << CAP_SETPCAP) != 0, Ordering::SeqCst);
    FAILED.store(0, Ordering::SeqCst);
    let signal = libc::SIGRTMAX() - 1;
    // Safety: a handler that only makes raw syscalls and touches atomics.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            bail!(
                "installing the capability handler: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    drop_here()
        .map_err(|e| anyhow::anyhow!("dropping capabilities: {}", std::io::Error::from_raw_os_error(e)))?;
    // Safety: no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
    let done = |sets: [u64; 5]| {
        let [inh, prm, eff, bnd, amb] = sets;
        let bounding_ok = bnd == target || !DROP_BOUNDING.load(Ordering::SeqCst);
        inh == 0 && prm == target && eff == target && amb == 0 && bounding_ok
    };
    let mut signalled = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut waiting = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task").context("listing this process's threads")? {
            let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if tid == me {
                continue;
            }
            match sets_of(&format!("/proc/self/task/{tid}/status")) {
                // Gone, or done.
                None => continue,
                Some(s) if done(s) => continue,
                Some(_) => {}
            }
            waiting.push(tid);
            if signalled.insert(tid) {
                // Safety: signalling a thread of this process with a handled signal.
                unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal) };
            }
        }
        if FAILED.load(Ordering::SeqCst) > 0 {
            bail!("a thread could not drop its capabilities");
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("threads {waiting:?} still hold capabilities after 5 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    match sets_of("/proc/thread-self/status") {
        Some(s) if done(s) => Ok(target),
        other => bail!("capabilities after dropping them: {other:x?}, expected {target:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept_depends_on_tls_and_the_kernel() {
        let now = needed(true, (6, 18), true);
        assert_eq!(now, 0x0000_0000_0028_0004);
        assert_eq!(
            names(now),
            ["cap_dac_read_search", "cap_sys_ptrace", "cap_sys_admin"]
        );
        assert_eq!(
            names(needed(false, (6, 18), true)),
            ["cap_dac_read_search", "cap_sys_ptrace"]
        );
        assert_eq!(
            names(needed(false, (5, 15), true)),
            ["cap_dac_read_search", "cap_sys_ptrace", "cap_bpf"]
        );
        assert_eq!(
            names(needed(false, (5, 15), false)),
            ["cap_dac_read_search", "cap_sys_ptrace"]
        );
        assert_eq!(needed(true, (5, 15), true), now);
        assert_eq!(reasons(now).len(), 3);
        assert!(reasons(now)[2].starts_with("cap_sys_admin: perf_event_open()"));
        assert_eq!(names(1 << 1), ["cap_1"]);
    }

    #[test]
    fn sets_are_read_from_proc() {
        let s = sets_of("/proc/thread-self/status").expect("this thread's sets");
        assert_eq!(s[2] & !s[1], 0, "effective is within permitted");
        assert!(sets_of("/proc/self/task/0/status").is_none());
    }
}
