//! The path of a file a watched process opened, as the kernel reached it: the opened
//! file's dentries walked up to the root of its mount namespace, crossing mounts, with
//! struct offsets from BTF. Symlinks, `/proc/*/root`, relative paths, dirfds and a
//! `chdir` racing the open do not change it: it is the file, not the text asked for.
//! Components go out leaf first, each NUL-terminated (userspace reverses them).
use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_kernel_str};
use monitor_common::{MAX_COMPONENTS, MAX_NAME, MAX_PATH, MAX_RESOLVED, resolved};

use super::task::read_u64;
use crate::maps::{OPEN_SCRATCH, PATH_WALK, kernel_offsets};

/// State of one walk, shared with the `bpf_loop` callback through a per-CPU map (as
/// `Copy` is, so that the callback verifies once whatever the values).
#[repr(C)]
pub struct PathWalk {
    dentry: u64,
    /// The `struct mount` the dentry is in, and that mount's root dentry.
    mount: u64,
    mount_root: u64,
    /// Next write offset in the open record's `path`, and where the components start.
    at: u64,
    base: u64,
    /// A `resolved` value once the walk ends.
    state: u32,
    _pad: u32,
}

/// Writes the components of `file`'s path into the open scratch record's `path` from
/// `base` on. Returns (a `resolved` value, bytes written).
#[inline(always)]
pub fn resolve(file: u64, base: u32) -> (u32, u32) {
    let off = kernel_offsets();
    let Some(w) = PATH_WALK.get_ptr_mut(0) else {
        return (resolved::NONE, 0);
    };
    // Safety: per-CPU state owned by this program for its run.
    let w = unsafe { &mut *w };
    let start = read_u64(file + off.file_dentry as u64).zip(read_u64(file + off.file_vfsmount as u64));
    let Some((dentry, vfsmount)) = start.filter(|&(d, m)| d != 0 && m != 0) else {
        return (resolved::NONE, 0);
    };
    let Some(root) = read_u64(vfsmount + off.vfsmount_root as u64) else {
        return (resolved::NONE, 0);
    };
    *w = PathWalk {
        dentry,
        mount: vfsmount - off.mount_mnt as u64,
        mount_root: root,
        at: base as u64,
        base: base as u64,
        state: resolved::NONE,
        _pad: 0,
    };
    // Safety: bpf_loop calls `walk_step`, which finds its state in PATH_WALK.
    unsafe {
        bpf_loop(MAX_COMPONENTS, walk_step as *mut c_void, core::ptr::null_mut(), 0);
    }
    if w.state == resolved::NONE {
        w.state = resolved::PARTIAL;
    }
    (w.state, (w.at - w.base) as u32)
}

/// One step up: out of a mount's root into its mountpoint, or one component written
/// and its parent next. Returns 1 to stop.
extern "C" fn walk_step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(w) = PATH_WALK.get_ptr_mut(0) else {
        return 1;
    };
    // Safety: per-CPU state filled by `resolve` on this CPU before the loop.
    let w = unsafe { &mut *w };
    match step(w) {
        Some(true) => 0,
        Some(false) => 1,
        None => {
            w.state = resolved::PARTIAL;
            1
        }
    }
}

/// Some(true): go on; Some(false): ended (state set); None: a read failed.
#[inline(always)]
fn step(w: &mut PathWalk) -> Option<bool> {
    let off = kernel_offsets();
    if w.dentry == w.mount_root {
        let parent = read_u64(w.mount + off.mount_parent as u64)?;
        // The root mount of a namespace (or a detached one) is its own parent.
        if parent == w.mount || parent == 0 {
            w.state = resolved::WHOLE;
            return Some(false);
        }
        w.dentry = read_u64(w.mount + off.mount_mountpoint as u64)?;
        w.mount_root = read_u64(parent + (off.mount_mnt + off.vfsmount_root) as u64)?;
        w.mount = parent;
        return Some(true);
    }
    let parent = read_u64(w.dentry + off.dentry_parent as u64)?;
    if parent == w.dentry {
        // A filesystem root that is no mount's root here: a pipe, an anonymous
        // inode, a mount out of this namespace.
        w.state = resolved::UNREACHABLE;
        return Some(false);
    }
    if w.at - w.base + MAX_NAME as u64 > MAX_RESOLVED as u64 {
        return None;
    }
    let name = read_u64(w.dentry + off.dentry_name as u64)?;
    let rec = OPEN_SCRATCH.get_ptr_mut(0)?;
    // The mask is for the verifier: `at` < MAX_PATH + MAX_RESOLVED - MAX_NAME already,
    // and `path` has MAX_NAME bytes more than the mask allows.
    let at = (w.at as usize) & (MAX_PATH + MAX_RESOLVED - 1);
    // Safety: at + MAX_NAME <= size of `path`; a kernel string read, bounded.
    let n = unsafe {
        let dst = (*rec).path.as_mut_ptr().add(at);
        bpf_probe_read_kernel_str(dst.cast(), MAX_NAME as u32, name as *const c_void)
    };
    if n <= 0 {
        return None;
    }
    w.at += n as u64;
    w.dentry = parent;
    Some(true)
}
