//! Decoding of ring-buffer records. Every length is checked against the bytes the
//! kernel actually sent; nothing is transmuted, and a malformed record is an error
//! (counted by the caller), never a panic.
use std::{
    borrow::Cow,
    mem::{offset_of, size_of},
};

use monitor_common::{
    AcceptRecord, CompatRecord, ConnectRecord, DataMeta, ExecMeta, ExecRecord, ExitRecord, FdChangeRecord,
    ForkRecord, Header, LEGACY_DATA_META_SIZE, LEGACY_OPEN_META_SIZE, MAX_ARGV, MAX_CHUNK, MAX_FILENAME,
    MAX_PATH, MAX_RESOLVED, OpenMeta, data_flags, direction, kind, resolved,
};

/// A decoded record. A data record's payload borrows the ring's bytes (`'a`): it is
/// copied only when the pipeline keeps the record past the ring entry (held for
/// earlier records, or TLS plaintext waiting for its socket), see [`Data::into_owned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Exec(Exec),
    Fork {
        header: Header,
        child_pid: u32,
        watched: bool,
    },
    Exit {
        header: Header,
    },
    Data(Data<'a>),
    Open(Open),
    Connect(Connect),
    Accept(Accept),
    FdChange {
        header: Header,
        syscall: u32,
        fd: i32,
    },
    /// The first syscall of a watched process (since its exec) that came through a
    /// 32-bit entry, with its 32-bit number: the kernel decodes none of them.
    CompatSyscall {
        header: Header,
        nr: u32,
    },
    /// A watched process set up an io_uring (first time since its exec): what it
    /// submits through the ring is not seen.
    IoUring {
        header: Header,
    },
}

impl Record<'_> {
    /// Every `kind()`, for metrics created at zero.
    pub const KINDS: &'static [&'static str] = &[
        "exec",
        "fork",
        "exit",
        "data",
        "open",
        "connect",
        "accept",
        "fd_change",
        "compat_syscall",
        "io_uring",
    ];

    /// The record's kind, as the `kind` label of `mcp_monitor_records_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Exec(_) => "exec",
            Record::Fork { .. } => "fork",
            Record::Exit { .. } => "exit",
            Record::Data(_) => "data",
            Record::Open(_) => "open",
            Record::Connect(_) => "connect",
            Record::Accept(_) => "accept",
            Record::FdChange { .. } => "fd_change",
            Record::CompatSyscall { .. } => "compat_syscall",
            Record::IoUring { .. } => "io_uring",
        }
    }

    pub fn header(&self) -> &Header {
        match self {
            Record::Exec(e) => &e.header,
            Record::Fork { header, .. }
            | Record::Exit { header }
            | Record::FdChange { header, .. }
            | Record::CompatSyscall { header, .. }
            | Record::IoUring { header } => header,
            Record::Data(d) => &d.header,
            Record::Open(o) => &o.header,
            Record::Connect(c) => &c.header,
            Record::Accept(a) => &a.header,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub header: Header,
    pub uid: u32,
    pub gid: u32,
    pub old_tid: u32,
    pub filename: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub argv_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data<'a> {
    pub header: Header,
    pub fd: i32,
    pub syscall: u32,
    pub direction: Direction,
    pub truncated: bool,
    pub total: u64,
    pub chunk_offset: u64,
    pub stream_offset: u64,
    /// TLS plaintext (from the OpenSSL uprobes): the `SSL*` it went through. None:
    /// the bytes of a syscall, on `fd`. Plaintext has `fd` -1 unless a syscall nested
    /// in the call named the socket.
    pub tls_conn: Option<u64>,
    /// What the fd was at the syscall's exit, read by the kernel from its `struct
    /// file`; None when it could not (or for TLS plaintext, or an older recording).
    pub file: Option<FileInfo>,
    /// Borrowed from the ring while the record is handled; owned once kept.
    pub bytes: Cow<'a, [u8]>,
}

/// An fd's inode as the kernel saw it at the syscall: mode (`S_IFMT` type and
/// permissions), number, device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileInfo {
    pub mode: u16,
    pub inode: u64,
    pub dev: u32,
}

impl FileInfo {
    /// The file type bits (`monitor_common::file_type`).
    pub fn file_type(&self) -> u16 {
        self.mode & monitor_common::file_type::MASK
    }
}

