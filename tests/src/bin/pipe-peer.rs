//! A process for the capture tests to watch: it talks over its stdin/stdout pipes with
//! exact, known syscalls (raw write/writev/read, no buffering), so the tests can assert
//! on what the kernel programs must have seen.
//!
//! Usage: pipe-peer --tag TAG MODE [ARGS]
//! Every mode but `echo`, `jsonrpc` and `hello` first reads one line ("go") from stdin, so the
//! test can start talking once the daemon says it watches this process.
//!   echo            copy stdin to stdout, read by read, until EOF
//!   jsonrpc         a minimal stdio MCP server for benchmarks: answers every
//!                   newline-delimited JSON-RPC request that has an id with
//!                   {"jsonrpc":"2.0","id":ID,"result":{"content":[{"type":"text","text":"ok"}]}}
//!                   in one write(), until EOF
//!   split N FILE    write FILE's bytes to stdout in N write() calls of near-equal size
//!   burst FILE      write FILE's bytes to stdout in one write() call
//!   writev A B C    write the three strings with one writev() (B may be empty)
//!   hello           write "hello <pid>\n" the moment it starts, then echo
//!   fork            fork; the child writes "child <pid>\n", the parent "parent <pid>\n"
use std::{env, process::exit};

fn write_all(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        // Safety: writing from a live slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n <= 0 {
            eprintln!("pipe-peer: write failed: {}", std::io::Error::last_os_error());
            exit(1);
        }
        buf = &buf[n as usize..];
    }
}

/// Copies stdin to stdout, read by read, until EOF.
fn echo() {
    let mut buf = vec![0u8; 65536];
    loop {
        // Safety: reading into a live buffer.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        write_all(1, &buf[..n as usize]);
    }
}

fn main() {
    let args: Vec<String> = env::args().skip(3).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    if !matches!(arg(0).as_str(), "echo" | "jsonrpc" | "hello") {
        let mut b = [0u8; 1];
        // Safety: reading one byte at a time until the newline.
        while unsafe { libc::read(0, b.as_mut_ptr().cast(), 1) } == 1 && b[0] != b'\n' {}
    }
    match arg(0).as_str() {
        "echo" => echo(),
        "jsonrpc" => jsonrpc(),
        "hello" => {
            write_all(1, format!("hello {}\n", std::process::id()).as_bytes());
            echo();
        }
        "split" => {
            let parts: usize = arg(1).parse().expect("split count");
            let data = std::fs::read(arg(2)).expect("split file");
            let size = data.len().div_ceil(parts);
            for chunk in data.chunks(size) {
                write_all(1, chunk);
            }
        }
        "burst" => {
            let data = std::fs::read(arg(1)).expect("burst file");
            // Safety: one write of the whole buffer; a blocking pipe write of this size
            // completes in full once the reader drains it.
            let n = unsafe { libc::write(1, data.as_ptr().cast(), data.len()) };
            assert_eq!(n as usize, data.len(), "short burst write");
        }
        "writev" => {
            let parts = [arg(1), arg(2), arg(3)];
            let iov: Vec<libc::iovec> = parts
                .iter()
                .map(|p| libc::iovec {
                    iov_base: p.as_ptr() as *mut _,
                    iov_len: p.len(),
                })
                .collect();
            // Safety: iovecs point into live strings.
            let n = unsafe { libc::writev(1, iov.as_ptr(), iov.len() as i32) };
            assert_eq!(n as usize, parts.iter().map(String::len).sum::<usize>());
        }
        "fork" => {
            // Safety: the child only writes and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                write_all(1, format!("child {}\n", std::process::id()).as_bytes());
                // Safety: leave without running the parent's atexit handlers.
                unsafe { libc::_exit(0) };
            }
            let mut status = 0;
            // Safety: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            write_all(1, format!("parent {}\n", std::process::id()).as_bytes());
        }
        other => {
            eprintln!("pipe-peer: unknown mode {other:?}");
            exit(2);
        }
    }
}

/// Reads newline-delimited JSON-RPC messages from stdin; answers each request with an id.
fn jsonrpc() {
    let mut buf = vec![0u8; 65536];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // Safety: reading into a live buffer.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n as usize]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + i];
            start += i + 1;
            if let Some(reply) = answer(line) {
                write_all(1, &reply);
            }
        }
        pending.drain(..start);
    }
}

fn answer(line: &[u8]) -> Option<Vec<u8>> {
    let msg: serde_json::Value = serde_json::from_slice(line).ok()?;
    let id = msg.get("id").filter(|id| !id.is_null())?;
    msg.get("method")?;
    let mut reply =
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"ok"}}]}}}}"#)
            .into_bytes();
    reply.push(b'\n');
    Some(reply)
}
