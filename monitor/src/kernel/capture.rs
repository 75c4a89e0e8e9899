//! Loading and attaching the kernel programs, and the maps userspace talks to.
//!
//! The hooks used here are what this kind of kernel allows (tracepoints and raw
//! tracepoints); another backend (fexit, LSM) would be another `attach_*` here.
use std::{fs, path::Path};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, ProgramError, TracePoint, UProbe},
};
use log::{info, warn};
use monitor_common::{
    AF_INET, AF_INET6, ConnectKey, KernelOffsets, MAX_PROBE_TRIES, ProbeState, StreamKey, TracepointOffsets,
    WatchState, direction, stat, watch_state,
};

use super::{
    Kernel, KernelStats, TlsAttached,
    uprobes::{TLS_ENTRY, TLS_RETURN, Uprobes},
    watched_bits::WatchedBits,
};

/// The eBPF object built by monitor/build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// The eBPF object the daemon loads, for the benches that load its bench-only
/// programs (the daemon itself never does).
pub fn ebpf_object() -> &'static [u8] {
    EBPF_OBJECT
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Programs and where they attach, for the log and for error messages.
const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("task_newtask", "task", "task_newtask"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("execve_enter", "syscalls", "sys_enter_execve"),
    ("execveat_enter", "syscalls", "sys_enter_execveat"),
    ("tcp_connect", "sock", "inet_sock_set_state"),
];
/// tp_btf programs: their `pt_regs` argument is read with plain loads, no helper.
const BTF_TRACEPOINTS: &[(&str, &str)] = &[("sys_exit", "sys_exit")];

pub struct Capture {
    // Keeps programs and links alive (on its own thread, where the TLS uprobes are
    // attached); dropping it detaches everything.
    uprobes: Uprobes,
    pub watched: HashMap<MapData, u32, WatchState>,
    /// Set for every pid put in `watched`: the kernel only looks up pids marked here.
    watched_bits: WatchedBits,
    probes: HashMap<MapData, u32, ProbeState>,
    connects: HashMap<MapData, ConnectKey, u32>,
    stream_offsets: HashMap<MapData, StreamKey, u64>,
    stats: PerCpuArray<MapData, u64>,
    /// (program name, kernel program id) of what was attached.
    pub attached: Vec<(String, u32)>,
}

impl Kernel for Capture {
    fn watch(&mut self, pid: u32) -> anyhow::Result<()> {
        Capture::watch(self, pid)
    }

    fn unwatch(&mut self, pid: u32) {
        Capture::unwatch(self, pid)
    }

    fn probe(&mut self, pid: u32, fds: u64) {
        let state = WatchState {
            pending: watch_state::PROBED,
            stdin_fds: fds,
            ..WatchState::default()
        };
        // Only when the kernel has no entry for it yet (BPF_NOEXIST).
        if self.watched.insert(pid, state, 1).is_ok() {
            self.watched_bits.mark(pid);
        }
    }

    fn stop_probing(&mut self, pid: u32) {
        let done = ProbeState {
            tries: MAX_PROBE_TRIES,
            _pad: 0,
        };
        // Best effort: the kernel stops by itself after MAX_PROBE_TRIES anyway.
        let _ = self.probes.insert(pid, done, 0);
    }

    fn stats(&self) -> anyhow::Result<KernelStats> {
        Capture::stats(self)
    }

    fn attached(&self) -> &[(String, u32)] {
        &self.attached
    }

    fn attach_tls(&mut self, pid: u32, path: &Path, functions: &[(u64, u64)]) {
        self.uprobes.attach(pid, path, functions)
    }

    fn detach_tls(&mut self, pid: u32) {
        self.uprobes.detach(pid)
    }

    fn tls_attached(&mut self) -> Vec<TlsAttached> {
        self.uprobes.done()
    }

    fn watched_set(&self) -> Vec<(u32, u32)> {
        self.watched
            .iter()
            .filter_map(Result::ok)
            .map(|(pid, s)| (pid, s.pending))
            .collect()
    }

    fn connector(&self, local: std::net::SocketAddr) -> Option<u32> {
        let key = match local {
            std::net::SocketAddr::V4(a) => {
                let mut addr = [0; 16];
                addr[..4].copy_from_slice(&a.ip().octets());
                ConnectKey {
                    family: AF_INET,
                    port: a.port(),
                    addr,
                }
            }
            std::net::SocketAddr::V6(a) => ConnectKey {
                family: AF_INET6,
                port: a.port(),
                addr: a.ip().octets(),
            },
        };
        self.connects.get(&key, 0).ok()
    }

