//! After the fact: event logs read back (`log`) for the access review
//! (`mcp-monitor report`) and a least-privilege policy (`mcp-monitor suggest-policy`).
//! Nothing here runs in the daemon; it reads what `output` wrote.
pub mod log;
