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
          /proc/self/fd/0 opened for writing), then answers it like any request;
  splice  the tools/call response is written to a temporary file, then spliced from
          it into stdout: the bytes move inside the kernel;
  sendfile  likewise, with sendfile;
  vmsplice  the tools/call response goes into stdout with vmsplice (user pages);
  vmsplice_in  every request is read from stdin with vmsplice (the pipe's read end:
          the kernel copies into user memory, as readv would);
  io_uring  on initialize it sets up an io_uring (io_uring_setup), kept open;
  mmsg    stdin and stdout are sockets: it reads with recvmmsg and writes with
          sendmmsg, one message per call;
  mmsg2   likewise, but the tools/call response goes in one sendmmsg of two messages
          (its two halves).
TAG is the test's tag (for --watch), unused here.
"""
import ctypes
import json
import os
import sys
import tempfile

mode = sys.argv[2]
fifo_path = sys.argv[3] if len(sys.argv) > 3 else None
out_fd = 1
if mode == "fifo":
    out_fd = os.open(fifo_path, os.O_WRONLY)


libc = ctypes.CDLL(None, use_errno=True)


class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def in_kernel(data):
    """data into stdout through a file, by splice or sendfile: never from user memory."""
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        fd = f.fileno()
        done = 0
        while done < len(data):
            if mode == "splice":
                n = os.splice(fd, 1, len(data) - done, offset_src=done)
            else:
                n = os.sendfile(1, fd, done, len(data) - done)
            assert n > 0
            done += n


# vmsplice puts references to the user pages in the pipe: they must stay as they are
# until read, so every buffer is kept.
KEPT = []


def vmsplice(data):
    buf = ctypes.create_string_buffer(data, len(data))
    KEPT.append(buf)
    done = 0
    while done < len(data):
        iov = Iovec(ctypes.addressof(buf) + done, len(data) - done)
        n = libc.vmsplice(ctypes.c_int(1), ctypes.byref(iov), ctypes.c_size_t(1), ctypes.c_uint(0))
        assert n > 0, ctypes.get_errno()
        done += n


class Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint),
        ("iov", ctypes.POINTER(Iovec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", Msghdr), ("len", ctypes.c_uint)]


def mmsg(fd, buf, size, send, parts=1):
    """One sendmmsg/recvmmsg of `parts` messages splitting buf[:size]: bytes moved."""
    cut = [size * i // parts for i in range(parts + 1)]
    iovs = [Iovec(ctypes.addressof(buf) + cut[i], cut[i + 1] - cut[i]) for i in range(parts)]
    msgs = (Mmsghdr * parts)()
    for i in range(parts):
        msgs[i].hdr.iov = ctypes.pointer(iovs[i])
        msgs[i].hdr.iovlen = 1
    if send:
        n = libc.sendmmsg(ctypes.c_int(fd), msgs, ctypes.c_uint(parts), ctypes.c_int(0))
    else:
        n = libc.recvmmsg(ctypes.c_int(fd), msgs, ctypes.c_uint(parts), ctypes.c_int(0), None)
    assert n >= 0, ctypes.get_errno()
    return sum(msgs[i].len for i in range(n))


def read_in():
    if mode == "vmsplice_in":
        buf = ctypes.create_string_buffer(65536)
        iov = Iovec(ctypes.addressof(buf), 65536)
        n = libc.vmsplice(ctypes.c_int(0), ctypes.byref(iov), ctypes.c_size_t(1), ctypes.c_uint(0))
        assert n >= 0, ctypes.get_errno()
        return buf.raw[:n]
    if not mode.startswith("mmsg"):
        return os.read(0, 65536)
    buf = ctypes.create_string_buffer(65536)
    n = mmsg(0, buf, 65536, False)
    return buf.raw[:n]


def send(obj, last=False, call=False):
    data = (json.dumps(obj) + "\n").encode()
    if mode.startswith("mmsg"):
        buf = ctypes.create_string_buffer(data, len(data))
        parts = 2 if call and mode == "mmsg2" else 1
        assert mmsg(1, buf, len(data), True, parts) == len(data)
        return
    if call and mode in ("splice", "sendfile"):
        in_kernel(data)
        return
    if call and mode == "vmsplice":
        vmsplice(data)
        return
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
    chunk = read_in()
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
            if mode == "io_uring":
                params = ctypes.create_string_buffer(120)
                libc.syscall.restype = ctypes.c_long
                ring = libc.syscall(425, ctypes.c_uint(8), params)
                assert ring >= 0, ctypes.get_errno()
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
            }, last=mode == "exit", call=True)
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no " + str(method)}})
