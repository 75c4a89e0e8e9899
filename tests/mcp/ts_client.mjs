#!/usr/bin/env node
// MCP client driver built on the official TypeScript SDK (@modelcontextprotocol/sdk 1.x):
// Client + StdioClientTransport. Same CLI and output as py_client.py:
//
//   node ts_client.mjs [--client-name N] [--client-version V]
//        [--calls JSON | --calls-file F | --preset filesystem:ROOT | --preset py_server]
//        [--list-tools] [--timeout S] [--cwd DIR] [--env K=V]... [-v] -- SERVER_CMD [ARGS...]
//   node ts_client.mjs [options] --url http://HOST:PORT/mcp [--header K=V]...
//
// An https:// URL is verified against Node's CA store; to trust a test CA, start it with
// NODE_EXTRA_CA_CERTS=CA.pem in its environment (fetch/undici honours it).
//
// Launches SERVER_CMD as its own child over stdin/stdout pipes (or talks Streamable
// HTTP to --url, with the extra request headers given), runs the scripted session,
// prints ONE JSON object on stdout. Logs (and the server's stderr) go to stderr.

import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const TEXT_LIMIT = 2000;
const log = (...a) => console.error('ts_client:', ...a);

function usage(msg) {
  console.error(`ts_client: ${msg}\nusage: ts_client.mjs [options] -- SERVER_CMD [ARGS...]`);
  process.exit(2);
}

function presetCalls(preset) {
  if (preset.startsWith('filesystem:')) {
    const root = fs.realpathSync(preset.slice('filesystem:'.length));
    return [
      { tool: 'list_directory', arguments: { path: root } },
      { tool: 'read_text_file', arguments: { path: path.join(root, 'hello.txt') } },
      { tool: 'read_text_file', arguments: { path: '/etc/hostname' } },
      { tool: 'no_such_tool', arguments: {} },
    ];
  }
  if (preset === 'py_server') {
    return [
      { tool: 'echo', arguments: { text: 'hello' } },
      { tool: 'add', arguments: { a: 2, b: 3 } },
      { tool: 'fail', arguments: {} },
      { tool: 'no_such_tool', arguments: {} },
    ];
  }
  usage(`unknown preset ${JSON.stringify(preset)} (filesystem:ROOT | py_server)`);
}

function parseArgs(argv) {
  // The server command comes after `--`, or as a JSON array in MCP_SERVER_CMD, which
  // keeps it out of this client's own command line (the monitor matches command lines).
  let split = argv.indexOf('--');
  let serverCmd;
  if (split < 0 && argv.includes('--url')) {
    split = argv.length;
    serverCmd = [];
  } else if (split < 0 && process.env.MCP_SERVER_CMD) {
    split = argv.length;
    serverCmd = JSON.parse(process.env.MCP_SERVER_CMD);
  } else {
    if (split < 0) usage('missing -- before the server command (or set MCP_SERVER_CMD)');
    serverCmd = argv.slice(split + 1);
  }
  const own = argv.slice(0, split);
  if (serverCmd.length === 0 && !own.includes('--url')) usage('empty server command after --');
  const o = { clientName: 'ts-client', clientVersion: '0.0.1', calls: [], listTools: false, timeout: 30, cwd: undefined, env: {}, verbose: false, serverCmd, url: null, headers: {} };
  let callSources = 0;
  for (let i = 0; i < own.length; i++) {
    const a = own[i];
    const val = () => { if (i + 1 >= own.length) usage(`${a} needs a value`); return own[++i]; };
    switch (a) {
      case '--client-name': o.clientName = val(); break;
      case '--url': o.url = val(); break;
      case '--header': {
        const kv = val();
        const eq = kv.indexOf('=');
        if (eq <= 0) usage(`--header wants NAME=VALUE, got ${JSON.stringify(kv)}`);
        o.headers[kv.slice(0, eq)] = kv.slice(eq + 1);
        break;
      }
      case '--client-version': o.clientVersion = val(); break;
      case '--calls':
        callSources++;
        try { o.calls = JSON.parse(val()); } catch (e) { usage(`--calls is not valid JSON: ${e.message}`); }
        break;
      case '--calls-file': callSources++; o.calls = JSON.parse(fs.readFileSync(val(), 'utf8')); break;
      case '--preset': callSources++; o.calls = presetCalls(val()); break;
      case '--list-tools': o.listTools = true; break;
      case '--timeout': o.timeout = Number(val()); break;
      case '--cwd': o.cwd = val(); break;
      case '--env': {
        // extra environment for the server (the SDK passes only HOME LOGNAME PATH SHELL TERM USER)
        const kv = val();
        const eq = kv.indexOf('=');
        if (eq <= 0) usage(`--env wants KEY=VALUE, got ${JSON.stringify(kv)}`);
        o.env[kv.slice(0, eq)] = kv.slice(eq + 1);
        break;
      }
      case '-v': case '--verbose': o.verbose = true; break;
      default: usage(`unknown option ${a}`);
    }
  }
  if (callSources > 1) usage('give at most one of --calls, --calls-file, --preset');
  if (!Array.isArray(o.calls)) usage('calls must be a JSON list');
  for (const c of o.calls) {
    if (!c || typeof c.tool !== 'string') usage(`bad call entry ${JSON.stringify(c)}`);
    if (c.arguments === undefined) c.arguments = {};
  }
  return o;
}

// Every JSON-RPC message this client sends / receives (method, id, error code).
const wire = [];
function note(dir, m) {
  const e = { dir, t: Date.now() / 1000 };
  if ('id' in m) e.id = m.id;
  if ('method' in m) e.method = m.method;
  if (m.error) e.error_code = m.error.code;
  if (m.method === 'tools/call') e.tool = m.params?.name;
  if (m.result && typeof m.result === 'object' && 'isError' in m.result) e.is_error = m.result.isError;
  wire.push(e);
}

