#!/usr/bin/env python3
"""A TLS server the monitor cannot read: TLS in pure Python (tlslite-ng), no OpenSSL.

Python's `ssl` module (and so `libssl.so`) is never loaded: `ssl` and `_ssl` are blocked
in sys.modules before anything is imported (tlslite's package __init__ pulls in
http.client, smtplib, asyncio..., which all treat a failing `import ssl` as "no TLS").
`_hashlib` is blocked too, so hashlib uses CPython's own digests and OpenSSL's libcrypto
is not mapped either: the process maps no OpenSSL at all.

    tls_unreadable_server.py --port P --cert CERT.pem --key KEY.pem [--name NAME]

Listens on 127.0.0.1:P; for each connection (one thread each): TLS handshake, reads the
HTTP request head, answers `HTTP/1.1 200 OK` with a small text body, closes. NAME only
tags the command line (for a watch glob). Logs go to stderr; exits 0 on SIGTERM.
Run it with tests/mcp/.venv/bin/python (setup.sh installs tlslite-ng there).

With LOAD_LIBSSL=1 in its environment it loads the system libssl.so.3 (ctypes) without
using it: a process that maps OpenSSL, gets the monitor's probes, and still does its
TLS elsewhere (as a Go or rustls server that also links libssl would).
"""

import sys

for _blocked in ("ssl", "_ssl", "_hashlib"):
    sys.modules[_blocked] = None  # type: ignore[assignment]  # `import ssl` -> ImportError

import os  # noqa: E402

# Run under this folder's .venv (made by setup.sh) even when started as `python3 ...py`.
_VENV_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv", "bin", "python")
if os.path.realpath(sys.prefix) != os.path.realpath(os.path.dirname(os.path.dirname(_VENV_PY))) and os.path.exists(_VENV_PY):
    os.execv(_VENV_PY, [_VENV_PY, os.path.abspath(__file__), *sys.argv[1:]])

if os.environ.get("LOAD_LIBSSL") == "1":
    import ctypes  # noqa: E402

    ctypes.CDLL("libssl.so.3")

import argparse  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402

from tlslite.api import TLSConnection, X509CertChain, parsePEMKey  # noqa: E402
from tlslite.errors import TLSError  # noqa: E402

BODY = b"hello from a TLS stack without OpenSSL\n"
MAX_HEAD = 64 * 1024


def log(msg: str) -> None:
    sys.stderr.write(f"tls_unreadable_server: {msg}\n")
    sys.stderr.flush()


def serve_one(sock: socket.socket, peer: tuple, chain: X509CertChain, key) -> None:
    sock.settimeout(20)
    conn = TLSConnection(sock)
    try:
        conn.handshakeServer(certChain=chain, privateKey=key, alpn=[bytearray(b"http/1.1")])
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += bytes(chunk)
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        log(f"{peer[0]}:{peer[1]} {conn.version} {request_line!r}")
        conn.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(BODY), BODY)
        )
        conn.close()
    except (TLSError, OSError) as e:
        log(f"{peer[0]}:{peer[1]} failed: {type(e).__name__}: {e}")
    finally:
        sock.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="tls_unreadable_server.py")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True, metavar="FILE", help="PEM certificate (chain)")
    p.add_argument("--key", required=True, metavar="FILE", help="PEM private key (RSA or EC)")
    p.add_argument("--name", default="tls-unreadable", help="a tag for the command line")
    ns = p.parse_args()
    with open(ns.cert) as f:
        chain = X509CertChain()
        chain.parsePemList(f.read())
    with open(ns.key) as f:
        key = parsePEMKey(f.read(), private=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", ns.port))
    listener.listen(16)
    log(f"listening on 127.0.0.1:{ns.port} as {ns.name}")
    while True:
        sock, peer = listener.accept()
        threading.Thread(target=serve_one, args=(sock, peer, chain, key), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
