#!/usr/bin/env node
// lsp_client.mjs - drive a real Language Server Protocol server (NOT an MCP server) over stdio.
//
// Used by the integration test that checks the monitor does not mistake a language server for
// an MCP server: LSP is JSON-RPC 2.0 too, but framed with `Content-Length: N\r\n\r\n` headers
// instead of MCP's newline-delimited JSON, and it speaks initialize/initialized/shutdown/exit.
//
// Usage (Node >= 20, no extra deps; needs `tests/mcp/setup.sh` to have run `npm ci`):
//   node tests/mcp/lsp_client.mjs [-v]
//     -v   log every LSP message sent/received to stderr
//
// The server is SERVER_PKG from tests/mcp/node_modules, spawned as this script's direct child
// over pipes (stderr inherited) with a single exec and no shell:
//   <process.execPath> <realpath of node_modules/.bin/SERVER_BIN> --stdio
// i.e. `node /…/tests/mcp/node_modules/SERVER_PKG/bin/SERVER_BIN --stdio` (the path contains
// "/tests/mcp/": name matching on the cmdline would see "mcp"; protocol discovery should not).
//
// Session: initialize(processId, rootUri null, capabilities {}) -> wait for result ->
// initialized -> textDocument/didOpen (a small YAML document) -> textDocument/documentSymbol
// -> wait -> textDocument/hover -> wait -> shutdown -> wait -> exit -> wait for the server to exit.
// Requests the server sends us (e.g. workspace/configuration) are answered (null items).
//
// Output: ONE JSON line on stdout:
//   {"server_pid":N,"client_pid":N,"responses":N,"ok":true,"server_cmd":[...],
//    "server_exit":{"code":N|null,"signal":S|null},"notifications":N,"server_requests":N}
// `responses` counts responses to OUR requests (initialize, documentSymbol, hover, shutdown = 4).
// Exit 0 on success; on any failure (spawn error, JSON-RPC error, bad framing, server death,
// or more than 20 s overall) a clear message on stderr, the server is killed, exit 1.

import { spawn } from 'node:child_process';
import { realpathSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SERVER_PKG = 'yaml-language-server';
const SERVER_BIN = 'yaml-language-server';
const SERVER_ARGS = ['--stdio'];
const OVERALL_TIMEOUT_MS = 20_000;
const DOC_URI = 'file:///tmp/lsp-client-example.yaml';
const DOC_TEXT = 'name: lsp-client\nversion: 1\nitems:\n  - alpha\n  - beta\nnested:\n  key: value\n';

const HERE = dirname(fileURLToPath(import.meta.url));
const verbose = process.argv.slice(2).includes('-v');
for (const a of process.argv.slice(2)) {
  if (a !== '-v') {
    process.stderr.write(`lsp_client: unknown argument ${JSON.stringify(a)} (usage: node lsp_client.mjs [-v])\n`);
    process.exit(2);
  }
}

let child = null;
function fail(msg) {
  process.stderr.write(`lsp_client: FAILED: ${msg}\n`);
  if (child && child.exitCode === null && child.signalCode === null) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  process.exit(1);
}
const log = (...a) => { if (verbose) process.stderr.write(`lsp_client: ${a.join(' ')}\n`); };

const overall = setTimeout(() => fail(`timed out after ${OVERALL_TIMEOUT_MS / 1000} s`), OVERALL_TIMEOUT_MS);

// ---- spawn ----
const binLink = join(HERE, 'node_modules', '.bin', SERVER_BIN);
if (!existsSync(binLink)) fail(`${binLink} missing: run tests/mcp/setup.sh (npm ci) first`);
const entry = realpathSync(binLink);
const serverCmd = [process.execPath, entry, ...SERVER_ARGS];
child = spawn(serverCmd[0], serverCmd.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
child.on('error', (e) => fail(`spawn ${serverCmd.join(' ')}: ${e.message}`));
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
let expectExit = false;
exited.then(({ code, signal }) => {
  if (!expectExit) fail(`server exited unexpectedly (code ${code}, signal ${signal})`);
});
child.stdin.on('error', (e) => { if (!expectExit) fail(`writing to server stdin: ${e.message}`); });
log('spawned pid', child.pid, ':', serverCmd.join(' '));

// ---- framing ----
function send(msg) {
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  log('>', body.toString('utf8'));
  child.stdin.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]));
}

