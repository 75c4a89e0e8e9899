#!/usr/bin/env python3
"""MCP client driver built on the official Python SDK (PyPI `mcp` 2.x).

Launches the server command given after `--` as its own child over stdin/stdout
pipes (the SDK's stdio transport), or talks Streamable HTTP to `--url` (with the
extra request headers given by `--header`), runs a fixed scripted session, and
prints ONE JSON object on stdout describing exactly what it did. Logs go to stderr.

    py_client.py [--client-name N] [--client-version V] [--mode auto|legacy]
                 [--calls JSON | --calls-file F | --preset filesystem:ROOT | --preset py_server]
                 [--list-tools] [--timeout S] [--cwd DIR] [--env K=V]... [-v] -- SERVER_CMD [ARGS...]
    py_client.py [options] --url http://HOST:PORT/mcp [--header NAME=VALUE]...
    py_client.py [options] --url https://HOST:PORT/mcp [--cafile CA.pem] [--header NAME=VALUE]...

With --cafile, https URLs are verified against that CA (PEM) alone, not the system store.

Run it with tests/mcp/.venv/bin/python (see setup.sh).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import sys
import time
from contextlib import asynccontextmanager
from typing import Any

# Run under this folder's .venv (made by setup.sh) even when started as `python3 py_...py`.
_VENV_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv", "bin", "python")
if os.path.realpath(sys.prefix) != os.path.realpath(os.path.dirname(os.path.dirname(_VENV_PY))) and os.path.exists(_VENV_PY):
    os.execv(_VENV_PY, [_VENV_PY, os.path.abspath(__file__), *sys.argv[1:]])

import anyio
import httpx2
import mcp.client.stdio as _sdk_stdio
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT, create_mcp_http_client
from mcp.shared.message import SessionMessage
from mcp_types import Implementation

log = logging.getLogger("py_client")

TEXT_LIMIT = 2000


def preset_calls(preset: str) -> list[dict[str, Any]]:
    if preset.startswith("filesystem:"):
        root = os.path.realpath(preset.split(":", 1)[1])
        return [
            {"tool": "list_directory", "arguments": {"path": root}},
            {"tool": "read_text_file", "arguments": {"path": os.path.join(root, "hello.txt")}},
            {"tool": "read_text_file", "arguments": {"path": "/etc/hostname"}},
            {"tool": "no_such_tool", "arguments": {}},
        ]
    if preset == "py_server":
        return [
            {"tool": "echo", "arguments": {"text": "hello"}},
            {"tool": "add", "arguments": {"a": 2, "b": 3}},
            {"tool": "fail", "arguments": {}},
            {"tool": "no_such_tool", "arguments": {}},
        ]
    raise SystemExit(f"py_client: unknown preset {preset!r} (filesystem:ROOT | py_server)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    # The server command comes after `--`, or as a JSON array in MCP_SERVER_CMD, which
    # keeps it out of this client's own command line (the monitor matches command lines).
    if "--" not in argv and "--url" in argv:
        own, server_cmd = argv, []
    elif "--" not in argv and os.environ.get("MCP_SERVER_CMD"):
        own, server_cmd = argv, json.loads(os.environ["MCP_SERVER_CMD"])
    elif "--" not in argv:
        raise SystemExit("py_client: usage: py_client.py [options] -- SERVER_CMD [ARGS...] (or set MCP_SERVER_CMD)")
    else:
        split = argv.index("--")
        own, server_cmd = argv[:split], argv[split + 1 :]
    if not server_cmd and "--url" not in own:
        raise SystemExit("py_client: empty server command after --")
    p = argparse.ArgumentParser(prog="py_client.py")
    p.add_argument("--client-name", default="py-client")
    p.add_argument("--client-version", default="0.0.1")
    p.add_argument("--mode", default="auto", help="auto (server/discover, fall back to initialize) | legacy | 2026-07-28")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--calls", help='JSON list: [{"tool": "...", "arguments": {...}}, ...]')
    g.add_argument("--calls-file")
    g.add_argument("--preset", help="filesystem:ROOT | py_server")
    p.add_argument("--list-tools", action="store_true", help="send tools/list before the calls")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request read timeout, seconds")
    p.add_argument("--cwd", default=None, help="working directory for the server")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server (the SDK passes only HOME LOGNAME PATH SHELL TERM USER)",
    )
    p.add_argument("--url", default=None, help="a Streamable HTTP endpoint instead of a server command")
    p.add_argument("--header", action="append", default=[], metavar="NAME=VALUE", help="extra HTTP request header")
    p.add_argument("--cafile", default=None, metavar="FILE", help="with --url https://...: trust this CA (PEM) only")
    p.add_argument("-v", "--verbose", action="store_true")
    ns = p.parse_args(own)
    ns.server_cmd = server_cmd
    ns.server_env = {}
    for kv in ns.env:
        if "=" not in kv:
            raise SystemExit(f"py_client: --env wants KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        ns.server_env[k] = v
    if ns.calls is not None:
        try:
            ns.call_list = json.loads(ns.calls)
        except json.JSONDecodeError as e:
            raise SystemExit(f"py_client: --calls is not valid JSON: {e}")
    elif ns.calls_file is not None:
        with open(ns.calls_file) as f:
            ns.call_list = json.load(f)
    elif ns.preset is not None:
        ns.call_list = preset_calls(ns.preset)
    else:
        ns.call_list = []
    for c in ns.call_list:
        if not isinstance(c, dict) or not isinstance(c.get("tool"), str):
            raise SystemExit(f"py_client: bad call entry {c!r}")
        c.setdefault("arguments", {})
    return ns


# --- server pid: the SDK's stdio transport spawns the child in this private helper; wrap it
# to learn the pid (the SDK keeps the process object to itself).
_server_pids: list[int] = []
_orig_spawn = getattr(_sdk_stdio, "_create_platform_compatible_process", None)
if _orig_spawn is not None:

    async def _spawn_and_note(*args: Any, **kwargs: Any) -> Any:
        process = await _orig_spawn(*args, **kwargs)
        _server_pids.append(process.pid)
        return process

    _sdk_stdio._create_platform_compatible_process = _spawn_and_note  # type: ignore[attr-defined]


def _children_fallback() -> int | None:
    """Direct children of this process (any thread), if /proc exposes them."""
    pids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{tid}/children") as f:
                pids += [int(x) for x in f.read().split()]
    except OSError:
        return None
    return pids[0] if len(pids) == 1 else None


# --- wire log: every JSON-RPC message this client sends / receives (method, id, error code).
wire: list[dict[str, Any]] = []


def _note(direction: str, item: SessionMessage | Exception) -> None:
    if not isinstance(item, SessionMessage):
        wire.append({"dir": direction, "unparsed": repr(item)[:200]})
        return
    m = item.message.model_dump(by_alias=True, mode="json", exclude_unset=True)
    entry: dict[str, Any] = {"dir": direction, "t": time.time()}
    for k in ("id", "method"):
        if k in m:
            entry[k] = m[k]
    if "error" in m:
        entry["error_code"] = m["error"].get("code")
    if m.get("method") == "tools/call":
        entry["tool"] = (m.get("params") or {}).get("name")
    if "result" in m and isinstance(m["result"], dict) and "isError" in m["result"]:
        entry["is_error"] = m["result"]["isError"]
    wire.append(entry)
    log.debug("%s %s", direction, json.dumps(m)[:500])


@asynccontextmanager
async def recording(transport):
    """An SDK transport with both message streams relayed through a recorder."""
    async with transport as (sdk_read, sdk_write):
        out_send, out_recv = anyio.create_memory_object_stream[SessionMessage](0)
        in_send, in_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump_out() -> None:
            async with out_recv:
                async for msg in out_recv:
                    _note("out", msg)
                    await sdk_write.send(msg)
            await sdk_write.aclose()

        async def pump_in() -> None:
            async with in_send:
                try:
                    async for msg in sdk_read:
                        _note("in", msg)
                        await in_send.send(msg)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                    pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_out)
            tg.start_soon(pump_in)
            try:
                yield in_recv, out_send
            finally:
                out_send.close()
                in_recv.close()
                tg.cancel_scope.cancel()


def _text_of(result: Any) -> str:
    parts = []
    for block in getattr(result, "content", []) or []:
        t = getattr(block, "text", None)
        if t is not None:
            parts.append(t)
    return "\n".join(parts)[:TEXT_LIMIT]


async def run(ns: argparse.Namespace, record: dict[str, Any]) -> None:
    client_info = record["client_info"]
    if ns.url:
        headers = dict(h.split("=", 1) for h in ns.header)
        if ns.cafile is None:
            http_client = create_mcp_http_client(headers=headers)
        else:
            # create_mcp_http_client takes no TLS settings: the same client, with its timeouts.
            http_client = httpx2.AsyncClient(
                headers=headers,
                timeout=httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
                verify=ssl.create_default_context(cafile=ns.cafile),
            )
        transport = streamable_http_client(ns.url, http_client=http_client)
    else:
        params = StdioServerParameters(
            command=ns.server_cmd[0], args=ns.server_cmd[1:], cwd=ns.cwd, env=ns.server_env or None
        )
        transport = stdio_client(params)
    async with Client(
        recording(transport),
        client_info=Implementation(**client_info),
        mode=ns.mode,
        read_timeout_seconds=ns.timeout,
    ) as client:
        record["server_pid"] = _server_pids[-1] if _server_pids else _children_fallback()
        record["protocol"] = client.protocol_version
        si = client.server_info
        record["server_info"] = si.model_dump(mode="json", exclude_none=True) if si else None
        log.info("connected: protocol=%s server=%s pid=%s", record["protocol"], record["server_info"], record["server_pid"])
        if ns.list_tools:
            tools = await client.list_tools()
            record["tools"] = [t.name for t in tools.tools]
        for call in ns.call_list:
            if call.get("wait_for"):
                # Hold the session open between calls until the test says go (it
                # restarts the daemon meanwhile): PATH.waiting says we are here.
                go = call["wait_for"]
                with open(go + ".waiting", "w"):
                    pass
                while not os.path.exists(go):
                    await anyio.sleep(0.05)
            first = len(wire)
            entry: dict[str, Any] = {"tool": call["tool"], "arguments": call["arguments"]}
            started = time.time()
            try:
                result = await client.call_tool(call["tool"], call["arguments"])
                entry["outcome"] = "error" if result.is_error else "ok"
                entry["is_error"] = bool(result.is_error)
                entry["rpc_error"] = None
                entry["text"] = _text_of(result)
            except MCPError as e:
                entry["outcome"] = "error"
                entry["is_error"] = None
                entry["rpc_error"] = {"code": e.code, "message": e.message}
                entry["text"] = None
            entry["started"] = started
            entry["ended"] = time.time()
            ids = [w["id"] for w in wire[first:] if w["dir"] == "out" and w.get("method") == "tools/call"]
            entry["request_ids"] = ids
            entry["request_id"] = ids[-1] if ids else None
            record["calls"].append(entry)
            log.info("call %s -> %s", call["tool"], entry["outcome"])


def _pkg_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def main() -> int:
    ns = parse_args(sys.argv[1:])
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if ns.verbose else logging.INFO,
        format="py_client: %(levelname)s %(name)s: %(message)s",
    )
    record: dict[str, Any] = {
        "driver": "py_client",
        "sdk": f"mcp {_pkg_version('mcp')}",
        "client_pid": os.getpid(),
        "server_pid": None,
        "server_cmd": ns.server_cmd,
        "client_info": {"name": ns.client_name, "version": ns.client_version},
        "protocol": None,
        "server_info": None,
        "calls": [],
        "wire": wire,
    }
    rc = 0
    try:
        anyio.run(run, ns, record)
    except BaseException as e:  # still print one JSON object, so the test sees what happened
        log.error("session failed: %s: %s", type(e).__name__, e, exc_info=ns.verbose)
        record["fatal"] = f"{type(e).__name__}: {e}"
        rc = 1
    if record["server_pid"] is None and _server_pids:
        record["server_pid"] = _server_pids[-1]
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