// The SDK's stdio transport, with a recorder on both directions and a hook that learns the
// negotiated protocol version (Client.connect calls setProtocolVersion when the transport has it).
class RecordingStdioTransport extends StdioClientTransport {
  constructor(params, verbose) {
    super(params);
    this.negotiatedProtocolVersion = null;
    this._verbose = verbose;
    // Protocol.connect chains whatever onmessage is already set, so this sees every inbound message.
    this.onmessage = (m) => { note('in', m); if (this._verbose) log('in', JSON.stringify(m).slice(0, 500)); };
  }
  async send(message, options) {
    note('out', message);
    if (this._verbose) log('out', JSON.stringify(message).slice(0, 500));
    return super.send(message, options);
  }
  setProtocolVersion(v) { this.negotiatedProtocolVersion = v; }
}

// The SDK's Streamable HTTP transport, recorded the same way.
class RecordingHttpTransport extends StreamableHTTPClientTransport {
  constructor(url, headers, verbose) {
    super(new URL(url), { requestInit: { headers } });
    this._verbose = verbose;
    this.onmessage = (m) => { note('in', m); if (this._verbose) log('in', JSON.stringify(m).slice(0, 500)); };
  }
  async send(message, options) {
    note('out', message);
    if (this._verbose) log('out', JSON.stringify(message).slice(0, 500));
    return super.send(message, options);
  }
}

function textOf(result) {
  return (result?.content ?? []).filter((b) => typeof b.text === 'string').map((b) => b.text).join('\n').slice(0, TEXT_LIMIT);
}

function sdkVersion() {
  try {
    const require = createRequire(import.meta.url);
    const pkgPath = path.join(path.dirname(require.resolve('@modelcontextprotocol/sdk/client/index.js')), '..', '..', '..', 'package.json');
    return JSON.parse(fs.readFileSync(pkgPath, 'utf8')).version;
  } catch { return null; }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const record = {
    driver: 'ts_client',
    sdk: `@modelcontextprotocol/sdk ${sdkVersion()}`,
    client_pid: process.pid,
    server_pid: null,
    server_cmd: o.serverCmd,
    client_info: { name: o.clientName, version: o.clientVersion },
    protocol: null,
    server_info: null,
    calls: [],
    wire,
  };
  let rc = 0;
  const transport = o.url
    ? new RecordingHttpTransport(o.url, o.headers, o.verbose)
    : new RecordingStdioTransport(
      { command: o.serverCmd[0], args: o.serverCmd.slice(1), cwd: o.cwd, env: o.env, stderr: 'inherit' },
      o.verbose,
    );
  const client = new Client({ name: o.clientName, version: o.clientVersion }, { capabilities: {} });
  const reqOpts = { timeout: o.timeout * 1000 };
  try {
    await client.connect(transport, reqOpts);
    record.server_pid = transport.pid ?? null;
    record.protocol = transport.negotiatedProtocolVersion ?? transport.protocolVersion ?? null;
    record.session_id = transport.sessionId ?? null;
    record.server_info = client.getServerVersion() ?? null;
    log(`connected: protocol=${record.protocol} server=${JSON.stringify(record.server_info)} pid=${record.server_pid}`);
    if (o.listTools) {
      const tools = await client.listTools(undefined, reqOpts);
      record.tools = tools.tools.map((t) => t.name);
    }
    for (const call of o.calls) {
      const first = wire.length;
      const entry = { tool: call.tool, arguments: call.arguments };
      const started = Date.now() / 1000;
      try {
        // `meta` goes in params._meta as given (trace context, for instance).
        const params = { name: call.tool, arguments: call.arguments, ...(call.meta ? { _meta: call.meta } : {}) };
        const result = await client.callTool(params, undefined, reqOpts);
        entry.outcome = result.isError ? 'error' : 'ok';
        entry.is_error = Boolean(result.isError);
        entry.rpc_error = null;
        entry.text = textOf(result);
      } catch (e) {
        if (!(e instanceof McpError)) throw e;
        entry.outcome = 'error';
        entry.is_error = null;
        // McpError prefixes "MCP error <code>: "; report the message as it was on the wire.
        const prefix = `MCP error ${e.code}: `;
        entry.rpc_error = { code: e.code, message: e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message };
        entry.text = null;
      }
      entry.started = started;
      entry.ended = Date.now() / 1000;
      const ids = wire.slice(first).filter((w) => w.dir === 'out' && w.method === 'tools/call').map((w) => w.id);
      entry.request_ids = ids;
      entry.request_id = ids.length ? ids[ids.length - 1] : null;
      record.calls.push(entry);
      log(`call ${call.tool} -> ${entry.outcome}`);
    }
  } catch (e) {
    log('session failed:', e?.stack ?? e);
    // fetch() hides why it failed (a refused connection, an untrusted certificate) in e.cause.
    const cause = e?.cause ? ` (cause: ${e.cause.code ?? e.cause.name ?? 'Error'}: ${e.cause.message ?? e.cause})` : '';
    record.fatal = `${e?.name ?? 'Error'}: ${e?.message ?? e}${cause}`;
    rc = 1;
  } finally {
    if (record.server_pid === null) record.server_pid = transport.pid ?? null;
    try { await client.close(); } catch (e) { log('close failed:', e?.message ?? e); }
  }
  process.stdout.write(JSON.stringify(record) + '\n', () => process.exit(rc));
}

main();