impl Data<'_> {
    /// The same record, owning its bytes: for one kept past its ring entry.
    pub fn into_owned(self) -> Data<'static> {
        Data {
            header: self.header,
            fd: self.fd,
            syscall: self.syscall,
            direction: self.direction,
            truncated: self.truncated,
            total: self.total,
            chunk_offset: self.chunk_offset,
            stream_offset: self.stream_offset,
            tls_conn: self.tls_conn,
            file: self.file,
            bytes: Cow::Owned(self.bytes.into_owned()),
        }
    }

    /// A marker that the transfer's copy stopped short: no bytes, and the rest of the
    /// transfer (`missing_after`) never comes.
    pub fn is_cut(&self) -> bool {
        self.truncated && self.bytes.is_empty()
    }

    /// Bytes of the transfer after this record's that were not captured.
    pub fn missing_after(&self) -> u64 {
        self.total
            .saturating_sub(self.chunk_offset.saturating_add(self.bytes.len() as u64))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub header: Header,
    pub syscall: u32,
    pub dirfd: i32,
    pub flags: u64,
    pub ret: i64,
    /// The path as asked for (relative to `dirfd` when not absolute).
    pub path: Vec<u8>,
    /// What the kernel opened, from the new fd's `struct file`: None when the open
    /// failed, or the programs had no struct offsets (or the recording predates it).
    pub opened: Option<Opened>,
}

/// The file an open reached, as the kernel saw it at the syscall's exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub ino: u64,
    /// `s_dev`, kernel encoding (major << 20 | minor).
    pub dev: u32,
    pub mode: u32,
    pub nlink: u32,
    pub path: KernelPath,
}

/// The opened file's path from its dentries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelPath {
    /// From the root of the process's mount namespace: `/a/b`.
    Whole(Vec<u8>),
    /// The leaf end only (`a/b`): the walk stopped before the root.
    Partial(Vec<u8>),
    /// Reachable from no root: a pipe, an anonymous inode, a mount out of the namespace.
    Unreachable,
    /// Not walked (offsets unknown).
    Unknown,
}

impl KernelPath {
    /// From the walk's components (leaf first, each NUL-terminated) and its outcome.
    fn from_walk(state: u32, components: &[u8]) -> Result<Self, DecodeError> {
        let joined = || {
            let body = components.strip_suffix(&[0]).unwrap_or(components);
            let mut parts: Vec<&[u8]> = if body.is_empty() {
                Vec::new()
            } else {
                body.split(|&b| b == 0).collect()
            };
            parts.reverse();
            parts.join(&b'/')
        };
        Ok(match state {
            resolved::NONE => Self::Unknown,
            resolved::WHOLE => {
                let mut path = b"/".to_vec();
                path.extend_from_slice(&joined());
                Self::Whole(path)
            }
            resolved::PARTIAL => Self::Partial(joined()),
            resolved::UNREACHABLE => Self::Unreachable,
            _ => return Err(DecodeError::BadField("resolved")),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub header: Header,
    pub fd: i32,
    pub ret: i64,
    pub addr: Vec<u8>,
}

/// A connection a watched process accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub header: Header,
    pub listen_fd: i32,
    pub fd: i32,
    /// The peer's sockaddr; empty when the caller did not ask for it.
    pub addr: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Short { kind: u32, need: usize, got: usize },
    UnknownKind(u32),
    BadField(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Short { kind, need, got } => {
                write!(f, "record of kind {kind} has {got} bytes, needs {need}")
            }
            Self::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            Self::BadField(name) => write!(f, "record field `{name}` out of range"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads a `T` from the start of `buf` when it holds at least `size_of::<T>()` bytes.
/// Only used with the all-integer `#[repr(C)]` structs of monitor-common, for which
/// every bit pattern is valid.
fn read<T: Copy>(buf: &[u8], kind: u32) -> Result<T, DecodeError> {
    if buf.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            kind,
            need: size_of::<T>(),
            got: buf.len(),
        });
    }
    // Safety: length checked above; read_unaligned has no alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) })
}

/// Used bytes of a trailing array: `len` as claimed by the kernel, checked against
/// both the array's size and what was actually received.
fn tail<'a>(
    buf: &'a [u8],
    start: usize,
    len: u32,
    cap: usize,
    field: &'static str,
) -> Result<&'a [u8], DecodeError> {
    let len = len as usize;
    if len > cap {
        return Err(DecodeError::BadField(field));
    }
    buf.get(start..start + len).ok_or(DecodeError::BadField(field))
}

