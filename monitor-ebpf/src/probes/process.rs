//! Process lifecycle for the whole host: exec (with argv), fork of processes, exit.
//! The watched set follows forks here, in the kernel, so a tool's children are
//! watched from their first instruction.
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel_str_bytes,
        bpf_probe_read_user, bpf_probe_read_user_str_bytes,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    ExecRecord, ExitRecord, ForkRecord, MAX_ARGS, MAX_ARGV, WatchState, kind, stat, watch_state,
};

use aya_ebpf::bindings::BPF_NOEXIST;

use crate::{
    bounds::clamp,
    emit::{header, output},
    maps::{
        EXEC_ARGS, EXEC_SCRATCH, PROBES, WATCHED, count, first_generation, mark_watched, offsets,
        unmark_watched,
    },
};

const CLONE_THREAD: u64 = 0x0001_0000;

#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn execve_enter(ctx: TracePointContext) -> u32 {
    save_argv(&ctx, offsets().execve_argv);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_execveat")]
pub fn execveat_enter(ctx: TracePointContext) -> u32 {
    save_argv(&ctx, offsets().execveat_argv);
    0
}

/// argv is only readable before the old image goes away: save it per thread.
#[inline(always)]
fn save_argv(ctx: &TracePointContext, argv_offset: u32) {
    let Some(rec) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // Safety: the tracepoint record holds a user pointer at this offset.
    let Ok(argv) = (unsafe { ctx.read_at::<u64>(argv_offset as usize) }) else {
        return;
    };
    // Safety: per-CPU scratch owned by this program for its run.
    let rec = unsafe { &mut *rec };
    let mut used: usize = 0;
    rec.meta.argv_truncated = 0;
    for i in 0..MAX_ARGS {
        // Safety: reading the i-th pointer of a user array; failure ends the list.
        let Ok(arg) = (unsafe { bpf_probe_read_user((argv as *const u64).wrapping_add(i)) }) else {
            break;
        };
        if arg == 0 {
            break;
        }
        if used >= MAX_ARGV {
            rec.meta.argv_truncated = 1;
            break;
        }
        // The verifier needs `used` bounded before it indexes the buffer: keep
        // the start below half the buffer so a full-length read still fits.
        let start = clamp(used as u64, (MAX_ARGV / 2 - 1) as u64) as usize;
        if start != used {
            rec.meta.argv_truncated = 1;
            break;
        }
        // Safety: start < MAX_ARGV / 2, so the half-buffer slice stays inside `argv`.
        let dst = unsafe { core::slice::from_raw_parts_mut(rec.argv.as_mut_ptr().add(start), MAX_ARGV / 2) };
        // Safety: user string read into a bounded slice.
        match unsafe { bpf_probe_read_user_str_bytes(arg as *const u8, dst) } {
            // +1 keeps the NUL that separates arguments.
            Ok(s) => used = start + s.len() + 1,
            Err(_) => break,
        }
    }
    rec.meta.argv_len = used as u32;
    let tid = bpf_get_current_pid_tgid() as u32;
    // By reference: a copy of the 4.6 KB record would not fit the 512-byte BPF stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let _ = EXEC_ARGS.insert(tid, &*rec, 0);
}

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let off = offsets();
    let pid_tgid = bpf_get_current_pid_tgid();
    // Safety: field offsets come from this kernel's tracefs format file.
    let old_tid: u32 = unsafe { ctx.read_at(off.exec_old_pid as usize) }.unwrap_or(0);
    let rec = match EXEC_ARGS.get_ptr_mut(old_tid) {
        Some(rec) => rec,
        None => match EXEC_SCRATCH.get_ptr_mut(0) {
            Some(rec) => {
                // Safety: per-CPU scratch.
                unsafe {
                    (*rec).meta.argv_len = 0;
                    (*rec).meta.argv_truncated = 1;
                }
                rec
            }
            None => return 0,
        },
    };
    // Safety: a map value owned by this thread's exec (keyed by its tid) or per-CPU scratch.
    let rec: &mut ExecRecord = unsafe { &mut *rec };
    rec.meta.header = header(kind::EXEC, pid_tgid);
    let uid_gid = bpf_get_current_uid_gid();
    rec.meta.uid = uid_gid as u32;
    rec.meta.gid = (uid_gid >> 32) as u32;
    rec.meta.old_tid = old_tid;
    // __data_loc: low 16 bits are the offset of the string in the record.
    let loc: u32 = unsafe { ctx.read_at(off.exec_filename as usize) }.unwrap_or(0);
    let src = (ctx_ptr(&ctx) + (loc & 0xffff) as u64) as *const u8;
    // Safety: kernel string inside the tracepoint record, read into a bounded buffer.
    rec.meta.filename_len = match unsafe { bpf_probe_read_kernel_str_bytes(src, &mut rec.filename) } {
        Ok(s) => s.len() as u32,
        Err(_) => 0,
    };
    let pid = (pid_tgid >> 32) as u32;
    // Before the record goes out: userspace's decision on it must find the entry.
    match WATCHED.get_ptr_mut(pid) {
        // Safety: map value; a lost increment only delays classification.
        Some(state) => unsafe {
            (*state).generation = (*state).generation.wrapping_add(1);
            // A new image: its first compat syscall is reported again.
            (*state).compat_reported = 0;
            (*state).io_uring_reported = 0;
            // A probed process's new image is pending like any other.
            if (*state).pending == watch_state::PROBED {
                *state = WatchState {
                    generation: (*state).generation,
                    pending: watch_state::PENDING,
                    ..WatchState::default()
                };
            }
        },
        None => {
            let state = WatchState {
                generation: first_generation(),
                pending: watch_state::PENDING,
                ..WatchState::default()
            };
            if WATCHED.insert(pid, state, BPF_NOEXIST as u64).is_err() {
                count(stat::WATCH_FULL);
            } else {
                mark_watched(pid);
            }
        }
    }
    let len =
        core::mem::offset_of!(ExecRecord, argv) + clamp(rec.meta.argv_len as u64, MAX_ARGV as u64) as usize;
    output(rec as *const ExecRecord, len, stat::RINGBUF_FULL_LIFECYCLE);
    let _ = EXEC_ARGS.remove(old_tid);
    // A new program: it may be found by what it speaks, whatever the old one did.
    let _ = PROBES.remove(pid);
    0
}

