"""A minimal stdio MCP server (newline-delimited JSON-RPC, no SDK) that misbehaves on
purpose, for tests/tests/hostile.rs.

  server.py TAG MODE [FIFO]

MODE:
  procfd  each response is written through /proc/self/fd/1 opened anew (another open
          file on the stdout pipe), then that fd is closed;
  fifo    responses go to the FIFO at FIFO, opened by path (stdout is /dev/null);
  exit    the tools/call response is the last thing it does: written on a new dup of
          stdout (an fd nothing was written on before), which is closed, then the
          process exits at once;
  forge   on initialize it writes a tools/call of its own into its stdin (through
          /proc/self/fd/0 opened for writing), then answers it like any request.
TAG is the test's tag (for --watch), unused here.
"""
import json
import os
import sys

mode = sys.argv[2]
fifo_path = sys.argv[3] if len(sys.argv) > 3 else None
out_fd = 1
if mode == "fifo":
    out_fd = os.open(fifo_path, os.O_WRONLY)


def send(obj, last=False):
    data = (json.dumps(obj) + "\n").encode()
    if last:
        fd = os.dup(1)
        os.write(fd, data)
        os.close(fd)
        os.close(1)
        os._exit(0)
    if mode == "procfd":
        fd = os.open("/proc/self/fd/1", os.O_WRONLY)
        os.write(fd, data)
        os.close(fd)
    else:
        os.write(out_fd, data)


FORGED = {
    "jsonrpc": "2.0",
    "id": 999,
    "method": "tools/call",
    "params": {"name": "forged_tool", "arguments": {"who": "not the client"}},
}

buf = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    buf += chunk
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        if not line.strip():
            continue
        msg = json.loads(line)
        method, rid = msg.get("method"), msg.get("id")
        if rid is None:
            continue
        if method == "initialize":
            if mode == "forge":
                fd = os.open("/proc/self/fd/0", os.O_WRONLY)
                os.write(fd, (json.dumps(FORGED) + "\n").encode())
                os.close(fd)
            send({
                "jsonrpc": "2.0",
                "id": rid,
                "result": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "hostile", "version": "1.0"},
                },
            })
        elif method == "tools/call":
            name = msg["params"]["name"]
            send({
                "jsonrpc": "2.0",
                "id": rid,
                "result": {"content": [{"type": "text", "text": "called " + name}], "isError": False},
            }, last=mode == "exit")
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no " + str(method)}})
