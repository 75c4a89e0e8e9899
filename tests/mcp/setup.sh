#!/usr/bin/env bash
# Install the pinned MCP peers used by the integration tests, into this folder only:
#   node_modules/  <- npm ci from package-lock.json (@modelcontextprotocol/sdk, server-filesystem)
#   .venv/         <- python3 -m venv + pip install -r requirements.txt (PyPI mcp 2.x, tlslite-ng)
# Idempotent: each half is redone only when missing, incomplete, or its pin file changed
# (a stamp holding the sha256 of the pin files is written last). Needs no root.
# Env: PYTHON (default python3, must be >= 3.10 with venv), NODE (default node), NPM (default npm).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
PYTHON="${PYTHON:-python3}"
NODE="${NODE:-node}"
NPM="${NPM:-npm}"

say() { echo "setup.sh: $*"; }
die() { echo "setup.sh: ERROR: $*" >&2; exit 1; }

# Serialise concurrent runs (e.g. several test binaries calling this at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$HERE/.setup.lock"
  flock 9
fi

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------- node half ----------
command -v "$NODE" >/dev/null 2>&1 || die "'$NODE' not found: install Node.js >= 20 (e.g. apt-get install nodejs npm)"
command -v "$NPM" >/dev/null 2>&1 || die "'$NPM' not found: install npm"
node_major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js >= 20 required (found $("$NODE" --version))"
[ -f package-lock.json ] || die "package-lock.json missing in $HERE"

node_want="$(hash_of package.json package-lock.json)"
node_stamp="node_modules/.mcp-setup.sha256"
fs_entry="node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
everything_entry="node_modules/@modelcontextprotocol/server-everything/dist/index.js"
if [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ] && [ -f "$fs_entry" ] && [ -f "$everything_entry" ]; then
  say "node_modules up to date (lock $node_want)"
else
  say "installing node packages: $NPM ci (from package-lock.json)"
  "$NPM" ci --no-audit --no-fund --no-update-notifier --ignore-scripts --loglevel=error \
    || die "npm ci failed (is the npm registry reachable? is package-lock.json in sync with package.json?)"
  [ -f "$fs_entry" ] || die "npm ci finished but $fs_entry is missing"
  [ -f "$everything_entry" ] || die "npm ci finished but $everything_entry is missing"
  "$NODE" --input-type=module -e "await import('@modelcontextprotocol/sdk/client/stdio.js')" \
    || die "node cannot import @modelcontextprotocol/sdk from $HERE/node_modules"
  echo "$node_want" > "$node_stamp"
fi

# ---------- python half ----------
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found: install python3 (>= 3.10) with venv"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "Python >= 3.10 required for mcp 2.x (found $("$PYTHON" --version 2>&1)); set PYTHON=..."
py_id="$("$PYTHON" -c 'import sys; print(sys.implementation.cache_tag, sys.executable)')"
py_want="$( { cat requirements.txt; echo "$py_id"; } | sha256sum | cut -d' ' -f1)"
py_stamp=".venv/.mcp-setup.sha256"
if [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_want" ] && [ -x .venv/bin/python ]; then
  say ".venv up to date (requirements $py_want)"
else
  say "creating .venv with $PYTHON ($("$PYTHON" --version 2>&1))"
  rm -rf .venv
  "$PYTHON" -m venv .venv \
    || die "'$PYTHON -m venv' failed (on Debian's own python3: apt-get install python3-venv)"
  say "installing python packages: .venv/bin/pip install -r requirements.txt"
  .venv/bin/pip install --quiet --disable-pip-version-check --no-input -r requirements.txt \
    || { rm -rf .venv; die "pip install failed (is PyPI reachable?)"; }
  .venv/bin/python -c 'import mcp.client.stdio; from mcp.server.mcpserver import MCPServer; import tlslite.api' \
    || { rm -rf .venv; die ".venv cannot import mcp / MCPServer / tlslite"; }
  echo "$py_want" > "$py_stamp"
fi

mcp_dist="$(cd .venv/lib/python*/site-packages && ls -d mcp-*.dist-info | grep -v mcp_types | grep -E '^mcp-[0-9]' | head -1)"
say "ready: $("$NODE" -p 'const v=(p)=>require("./node_modules/"+p+"/package.json").version; `node ${process.version}, @modelcontextprotocol/sdk ${v("@modelcontextprotocol/sdk")}, @modelcontextprotocol/server-filesystem ${v("@modelcontextprotocol/server-filesystem")}, @modelcontextprotocol/server-everything ${v("@modelcontextprotocol/server-everything")}`'), ${mcp_dist%.dist-info}"
