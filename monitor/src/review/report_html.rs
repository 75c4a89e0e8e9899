//! The review as one self-contained HTML page: inline CSS and JavaScript, no fonts,
//! images or scripts from anywhere, tables sorted by clicking a header, and the picture
//! of who reached what (`report_svg`). Every value from events is HTML-escaped; on top
//! of that, the page's Content-Security-Policy allows only its own style and script
//! (by hash) and no network, so a value that slipped through could not run or load
//! anything.
//!
//! Test hook: opened with `#sort=TABLE:COLUMN` (or `...:COLUMN:desc`), the page clicks
//! that header once (twice for `desc`) after loading; a sorted table says how in its
//! `data-sorted` attribute.

use std::fmt::Write as _;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{
    access::Report,
    report_svg,
    view::{self, Table},
};

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#222;font-size:14px}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ccc}h3{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.3em 0 1em;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;word-break:break-word;max-width:40em}
th{background:#f0f3f6;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}
tr:nth-child(even) td{background:#fafbfc}
p.empty{color:#666;font-style:italic}
#picture{overflow-x:auto;border:1px solid #ddd;padding:4px}
";

const SCRIPT: &str = r#"(function(){
function key(row,col){var c=row.cells[col];var t=c?c.textContent.trim():'';var n=Number(t);return (t!==''&&!isNaN(n))?{n:n,s:t}:{s:t};}
function cmp(a,b){if(a.n!==undefined&&b.n!==undefined)return a.n-b.n;if(a.n!==undefined)return -1;if(b.n!==undefined)return 1;return a.s.localeCompare(b.s,undefined,{numeric:true});}
function sortBy(table,col,desc){var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(x,y){var r=cmp(key(x,col),key(y,col));return desc?-r:r;});
rows.forEach(function(r){body.appendChild(r);});
var ths=table.tHead.rows[0].cells;for(var i=0;i<ths.length;i++){ths[i].removeAttribute('aria-sort');}
ths[col].setAttribute('aria-sort',desc?'descending':'ascending');
table.setAttribute('data-sorted',col+':'+(desc?'desc':'asc'));}
document.querySelectorAll('table.sortable').forEach(function(table){var ths=table.tHead.rows[0].cells;
for(var i=0;i<ths.length;i++){(function(col){ths[col].addEventListener('click',function(){sortBy(table,col,ths[col].getAttribute('aria-sort')==='ascending');});})(i);}});
var m=/^#sort=([A-Za-z0-9_-]+):([0-9]+)(:desc)?$/.exec(location.hash);
if(m){var t=document.getElementById(m[1]);var col=Number(m[2]);
if(t&&t.tHead&&col<t.tHead.rows[0].cells.length){var th=t.tHead.rows[0].cells[col];th.click();if(m[3])th.click();}}
})();"#;

/// `s` safe as HTML text and as a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A CSP source for inline text: `'sha256-BASE64'`.
fn hash_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src {}; script-src {}; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>MCP access review</title><style>{STYLE}</style></head><body>\n",
        hash_source(STYLE),
        hash_source(SCRIPT)
    );
    for (i, section) in view::sections(report).iter().enumerate() {
        let level = section.level.clamp(1, 5);
        let _ = writeln!(out, "<h{level}>{}</h{level}>", escape(&section.title));
        for note in &section.notes {
            let _ = writeln!(out, "<p>{}</p>", escape(note));
        }
        for table in &section.tables {
            table_html(&mut out, table, level + 1);
        }
        if i == 0 {
            let _ = writeln!(
                out,
                "<h2>Who reached what</h2><p>Agents, the servers they called, the tools called on each, and the secrets those calls read; red lines carried a violation.</p><div id=\"picture\">{}</div>",
                report_svg::render(report, escape)
            );
        }
    }
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}

fn table_html(out: &mut String, t: &Table, level: u8) {
    if let Some(caption) = &t.caption {
        let _ = writeln!(out, "<h{level}>{}</h{level}>", escape(caption));
    }
    if t.rows.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"empty\" id=\"{}\">{}</p>",
            escape(&t.id),
            escape(t.empty)
        );
        return;
    }
    let _ = write!(
        out,
        "<table class=\"sortable\" id=\"{}\"><thead><tr>",
        escape(&t.id)
    );
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_cannot_carry_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>\"&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{fffd}b");
    }

    #[test]
    fn the_policy_hashes_are_of_the_inline_style_and_script() {
        assert!(hash_source("").starts_with("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
    }
}
