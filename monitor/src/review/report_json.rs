//! The review as JSON: the model itself ([`super::access::Report`]), pretty-printed.
//! Its shape is documented in the README ("The access review"); `format_version`
//! changes when a field changes meaning or goes away.

use super::access::Report;

pub fn render(report: &Report) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}
