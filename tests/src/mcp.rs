//! The real MCP peers pinned in tests/mcp (installed by tests/mcp/setup.sh): paths,
//! server command lines, and the client drivers that report what they did as JSON.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

pub fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp")
}

pub fn venv_python() -> PathBuf {
    mcp_dir().join(".venv/bin/python")
}

/// The entry script of an npm package installed in tests/mcp.
pub fn npm_entry(package: &str) -> String {
    let entry = mcp_dir().join("node_modules").join(package).join("dist/index.js");
    assert!(
        entry.exists(),
        "{} missing: run tests/mcp/setup.sh (cargo xtask test does)",
        entry.display()
    );
    entry.display().to_string()
}

/// `node <server-filesystem entry> ROOT`
pub fn filesystem_server(root: &Path) -> Vec<String> {
    vec![
        "node".into(),
        npm_entry("@modelcontextprotocol/server-filesystem"),
        root.display().to_string(),
    ]
}

/// The MCPServer-based test server (PyPI `mcp` 2.x), named `name`.
pub fn python_server(name: &str) -> Vec<String> {
    let script = mcp_dir().join("py_server.py");
    vec![
        venv_python().display().to_string(),
        script.display().to_string(),
        "--name".into(),
        name.into(),
    ]
}

/// `python_server(name)` serving Streamable HTTP (stateless, plain JSON) on `port`.
pub fn python_http_server(name: &str, port: u16) -> Vec<String> {
    let mut cmd = python_server(name);
    cmd.extend(["--http".to_string(), port.to_string()]);
    cmd
}

/// `python_http_server(name, port)` over HTTPS (uvicorn with `ssl_certfile`/`ssl_keyfile`:
/// Python's `ssl`, i.e. the shared libssl, through a memory BIO on the asyncio loop).
pub fn python_https_server(name: &str, port: u16, cert: &Path, key: &Path) -> Vec<String> {
    let mut cmd = python_http_server(name, port);
    cmd.extend([
        "--cert".to_string(),
        cert.display().to_string(),
        "--key".to_string(),
        key.display().to_string(),
    ]);
    cmd
}

/// `node tests/mcp/ts_https_server.mjs --port PORT --cert CERT --key KEY --name NAME`: the
/// TypeScript SDK's McpServer + StreamableHTTPServerTransport (stateful: `Mcp-Session-Id`,
/// SSE answers) on node:https (node's own OpenSSL), at https://127.0.0.1:PORT/mcp, with the
/// tools `echo(text)` and `read_secret(path)`.
pub fn ts_https_server(name: &str, port: u16, cert: &Path, key: &Path) -> Vec<String> {
    let sdk = mcp_dir().join("node_modules/@modelcontextprotocol/sdk/package.json");
    assert!(
        sdk.exists(),
        "{} missing: run tests/mcp/setup.sh (cargo xtask test does)",
        sdk.display()
    );
    tls_server("node".into(), "ts_https_server.mjs", name, port, cert, key)
}

/// A glob matching exactly `ts_https_server(name, ..)`'s command line.
pub fn ts_https_server_glob(name: &str) -> String {
    format!("node *ts_https_server.mjs --port * --name {name}")
}

/// `.venv/bin/python tests/mcp/tls_unreadable_server.py --port PORT --cert CERT --key KEY
/// --name NAME`: TLS in pure Python (tlslite-ng) that never loads OpenSSL, answering any
/// HTTP request on 127.0.0.1:PORT with `200 OK`, one connection at a time per thread.
pub fn tls_unreadable_server(name: &str, port: u16, cert: &Path, key: &Path) -> Vec<String> {
    tls_server(
        venv_python().display().to_string(),
        "tls_unreadable_server.py",
        name,
        port,
        cert,
        key,
    )
}

/// A glob matching exactly `tls_unreadable_server(name, ..)`'s command line.
pub fn tls_unreadable_server_glob(name: &str) -> String {
    format!(
        "{} *tls_unreadable_server.py --port * --name {name}",
        venv_python().display()
    )
}

