//! Records built byte for byte as the kernel programs write them into the ring buffer,
//! so that replay tests and benches feed the pipeline what a kernel would, without one.
//!
//! Each function takes the record's fixed part as monitor-common defines it and the
//! used bytes of its trailing array, if it has one; the kind and the length fields are
//! set here from what is given. Exec, fork, exit, data (and the cut marker), open and
//! fd-change and compat-syscall; not yet connect and accept, which nothing builds.
use std::mem::{offset_of, size_of};

use monitor_common::{
    CompatRecord, DataMeta, ExecMeta, ExecRecord, ExitRecord, FdChangeRecord, ForkRecord, Header, MAX_ARGV,
    MAX_CHUNK, MAX_FILENAME, MAX_PATH, MAX_RESOLVED, OpenMeta, OpenRecord, data_flags, kind,
};

/// The bytes of a plain `#[repr(C)]` value.
fn bytes_of<T: Copy>(v: &T) -> &[u8] {
    // Safety: only called with monitor-common's all-integer `#[repr(C)]` records, which
    // have no padding (`tests::layouts_have_no_padding`), so every byte of `v` is
    // initialised; the slice borrows `v` and is exactly its size.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The header of a record about thread `tid` of process `pid`, at kernel time `ts_ns`
/// (CLOCK_MONOTONIC); its kind is set by the function that encodes the record.
pub const fn header(pid: u32, tid: u32, ts_ns: u64) -> Header {
    Header {
        kind: 0,
        pid,
        tid,
        _pad: 0,
        ts_ns,
    }
}

fn of_kind(kind: u32, header: Header) -> Header {
    Header { kind, ..header }
}

/// An exec record as `sched_process_exec` sends it: the fixed part, the file name in
/// its array, then `argv`, each argument NUL-terminated, cut after its used bytes.
pub fn exec(meta: ExecMeta, filename: impl AsRef<[u8]>, argv: &[impl AsRef<[u8]>]) -> Vec<u8> {
    let filename = filename.as_ref();
    let mut args = Vec::new();
    for a in argv {
        args.extend_from_slice(a.as_ref());
        args.push(0);
    }
    assert!(filename.len() <= MAX_FILENAME, "file name over MAX_FILENAME");
    assert!(args.len() <= MAX_ARGV, "argv over MAX_ARGV");
    let meta = ExecMeta {
        header: of_kind(kind::EXEC, meta.header),
        filename_len: filename.len() as u32,
        argv_len: args.len() as u32,
        ..meta
    };
    let mut bytes = vec![0u8; offset_of!(ExecRecord, argv)];
    bytes[..size_of::<ExecMeta>()].copy_from_slice(bytes_of(&meta));
    let at = offset_of!(ExecRecord, filename);
    bytes[at..at + filename.len()].copy_from_slice(filename);
    bytes.extend_from_slice(&args);
    bytes
}

/// A fork record (`sched_process_fork`, processes only).
pub fn fork(record: ForkRecord) -> Vec<u8> {
    let header = of_kind(kind::FORK, record.header);
    bytes_of(&ForkRecord { header, ..record }).to_vec()
}

/// An exit record (`sched_process_exit`, the last thread of a process).
pub fn exit(record: ExitRecord) -> Vec<u8> {
    let header = of_kind(kind::EXIT, record.header);
    bytes_of(&ExitRecord { header }).to_vec()
}

/// A data record: the fixed part, then `payload` (one chunk of a transfer, at most
/// `MAX_CHUNK` bytes).
pub fn data(meta: DataMeta, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= MAX_CHUNK, "payload over MAX_CHUNK");
    let meta = DataMeta {
        header: of_kind(kind::DATA, meta.header),
        len: payload.len() as u32,
        ..meta
    };
    let mut bytes = Vec::with_capacity(size_of::<DataMeta>() + payload.len());
    bytes.extend_from_slice(bytes_of(&meta));
    bytes.extend_from_slice(payload);
    bytes
}

