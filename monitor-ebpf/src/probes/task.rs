//! Reads of the current task's kernel structs, with member offsets from the kernel's
//! BTF (`KERNEL_OFFSETS`, patched in by userspace before load): whether the syscall
//! entered through a 32-bit entry, and what an fd is (its `struct file`'s inode) at
//! the moment of the syscall, whatever path, dup or inheritance produced it. Only
//! watched processes (and the rare unwatched syscalls that would be acted on) get here.
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use monitor_common::{TS_COMPAT, file_type, is_tty};

use crate::maps::kernel_offsets;

/// What an fd refers to: its inode's mode, number and device; for a character device,
/// which one (`i_rdev`, else 0).
#[derive(Clone, Copy)]
pub struct FileInfo {
    pub mode: u16,
    pub ino: u64,
    pub dev: u32,
    pub rdev: u32,
}

impl FileInfo {
    /// Whether its bytes are copied: pipes, FIFOs and sockets carry MCP; terminals are
    /// copied too (for --debug-captures); regular files and other devices are not.
    #[inline(always)]
    pub fn is_stream(&self) -> bool {
        let kind = self.mode & file_type::MASK;
        kind == file_type::FIFO || kind == file_type::SOCK || (kind == file_type::CHR && is_tty(self.rdev))
    }
}

#[inline(always)]
pub fn read_u64(addr: u64) -> Option<u64> {
    // Safety: a kernel address from the current task's own structs; an unreadable one
    // is an error, never a fault.
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.ok()
}

#[inline(always)]
fn read_u32(addr: u64) -> Option<u32> {
    // Safety: as above.
    unsafe { bpf_probe_read_kernel(addr as *const u32) }.ok()
}

/// Whether the current syscall came through a compat (32-bit) entry: `TS_COMPAT` in
/// `current->thread_info.status`, set by the 32-bit entries until the return to user
/// mode (after the `sys_exit` tracepoint). Unknown offsets or an unreadable status
/// count as native.
#[inline(always)]
pub fn compat() -> bool {
    let off = kernel_offsets();
    if off.valid == 0 {
        return false;
    }
    // Safety: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    read_u32(task + off.task_status as u64).is_some_and(|s| s & TS_COMPAT != 0)
}

/// The `struct file` behind `fd` of the current process now:
/// `current->files->fdt->fd[fd]`, checked against `max_fds`.
#[inline(always)]
pub fn file_ptr(fd: i32) -> Option<u64> {
    let off = kernel_offsets();
    if off.valid == 0 || fd < 0 {
        return None;
    }
    // Safety: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let files = read_u64(task + off.task_files as u64).filter(|&p| p != 0)?;
    let fdt = read_u64(files + off.files_fdt as u64).filter(|&p| p != 0)?;
    let max_fds = read_u32(fdt + off.fdt_max_fds as u64)?;
    if fd as u32 >= max_fds {
        return None;
    }
    let array = read_u64(fdt + off.fdt_fd as u64).filter(|&p| p != 0)?;
    read_u64(array + (fd as u64) * 8).filter(|&p| p != 0)
}

/// The file `fd` of the current process refers to now (its `f_inode`).
#[inline(always)]
pub fn file_of(fd: i32) -> Option<FileInfo> {
    inode_of(file_ptr(fd)?)
}

/// What a `struct file` refers to (its `f_inode`).
#[inline(always)]
pub fn inode_of(file: u64) -> Option<FileInfo> {
    let off = kernel_offsets();
    let inode = read_u64(file + off.file_inode as u64).filter(|&p| p != 0)?;
    // Safety: as in `read_u64`.
    let mode: u16 = unsafe { bpf_probe_read_kernel((inode + off.inode_mode as u64) as *const u16) }.ok()?;
    let ino = read_u64(inode + off.inode_ino as u64)?;
    let dev = read_u64(inode + off.inode_sb as u64)
        .filter(|&sb| sb != 0)
        .and_then(|sb| read_u32(sb + off.sb_dev as u64))
        .unwrap_or(0);
    let rdev = if mode & file_type::MASK == file_type::CHR {
        read_u32(inode + off.inode_rdev as u64).unwrap_or(0)
    } else {
        0
    };
    Some(FileInfo { mode, ino, dev, rdev })
}

/// `FMODE_WRITE` in `struct file`'s `f_mode`.
const FMODE_WRITE: u32 = 0x2;

/// Whether `fd` was opened for writing (a pipe's write end); unknown offsets or an
/// unreadable file count as writing.
#[inline(always)]
pub fn writable(fd: i32) -> bool {
    let off = kernel_offsets();
    file_ptr(fd)
        .and_then(|file| read_u32(file + off.file_fmode as u64))
        .is_none_or(|mode| mode & FMODE_WRITE != 0)
}

/// Hard links to the inode of a `struct file` (0 if unreadable).
#[inline(always)]
pub fn nlink_of(file: u64) -> u32 {
    let off = kernel_offsets();
    read_u64(file + off.file_inode as u64)
        .filter(|&p| p != 0)
        .and_then(|inode| read_u32(inode + off.inode_nlink as u64))
        .unwrap_or(0)
}