/// `PROGRAM tests/mcp/SCRIPT --port PORT --cert CERT --key KEY --name NAME`: the command
/// line both TLS test servers take, the name last so that a glob can end with it.
fn tls_server(program: String, script: &str, name: &str, port: u16, cert: &Path, key: &Path) -> Vec<String> {
    vec![
        program,
        mcp_dir().join(script).display().to_string(),
        "--port".into(),
        port.to_string(),
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
        "--name".into(),
        name.into(),
    ]
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (RSA 2048, one day), made by
/// `openssl req -x509` in `dir` as `cert.pem` + `key.pem` (unencrypted PKCS#8). It is its
/// own CA: clients trust it by `--cafile` / `NODE_EXTRA_CA_CERTS` / `curl --cacert`. The
/// extensions come from a config written beside them, not the host's openssl.cnf.
pub fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key, config) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("cert.cnf"));
    std::fs::write(
        &config,
        "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = ext\n\
         [dn]\nCN = localhost\n\
         [ext]\nbasicConstraints = critical, CA:TRUE\n\
         keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n",
    )
    .expect("writing the certificate config");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-config",
        ])
        .arg(&config)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(
        out.status.success() && cert.exists() && key.exists(),
        "openssl req -x509 failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `node <server-everything entry> streamableHttp TAG` (the legacy era over HTTP: SSE
/// answers, `Mcp-Session-Id`, a standing GET stream); its port comes from `PORT`. The
/// tag, which it ignores, names it for a watch glob.
pub fn everything_http_server(tag: &str) -> Vec<String> {
    vec![
        "node".into(),
        npm_entry("@modelcontextprotocol/server-everything"),
        "streamableHttp".into(),
        tag.into(),
    ]
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A glob matching exactly `python_server(name)`'s command line.
pub fn python_server_glob(name: &str) -> String {
    format!("{} *py_server.py --name {name}", venv_python().display())
}

#[derive(Clone, Copy)]
pub enum Client {
    /// The official Python SDK (`mcp` 2.x).
    Python,
    /// The official TypeScript SDK.
    TypeScript,
}

/// Runs a client driver against `server` and returns its report. The server command
/// goes in MCP_SERVER_CMD so the client's own command line does not match the server's
/// watch glob; `server_env` is passed to the server (KEY=VALUE).
pub fn drive(client: Client, name: &str, server: &[String], calls: &Value, server_env: &[String]) -> Value {
    let mut cmd = driver(client, name, calls);
    for kv in server_env {
        cmd.args(["--env", kv]);
    }
    cmd.env("MCP_SERVER_CMD", serde_json::to_string(server).unwrap());
    run_driver(cmd)
}

/// Asserts that the real server did every call a driver reports (the monitor judges,
/// it does not block).
pub fn assert_all_ok(report: &Value) {
    let calls = report["calls"].as_array().expect("the driver lists its calls");
    assert!(calls.iter().all(|c| c["outcome"] == "ok"), "{report:#}");
}

/// Runs a client driver against a Streamable HTTP endpoint, with extra request headers
/// (NAME=VALUE), and returns its report.
pub fn drive_url(client: Client, name: &str, url: &str, calls: &Value, headers: &[String]) -> Value {
    run_driver(url_driver(client, name, url, calls, headers))
}

/// `drive_url` on an `https://` endpoint whose certificate `ca` signed: `--cafile CA` for
/// the Python client, `NODE_EXTRA_CA_CERTS=CA` for the TypeScript one (neither trusts
/// anything else it would not trust anyway).
pub fn drive_https_url(
    client: Client,
    name: &str,
    url: &str,
    ca: &Path,
    calls: &Value,
    headers: &[String],
) -> Value {
    let mut cmd = url_driver(client, name, url, calls, headers);
    match client {
        Client::Python => {
            cmd.arg("--cafile").arg(ca);
        }
        Client::TypeScript => {
            cmd.env("NODE_EXTRA_CA_CERTS", ca);
        }
    }
    run_driver(cmd)
}

fn driver(client: Client, name: &str, calls: &Value) -> Command {
    let mut cmd = match client {
        Client::Python => {
            let mut c = Command::new(venv_python());
            c.arg(mcp_dir().join("py_client.py"));
            c
        }
        Client::TypeScript => {
            let mut c = Command::new("node");
            c.arg(mcp_dir().join("ts_client.mjs"));
            c
        }
    };
    cmd.args([
        "--client-name",
        name,
        "--client-version",
        "9.8.7",
        "--calls",
        &calls.to_string(),
    ]);
    cmd
}

/// `driver` for a Streamable HTTP endpoint, with extra request headers (NAME=VALUE).
fn url_driver(client: Client, name: &str, url: &str, calls: &Value, headers: &[String]) -> Command {
    let mut cmd = driver(client, name, calls);
    cmd.args(["--url", url]);
    for h in headers {
        cmd.args(["--header", h]);
    }
    cmd
}

fn run_driver(mut cmd: Command) -> Value {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("starting the MCP client driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "driver failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {stdout}"))
}

/// The events of `kind` about one server, once the daemon has seen the server exit.
pub fn server_events(d: &crate::Daemon, kind: &str, server_pid: &Value) -> Vec<Value> {
    let wait = std::time::Duration::from_secs(30);
    d.wait_for(wait, |e| {
        e["type"] == "server_exited" && e["server"]["pid"] == *server_pid
    })
    .unwrap_or_else(|e| panic!("server {server_pid} exit not seen: {e:#}\n{}", d.stderr()));
    let mut events: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["type"] == kind && e["server"]["pid"] == *server_pid)
        .collect();
    events.sort_by_key(|e| e["request_id"].as_i64());
    events
}
