#!/usr/bin/env python3
"""MCP server on the official Python SDK 2.x `MCPServer`, over stdio.

Serves both protocol eras: the client's first request decides (the SDK's
dual-era loop): `initialize` -> 2025-11-25 handshake era; a request carrying
the 2026-07-28 `_meta` envelope (e.g. `server/discover`) -> stateless era.

Tools (each has a side effect the monitor should attribute to the call):
  echo(text)        -> text
  add(a, b)         -> a + b
  fail()            -> raises ToolError: a result with isError true
  rpc_fail()        -> raises MCPError: a JSON-RPC error response (-32000)
  read_secret(path) -> opens and reads the file, returns its length in bytes
  run(cmd)          -> runs cmd (argv split with shlex, no shell), returns its exit code
  connect(port)     -> TCP connect to 127.0.0.1:port, then close; returns "connected"

Run: tests/mcp/.venv/bin/python tests/mcp/py_server.py [--name NAME] [--http PORT [--cert FILE --key FILE]]
Logs go to stderr only; stdout carries JSON-RPC. With --http it serves Streamable HTTP
on 127.0.0.1:PORT/mcp instead (stateless: the 2026-07-28 era, plain JSON answers); with
--cert and --key too, over HTTPS (uvicorn's ssl_certfile/ssl_keyfile on the asyncio loop:
Python's `ssl` with a memory BIO, so OpenSSL's SSL_read/SSL_write see the plaintext while
the socket carries only ciphertext).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import socket
import subprocess
import sys

# Run under this folder's .venv (made by setup.sh) even when started as `python3 py_...py`.
_VENV_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv", "bin", "python")
if os.path.realpath(sys.prefix) != os.path.realpath(os.path.dirname(os.path.dirname(_VENV_PY))) and os.path.exists(_VENV_PY):
    os.execv(_VENV_PY, [_VENV_PY, os.path.abspath(__file__), *sys.argv[1:]])

import anyio
from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

log = logging.getLogger("py_server")


def build(name: str) -> MCPServer:
    server = MCPServer(name, version="0.1.0")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def fail() -> str:
        """Always fails: the result has isError true (not a JSON-RPC error)."""
        raise ToolError("fail() was asked to fail")

    @server.tool()
    def rpc_fail() -> str:
        """Always fails with a JSON-RPC error response (code -32000) instead of a result."""
        raise MCPError(code=-32000, message="rpc_fail() was asked to fail")

    @server.tool()
    def read_secret(path: str) -> int:
        """Open and read a file; return its length in bytes."""
        with open(path, "rb") as f:
            return len(f.read())

    @server.tool()
    def run(cmd: str) -> int:
        """Run a program (argv split with shlex, no shell); return its exit code."""
        argv = shlex.split(cmd)
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False).returncode

    @server.tool()
    def become(cmd: str) -> str:
        """Replace this server process with a program (argv split with shlex): the
        server's own exec, with the call in flight (it never answers)."""
        argv = shlex.split(cmd)
        os.execv(argv[0], argv)

    @server.tool()
    def connect(port: int) -> str:
        """TCP connect to 127.0.0.1:port, then close."""
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        return "connected"

    return server


async def serve_https(server: MCPServer, port: int, cert: str, key: str) -> None:
    """What `server.run("streamable-http", ...)` does, with TLS on the uvicorn side."""
    import uvicorn

    app = server.streamable_http_app(stateless_http=True, json_response=True, host="127.0.0.1")
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level=server.settings.log_level.lower(),
        ssl_certfile=cert,
        ssl_keyfile=key,
    )
    await uvicorn.Server(config).serve()


def main() -> None:
    p = argparse.ArgumentParser(prog="py_server.py")
    p.add_argument("--name", default="mcp-monitor-test-server")
    p.add_argument("--http", type=int, default=None, metavar="PORT")
    p.add_argument("--cert", default=None, metavar="FILE", help="with --http: serve HTTPS with this PEM certificate")
    p.add_argument("--key", default=None, metavar="FILE", help="with --http: the PEM private key of --cert")
    ns = p.parse_args()
    if (ns.cert is None) != (ns.key is None) or (ns.cert is not None and ns.http is None):
        p.error("--cert and --key go together, with --http")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="py_server: %(levelname)s %(message)s")
    if ns.http is None:
        build(ns.name).run("stdio")
    elif ns.cert is not None:
        anyio.run(serve_https, build(ns.name), ns.http, ns.cert, ns.key)
    else:
        build(ns.name).run(
            "streamable-http", host="127.0.0.1", port=ns.http, stateless_http=True, json_response=True
        )


if __name__ == "__main__":
    main()
