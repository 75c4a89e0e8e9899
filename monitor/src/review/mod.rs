//! After the fact: event logs read back (`log`) for the access review
//! (`mcp-monitor report`) and a least-privilege policy (`mcp-monitor suggest-policy`).
//! Nothing here runs in the daemon; it reads what `output` wrote.
//!
//! The review: `access` builds the model from the events (with `consistency`, the
//! same tool decided differently for different callers), `view` lays it out as
//! sections and tables, `report_md`, `report_html` (with `report_svg`, the picture)
//! and `report_json` write it, and `report` is the command.
pub mod access;
pub mod consistency;
pub mod log;
pub mod report;
pub mod report_html;
pub mod report_json;
pub mod report_md;
pub mod report_svg;
pub mod view;