let nextId = 1;
const pending = new Map(); // id -> {resolve, method}
let responses = 0;
let notifications = 0;
let serverRequests = 0;

function request(method, params) {
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, { resolve, method });
    send({ jsonrpc: '2.0', id, method, params });
  });
}
const notify = (method, params) => send(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });

function onMessage(msg) {
  if (msg === null || typeof msg !== 'object' || msg.jsonrpc !== '2.0') fail(`not a JSON-RPC 2.0 message: ${JSON.stringify(msg)}`);
  const hasId = Object.prototype.hasOwnProperty.call(msg, 'id');
  if (typeof msg.method === 'string' && hasId) {
    // server -> client request: answer it so the server never waits on us
    serverRequests++;
    let result = null;
    if (msg.method === 'workspace/configuration') {
      result = (msg.params?.items ?? []).map(() => null);
    }
    send({ jsonrpc: '2.0', id: msg.id, result });
  } else if (typeof msg.method === 'string') {
    notifications++;
  } else if (hasId) {
    const p = pending.get(msg.id);
    if (!p) fail(`response to unknown id ${JSON.stringify(msg.id)}`);
    pending.delete(msg.id);
    if (msg.error) fail(`${p.method} -> JSON-RPC error ${msg.error.code}: ${msg.error.message}`);
    if (!Object.prototype.hasOwnProperty.call(msg, 'result')) fail(`${p.method} -> response without result`);
    responses++;
    p.resolve(msg.result);
  } else {
    fail(`unrecognised message: ${JSON.stringify(msg)}`);
  }
}

let buf = Buffer.alloc(0);
child.stdout.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  for (;;) {
    const sep = buf.indexOf('\r\n\r\n');
    if (sep < 0) {
      if (buf.length > 8192) fail('no header terminator within 8 KiB of server output');
      return;
    }
    const header = buf.subarray(0, sep).toString('ascii');
    const m = /^Content-Length:\s*(\d+)\s*$/im.exec(header);
    if (!m) fail(`header without Content-Length: ${JSON.stringify(header)}`);
    const len = Number(m[1]);
    if (buf.length < sep + 4 + len) return;
    const body = buf.subarray(sep + 4, sep + 4 + len).toString('utf8');
    buf = buf.subarray(sep + 4 + len);
    log('<', body);
    let msg;
    try { msg = JSON.parse(body); } catch (e) { fail(`bad JSON body: ${e.message}: ${body.slice(0, 200)}`); }
    onMessage(msg);
  }
});

// ---- session ----
try {
  const init = await request('initialize', {
    processId: process.pid,
    clientInfo: { name: 'lsp_client.mjs', version: '0.1.0' },
    rootUri: null,
    capabilities: {},
  });
  if (!init || typeof init.capabilities !== 'object') fail(`initialize result has no capabilities: ${JSON.stringify(init)}`);
  notify('initialized', {});
  notify('textDocument/didOpen', {
    textDocument: { uri: DOC_URI, languageId: 'yaml', version: 1, text: DOC_TEXT },
  });
  const symbols = await request('textDocument/documentSymbol', { textDocument: { uri: DOC_URI } });
  if (!Array.isArray(symbols)) fail(`documentSymbol result is not an array: ${JSON.stringify(symbols)}`);
  await request('textDocument/hover', { textDocument: { uri: DOC_URI }, position: { line: 0, character: 1 } });
  const shut = await request('shutdown');
  if (shut !== null && shut !== undefined) fail(`shutdown result should be null: ${JSON.stringify(shut)}`);
  expectExit = true;
  notify('exit');
  child.stdin.end();
  const ex = await exited;
  clearTimeout(overall);
  if (ex.code !== 0) fail(`server exited with code ${ex.code} signal ${ex.signal} after exit`);
  process.stdout.write(JSON.stringify({
    server_pid: child.pid,
    client_pid: process.pid,
    responses,
    ok: true,
    server_cmd: serverCmd,
    server_exit: ex,
    notifications,
    server_requests: serverRequests,
  }) + '\n');
} catch (e) {
  fail(e?.stack ?? String(e));
}
