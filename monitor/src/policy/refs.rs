//! What each violation kind means in the frameworks security teams map their controls
//! to, carried on every violation as `refs` (`["OWASP-ASI:ASI02", "MAESTRO:L3",
//! "NIST-AI-RMF:MEASURE-2.7"]`), so an alert can be filed under a control without a
//! lookup. One static table; the README's framework table says why each row holds.
//!
//! The form is `FRAMEWORK:ID`:
//! - `OWASP-ASI:ASInn`: OWASP Top 10 for Agentic Applications (2026, December 2025),
//!   ASI01 Agent Goal Hijack .. ASI10 Rogue Agents. IDs and titles checked against
//!   several published mappings that agree with each other (OWASP's own PDF was not
//!   reachable from here): ASI02 Tool Misuse and Exploitation, ASI03 Identity and
//!   Privilege Abuse, ASI04 Agentic Supply Chain Vulnerabilities, ASI05 Unexpected
//!   Code Execution, ASI07 Insecure Inter-Agent Communication, ASI10 Rogue Agents.
//! - `MAESTRO:Ln`: the layer of CSA's MAESTRO threat model (v1, 2025, seven layers):
//!   L3 Agent Frameworks (tool orchestration, MCP servers), L4 Deployment and
//!   Infrastructure (the host: files, programs, network, credentials), L6 Security and
//!   Compliance (the vertical layer: identity, access control, policy), L7 Agent
//!   Ecosystem (which agents and tools take part). MAESTRO v2 (ten layers) is in
//!   review; these are v1's numbers.
//! - `NIST-AI-RMF:FUNCTION-n.n`: a subcategory of NIST AI 100-1 (AI RMF 1.0):
//!   GOVERN 1.6 (an inventory of AI systems), MEASURE 2.7 (security and resilience
//!   evaluated and documented), MANAGE 3.1 (third-party resources monitored).

/// Violation kinds and their references. A kind not listed has none (`[]`).
pub const REFS: &[(&str, &[&str])] = &[
    (
        "tool_out_of_scope",
        &[
            "OWASP-ASI:ASI02",
            "MAESTRO:L3",
            "MAESTRO:L6",
            "NIST-AI-RMF:MEASURE-2.7",
        ],
    ),
    (
        "unknown_agent",
        &[
            "OWASP-ASI:ASI03",
            "MAESTRO:L6",
            "MAESTRO:L7",
            "NIST-AI-RMF:MEASURE-2.7",
        ],
    ),
    (
        "secret_access",
        &[
            "OWASP-ASI:ASI03",
            "MAESTRO:L4",
            "MAESTRO:L6",
            "NIST-AI-RMF:MEASURE-2.7",
        ],
    ),
    (
        "file_out_of_scope",
        &["OWASP-ASI:ASI02", "MAESTRO:L4", "NIST-AI-RMF:MEASURE-2.7"],
    ),
    (
        "exec_out_of_scope",
        &["OWASP-ASI:ASI05", "MAESTRO:L4", "NIST-AI-RMF:MEASURE-2.7"],
    ),
    (
        "connect_out_of_scope",
        &["OWASP-ASI:ASI02", "MAESTRO:L4", "NIST-AI-RMF:MEASURE-2.7"],
    ),
    (
        "unregistered_server",
        &[
            "OWASP-ASI:ASI04",
            "MAESTRO:L7",
            "NIST-AI-RMF:GOVERN-1.6",
            "NIST-AI-RMF:MANAGE-3.1",
        ],
    ),
    (
        "stdin_forged",
        &[
            "OWASP-ASI:ASI07",
            "OWASP-ASI:ASI10",
            "MAESTRO:L3",
            "NIST-AI-RMF:MEASURE-2.7",
        ],
    ),
    (
        "static_secret",
        &[
            "OWASP-ASI:ASI03",
            "MAESTRO:L4",
            "MAESTRO:L6",
            "NIST-AI-RMF:MEASURE-2.7",
        ],
    ),
];

/// The references of a violation kind (empty for a kind the table does not know).
pub fn refs_of(kind: &str) -> &'static [&'static str] {
    REFS.iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[], |(_, refs)| refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds of the README's framework table (its rows start with a kind in backquotes).
    fn readme_kinds() -> Vec<String> {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("| violation kind | OWASP ASI |")
            .expect("the README has the framework table");
        readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cell = l.trim_start_matches('|').split('|').next()?.trim();
                Some(cell.trim_matches('`').to_string())
            })
            .collect()
    }

    #[test]
    fn every_kind_in_the_readme_table_has_refs_and_every_kind_with_refs_is_in_it() {
        let readme = readme_kinds();
        let table: Vec<String> = REFS.iter().map(|(k, _)| k.to_string()).collect();
        assert!(!readme.is_empty());
        for k in &readme {
            assert!(!refs_of(k).is_empty(), "README kind {k} has no refs");
        }
        for k in &table {
            assert!(readme.contains(k), "{k} has refs but no README row");
        }
        assert_eq!(readme.len(), table.len(), "{readme:?} vs {table:?}");
    }

    #[test]
    fn the_readme_rows_say_the_same_refs_as_the_table() {
        let readme = include_str!("../../../README.md");
        for (kind, refs) in REFS {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{kind}` |")))
                .unwrap_or_else(|| panic!("no README row for {kind}"));
            for r in *refs {
                let id = r.split_once(':').map_or(*r, |(_, id)| id);
                assert!(row.contains(id), "README row of {kind} lacks {r}: {row}");
            }
        }
    }

    #[test]
    fn every_ref_has_the_documented_form() {
        for (kind, refs) in REFS {
            assert!(refs.iter().any(|r| r.starts_with("OWASP-ASI:ASI")), "{kind}");
            assert!(refs.iter().any(|r| r.starts_with("MAESTRO:L")), "{kind}");
            assert!(refs.iter().any(|r| r.starts_with("NIST-AI-RMF:")), "{kind}");
            for r in *refs {
                let ok = match r.split_once(':') {
                    Some(("OWASP-ASI", id)) => {
                        id.len() == 5
                            && id.starts_with("ASI")
                            && (1..=10).contains(&id[3..].parse::<u8>().unwrap_or(0))
                    }
                    Some(("MAESTRO", id)) => matches!(id, "L1" | "L2" | "L3" | "L4" | "L5" | "L6" | "L7"),
                    Some(("NIST-AI-RMF", id)) => {
                        let (function, sub) = id.split_once('-').unwrap_or(("", ""));
                        ["GOVERN", "MAP", "MEASURE", "MANAGE"].contains(&function)
                            && sub
                                .split_once('.')
                                .is_some_and(|(a, b)| a.parse::<u8>().is_ok() && b.parse::<u8>().is_ok())
                    }
                    _ => false,
                };
                assert!(ok, "{kind}: {r}");
            }
        }
        assert_eq!(refs_of("no_such_kind"), &[] as &[&str]);
    }
}
