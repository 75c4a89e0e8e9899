//! The daemon's Prometheus endpoint, read without an HTTP or Prometheus crate: a tiny
//! HTTP/1.0 GET over loopback, the text exposition format, and the sums the tests and
//! benches compare.
use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::Daemon;

/// `GET path` on `addr`: the status code and the body. HTTP/1.0, so that the server
/// closes the connection and never answers in chunks.
pub fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let sock: SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    // One write: the daemon's endpoint answers what its first read() got.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path} from {addr}"))?;
    let text = String::from_utf8(raw).context("answer is not UTF-8")?;
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("GET {path} from {addr}: no end of headers in {text:?}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {path} from {addr}: no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// Percent-encoding for a query-string value (RFC 3986 unreserved characters kept).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One sample line of the text exposition format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of an exposition (comments skipped). Label values are unescaped.
pub fn parse_exposition(text: &str) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = parse_line(line).with_context(|| format!("exposition line {}: {line}", n + 1))?;
        out.push(parsed);
    }
    Ok(out)
}

fn parse_line(line: &str) -> anyhow::Result<Sample> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            r = r.trim_start_matches(',');
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = r.split_once("=\"").context("label without =\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => bail!("dangling escape"),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => bail!("label {key}: no closing quote"),
                }
            };
            labels.insert(key.to_string(), value);
            r = &after[end + 1..];
        }
    }
    let value = rest
        .split_whitespace()
        .next()
        .context("no value")?
        .parse::<f64>()
        .context("value is not a number")?;
    Ok(Sample { name, labels, value })
}

/// The samples of the daemon's `GET /metrics`.
pub fn scrape(d: &Daemon) -> anyhow::Result<Vec<Sample>> {
    let addr = d.ready["metrics_addr"]
        .as_str()
        .context("ready event without metrics_addr")?;
    let (status, body) = http_get(addr, "/metrics")?;
    if status != 200 {
        bail!("GET /metrics from {addr}: status {status}");
    }
    parse_exposition(&body)
}

/// The samples named `name` whose labels pass `labels`, summed (0 when there are none).
pub fn sum(samples: &[Sample], name: &str, labels: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels(s))
        .map(|s| s.value)
        .sum()
}

/// `sum` over a scrape of the daemon now.
pub fn metric(d: &Daemon, name: &str, labels: impl Fn(&Sample) -> bool) -> f64 {
    sum(&scrape(d).unwrap_or_else(|e| panic!("{e:#}")), name, labels)
}

/// Waits up to `timeout` until `metric(d, name, labels)` passes `ok`, and returns it: the
/// daemon counts as it goes, so a scrape may come between an event and its count.
pub fn wait_metric(
    d: &Daemon,
    timeout: Duration,
    name: &str,
    labels: impl Fn(&Sample) -> bool,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let got = metric(d, name, &labels);
        if ok(got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {got}\nstderr: {}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines_parse_with_escapes() {
        let s = parse_exposition(
            "# HELP x y\nx_total{a=\"1\",b=\"q\\\"uo\\\\te\"} 3\nup 1\nh_bucket{le=\"+Inf\",} 2\n",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "x_total");
        assert_eq!(s[0].labels["b"], "q\"uo\\te");
        assert_eq!(s[0].value, 3.0);
        assert!(s[1].labels.is_empty());
        assert_eq!(s[2].labels["le"], "+Inf");
        assert_eq!(urlencode("up{job=\"a b\"}"), "up%7Bjob%3D%22a%20b%22%7D");
    }
}
