//! Transport-neutral MCP: JSON-RPC messages, and sessions that pair requests with
//! responses and know who the client and server are, in both protocol eras.
pub mod detect;
pub mod jsonrpc;
pub mod long_strings;
pub mod methods;
pub mod session;
pub mod trace_context;
