//! Bytes of a connection to framed JSON-RPC messages: stdio (newline framing).
pub mod stdio;
