//! Writing YAML by hand, safely: every value from an event log (a path, a tool name,
//! a client name) is hostile until shown otherwise, so scalars are always double-quoted
//! with every character YAML could read as structure escaped, and comments never hold a
//! line break (a value with a newline in a comment would start a line of YAML).

use std::fmt::Write as _;

/// `s` as a double-quoted YAML scalar.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters YAML wants escaped: C0 and C1 controls, DEL, the Unicode line and
/// paragraph separators, the byte order mark, and non-characters.
fn needs_escape(c: char) -> bool {
    let u = c as u32;
    u < 0x20 || (0x7f..=0x9f).contains(&u) || matches!(u, 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff)
}

/// Text for a comment: one line, whatever the value held.
pub fn comment_text(s: &str) -> String {
    s.chars().map(|c| if needs_escape(c) { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_read_back_as_themselves() {
        for s in [
            "plain",
            "with \"quotes\" and \\ back",
            "new\nline: [x]\n- y",
            "# not a comment",
            "\u{85}\u{2028}\u{feff}\u{7f}\u{1}",
            "*&anchor !tag {a: b}",
            "",
        ] {
            let doc = format!("k: {}\n", quote(s));
            let node = marked_yaml::parse_yaml(0, &doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
            let got = node
                .as_mapping()
                .unwrap()
                .get_scalar("k")
                .unwrap()
                .as_str()
                .to_string();
            assert_eq!(got, s, "{doc:?}");
        }
    }

    #[test]
    fn a_comment_stays_on_its_line() {
        let c = comment_text("evil\nservers: {}\r\u{2028}x");
        assert!(!c.contains(['\n', '\r', '\u{2028}']), "{c}");
        let doc = format!("# {c}\nk: 1\n");
        let node = marked_yaml::parse_yaml(0, &doc).unwrap();
        assert_eq!(node.as_mapping().unwrap().len(), 1);
    }
}
