//! The review as Markdown: headings, notes and GitHub-style tables. Every value comes
//! from events written about watched processes, so each is escaped: `|` cannot end a
//! cell, a newline cannot end a row, and `<`, `&`, `[`, `` ` ``, `*` cannot become HTML,
//! links, code or emphasis in a viewer that renders the file (`_` is left alone: names
//! are full of it, and inside a word it is not emphasis).

use std::fmt::Write as _;

use super::{
    access::Report,
    view::{self, Table},
};

/// `s` as the text of one Markdown table cell or line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '<' | '>' | '&' | '[' | ']' | '`' | '*' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for section in view::sections(report) {
        let hashes = "#".repeat(usize::from(section.level));
        let _ = writeln!(out, "{hashes} {}\n", escape(&section.title));
        for note in &section.notes {
            let _ = writeln!(out, "{}\n", escape(note));
        }
        for table in &section.tables {
            table_md(&mut out, table, section.level + 1);
        }
    }
    out
}

fn table_md(out: &mut String, t: &Table, level: u8) {
    if let Some(caption) = &t.caption {
        let _ = writeln!(out, "{} {}\n", "#".repeat(usize::from(level)), escape(caption));
    }
    if t.rows.is_empty() {
        let _ = writeln!(out, "{}\n", escape(t.empty));
        return;
    }
    let _ = writeln!(
        out,
        "| {} |",
        t.headers
            .iter()
            .map(|h| escape(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|{}", " --- |".repeat(t.headers.len()));
    for row in &t.rows {
        let _ = writeln!(
            out,
            "| {} |",
            row.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn cells_cannot_break_the_table_or_become_html() {
        assert_eq!(escape("a|b\nc"), "a\\|b c");
        assert_eq!(escape("<script>x</script>"), "\\<script\\>x\\</script\\>");
        assert_eq!(escape("[x](javascript:1)"), "\\[x\\](javascript:1)");
        assert_eq!(escape("a\u{1b}[31m"), "a\u{fffd}\\[31m");
    }
}
