//! The access review's HTML page (`mcp-monitor report --format html`) rendered by a real
//! browser: Debian's `chromium`, headless (`cargo xtask test` installs it). The event
//! logs are the committed recordings of real sessions (monitor/tests/fixtures),
//! replayed by the daemon binary. Checked: the DOM after the page's script ran has the
//! servers, agents, tools and counts, and the picture its nodes; a header click sorts
//! (through the page's `#sort=` hook, which clicks it); the page loads nothing from
//! anywhere. A screenshot is kept under target/test-artefacts/.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use integration_tests::daemon_binary;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn artefacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let dir = target.join("test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn replay(dir: &Path, name: &str) -> PathBuf {
    let events = dir.join(format!("{name}.jsonl"));
    let out = Command::new(daemon_binary())
        .arg("replay")
        .arg(workspace().join(format!("monitor/tests/fixtures/{name}.mcprec")))
        .arg("--events")
        .arg(&events)
        .arg("--format")
        .arg("json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
}

/// Headless Chromium on `url` with `args`, in a fresh profile, with no network on its
/// own (no sync, updates or background fetches).
fn chromium(profile: &Path, url: &str, args: &[&str]) -> Output {
    let _ = std::fs::remove_dir_all(profile);
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs: `cargo xtask test` installs Debian's chromium (or apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The text of each cell of column `col` in table `id`, in the order the DOM has them.
fn column(dom: &str, id: &str, col: usize) -> Vec<String> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"));
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            let cell = row.split("<td>").nth(col + 1).unwrap();
            cell[..cell.find("</td>").unwrap()].to_string()
        })
        .collect()
}

/// The `data-label`s of the picture's nodes of one kind.
fn nodes(dom: &str, kind: &str) -> Vec<String> {
    let marker = format!("data-kind=\"{kind}\" data-label=\"");
    dom.match_indices(&marker)
        .map(|(i, _)| {
            let rest = &dom[i + marker.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

#[test]
fn the_html_review_renders_in_chromium_with_sortable_tables_and_the_picture() {
    let dir = std::env::temp_dir().join(format!("report-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let logs = [replay(&dir, "filesystem_ts"), replay(&dir, "python_stateless")];
    let page = dir.join("review.html");
    let out = Command::new(daemon_binary())
        .args(["report", "--format", "html", "--out"])
        .arg(&page)
        .arg("--events")
        .args(&logs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing to fetch: no URL, no src or href, no CSS import or url(); the page's
    // Content-Security-Policy allows no network either.
    let html = std::fs::read_to_string(&page).unwrap();
    for needle in ["http://", "https://", "src=", "href=", "url(", "@import", "//cdn"] {
        assert!(!html.contains(needle), "the page holds {needle:?}");
    }
    assert!(html.contains("default-src 'none'"));

    let url = format!("file://{}", page.display());
    let profile = dir.join("profile");
    let dom = String::from_utf8(chromium(&profile, &url, &["--dump-dom"]).stdout).unwrap();
    for text in [
        "<h2>Server filesystem</h2>",
        "<h2>Server unregistered</h2>",
        "<td>ts-replay</td><td>9.8.7</td><td>14739</td><td>0</td><td>/usr/bin/node</td>",
        "<td>py-replay</td><td>9.8.7</td><td>14740</td>",
        // agent, label, tool, calls, errors, violations
        "<td>read_text_file</td><td>2</td><td>1</td><td>0</td>",
        "<td>list_directory</td><td>1</td><td>0</td><td>0</td>",
        "<td>read_secret</td><td>1</td><td>0</td><td>1</td>",
        "<td>/etc/shadow</td><td>system_password</td><td>secrets[30] /etc/shadow</td>",
        "<td>unregistered_server</td><td>unregistered_servers</td><td>OWASP-ASI:ASI04, MAESTRO:L7, NIST-AI-RMF:GOVERN-1.6, NIST-AI-RMF:MANAGE-3.1</td><td>5</td>",
    ] {
        assert!(dom.contains(text), "the DOM lacks {text:?}");
    }
    assert_eq!(
        column(&dom, "calls", 0),
        ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]
    );

    assert_eq!(
        nodes(&dom, "agent"),
        ["a1 ts-replay 9.8.7 pid 14739", "a2 py-replay 9.8.7 pid 14740"]
    );
    assert_eq!(nodes(&dom, "server"), ["filesystem", "unregistered"]);
    assert_eq!(
        nodes(&dom, "tool"),
        [
            "list_directory (filesystem)",
            "read_text_file (filesystem)",
            "no_such_tool (filesystem)",
            "echo (unregistered)",
            "read_secret (unregistered)",
            "run (unregistered)",
            "fail (unregistered)",
        ]
    );
    assert_eq!(nodes(&dom, "secret"), ["/etc/shadow (system_password)"]);
    // agents -> servers, servers -> tools, read_secret -> /etc/shadow.
    assert_eq!(dom.matches("class=\"edge\"").count(), 2 + 7 + 1);

    // Sorting: the hook clicks the tool header of the calls table (twice: descending).
    let sorted =
        String::from_utf8(chromium(&profile, &format!("{url}#sort=calls:4:desc"), &["--dump-dom"]).stdout)
            .unwrap();
    assert!(
        sorted.contains("id=\"calls\" data-sorted=\"4:desc\"")
            || sorted.contains("data-sorted=\"4:desc\" id=\"calls\"")
    );
    let mut want = column(&dom, "calls", 4);
    want.sort();
    want.reverse();
    assert_eq!(column(&sorted, "calls", 4), want);
    assert_eq!(want[0], "run");
    let by_id = String::from_utf8(chromium(&profile, &format!("{url}#sort=calls:0"), &["--dump-dom"]).stdout)
        .unwrap();
    assert_eq!(
        column(&by_id, "calls", 0),
        ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]
    );
    assert!(by_id.contains("aria-sort=\"ascending\""));

    let shot = artefacts().join("report.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &profile,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000",
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    println!("screenshot: {}", shot.display());
    let _ = std::fs::remove_dir_all(&dir);
}
