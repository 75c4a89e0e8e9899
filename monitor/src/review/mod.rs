//! After the fact: event logs read back (`log`) for the access review
//! (`mcp-monitor report`) and a least-privilege policy (`mcp-monitor suggest-policy`).
//! Nothing here runs in the daemon; it reads what `output` wrote. For suggest-policy:
//! `observed` gathers what each server and agent did, `generalise` turns what one run
//! showed into globs a rerun also matches, `suggest` writes the policy (`yaml_text`
//! quoting what came from the log), `policy_diff` compares with the policy in force.
//!
//! The review: `access` builds the model from the events (with `consistency`, the
//! same tool decided differently for different callers), `view` lays it out as
//! sections and tables, `report_md`, `report_html` (with `report_svg`, the picture)
//! and `report_json` write it, and `report` is the command.
pub mod access;
pub mod consistency;
pub mod generalise;
pub mod log;
pub mod observed;
pub mod policy_diff;
pub mod report;
pub mod report_html;
pub mod report_json;
pub mod report_md;
pub mod report_svg;
pub mod suggest;
pub mod view;
pub mod yaml_text;