/// The marker of a transfer whose copy stopped short: no bytes, `TRUNCATED`; the
/// transfer's bytes from `meta.chunk_offset` to `meta.total` never come.
pub fn cut(meta: DataMeta) -> Vec<u8> {
    data(
        DataMeta {
            flags: meta.flags | data_flags::TRUNCATED,
            ..meta
        },
        &[],
    )
}

/// An open record: the fixed part, then `path`, then `walk` (the kernel's components
/// of the opened file's path, see [`walk_of`]; `meta.resolved` says how it ended).
pub fn open(meta: OpenMeta, path: impl AsRef<[u8]>, walk: &[u8]) -> Vec<u8> {
    let path = path.as_ref();
    assert!(path.len() <= MAX_PATH, "path over MAX_PATH");
    assert!(walk.len() <= MAX_RESOLVED, "walk over MAX_RESOLVED");
    let meta = OpenMeta {
        header: of_kind(kind::OPEN, meta.header),
        path_len: path.len() as u32,
        resolved_len: walk.len() as u32,
        ..meta
    };
    let mut bytes = vec![0u8; offset_of!(OpenRecord, path)];
    bytes[..size_of::<OpenMeta>()].copy_from_slice(bytes_of(&meta));
    bytes.extend_from_slice(path);
    bytes.extend_from_slice(walk);
    bytes
}