#[inline(always)]
fn ctx_ptr(ctx: &TracePointContext) -> u64 {
    use aya_ebpf::EbpfContext as _;
    ctx.as_ptr() as u64
}

/// `task_newtask` fires in the parent with the clone flags, so threads (which share
/// the parent's thread-group id, already watched or not) are told apart from processes.
#[tracepoint(category = "task", name = "task_newtask")]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let off = offsets();
    // Safety: field offsets come from this kernel's tracefs format file.
    let flags: u64 = unsafe { ctx.read_at(off.newtask_clone_flags as usize) }.unwrap_or(0);
    if flags & CLONE_THREAD != 0 {
        return 0;
    }
    let Ok(child) = (unsafe { ctx.read_at::<i32>(off.newtask_pid as usize) }) else {
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let parent = (pid_tgid >> 32) as u32;
    let mut watched = 0;
    // Safety: map value pointer read once.
    let parent_watched = WATCHED
        .get_ptr(parent)
        .is_some_and(|s| unsafe { (*s).pending } == watch_state::WATCHED);
    if parent_watched {
        let state = WatchState {
            generation: first_generation(),
            pending: watch_state::WATCHED,
            ..WatchState::default()
        };
        if WATCHED.insert(child as u32, state, 0).is_ok() {
            mark_watched(child as u32);
            watched = 1;
        } else {
            count(stat::WATCH_FULL);
        }
    }
    let rec = ForkRecord {
        header: header(kind::FORK, pid_tgid),
        child_pid: child as u32,
        watched,
    };
    output(
        &rec as *const ForkRecord,
        core::mem::size_of::<ForkRecord>(),
        stat::RINGBUF_FULL_LIFECYCLE,
    );
    0
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    // Safety: field offsets come from this kernel's tracefs format file.
    let group_dead: u8 = unsafe { ctx.read_at(offsets().exit_group_dead as usize) }.unwrap_or(0);
    if group_dead == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = (pid_tgid >> 32) as u32;
    let _ = WATCHED.remove(pid);
    // No syscall of this process follows; its pid's next holder is marked when needed.
    unmark_watched(pid);
    let rec = ExitRecord {
        header: header(kind::EXIT, pid_tgid),
    };
    output(
        &rec as *const ExitRecord,
        core::mem::size_of::<ExitRecord>(),
        stat::RINGBUF_FULL_LIFECYCLE,
    );
    0
}