    fn stream_end(&self, pid: u32, fd: i32, write: bool) -> Option<u64> {
        let key = StreamKey {
            pid,
            fd,
            direction: u32::from(if write { direction::WRITE } else { direction::READ }),
            _pad: 0,
            conn: 0,
        };
        self.stream_offsets.get(&key, 0).ok()
    }
}

/// Checks what the daemon needs before touching the kernel, with messages that say
/// what to do.
pub fn preflight() -> anyhow::Result<()> {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("must run as root: it loads eBPF programs (try `sudo mcp-monitor run ...`)");
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing); a kernel built with CONFIG_DEBUG_INFO_BTF=y is needed"
        );
    }
    mount_tracefs()
}

/// aya finds tracepoint ids in tracefs, which a fresh machine may not have mounted.
/// Several daemons (or another tool) may find it missing at the same instant and all
/// mount it: the kernel refuses the same filesystem twice on one mount point with
/// EBUSY, which is success here. Whatever `mount` says, the check that counts is
/// whether the events folder is there afterwards.
pub fn mount_tracefs() -> anyhow::Result<()> {
    if tracefs_present() {
        return Ok(());
    }
    info!("mounting tracefs on {TRACEFS}");
    let result = rustix::mount::mount(
        "tracefs",
        TRACEFS,
        "tracefs",
        rustix::mount::MountFlags::empty(),
        None,
    );
    if tracefs_present() {
        return Ok(());
    }
    match result {
        Ok(()) => bail!("mounted tracefs on {TRACEFS}, but {TRACEFS}/events is still missing"),
        Err(e) => bail!("tracefs is not mounted and mounting it on {TRACEFS} failed: {e}"),
    }
}

fn tracefs_present() -> bool {
    Path::new(TRACEFS).join("events").exists() || Path::new("/sys/kernel/debug/tracing/events").exists()
}

fn tracefs_root() -> &'static Path {
    if Path::new(TRACEFS).join("events").exists() {
        Path::new(TRACEFS)
    } else {
        Path::new("/sys/kernel/debug/tracing")
    }
}

/// Offset of `field` in the record of tracepoint `category/name`, from its format file.
fn field_offset(category: &str, name: &str, field: &str) -> anyhow::Result<u32> {
    let path = tracefs_root()
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_field_offset(&text, field).ok_or_else(|| anyhow!("{}: no field `{field}`", path.display()))
}

fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?.split(';').next()?;
        let name = decl
            .trim()
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        let off = line.split(';').find_map(|p| p.trim().strip_prefix("offset:"))?;
        off.trim().parse().ok()
    })
}

fn tracepoint_offsets() -> anyhow::Result<TracepointOffsets> {
    Ok(TracepointOffsets {
        exec_filename: field_offset("sched", "sched_process_exec", "filename")?,
        exec_old_pid: field_offset("sched", "sched_process_exec", "old_pid")?,
        newtask_pid: field_offset("task", "task_newtask", "pid")?,
        newtask_clone_flags: field_offset("task", "task_newtask", "clone_flags")?,
        exit_group_dead: field_offset("sched", "sched_process_exit", "group_dead")
            .context("sched_process_exit has no group_dead field (kernels before 6.x lack it)")?,
        execve_argv: field_offset("syscalls", "sys_enter_execve", "argv")?,
        execveat_argv: field_offset("syscalls", "sys_enter_execveat", "argv")?,
        sock_skaddr: field_offset("sock", "inet_sock_set_state", "skaddr")?,
        sock_oldstate: field_offset("sock", "inet_sock_set_state", "oldstate")?,
        sock_newstate: field_offset("sock", "inet_sock_set_state", "newstate")?,
        sock_sport: field_offset("sock", "inet_sock_set_state", "sport")?,
        sock_family: field_offset("sock", "inet_sock_set_state", "family")?,
        sock_protocol: field_offset("sock", "inet_sock_set_state", "protocol")?,
        sock_saddr: field_offset("sock", "inet_sock_set_state", "saddr")?,
        sock_saddr_v6: field_offset("sock", "inet_sock_set_state", "saddr_v6")?,
    })
}

