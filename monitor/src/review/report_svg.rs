//! The picture of who reached what: four columns (agents, servers, tools, secrets)
//! with a line for each use, laid out here as inline SVG (no library, no network).
//! A line is red when a call along it was a violation. Labels are HTML-escaped by
//! the caller's escape function, since they come from events.

use std::{collections::BTreeMap, fmt::Write as _};

use super::access::Report;

/// Nodes drawn per column; the rest are one "+N more" node.
const MAX_NODES: usize = 40;
const COLUMNS: [(&str, &str); 4] = [
    ("agent", "Agents"),
    ("server", "Servers"),
    ("tool", "Tools"),
    ("secret", "Secrets"),
];
const COLUMN_X: [usize; 4] = [10, 345, 680, 1015];
const NODE_W: usize = 300;
const NODE_H: usize = 22;
const PITCH: usize = 30;
const TOP: usize = 40;
/// Characters of a label drawn (the whole label is in its tooltip).
const LABEL_CHARS: usize = 44;

#[derive(Default)]
pub struct Graph {
    /// Per column: (key, label), in order.
    pub columns: [Vec<(String, String)>; 4],
    /// (from column, from key, to key) -> (uses, any violation).
    pub edges: BTreeMap<(usize, String, String), (usize, bool)>,
}

impl Graph {
    pub fn of(r: &Report) -> Self {
        let mut g = Graph::default();
        for s in &r.servers {
            let server = format!("server:{}", s.name);
            g.node(1, &server, &s.name);
            for a in &s.agents {
                g.node(0, &a.id, &format!("{} {}", a.id, a.label));
                g.edge(0, &a.id, &server, a.calls, a.violations > 0);
            }
        }
        for c in &r.calls {
            let server = format!("server:{}", c.server);
            let tool = format!("tool:{}\u{0}{}", c.server, c.tool);
            let violation = c.decision.as_deref() == Some("violation");
            g.node(2, &tool, &format!("{} ({})", c.tool, c.server));
            g.edge(1, &server, &tool, 1, violation);
            for x in &c.secrets {
                let secret = format!("secret:{}", x.path);
                let label = match &x.class {
                    Some(class) => format!("{} ({class})", x.path),
                    None => x.path.clone(),
                };
                g.node(3, &secret, &label);
                g.edge(2, &tool, &secret, 1, violation);
            }
        }
        // Secrets read outside calls hang off their server's column: no tool to draw.
        for s in &r.servers {
            for x in s.secrets.iter().filter(|x| !x.outside_calls.is_empty()) {
                let secret = format!("secret:{}", x.path);
                g.node(3, &secret, &x.path);
            }
        }
        g
    }

    fn node(&mut self, column: usize, key: &str, label: &str) {
        let col = &mut self.columns[column];
        if !col.iter().any(|(k, _)| k == key) {
            col.push((key.to_string(), label.to_string()));
        }
    }

    fn edge(&mut self, column: usize, from: &str, to: &str, uses: usize, violation: bool) {
        let e = self
            .edges
            .entry((column, from.to_string(), to.to_string()))
            .or_default();
        e.0 += uses;
        e.1 |= violation;
    }

    /// Row of `key` in `column`, when it is drawn.
    fn row(&self, column: usize, key: &str) -> Option<usize> {
        self.columns[column]
            .iter()
            .take(MAX_NODES)
            .position(|(k, _)| k == key)
    }
}

fn cut(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    let mut s: String = label.chars().take(LABEL_CHARS - 1).collect();
    s.push('\u{2026}');
    s
}

/// The SVG element; `escape` makes text safe for HTML.
pub fn render(r: &Report, escape: fn(&str) -> String) -> String {
    let g = Graph::of(r);
    let rows = g
        .columns
        .iter()
        .map(|c| c.len().min(MAX_NODES + 1))
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height) = (COLUMN_X[3] + NODE_W + 10, TOP + rows * PITCH + 10);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="reach" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="who reached what">"#
    );
    for (i, (_, title)) in COLUMNS.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text class="column" x="{}" y="20" font-weight="bold">{title}</text>"#,
            COLUMN_X[i] + 4
        );
    }
    let y = |row: usize| TOP + row * PITCH + NODE_H / 2;
    for ((column, from, to), (uses, violation)) in &g.edges {
        let (Some(a), Some(b)) = (g.row(*column, from), g.row(column + 1, to)) else {
            continue;
        };
        let (x1, x2) = (COLUMN_X[*column] + NODE_W, COLUMN_X[column + 1]);
        let mid = (x1 + x2) / 2;
        let stroke = if *violation { "#c0392b" } else { "#7f8c8d" };
        let w = 1 + (usize::BITS - uses.leading_zeros()).min(6);
        let _ = write!(
            out,
            r#"<path class="edge" data-uses="{uses}" d="M{x1} {} C{mid} {} {mid} {} {x2} {}" fill="none" stroke="{stroke}" stroke-width="{w}" stroke-opacity="0.7"/>"#,
            y(a),
            y(a),
            y(b),
            y(b)
        );
    }
    for (column, nodes) in g.columns.iter().enumerate() {
        let kind = COLUMNS[column].0;
        for (row, (_, label)) in nodes.iter().take(MAX_NODES).enumerate() {
            node(&mut out, kind, column, row, label, escape);
        }
        if nodes.len() > MAX_NODES {
            let more = format!("+{} more (see the tables)", nodes.len() - MAX_NODES);
            node(&mut out, kind, column, MAX_NODES, &more, escape);
        }
    }
    out.push_str("</svg>");
    out
}

fn node(out: &mut String, kind: &str, column: usize, row: usize, label: &str, escape: fn(&str) -> String) {
    let (x, y) = (COLUMN_X[column], TOP + row * PITCH);
    let fill = ["#eaf2fb", "#eafaf1", "#fef9e7", "#fdedec"][column];
    let _ = write!(
        out,
        r##"<g class="node" data-kind="{kind}" data-label="{}"><title>{}</title><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="4" fill="{fill}" stroke="#555"/><text x="{}" y="{}" font-size="12">{}</text></g>"##,
        escape(label),
        escape(label),
        x + 6,
        y + 15,
        escape(&cut(label))
    );
}
