//! Member offsets of kernel structs, read from the kernel's own BTF
//! (/sys/kernel/btf/vmlinux) at load time and patched into the eBPF object's
//! `KERNEL_OFFSETS` global: aya has no CO-RE for the programs' own reads, so the
//! struct walks (`current->files->fdt->fd[fd]->f_inode`, `thread_info.status`) use
//! these offsets with `bpf_probe_read_kernel`.
//!
//! Only what that needs of the format (include/uapi/linux/btf.h) is parsed here: the
//! type section's records, to find a struct by name and walk its members, anonymous
//! structs and unions included. (The BTF crates that expose members are LGPL, which a
//! MIT/Apache binary would rather not link statically; aya-obj keeps its members
//! private.)
use std::collections::HashMap;

use anyhow::{Context as _, anyhow, bail};
use monitor_common::KernelOffsets;

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One type record: its kind, name, `size_or_type`, and (structs and unions) members.
struct Type {
    kind: u32,
    name: u32,
    /// Size for structs, unions, ints; the referred type for pointers, typedefs, ...
    size_or_type: u32,
    /// (name offset, type id, bit offset) for structs and unions.
    members: Vec<(u32, u32, u32)>,
}

/// The parsed type section of a BTF blob.
pub struct Btf {
    /// Index 0 is `void`.
    types: Vec<Type>,
    strings: Vec<u8>,
    /// Struct and union ids by name (the first one of a name).
    by_name: HashMap<String, u32>,
}

