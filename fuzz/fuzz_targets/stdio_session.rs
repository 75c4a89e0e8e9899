//! A stdio server's transport and MCP session (`Server::receive` on its pipes): line
//! reassembly over any split of the bytes, gaps, JSON-RPC, request/response pairing,
//! stdin/stdout learnt from the first request and response. Nothing may panic, and
//! what it holds must stay within its bounds however much it is fed (repeated
//! ops feed up to 1 MiB). Input: the op stream of `monitor_fuzz::ops`.
//!
//! Config byte: bits 0-1 `--max-message` (256 B .. 1 MiB); bit 6 the server was found
//! with its stdio unknown (learnt from what it reads and writes). Streams: 0 its stdin/stdout; 1 the
//! other way round (ignored); 2-7 other pipes. Events: stream 0 the server exits (calls
//! end incomplete), 1 a side effect (the op's bytes as a path) for the calls in flight,
//! 2 noise, other a policy reload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::{
    host::{effects::Effect, identity::Stdio},
    servers::{Server, ServerHost, Stream},
};
use monitor_fuzz::{check_held, live_bytes, max_message, ops, process, within_budget};

const STDIN: u64 = 11;
const STDOUT: u64 = 12;

fuzz_target!(|data: &[u8]| {
    let (config, mut ops) = ops(data);
    within_budget(&mut ops);
    let max = max_message(config);
    let p = process("/usr/bin/node", &["node", "server.js"], config & 0x40 != 0);
    let stdio = if config & 0x40 != 0 {
        Stdio::default()
    } else {
        Stdio {
            stdin: Some(STDIN),
            stdout: Some(STDOUT),
        }
    };
    let base = live_bytes();
    let mut server = Server::new(&p, stdio, None, ServerHost::default(), max, 0);
    let mut ts = 0u64;
    for op in &ops {
        ts += 1;
        let read = !op.to_client;
        let inode = match (op.stream, read) {
            (0, true) | (1, false) => STDIN,
            (0, false) | (1, true) => STDOUT,
            (n, _) => 100 + u64::from(n),
        };
        if op.event {
            match op.stream {
                0 => drop(server.close(ts)),
                1 => {
                    let effect = Effect::file(String::from_utf8_lossy(op.bytes), op.to_client, true);
                    server.attach(&effect);
                }
                2 => server.attach_noise(),
                _ => server.set_epoch(ts),
            }
            continue;
        }
        for i in 0..op.repeat {
            let gap = op.gap_before(i);
            let received = server.receive(Stream::Pipe(inode), read, op.bytes, ts, gap, false, |_| {
                (None, None)
            });
            for (key, out) in received.outputs {
                let _ = (key.to_string(), out);
            }
            // The pipeline takes these after every record.
            let _ = server.take_requests();
        }
    }
    // Its two line buffers (capacity doubling), and what distinct input can leave in
    // the session: a request in flight per line, its params (JSON takes more memory
    // than text) up to a message long.
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    let allowed = (64 << 10) + 4 * (max + data.len()) + 64 * (data.len() + max) * lines;
    check_held(base, allowed, "a stdio server");
    let _ = server.request_stats();
    let _ = server.oldest_epoch();
    let _ = server.info();
    let _ = server.close(ts + 1);
});