/// Offsets of the kernel structs the programs walk, from this kernel's BTF. Without
/// them the programs still run, degraded: compat syscalls are not told apart and fds
/// are classified from /proc when their records are handled (said in the log).
fn struct_offsets() -> KernelOffsets {
    match super::btf::Btf::from_sys_fs().and_then(|btf| super::btf::kernel_offsets(&btf)) {
        Ok(o) => {
            info!(
                "kernel struct offsets from BTF: thread_info.status {}, task_struct.files {}, files_struct.fdt {}, fdtable.max_fds {} .fd {}, file.f_inode {}, inode.i_mode {} .i_ino {} .i_rdev {} .i_sb {} .i_nlink {}, super_block.s_dev {}, file.f_path {}/{}, dentry.d_parent {} .d_name.name {}, mount.mnt {} .mnt_parent {} .mnt_mountpoint {}, vfsmount.mnt_root {}",
                o.task_status,
                o.task_files,
                o.files_fdt,
                o.fdt_max_fds,
                o.fdt_fd,
                o.file_inode,
                o.inode_mode,
                o.inode_ino,
                o.inode_rdev,
                o.inode_sb,
                o.inode_nlink,
                o.sb_dev,
                o.file_dentry,
                o.file_vfsmount,
                o.dentry_parent,
                o.dentry_name,
                o.mount_mnt,
                o.mount_parent,
                o.mount_mountpoint,
                o.vfsmount_root
            );
            o
        }
        Err(e) => {
            warn!(
                "kernel struct offsets unavailable ({e:#}): 32-bit (compat) syscalls of watched processes are not detected, opened paths are not resolved in the kernel, and fd kinds are read from /proc when records are handled"
            );
            KernelOffsets::default()
        }
    }
}

/// The verifier's last lines: where a rejected program failed.
fn load_error(program: &str, err: ProgramError) -> anyhow::Error {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n  ");
            anyhow!(
                "the kernel refused to load program `{program}`: {io_error}\n  verifier log (last lines):\n  {tail}"
            )
        }
        other => anyhow!("loading program `{program}`: {other}"),
    }
}

/// The daemon's eBPF object loaded with this kernel's offsets, nothing attached yet:
/// for `Capture::load`, and for the benches that attach some of its programs to time
/// them piece by piece (the exec path).
pub fn load_object(ring_buffer_bytes: u32, discovery: bool) -> anyhow::Result<Ebpf> {
    let offsets = tracepoint_offsets()?;
    let structs = struct_offsets();
    let discovery = u32::from(discovery);
    EbpfLoader::new()
        .override_global("TP_OFFSETS", &offsets, true)
        .override_global("KERNEL_OFFSETS", &structs, true)
        .override_global("DISCOVERY", &discovery, true)
        .map_max_entries("EVENTS", ring_buffer_bytes)
        .load(EBPF_OBJECT)
        .context("loading the eBPF object (maps and relocations)")
}

/// Loads program `prog` of `ebpf` and attaches it to tracepoint `category:name`;
/// returns its kernel program id.
pub fn attach_tracepoint(ebpf: &mut Ebpf, prog: &str, category: &str, name: &str) -> anyhow::Result<u32> {
    let p: &mut TracePoint = program(ebpf, prog)?;
    p.load().map_err(|e| load_error(prog, e))?;
    p.attach(category, name)
        .with_context(|| format!("attaching `{prog}` to tracepoint {category}:{name}"))?;
    info!("attached {prog} to tracepoint {category}:{name}");
    Ok(program_id(p.info()))
}

/// Loads tp_btf program `prog` of `ebpf` and attaches it to `name`; returns its id.
pub fn attach_btf_tracepoint(ebpf: &mut Ebpf, prog: &str, name: &str, btf: &Btf) -> anyhow::Result<u32> {
    let p: &mut BtfTracePoint = program(ebpf, prog)?;
    p.load(name, btf).map_err(|e| load_error(prog, e))?;
    p.attach()
        .with_context(|| format!("attaching `{prog}` to tp_btf {name}"))?;
    let verified = p.info().ok().and_then(|i| i.verified_instruction_count());
    info!(
        "attached {prog} to tp_btf {name} (syscall capture backend: tp_btf; {} instructions verified)",
        verified.map_or("?".to_string(), |n| n.to_string())
    );
    Ok(program_id(p.info()))
}