impl<'a> TryFrom<&'a [u8]> for Record<'a> {
    type Error = DecodeError;

    fn try_from(buf: &'a [u8]) -> Result<Self, Self::Error> {
        let header: Header = read(buf, 0)?;
        match header.kind {
            kind::EXEC => {
                let r: ExecMeta = read(buf, kind::EXEC)?;
                let start = offset_of!(ExecRecord, filename);
                let filename = tail(buf, start, r.filename_len, MAX_FILENAME, "filename_len")?.to_vec();
                let argv_start = offset_of!(ExecRecord, argv);
                let argv = tail(buf, argv_start, r.argv_len, MAX_ARGV, "argv_len")?;
                Ok(Record::Exec(Exec {
                    header,
                    uid: r.uid,
                    gid: r.gid,
                    old_tid: r.old_tid,
                    filename,
                    argv: split_argv(argv),
                    argv_truncated: r.argv_truncated != 0,
                }))
            }
            kind::FORK => {
                let r: ForkRecord = read(buf, kind::FORK)?;
                Ok(Record::Fork {
                    header,
                    child_pid: r.child_pid,
                    watched: r.watched != 0,
                })
            }
            kind::EXIT => {
                let _: ExitRecord = read(buf, kind::EXIT)?;
                Ok(Record::Exit { header })
            }
            kind::DATA => {
                let (r, meta_size) = data_meta(buf)?;
                let bytes = Cow::Borrowed(tail(buf, meta_size, r.len, MAX_CHUNK, "len")?);
                let direction = match r.direction {
                    direction::READ => Direction::Read,
                    direction::WRITE => Direction::Write,
                    _ => return Err(DecodeError::BadField("direction")),
                };
                Ok(Record::Data(Data {
                    header,
                    fd: r.fd,
                    syscall: r.syscall,
                    direction,
                    truncated: r.flags & data_flags::TRUNCATED != 0,
                    total: r.total,
                    chunk_offset: r.chunk_offset,
                    stream_offset: r.stream_offset,
                    tls_conn: (r.flags & data_flags::TLS != 0).then_some(r.conn),
                    file: (r.flags & data_flags::FILE != 0).then_some(FileInfo {
                        mode: r.file_mode,
                        inode: r.inode,
                        dev: r.dev,
                    }),
                    bytes,
                }))
            }
            kind::OPEN => {
                let (r, start) = open_meta(buf)?;
                let path = tail(buf, start, r.path_len, MAX_PATH, "path_len")?.to_vec();
                let components = tail(
                    buf,
                    start + path.len(),
                    r.resolved_len,
                    MAX_RESOLVED,
                    "resolved_len",
                )?;
                let kernel_path = KernelPath::from_walk(r.resolved, components)?;
                let opened =
                    (r.ret >= 0 && (r.ino != 0 || kernel_path != KernelPath::Unknown)).then_some(Opened {
                        ino: r.ino,
                        dev: r.dev,
                        mode: r.mode,
                        nlink: r.nlink,
                        path: kernel_path,
                    });
                Ok(Record::Open(Open {
                    header,
                    syscall: r.syscall,
                    dirfd: r.dirfd,
                    flags: r.flags,
                    ret: r.ret,
                    path,
                    opened,
                }))
            }
            kind::CONNECT => {
                let r: ConnectRecord = read(buf, kind::CONNECT)?;
                let addr = tail(
                    buf,
                    offset_of!(ConnectRecord, addr),
                    r.addr_len,
                    r.addr.len(),
                    "addr_len",
                )?
                .to_vec();
                Ok(Record::Connect(Connect {
                    header,
                    fd: r.fd,
                    ret: r.ret,
                    addr,
                }))
            }
            kind::ACCEPT => {
                let r: AcceptRecord = read(buf, kind::ACCEPT)?;
                let addr = tail(
                    buf,
                    offset_of!(AcceptRecord, addr),
                    r.addr_len,
                    r.addr.len(),
                    "addr_len",
                )?
                .to_vec();
                Ok(Record::Accept(Accept {
                    header,
                    listen_fd: r.listen_fd,
                    fd: r.fd,
                    addr,
                }))
            }
            kind::FD_CHANGE => {
                let r: FdChangeRecord = read(buf, kind::FD_CHANGE)?;
                Ok(Record::FdChange {
                    header,
                    syscall: r.syscall,
                    fd: r.fd,
                })
            }
            kind::COMPAT_SYSCALL => {
                let r: CompatRecord = read(buf, kind::COMPAT_SYSCALL)?;
                Ok(Record::CompatSyscall { header, nr: r.nr })
            }
            kind::IO_URING => {
                let _: CompatRecord = read(buf, kind::IO_URING)?;
                Ok(Record::IoUring { header })
            }
            other => Err(DecodeError::UnknownKind(other)),
        }
    }
}

