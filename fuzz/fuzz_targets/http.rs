//! The HTTP/1.1 framing of Streamable HTTP (heads through httparse, Content-Length and
//! chunked bodies, keep-alive and pipelining, `text/event-stream` bodies through the
//! SSE parser, bearer tokens, `Mcp-Session-Id`), both directions, with losses, over any
//! split of the bytes. Nothing may panic, and what it holds must stay within its bounds
//! however much it is fed (repeated ops feed up to 1 MiB). Input: the op stream of
//! `monitor_fuzz::ops`.
//!
//! Config byte: bits 0-1 `--max-message`; bit 6: 0 one `HttpConnection` on its own
//! (streams ignored; an event closes it), 1 a server's connections through
//! `Server::receive` (sessions, aliases, peers): streams 0-3 four accepted connections
//! (an event closes one; its next bytes open a new one), 4-7 sockets found through
//! /proc.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::{
    host::identity::Stdio,
    mcp::jsonrpc,
    servers::{Server, ServerHost, Stream},
    transport::{Direction, Framed, http::HttpConnection},
};
use monitor_fuzz::{Op, check_held, live_bytes, max_message, ops, process, within_budget};

/// What one connection may hold whatever it is fed: two directions' buffers (a head up
/// to 64 KiB and the chunk being pushed, capacity doubling), a body or event of each
/// direction up to `max`.
fn connection_bound(max: usize, input_len: usize) -> usize {
    4 * ((64 << 10) + input_len) + 8 * max
}

fuzz_target!(|data: &[u8]| {
    let (config, mut ops) = ops(data);
    within_budget(&mut ops);
    let max = max_message(config);
    if config & 0x40 == 0 {
        connection(&ops, max, data.len());
    } else {
        server(&ops, max, data);
    }
});

fn direction(op: &Op) -> Direction {
    if op.to_client {
        Direction::ServerToClient
    } else {
        Direction::ClientToServer
    }
}

fn look_at(framed: Vec<Framed>) {
    for f in framed {
        let _ = f.session.to_string();
        if let Some(b) = &f.bearer {
            let _ = b.to_json();
        }
        let _ = jsonrpc::parse_line(&f.body);
    }
}

/// One connection, as `Server` drives it.
fn connection(ops: &[Op], max: usize, input_len: usize) {
    let base = live_bytes();
    let mut c = HttpConnection::new(4242, 1, max);
    let mut ts = 0u64;
    for op in ops {
        ts += 1;
        if op.event {
            look_at(c.close(ts).framed);
            continue;
        }
        let dir = direction(op);
        if op.gap > 0 {
            c.lost(dir, op.gap);
        }
        for _ in 0..op.repeat {
            let before = c.stats;
            let pushed = c.push(dir, op.bytes, ts);
            let _ = c.stats.since(before);
            let _ = pushed.aliases;
            look_at(pushed.framed);
        }
    }
    // Besides its buffers: the sessions of requests waiting for their responses, as
    // many as distinct input can name.
    let allowed = connection_bound(max, input_len) + (64 << 10) + 64 * input_len;
    check_held(base, allowed, "an HTTP connection");
}

/// A server's connections: accepted ones (known from the kernel's accept record) and
/// sockets found through /proc.
fn server(ops: &[Op], max: usize, data: &[u8]) {
    let p = process("/usr/bin/python3", &["python3", "server.py"], false);
    let base = live_bytes();
    let mut server = Server::new(&p, Stdio::default(), None, ServerHost::default(), max, 0);
    // The connection number of each of the four accepted slots, opened on first use.
    let mut slots: [Option<u64>; 4] = [None; 4];
    let mut ts = 0u64;
    for op in ops {
        ts += 1;
        let stream = match op.stream {
            n @ 0..=3 => {
                let slot = &mut slots[usize::from(n)];
                if slot.is_none() {
                    let addr = format!("127.0.0.1:{}", 40000 + u16::from(n));
                    *slot = server.accepted(None, Some(addr));
                }
                match *slot {
                    Some(conn) => Stream::Accepted(conn),
                    None => continue,
                }
            }
            n => Stream::Socket(200 + u64::from(n)),
        };
        if op.event {
            for (key, out) in server.close_connection(stream, ts) {
                let _ = (key.to_string(), out);
            }
            if let Stream::Accepted(_) = stream {
                slots[usize::from(op.stream)] = None;
            }
            continue;
        }
        for i in 0..op.repeat {
            let gap = op.gap_before(i);
            let tls = op.stream & 1 != 0;
            let received = server.receive(stream, !op.to_client, op.bytes, ts, gap, tls, |inode| {
                (None, Some(format!("10.0.0.{}:5000", inode % 256)))
            });
            for (key, out) in received.outputs {
                let _ = (key.to_string(), out);
            }
            let _ = server.take_requests();
        }
    }
    // Eight connections, and what distinct input can leave in sessions: a request in
    // flight per line, its params up to a message long.
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    let allowed = 8 * connection_bound(max, data.len()) + (64 << 10) + 64 * (data.len() + max) * lines;
    check_held(base, allowed, "an HTTP server");
    let _ = server.request_stats();
    let _ = server.close(ts + 1);
}
