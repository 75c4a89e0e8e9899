//! mcp-monitor's userspace. The data path reads from the folders, one way:
//! `kernel` (programs, records) -> `host` (processes, fds, peers) and `transport`
//! (bytes to framed messages) -> `mcp` (sessions, pairing, identity) -> `policy`
//! (verdicts) -> `output` (events, metrics). `servers` holds what is known of each
//! watched server, `pipeline` dispatches records along that path, `daemon` runs it;
//! `record` writes what the kernel delivered and the host facts looked up, which
//! `replay` runs through the same pipeline.
//! A library so benches and tools share it.
pub mod allocator;
pub mod daemon;
pub mod host;
pub mod kernel;
pub mod mcp;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod replay;
pub mod review;
pub mod servers;
pub mod transport;