impl Capture {
    /// Loads and attaches everything; the ring buffer is returned apart so the event
    /// loop can own it while `Capture` updates the watched set.
    pub fn load(ring_buffer_bytes: u32, discovery: bool) -> anyhow::Result<(Self, RingBuf<MapData>)> {
        let mut ebpf = load_object(ring_buffer_bytes, discovery)?;
        let mut attached = Vec::new();
        for &(prog, category, name) in TRACEPOINTS {
            attached.push((
                prog.to_string(),
                attach_tracepoint(&mut ebpf, prog, category, name)?,
            ));
        }
        let btf = Btf::from_sys_fs().context("reading the kernel's BTF (/sys/kernel/btf/vmlinux)")?;
        for &(prog, name) in BTF_TRACEPOINTS {
            attached.push((
                prog.to_string(),
                attach_btf_tracepoint(&mut ebpf, prog, name, &btf)?,
            ));
        }
        for prog in [TLS_ENTRY, TLS_RETURN] {
            let p: &mut UProbe = program(&mut ebpf, prog)?;
            p.load().map_err(|e| load_error(prog, e))?;
            // Listed with the rest: loaded now, attached per process later.
            attached.push((prog.to_string(), program_id(p.info())));
        }
        let events = RingBuf::try_from(take_map(&mut ebpf, "EVENTS")?)?;
        let watched = HashMap::try_from(take_map(&mut ebpf, "WATCHED")?)?;
        let watched_bits = WatchedBits::new(take_map(&mut ebpf, "WATCHED_BITS")?)?;
        let stats = PerCpuArray::try_from(take_map(&mut ebpf, "STATS")?)?;
        let probes = HashMap::try_from(take_map(&mut ebpf, "PROBES")?)?;
        let connects = HashMap::try_from(take_map(&mut ebpf, "CONNECTS")?)?;
        let stream_offsets = HashMap::try_from(take_map(&mut ebpf, "STREAM_OFFSETS")?)?;
        Ok((
            Self {
                uprobes: Uprobes::start(ebpf)?,
                watched,
                watched_bits,
                probes,
                connects,
                stream_offsets,
                stats,
                attached,
            },
            events,
        ))
    }

    /// Watches `pid` for good (it may be pending since its exec: keep its generation).
    pub fn watch(&mut self, pid: u32) -> anyhow::Result<()> {
        // A new entry starts at a generation of its own, as the kernel's do (a recycled
        // pid must not match the fds its last holder opened by path).
        let fresh = || {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            (now.map_or(0, |d| d.subsec_nanos())) | 1
        };
        let generation = self
            .watched
            .get(&pid, 0)
            .map_or_else(|_| fresh(), |s| s.generation);
        self.watched
            .insert(
                pid,
                WatchState {
                    generation,
                    pending: watch_state::WATCHED,
                    ..WatchState::default()
                },
                0,
            )
            .with_context(|| format!("adding pid {pid} to the watched set"))?;
        self.watched_bits.mark(pid);
        Ok(())
    }

    /// Drops a process from the watched set (a pending one that is no server).
    pub fn unwatch(&mut self, pid: u32) {
        // Gone already (it exited, or was never pending): nothing to do.
        let _ = self.watched.remove(&pid);
    }

    pub fn stats(&self) -> anyhow::Result<KernelStats> {
        let sum = |i: u32| -> anyhow::Result<u64> { Ok(self.stats.get(&i, 0)?.iter().copied().sum()) };
        Ok(KernelStats {
            ringbuf_full_data: sum(stat::RINGBUF_FULL_DATA)?,
            ringbuf_full_lifecycle: sum(stat::RINGBUF_FULL_LIFECYCLE)?,
            ringbuf_full_other: sum(stat::RINGBUF_FULL_OTHER)?,
            data_headroom: sum(stat::DATA_HEADROOM)?,
            read_failed: sum(stat::READ_FAILED)?,
            watch_full: sum(stat::WATCH_FULL)?,
            tls_unpaired: sum(stat::TLS_UNPAIRED)?,
            cut_ring: sum(stat::COPY_CUT_RING)?,
            cut_read: sum(stat::COPY_CUT_READ)?,
            cut_limit: sum(stat::COPY_CUT_LIMIT)?,
            compat_syscalls: sum(stat::COMPAT_SYSCALL)?,
            fd_unresolved: sum(stat::FD_UNRESOLVED)?,
            cut_invisible: sum(stat::COPY_CUT_INVISIBLE)?,
        })
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program `{name}` missing from the eBPF object"))?;
    p.try_into().map_err(|e| anyhow!("program `{name}`: {e}"))
}

fn take_map(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("map `{name}` missing from the eBPF object"))
}

fn program_id(info: Result<aya::programs::ProgramInfo, ProgramError>) -> u32 {
    info.map(|i| i.id()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::parse_field_offset;

    const EXEC: &str = "name: sched_process_exec\nID: 365\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n";

    #[test]
    fn finds_field_offsets_in_format_files() {
        assert_eq!(parse_field_offset(EXEC, "filename"), Some(8));
        assert_eq!(parse_field_offset(EXEC, "pid"), Some(12));
        assert_eq!(parse_field_offset(EXEC, "old_pid"), Some(16));
        assert_eq!(parse_field_offset(EXEC, "missing"), None);
        let argv = "\tfield:const char *const * argv;\toffset:24;\tsize:8;\tsigned:0;";
        assert_eq!(parse_field_offset(argv, "argv"), Some(24));
        let comm = "\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;";
        assert_eq!(parse_field_offset(comm, "comm"), Some(12));
    }
}