/// A data record's fixed part and its size: the current layout, or the shorter one of
/// recordings made before `inode` and `dev` were added (told apart by the record's
/// length: the fixed part plus exactly `len` bytes). The latter never has
/// `data_flags::FILE` (older kernels' programs did not set it).
fn data_meta(buf: &[u8]) -> Result<(DataMeta, usize), DecodeError> {
    let full = size_of::<DataMeta>();
    if legacy_sized(buf) {
        let mut meta = vec![0u8; full];
        meta[..LEGACY_DATA_META_SIZE].copy_from_slice(&buf[..LEGACY_DATA_META_SIZE]);
        let mut r: DataMeta = read(&meta, kind::DATA)?;
        r.flags &= !data_flags::FILE;
        return Ok((r, LEGACY_DATA_META_SIZE));
    }
    Ok((read(buf, kind::DATA)?, full))
}

/// An open record's fixed part and its size: the current layout, or the shorter one of
/// recordings made before the kernel resolved paths (the fixed part plus exactly
/// `path_len` bytes; its `_pad` was always 0, which reads as `resolved::NONE`).
fn open_meta(buf: &[u8]) -> Result<(OpenMeta, usize), DecodeError> {
    let full = size_of::<OpenMeta>();
    let len_at = std::mem::offset_of!(OpenMeta, path_len);
    let legacy = buf
        .get(len_at..len_at + 4)
        .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .is_some_and(|len| buf.len() == LEGACY_OPEN_META_SIZE + len);
    if legacy {
        let mut meta = vec![0u8; full];
        meta[..LEGACY_OPEN_META_SIZE].copy_from_slice(&buf[..LEGACY_OPEN_META_SIZE]);
        let mut r: OpenMeta = read(&meta, kind::OPEN)?;
        r.resolved = resolved::NONE;
        return Ok((r, LEGACY_OPEN_META_SIZE));
    }
    Ok((read(buf, kind::OPEN)?, full))
}

