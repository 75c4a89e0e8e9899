#!/usr/bin/env node
// MCP server on the official TypeScript SDK (@modelcontextprotocol/sdk 1.x): McpServer +
// StreamableHTTPServerTransport, stateful (an `Mcp-Session-Id` from randomUUID per
// `initialize`, one McpServer per session), served over HTTPS by node:https on
// 127.0.0.1:PORT/mcp. Node's TLS is its own OpenSSL (linked into the node binary by most
// builds, else the shared libssl): SSL_read/SSL_write see the plaintext.
//
//   node ts_https_server.mjs --port P --cert CERT.pem --key KEY.pem [--name NAME] [--json-response]
//
// Tools (as py_server.py has them):
//   echo(text)        -> text
//   read_secret(path) -> opens and reads the file, returns its length in bytes
//
// Answers come as SSE (the SDK's default) unless --json-response. NAME is the serverInfo
// name and stands on the command line, for a watch glob. Logs go to stderr; prints
// nothing on stdout. Exits 0 on SIGTERM/SIGINT.

import fs from 'node:fs';
import https from 'node:https';
import process from 'node:process';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as z from 'zod';

const log = (...a) => console.error('ts_https_server:', ...a);

function usage(msg) {
  console.error(`ts_https_server: ${msg}\nusage: ts_https_server.mjs --port P --cert CERT.pem --key KEY.pem [--name NAME] [--json-response]`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: null, cert: null, key: null, name: 'mcp-monitor-ts-https-server', jsonResponse: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--port': o.port = Number(val()); break;
      case '--cert': o.cert = val(); break;
      case '--key': o.key = val(); break;
      case '--name': o.name = val(); break;
      case '--json-response': o.jsonResponse = true; break;
      default: usage(`unknown option ${a}`);
    }
  }
  if (!Number.isInteger(o.port) || o.port <= 0 || o.port > 65535) usage('--port wants a port number');
  if (!o.cert || !o.key) usage('--cert and --key are required');
  return o;
}

function build(name) {
  const server = new McpServer({ name, version: '0.1.0' });
  server.registerTool(
    'echo',
    { description: 'Return the text unchanged.', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool(
    'read_secret',
    { description: 'Open and read a file; return its length in bytes.', inputSchema: { path: z.string() } },
    async ({ path }) => ({ content: [{ type: 'text', text: String(fs.readFileSync(path).length) }] }),
  );
  return server;
}

function jsonError(res, status, code, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

const o = parseArgs(process.argv.slice(2));
// Session id -> its transport (each connected to its own McpServer).
const sessions = new Map();

async function handle(req, res) {
  const url = new URL(req.url, 'https://localhost');
  if (url.pathname !== '/mcp') return jsonError(res, 404, -32000, 'Not Found: the endpoint is /mcp');
  const sid = req.headers['mcp-session-id'];
  if (sid !== undefined) {
    const transport = sessions.get(sid);
    if (!transport) return jsonError(res, 404, -32001, 'Session not found');
    return transport.handleRequest(req, res);
  }
  if (req.method !== 'POST') return jsonError(res, 400, -32000, 'Bad Request: No valid session ID provided');
  // No session yet: a new transport, which accepts only `initialize` (and answers anything
  // else with a JSON-RPC error) and is kept once the session exists.
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    enableJsonResponse: o.jsonResponse,
    onsessioninitialized: (id) => { sessions.set(id, transport); },
  });
  transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
  await build(o.name).connect(transport);
  return transport.handleRequest(req, res);
}

const httpsServer = https.createServer(
  { cert: fs.readFileSync(o.cert), key: fs.readFileSync(o.key) },
  (req, res) => {
    handle(req, res).catch((e) => {
      log('request failed:', e?.stack ?? e);
      if (!res.headersSent) jsonError(res, 500, -32603, 'Internal server error');
      else res.end();
    });
  },
);
httpsServer.on('tlsClientError', (e) => log('TLS error:', e?.message ?? e));
httpsServer.listen(o.port, '127.0.0.1', () => log(`listening on https://127.0.0.1:${o.port}/mcp as ${o.name}`));

function stop() {
  for (const t of sessions.values()) t.close().catch(() => {});
  httpsServer.close();
  httpsServer.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