/// The components the kernel's walk writes for an absolute `path`: leaf first, each
/// NUL-terminated.
pub fn walk_of(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()).rev() {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// A compat-syscall record: a watched process's first syscall through a 32-bit entry.
pub fn compat_syscall(record: CompatRecord) -> Vec<u8> {
    let header = of_kind(kind::COMPAT_SYSCALL, record.header);
    bytes_of(&CompatRecord { header, ..record }).to_vec()
}

/// An fd-change record: an fd of a watched process closed or replaced.
pub fn fd_change(record: FdChangeRecord) -> Vec<u8> {
    let header = of_kind(kind::FD_CHANGE, record.header);
    bytes_of(&FdChangeRecord { header, ..record }).to_vec()
}

#[cfg(test)]
mod tests {
    use monitor_common::direction;

    use super::*;
    use crate::kernel::records::{Data, Direction, Exec, KernelPath, Open, Opened, Record};
    use monitor_common::resolved;

    /// Each struct `bytes_of` is given is as large as its fields together.
    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(size_of::<Header>(), 24);
        assert_eq!(size_of::<DataMeta>(), 88);
        assert_eq!(size_of::<CompatRecord>(), 32);
        assert_eq!(size_of::<ExecMeta>(), 48);
        assert_eq!(size_of::<ForkRecord>(), 32);
        assert_eq!(size_of::<ExitRecord>(), 24);
        assert_eq!(size_of::<OpenMeta>(), 80);
        assert_eq!(offset_of!(OpenRecord, path), size_of::<OpenMeta>());
        assert_eq!(size_of::<FdChangeRecord>(), 32);
    }

    const H: Header = header(42, 43, 7_000);

    #[test]
    fn each_record_decodes_to_the_fields_given() {
        let exec_meta = ExecMeta {
            header: H,
            uid: 1000,
            gid: 1001,
            old_tid: 44,
            argv_truncated: 1,
            ..ExecMeta::default()
        };
        let open_meta = OpenMeta {
            header: H,
            syscall: 257,
            dirfd: -100,
            flags: 0o2000000,
            ret: 3,
            ..OpenMeta::default()
        };
        let cases = [
            (
                exec(exec_meta, "/usr/bin/node", &["node", "", "server.js"]),
                Record::Exec(Exec {
                    header: of_kind(kind::EXEC, H),
                    uid: 1000,
                    gid: 1001,
                    old_tid: 44,
                    filename: b"/usr/bin/node".to_vec(),
                    argv: vec![b"node".to_vec(), b"".to_vec(), b"server.js".to_vec()],
                    argv_truncated: true,
                }),
            ),
            (
                fork(ForkRecord {
                    header: H,
                    child_pid: 50,
                    watched: 1,
                }),
                Record::Fork {
                    header: of_kind(kind::FORK, H),
                    child_pid: 50,
                    watched: true,
                },
            ),
            (
                exit(ExitRecord { header: H }),
                Record::Exit {
                    header: of_kind(kind::EXIT, H),
                },
            ),
            (
                open(open_meta, "/etc/shadow", &[]),
                Record::Open(Open {
                    header: of_kind(kind::OPEN, H),
                    syscall: 257,
                    dirfd: -100,
                    flags: 0o2000000,
                    ret: 3,
                    path: b"/etc/shadow".to_vec(),
                    opened: None,
                }),
            ),
            (
                open(
                    OpenMeta {
                        resolved: resolved::WHOLE,
                        ino: 77,
                        dev: 5 << 20 | 1,
                        mode: 0o100640,
                        nlink: 2,
                        ..open_meta
                    },
                    "link-to-shadow",
                    &walk_of("/etc/shadow"),
                ),
                Record::Open(Open {
                    header: of_kind(kind::OPEN, H),
                    syscall: 257,
                    dirfd: -100,
                    flags: 0o2000000,
                    ret: 3,
                    path: b"link-to-shadow".to_vec(),
                    opened: Some(Opened {
                        ino: 77,
                        dev: 5 << 20 | 1,
                        mode: 0o100640,
                        nlink: 2,
                        path: KernelPath::Whole(b"/etc/shadow".to_vec()),
                    }),
                }),
            ),
            (
                fd_change(FdChangeRecord {
                    header: H,
                    syscall: 3,
                    fd: 5,
                }),
                Record::FdChange {
                    header: of_kind(kind::FD_CHANGE, H),
                    syscall: 3,
                    fd: 5,
                },
            ),
        ];
        for (bytes, fields) in cases {
            assert_eq!(Record::try_from(bytes.as_slice()), Ok(fields));
        }
    }

    fn decoded_data(bytes: &[u8]) -> Data<'static> {
        match Record::try_from(bytes) {
            Ok(Record::Data(d)) => d.into_owned(),
            other => panic!("not a data record: {other:?}"),
        }
    }

    /// Data records are checked field by field: the ones given, whatever else `Data`
    /// holds.
    #[test]
    fn data_records_and_cut_markers_decode_to_the_fields_given() {
        let write = DataMeta {
            header: H,
            fd: 1,
            syscall: 1,
            direction: direction::WRITE,
            total: 100,
            chunk_offset: 20,
            stream_offset: 1_020,
            ..DataMeta::default()
        };
        let d = decoded_data(&data(write, b"hello"));
        assert_eq!(
            (d.header, d.fd, d.syscall, d.direction),
            (of_kind(kind::DATA, H), 1, 1, Direction::Write)
        );
        assert_eq!((d.total, d.chunk_offset, d.stream_offset), (100, 20, 1_020));
        assert_eq!((d.truncated, d.tls_conn), (false, None));
        assert_eq!(&d.bytes[..], b"hello");

        let read = DataMeta {
            fd: 0,
            syscall: 0,
            direction: direction::READ,
            ..write
        };
        let d = decoded_data(&data(read, b"hello"));
        assert_eq!((d.fd, d.syscall, d.direction), (0, 0, Direction::Read));

        let tls = DataMeta {
            flags: data_flags::TLS,
            conn: 0xdead_beef,
            ..write
        };
        assert_eq!(decoded_data(&data(tls, b"hello")).tls_conn, Some(0xdead_beef));

        let marker = decoded_data(&cut(write));
        assert!(marker.truncated && marker.bytes.is_empty());
        assert!(marker.is_cut());
        assert_eq!((marker.total, marker.chunk_offset), (100, 20));
        assert_eq!(marker.missing_after(), 80);
    }
}
