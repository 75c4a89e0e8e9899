//! After the fact: event logs read back (`log`) for the access review
//! (`mcp-monitor report`) and a least-privilege policy (`mcp-monitor suggest-policy`).
//! Nothing here runs in the daemon; it reads what `output` wrote. For suggest-policy:
//! `observed` gathers what each server and agent did, `generalise` turns what one run
//! showed into globs a rerun also matches, `suggest` writes the policy (`yaml_text`
//! quoting what came from the log), `policy_diff` compares with the policy in force.
pub mod generalise;
pub mod log;
pub mod observed;
pub mod policy_diff;
pub mod suggest;
pub mod yaml_text;
