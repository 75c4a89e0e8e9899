//! TLS plaintext, byte for byte, on the socket it belongs to: the daemon, as root, puts
//! uprobes on the OpenSSL of a watched Python process (`libssl.so.3`, mapped when it
//! imports `ssl`) and maps each `SSL_read`/`SSL_write` to the accepted connection, both
//! when the socket I/O happens inside the OpenSSL call (a blocking `ssl.SSLSocket`) and
//! when the event loop does it around the call (asyncio's memory BIOs). The ciphertext
//! on the socket is marked as such and kept out of the plaintext stream.
mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use base64::Engine as _;
use integration_tests::{
    Daemon, Killed,
    mcp::{free_port, wait_listening},
    metrics::scrape,
    unique_tag,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A blocking TLS server: the socket BIO reads and writes inside `SSL_read_ex` and
/// `SSL_write_ex`. It speaks first (RESPONSE), then reads the client's n bytes: a write
/// that nothing after it on the thread could name the socket of but its nested syscall.
const BLOCKING_SERVER: &str = r#"
import socket, ssl, sys
port, cert, key, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen()
while True:
    c, _ = ls.accept()
    try:
        s = ctx.wrap_socket(c, server_side=True)
    except (ssl.SSLError, OSError):
        continue  # a connect that only checked the port
    s.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfine!")
    got = b""
    while len(got) < n:
        part = s.recv(65536)
        if not part:
            break
        got += part
    s.close()
"#;

/// The same over asyncio: the loop reads and writes the socket, OpenSSL works on
/// memory BIOs.
const ASYNCIO_SERVER: &str = r#"
import asyncio, ssl, sys
port, cert, key, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
async def handle(r, w):
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfine!")
    await w.drain()
    await r.readexactly(n)
    w.close()
async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    s = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    async with s:
        await s.serve_forever()
asyncio.run(main())
"#;

/// Reads the server's first n bytes over TLS, then sends it the request on stdin, and
/// prints what it read (not watched).
const CLIENT: &str = r#"
import socket, ssl, sys
port, ca, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
req = sys.stdin.buffer.read()
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port)) as c:
    with ctx.wrap_socket(c, server_hostname="localhost") as s:
        got = b""
        while len(got) < n:
            part = s.recv(65536)
            if not part:
                break
            got += part
        s.sendall(req)
sys.stdout.buffer.write(got)
"#;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfine!";

/// A request larger than one TLS record (16 KiB), so that it takes several reads.
fn request() -> Vec<u8> {
    let body: String = (0..40_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut r = format!(
        "POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body.as_bytes());
    r
}

/// The plaintext a process moved in one direction, from its `capture` events in
/// stream order (failing on a gap), and the fds it was put on.
fn plaintext(events: &[Value], pid: u32, direction: &str) -> (Vec<u8>, Vec<i64>) {
    let mut chunks: Vec<(u64, i64, Vec<u8>)> = events
        .iter()
        .filter(|e| {
            e["type"] == "capture"
                && e["pid"] == pid
                && e["direction"] == direction
                && e["tls"] == "plaintext"
        })
        .map(|e| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(e["data"].as_str().unwrap())
                .unwrap();
            (e["offset"].as_u64().unwrap(), e["fd"].as_i64().unwrap(), data)
        })
        .collect();
    chunks.sort_by_key(|c| c.0);
    let mut out = Vec::new();
    let mut fds = Vec::new();
    for (off, fd, data) in chunks {
        assert_eq!(off, out.len() as u64, "a gap in the {direction} plaintext");
        out.extend_from_slice(&data);
        if !fds.contains(&fd) {
            fds.push(fd);
        }
    }
    (out, fds)
}

fn round_trip(server_script: &str, name: &str, functions: &[&str]) {
    let tag = unique_tag(name);
    let dir = common::TempDir::new(&tag);
    let (cert, key) = integration_tests::mcp::make_cert(dir.path());
    let script = dir.path().join(format!("{tag}.py"));
    std::fs::write(&script, server_script).unwrap();
    let client = dir.path().join("client.py");
    std::fs::write(&client, CLIENT).unwrap();
    let d = Daemon::start(&["--watch", &format!("*{tag}*"), "--debug-captures"]).unwrap();
    let port = free_port();
    let req = request();
    let server = Killed(
        Command::new("python3")
            .arg(&script)
            .args([&port.to_string(), cert.to_str().unwrap(), key.to_str().unwrap()])
            .arg(req.len().to_string())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = server.pid();
    wait_listening(port);
    // The probes went on as it imported `ssl`, before it listened.
    let probed = d
        .wait_for(WAIT, |e| e["status"] == "tls_probed" && e["pid"] == pid)
        .unwrap_or_else(|e| panic!("{e:#}: {:#?}", d.events()));
    assert!(
        probed["library"].as_str().unwrap().contains("libssl.so"),
        "{probed:#}"
    );
    assert_eq!(probed["in_executable"], false);
    let mut c = Command::new("python3")
        .arg(&client)
        .args([&port.to_string(), cert.to_str().unwrap()])
        .arg(RESPONSE.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), &req).unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.stdout, RESPONSE, "the client got the answer");
    let _ = d.wait_until(WAIT, |events| {
        plaintext(events, pid, "write").0.len() >= RESPONSE.len()
            && plaintext(events, pid, "read").0.len() >= req.len()
    });
    let events = d.events();
    let (read, read_fds) = plaintext(&events, pid, "read");
    let (written, write_fds) = plaintext(&events, pid, "write");
    assert!(
        read == req,
        "the request, exactly: {} of {} bytes",
        read.len(),
        req.len()
    );
    assert_eq!(written, RESPONSE);
    // All of it on the one accepted socket, the one whose ciphertext went by.
    let ciphertext_fds: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "capture" && e["pid"] == pid && e["tls"] == "ciphertext")
        .map(|e| e["fd"].as_i64().unwrap())
        .collect();
    assert!(
        !ciphertext_fds.is_empty(),
        "the handshake is ciphertext on the socket"
    );
    assert_eq!(read_fds, write_fds);
    assert_eq!(read_fds.len(), 1, "{read_fds:?}");
    assert!(
        ciphertext_fds.iter().all(|fd| *fd == read_fds[0]),
        "{ciphertext_fds:?} vs {read_fds:?}"
    );
    for e in events
        .iter()
        .filter(|e| e["type"] == "capture" && e["pid"] == pid && e["tls"] == "plaintext")
    {
        assert!(functions.contains(&e["syscall"].as_str().unwrap()), "{e:#}");
    }
    // Nothing of it was lost or left without its socket.
    for s in scrape(&d).unwrap() {
        if s.name == "mcp_monitor_events_lost_total" {
            assert_eq!(s.value, 0.0, "{s:?}");
        }
        if s.name == "mcp_monitor_tls_ciphertext_dropped_total" {
            assert!(s.value >= ciphertext_fds.len() as f64, "{s:?}");
        }
    }
}

#[test]
fn blocking_ssl_socket_plaintext_is_on_the_socket_its_nested_syscalls_name() {
    round_trip(BLOCKING_SERVER, "tls-blocking", &["SSL_read_ex", "SSL_write_ex"]);
}

#[test]
fn asyncio_memory_bio_plaintext_is_on_the_socket_its_thread_reads_and_writes() {
    round_trip(ASYNCIO_SERVER, "tls-asyncio", &["SSL_read_ex", "SSL_write_ex"]);
}