/// Whether `buf` is a legacy data record: 72 bytes of fixed part then `len` bytes.
fn legacy_sized(buf: &[u8]) -> bool {
    let len_at = std::mem::offset_of!(DataMeta, len);
    let Some(len) = buf.get(len_at..len_at + 4) else {
        return false;
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    buf.len() == LEGACY_DATA_META_SIZE + len
}

/// NUL-terminated arguments back to back.
fn split_argv(buf: &[u8]) -> Vec<Vec<u8>> {
    let buf = buf.strip_suffix(&[0]).unwrap_or(buf);
    if buf.is_empty() {
        return Vec::new();
    }
    buf.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(v: &T, len: usize) -> Vec<u8> {
        // Safety: test-only view of a plain #[repr(C)] value.
        let all = unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) };
        all[..len].to_vec()
    }

    fn hdr(kind: u32) -> Header {
        Header {
            kind,
            pid: 42,
            tid: 43,
            _pad: 0,
            ts_ns: 7,
        }
    }

    fn data_meta(len: u32, dir: u8) -> DataMeta {
        DataMeta {
            header: hdr(kind::DATA),
            fd: 1,
            syscall: 1,
            direction: dir,
            len,
            total: len as u64,
            stream_offset: 10,
            ..Default::default()
        }
    }

    #[test]
    fn data_record_uses_only_the_sent_bytes() {
        let mut buf = bytes_of(&data_meta(5, direction::WRITE), size_of::<DataMeta>());
        buf.extend_from_slice(b"hello");
        let Record::Data(d) = Record::try_from(buf.as_slice()).unwrap() else {
            panic!()
        };
        assert_eq!(&d.bytes[..], b"hello");
        assert_eq!(d.direction, Direction::Write);
        assert_eq!(d.stream_offset, 10);
        assert_eq!(d.header.pid, 42);
    }

    #[test]
    fn data_record_claiming_more_than_sent_is_rejected() {
        let mut buf = bytes_of(&data_meta(100, direction::READ), size_of::<DataMeta>());
        buf.extend_from_slice(&[0; 10]);
        assert_eq!(
            Record::try_from(buf.as_slice()),
            Err(DecodeError::BadField("len"))
        );
        let buf = bytes_of(&data_meta(u32::MAX, direction::READ), size_of::<DataMeta>());
        assert_eq!(
            Record::try_from(buf.as_slice()),
            Err(DecodeError::BadField("len"))
        );
    }

    #[test]
    fn bad_direction_and_kind_and_short_records_are_errors() {
        let buf = bytes_of(&data_meta(0, 9), size_of::<DataMeta>());
        assert_eq!(
            Record::try_from(buf.as_slice()),
            Err(DecodeError::BadField("direction"))
        );
        let buf = bytes_of(&hdr(99), size_of::<Header>());
        assert_eq!(
            Record::try_from(buf.as_slice()),
            Err(DecodeError::UnknownKind(99))
        );
        assert!(matches!(
            Record::try_from(&[1u8, 0, 0][..]),
            Err(DecodeError::Short { .. })
        ));
        let buf = bytes_of(&hdr(kind::FORK), size_of::<Header>());
        assert!(matches!(
            Record::try_from(buf.as_slice()),
            Err(DecodeError::Short { kind: kind::FORK, .. })
        ));
    }

    #[test]
    fn data_records_carry_the_kernels_file_and_legacy_ones_decode() {
        let meta = DataMeta {
            flags: data_flags::FILE,
            file_mode: monitor_common::file_type::FIFO | 0o600,
            inode: 4242,
            dev: 14,
            ..data_meta(3, direction::WRITE)
        };
        let mut buf = bytes_of(&meta, size_of::<DataMeta>());
        buf.extend_from_slice(b"abc");
        let Record::Data(d) = Record::try_from(buf.as_slice()).unwrap() else {
            panic!()
        };
        let file = d.file.unwrap();
        assert_eq!((file.inode, file.dev), (4242, 14));
        assert_eq!(file.file_type(), monitor_common::file_type::FIFO);
        assert_eq!(&d.bytes[..], b"abc");
        // A recording made before inode and dev: 72 bytes of fixed part.
        let mut old = bytes_of(&meta, LEGACY_DATA_META_SIZE);
        old.extend_from_slice(b"abc");
        let Record::Data(d) = Record::try_from(old.as_slice()).unwrap() else {
            panic!()
        };
        assert_eq!(&d.bytes[..], b"abc");
        assert_eq!(d.file, None, "no file from an older kernel program");
        assert_eq!(d.stream_offset, 10);
    }

    #[test]
    fn io_uring_records_decode_and_short_ones_do_not() {
        let r = CompatRecord {
            header: hdr(kind::IO_URING),
            nr: 425,
            _pad: 0,
        };
        let buf = bytes_of(&r, size_of::<CompatRecord>());
        assert_eq!(
            Record::try_from(buf.as_slice()),
            Ok(Record::IoUring {
                header: hdr(kind::IO_URING)
            })
        );
        assert_eq!(Record::try_from(buf.as_slice()).unwrap().kind(), "io_uring");
        assert!(matches!(
            Record::try_from(&buf[..size_of::<Header>() + 2]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn compat_records_decode_and_short_ones_do_not() {
        let r = CompatRecord {
            header: hdr(kind::COMPAT_SYSCALL),
            nr: 4,
            _pad: 0,
        };
        let buf = bytes_of(&r, size_of::<CompatRecord>());
        assert_eq!(
            Record::try_from(buf.as_slice()),
            Ok(Record::CompatSyscall {
                header: hdr(kind::COMPAT_SYSCALL),
                nr: 4
            })
        );
        assert!(matches!(
            Record::try_from(&buf[..size_of::<Header>() + 2]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn exec_record_splits_argv() {
        let argv = b"node\0server.js\0--root\0/tmp\0";
        let mut r = Box::new(ExecRecord {
            meta: ExecMeta {
                header: hdr(kind::EXEC),
                uid: 1000,
                filename_len: 9,
                argv_len: argv.len() as u32,
                ..Default::default()
            },
            filename: [0; MAX_FILENAME],
            argv: [0; MAX_ARGV],
        });
        r.filename[..9].copy_from_slice(b"/bin/node");
        r.argv[..argv.len()].copy_from_slice(argv);
        let buf = bytes_of(&*r, offset_of!(ExecRecord, argv) + argv.len());
        let Record::Exec(e) = Record::try_from(buf.as_slice()).unwrap() else {
            panic!()
        };
        assert_eq!(e.filename, b"/bin/node");
        assert_eq!(
            e.argv,
            vec![
                b"node".to_vec(),
                b"server.js".to_vec(),
                b"--root".to_vec(),
                b"/tmp".to_vec()
            ]
        );
        assert_eq!(e.uid, 1000);
    }

    #[test]
    fn empty_argv_is_empty() {
        assert!(split_argv(b"").is_empty());
        assert_eq!(
            split_argv(b"a\0\0b\0"),
            vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec()]
        );
    }
}