fn u16_at(b: &[u8], at: usize) -> anyhow::Result<u16> {
    let s = b
        .get(at..at + 2)
        .ok_or_else(|| anyhow!("BTF cut short at byte {at}"))?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> anyhow::Result<u32> {
    let s = b
        .get(at..at + 4)
        .ok_or_else(|| anyhow!("BTF cut short at byte {at}"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Btf {
    pub fn from_sys_fs() -> anyhow::Result<Self> {
        let path = "/sys/kernel/btf/vmlinux";
        let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        Self::parse(&bytes).with_context(|| format!("parsing {path}"))
    }

    /// Parses a little-endian BTF blob (the kernel's is in host order; x86_64 only).
    pub fn parse(b: &[u8]) -> anyhow::Result<Self> {
        if u16_at(b, 0)? != MAGIC {
            bail!("not BTF (bad magic)");
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let section = |off: usize, len: usize| {
            b.get(hdr_len + off..hdr_len + off + len)
                .ok_or_else(|| anyhow!("BTF section out of the blob"))
        };
        let types_bytes = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();
        let mut types = vec![Type {
            kind: 0,
            name: 0,
            size_or_type: 0,
            members: Vec::new(),
        }];
        let mut at = 0;
        while at < types_bytes.len() {
            let name = u32_at(types_bytes, at)?;
            let info = u32_at(types_bytes, at + 4)?;
            let size_or_type = u32_at(types_bytes, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 != 0;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let offset = u32_at(types_bytes, m + 8)?;
                        // With kind_flag: bitfield size in the top 8 bits.
                        let bits = if kind_flag { offset & 0x00ff_ffff } else { offset };
                        members.push((u32_at(types_bytes, m)?, u32_at(types_bytes, m + 4)?, bits));
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                other => bail!("unknown BTF kind {other} at type {}", types.len()),
            };
            at += extra;
            types.push(Type {
                kind,
                name,
                size_or_type,
                members,
            });
        }
        let mut btf = Self {
            types,
            strings,
            by_name: HashMap::new(),
        };
        let mut by_name = HashMap::new();
        for (id, t) in btf.types.iter().enumerate() {
            if matches!(t.kind, KIND_STRUCT | KIND_UNION) && t.name != 0 {
                by_name.entry(btf.name(t.name).to_string()).or_insert(id as u32);
            }
        }
        btf.by_name = by_name;
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// The struct or union a type id is, through typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// Byte offset of `member` in struct `name`, looking into its anonymous structs and
    /// unions; a bitfield member is refused.
    pub fn member_offset(&self, name: &str, member: &str) -> anyhow::Result<u32> {
        let id = *self
            .by_name
            .get(name)
            .ok_or_else(|| anyhow!("the kernel's BTF has no struct {name}"))?;
        let bits = self
            .find(&self.types[id as usize], member, 0)
            .ok_or_else(|| anyhow!("the kernel's BTF has no member {name}.{member}"))?;
        if bits % 8 != 0 {
            bail!("{name}.{member} is a bitfield");
        }
        Ok(bits / 8)
    }

    fn find(&self, t: &Type, member: &str, base: u32) -> Option<u32> {
        for &(name, _, bits) in &t.members {
            if self.name(name) == member {
                return Some(base + bits);
            }
        }
        // Anonymous structs and unions: their members are the outer struct's.
        for &(name, ty, bits) in &t.members {
            if name == 0
                && let Some(inner) = self.resolve(ty)
                && matches!(inner.kind, KIND_STRUCT | KIND_UNION)
                && let Some(found) = self.find(inner, member, base + bits)
            {
                return Some(found);
            }
        }
        None
    }

    /// Whether struct `name`'s `member` is a pointer (to check the walk's shape).
    pub fn member_is_pointer(&self, name: &str, member: &str) -> bool {
        let Some(&id) = self.by_name.get(name) else {
            return false;
        };
        self.types[id as usize]
            .members
            .iter()
            .find(|&&(n, _, _)| self.name(n) == member)
            .and_then(|&(_, ty, _)| self.resolve(ty))
            .is_some_and(|t| t.kind == KIND_PTR)
    }
}

/// The offsets the eBPF programs walk, from this kernel's BTF.
pub fn kernel_offsets(btf: &Btf) -> anyhow::Result<KernelOffsets> {
    let m = |s: &str, f: &str| btf.member_offset(s, f);
    for (s, f) in [
        ("task_struct", "files"),
        ("files_struct", "fdt"),
        ("fdtable", "fd"),
        ("file", "f_inode"),
        ("inode", "i_sb"),
        ("path", "dentry"),
        ("path", "mnt"),
        ("dentry", "d_parent"),
        ("qstr", "name"),
        ("mount", "mnt_parent"),
        ("mount", "mnt_mountpoint"),
        ("vfsmount", "mnt_root"),
    ] {
        if !btf.member_is_pointer(s, f) {
            bail!("{s}.{f} is not a pointer in this kernel's BTF");
        }
    }
    Ok(KernelOffsets {
        // x86_64 keeps thread_info inside task_struct (CONFIG_THREAD_INFO_IN_TASK).
        task_status: m("task_struct", "thread_info")? + m("thread_info", "status")?,
        task_files: m("task_struct", "files")?,
        files_fdt: m("files_struct", "fdt")?,
        fdt_max_fds: m("fdtable", "max_fds")?,
        fdt_fd: m("fdtable", "fd")?,
        file_inode: m("file", "f_inode")?,
        inode_mode: m("inode", "i_mode")?,
        inode_ino: m("inode", "i_ino")?,
        inode_rdev: m("inode", "i_rdev")?,
        inode_sb: m("inode", "i_sb")?,
        sb_dev: m("super_block", "s_dev")?,
        inode_nlink: m("inode", "i_nlink")?,
        file_fmode: m("file", "f_mode")?,
        file_dentry: m("file", "f_path")? + m("path", "dentry")?,
        file_vfsmount: m("file", "f_path")? + m("path", "mnt")?,
        dentry_parent: m("dentry", "d_parent")?,
        dentry_name: m("dentry", "d_name")? + m("qstr", "name")?,
        mount_mnt: m("mount", "mnt")?,
        mount_parent: m("mount", "mnt_parent")?,
        mount_mountpoint: m("mount", "mnt_mountpoint")?,
        vfsmount_root: m("vfsmount", "mnt_root")?,
        valid: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made blob: struct outer { int a; union { int b; int c; }; struct outer *p; }.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0c\0p\0".to_vec();
        let s = |name: &str| {
            let pos = strings
                .windows(name.len() + 2)
                .position(|w| w[0] == 0 && &w[1..=name.len()] == name.as_bytes() && w[name.len() + 1] == 0)
                .unwrap();
            (pos + 1) as u32
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            words
                .iter()
                .for_each(|w| types.extend_from_slice(&w.to_le_bytes()))
        };
        // [1] int
        push(&[s("int"), KIND_INT << 24, 4, 32]);
        // [2] anonymous union { b; c; }
        push(&[0, KIND_UNION << 24 | 2, 4, s("b"), 1, 0, s("c"), 1, 0]);
        // [3] struct outer
        push(&[
            s("outer"),
            KIND_STRUCT << 24 | 3,
            16,
            s("a"),
            1,
            0,
            0,
            2,
            32,
            s("p"),
            4,
            64,
        ]);
        // [4] pointer to [3]
        push(&[0, KIND_PTR << 24, 3]);
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn finds_members_through_anonymous_unions() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 4);
        assert_eq!(btf.member_offset("outer", "p").unwrap(), 8);
        assert!(btf.member_is_pointer("outer", "p"));
        assert!(!btf.member_is_pointer("outer", "a"));
        assert!(btf.member_offset("outer", "missing").is_err());
        assert!(btf.member_offset("nothing", "a").is_err());
        assert!(Btf::parse(&[0; 24]).is_err());
    }

    #[test]
    fn this_kernels_offsets_resolve() {
        let Ok(btf) = Btf::from_sys_fs() else {
            return; // no BTF here: nothing to check
        };
        let o = kernel_offsets(&btf).unwrap();
        assert_eq!(o.valid, 1);
        assert!(o.fdt_fd > o.fdt_max_fds || o.fdt_max_fds > 0);
        assert_eq!(o.inode_mode, 0, "i_mode opens struct inode");
    }
}
