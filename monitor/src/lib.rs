//! mcp-monitor's userspace: kernel programs loaded by `capture`, records decoded by
//! `records`, the daemon loop in `daemon`. A library so benches and tools share it.
pub mod capture;
pub mod daemon;
pub mod effects;
pub mod events;
pub mod fds;
pub mod identity;
pub mod jsonrpc;
pub mod mcp;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod procs;
pub mod program_files;
pub mod reassembly;
pub mod records;
pub mod servers;
pub mod verdict;
pub mod watch;
