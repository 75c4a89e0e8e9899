//! Is this MCP? The check behind finding servers by what they speak: the first bytes
//! a process read on its stdin, or on a connection it accepted, must be a JSON-RPC 2.0
//! message whose method is MCP's (or that carries MCP's `_meta` keys, or, over HTTP,
//! MCP's headers). JSON-RPC that is not MCP (a language server's `initialize`, a tool
//! that pipes JSON lines) is not.
use serde_json::Value;

use super::jsonrpc::{self, Message};

/// Methods a client sends to an MCP server (requests and notifications), across the
/// protocol revisions up to 2026-07-28. `initialize` and `ping` are also other
/// protocols' words: they are MCP only with MCP's parameters (see `is_mcp_message`).
const CLIENT_METHODS: &[&str] = &[
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/roots/list_changed",
];

/// `_meta` keys in MCP's namespace mark any request as MCP's.
const META_PREFIX: &str = "io.modelcontextprotocol/";

/// Headers only MCP's Streamable HTTP transport sends.
const HTTP_HEADERS: &[&str] = &["mcp-method", "mcp-protocol-version", "mcp-session-id"];

/// Why a first read made a process an MCP server: the method that showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub method: String,
}

/// The MCP request among the lines a process read on its stdin, if any (the first may
/// be the tail of a message when the daemon started after the server).
pub fn stdio(bytes: &[u8]) -> Option<Detected> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.first().is_some_and(|&b| b == b'{' || b == b'['))
        .flat_map(jsonrpc::parse_line)
        .filter_map(Result::ok)
        .find_map(|m| is_mcp_message(&m))
}

/// Whether what a process wrote opens with a JSON-RPC response (a result or an error
/// for an id): how a server that moved its stdout is seen answering.
pub fn response(bytes: &[u8]) -> bool {
    let first = bytes
        .trim_ascii_start()
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    jsonrpc::parse_line(first).iter().any(|m| {
        matches!(
            m,
            Ok(Message::Response { .. } | Message::Error { id: Some(_), .. })
        )
    })
}

/// The first request a process read on a connection it accepted, when it is MCP over
/// HTTP: MCP headers, or a body that is an MCP request.
pub fn http(bytes: &[u8]) -> Option<Detected> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let body_at = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    if let Some(d) = stdio(&bytes[body_at..]) {
        return Some(d);
    }
    if HTTP_HEADERS.iter().any(|h| header(h).is_some()) {
        let method = header("mcp-method").unwrap_or_else(|| req.method.unwrap_or("").to_string());
        return Some(Detected { method });
    }
    None
}

/// An MCP request or notification from a client, by its method and parameters.
fn is_mcp_message(m: &Message) -> Option<Detected> {
    let (method, params) = match m {
        Message::Request { method, params, .. } | Message::Notification { method, params } => {
            (method, params)
        }
        _ => return None,
    };
    let meta_keys = params
        .get("_meta")
        .and_then(Value::as_object)
        .is_some_and(|m| m.keys().any(|k| k.starts_with(META_PREFIX)));
    let mcp = match method.as_str() {
        // LSP's initialize has processId and rootUri; MCP's a protocolVersion string
        // and clientInfo.
        "initialize" => params.get("protocolVersion").is_some_and(Value::is_string),
        "ping" => params.is_null() || params.as_object().is_some_and(|p| p.is_empty()) || meta_keys,
        m => CLIENT_METHODS.contains(&m) || meta_keys,
    };
    mcp.then(|| Detected {
        method: method.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_requests_of_both_eras_are_mcp() {
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}
"#;
        assert_eq!(stdio(init).unwrap().method, "initialize");
        let pydantic_order = br#"{"method":"tools/list","params":{},"jsonrpc":"2.0","id":1}"#;
        assert_eq!(stdio(pydantic_order).unwrap().method, "tools/list");
        let stateless = br#"{"jsonrpc":"2.0","id":3,"method":"example/custom","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(stdio(stateless).unwrap().method, "example/custom");
        // A server already running when the daemon started: found by its next message.
        let mid = b"\n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}\n{\"jsonrpc\":";
        assert_eq!(stdio(mid).unwrap().method, "tools/call");
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#;
        assert_eq!(stdio(batch).unwrap().method, "ping");
    }

    #[test]
    fn other_json_rpc_and_json_lines_are_not_mcp() {
        let lsp_init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"processId":1,"rootUri":null,"capabilities":{}}}"#;
        for not_mcp in [
            &lsp_init[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"textDocument/hover","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            br#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#,
            br#"{"level":"info","msg":"tools/call done"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"seq":4}}"#,
            b"Content-Length: 120\r\n\r\n{\"jsonrpc\":\"2.0\"}",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"tools/ca",
            b"",
            b"\xff\xfe{",
        ] {
            assert_eq!(stdio(not_mcp), None, "{}", String::from_utf8_lossy(not_mcp));
        }
    }

    #[test]
    fn responses_are_told_from_requests_and_logs() {
        assert!(response(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n"));
        assert!(response(
            br#"{"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"no"}}"#
        ));
        assert!(!response(
            br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#
        ));
        assert!(!response(br#"{"level":"info"}"#));
        assert!(!response(
            b"INFO starting\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"
        ));
    }

    #[test]
    fn http_requests_are_mcp_by_body_or_headers() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let post = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(http(post.as_bytes()).unwrap().method, "tools/call");
        let headers_only =
            b"POST /mcp HTTP/1.1\r\nMcp-Method: tools/list\r\nContent-Length: 500\r\n\r\n{\"jsonr";
        assert_eq!(http(headers_only).unwrap().method, "tools/list");
        let session = b"GET /mcp HTTP/1.1\r\nmcp-session-id: abc\r\n\r\n";
        assert_eq!(http(session).unwrap().method, "GET");
        let rest = b"POST /api/orders HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"id\":\"a-1\"}";
        assert_eq!(http(rest), None);
        assert_eq!(http(b"POST /mcp HTTP/1.1\r\nHost: x"), None, "an unfinished head");
    }
}
