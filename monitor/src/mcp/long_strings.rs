//! Long strings kept as the peer's JSON text instead of decoded.
//!
//! serde_json decodes a string escape by escape, about 100 instructions each, and a
//! file written through a tool (`write_file`'s `content`: source code, a `\n` or `\"`
//! every few bytes) is mostly escapes; yet events show only the first
//! `--max-field-bytes` of a call's arguments, and nothing else reads them. So before a
//! line is parsed (`cut`), each value string whose text decodes to more than the
//! threshold and uses only the escapes serde_json writes back the same way
//! (`\" \\ \b \f \n \r \t`) is replaced in a copy of the line by a short marker
//! (U+F8FF and an index), and its text is kept aside. After the parse (`Cut::resolve`)
//! markers are decoded back everywhere except in a request's `params.arguments`,
//! whose texts travel with the request as `LongStrings`: the redaction walk decodes
//! one only when its text could hold a credential, and the event writer copies the
//! text as it came, which is exactly what serde_json would write for it.
//!
//! A marker can only be one of ours: a line that holds U+F8FF itself (as UTF-8 or as
//! a `\u` escape) is parsed as it is, and `LongStrings` is empty for anything not
//! parsed here. A string this leaves out of the cut (a key, `\u` or `\/` escapes, not
//! valid JSON text) is parsed by serde_json as before.
use serde_json::Value;

use super::jsonrpc::{Id, Message};

/// What starts a marker. A private-use character: no peer has a reason to send it,
/// and a line that does is not cut.
const MARK: char = '\u{F8FF}';

/// Strings that decode to more than this many bytes are cut out. Not less than the
/// longest string the redaction walk takes for a path (`redact::looks_like_path`), so
/// a cut string is never one.
pub const LONG: usize = 4096;

/// The texts (between the quotes, escapes as sent) of the long strings in one
/// request's `params.arguments`, by marker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LongStrings(Vec<(usize, Box<str>)>);

impl LongStrings {
    /// The text a marker string stands for; `None` for any other string.
    pub fn get(&self, s: &str) -> Option<&str> {
        if self.0.is_empty() {
            return None;
        }
        let i = marker_index(s)?;
        self.0.iter().find(|(j, _)| *j == i).map(|(_, t)| &**t)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `v`'s JSON text as serde_json writes it (compact), a marker written as its text
    /// as sent, which is what serde_json writes for the string it stands for.
    pub fn write_json(&self, w: &mut impl std::io::Write, v: &Value) -> std::io::Result<()> {
        if self.is_empty() {
            return serde_json::to_writer(w, v).map_err(Into::into);
        }
        match v {
            Value::String(s) => match self.get(s) {
                Some(text) => {
                    w.write_all(b"\"")?;
                    w.write_all(text.as_bytes())?;
                    w.write_all(b"\"")
                }
                None => serde_json::to_writer(w, s).map_err(Into::into),
            },
            Value::Array(items) => {
                w.write_all(b"[")?;
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        w.write_all(b",")?;
                    }
                    self.write_json(w, x)?;
                }
                w.write_all(b"]")
            }
            Value::Object(members) => {
                w.write_all(b"{")?;
                for (i, (k, x)) in members.iter().enumerate() {
                    if i > 0 {
                        w.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *w, k)?;
                    w.write_all(b":")?;
                    self.write_json(w, x)?;
                }
                w.write_all(b"}")
            }
            other => serde_json::to_writer(w, other).map_err(Into::into),
        }
    }

    /// `v` with every marker decoded back into its string (tests and the fuzzer compare
    /// with a parse that cut nothing).
    pub fn resolve(&self, v: &mut Value) {
        walk_strings(v, &mut |s| {
            if let Some(text) = self.get(s) {
                *s = decode(text);
            }
        });
    }
}

/// A line with its long strings cut out, ready to parse.
pub struct Cut {
    pub line: Vec<u8>,
    texts: Vec<Option<Box<str>>>,
}

/// `line` with each long value string (decoding to more than `long` bytes) replaced
/// by a marker; `None` when there is none, or when the line holds U+F8FF itself, or
/// when its strings do not end where a JSON string ends (left to serde_json to refuse).
pub fn cut(line: &[u8], long: usize) -> Option<Cut> {
    if line.len() <= long + 2 || contains_mark(line) {
        return None;
    }
    let mut out = Vec::new();
    let mut texts = Vec::new();
    let (mut at, mut copied) = (0, 0);
    while let Some(open) = memchr::memchr(b'"', &line[at..]) {
        let start = at + open + 1;
        let s = scan(&line[start..])?;
        if s.forged {
            return None;
        }
        let end = start + s.end;
        at = end + 1;
        let text = &line[start..end];
        if !s.plain || text.len() - s.escapes <= long || is_key(&line[at..]) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(text) else {
            continue;
        };
        if out.is_empty() {
            out.reserve(line.len() - text.len() + 16);
        }
        out.extend_from_slice(&line[copied..start]);
        push_marker(&mut out, texts.len());
        copied = end;
        texts.push(Some(text.into()));
    }
    if texts.is_empty() {
        return None;
    }
    out.extend_from_slice(&line[copied..]);
    Some(Cut { line: out, texts })
}

impl Cut {
    /// The messages parsed from the cut line, with every marker decoded back except in
    /// a request's `params.arguments` (whose texts move into its `long`).
    pub fn resolve(mut self, messages: &mut [Result<Message, super::jsonrpc::ParseError>]) {
        for m in messages.iter_mut().flatten() {
            match m {
                Message::Request {
                    id,
                    method,
                    params,
                    long,
                } => {
                    self.id(id);
                    self.string(method);
                    if let Value::Object(members) = params {
                        for (k, v) in members.iter_mut() {
                            if k == "arguments" {
                                walk_strings(v, &mut |s| {
                                    if let Some(i) = marker_index(s)
                                        && let Some(t) = self.take(i)
                                    {
                                        long.0.push((i, t));
                                    }
                                });
                            } else {
                                self.value(v);
                            }
                        }
                    } else {
                        self.value(params);
                    }
                }
                Message::Notification { method, params } => {
                    self.string(method);
                    self.value(params);
                }
                Message::Response { id, result } => {
                    self.id(id);
                    self.value(result);
                }
                Message::Error {
                    id, message, data, ..
                } => {
                    if let Some(id) = id {
                        self.id(id);
                    }
                    self.string(message);
                    self.value(data);
                }
            }
        }
    }

    fn take(&mut self, i: usize) -> Option<Box<str>> {
        self.texts.get_mut(i).and_then(Option::take)
    }

    fn string(&mut self, s: &mut String) {
        if let Some(t) = marker_index(s).and_then(|i| self.take(i)) {
            *s = decode(&t);
        }
    }

    fn value(&mut self, v: &mut Value) {
        walk_strings(v, &mut |s| self.string(s));
    }

    /// An id is kept as its JSON text: a marker's is the quoted marker, and the quoted
    /// text is what the peer sent (the escapes kept are written back the same way).
    fn id(&mut self, id: &mut Id) {
        let Some(inner) = id.0.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            return;
        };
        if let Some(t) = marker_index(inner).and_then(|i| self.take(i)) {
            id.0 = format!("\"{t}\"");
        }
    }
}

fn walk_strings(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|x| walk_strings(x, f)),
        Value::Object(members) => members.values_mut().for_each(|x| walk_strings(x, f)),
        _ => {}
    }
}

fn marker_index(s: &str) -> Option<usize> {
    let digits = s.strip_prefix(MARK)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn push_marker(out: &mut Vec<u8>, i: usize) {
    let mut buf = [0; 4];
    out.extend_from_slice(MARK.encode_utf8(&mut buf).as_bytes());
    out.extend_from_slice(i.to_string().as_bytes());
}

fn contains_mark(line: &[u8]) -> bool {
    let mut buf = [0; 4];
    memchr::memmem::find(line, MARK.encode_utf8(&mut buf).as_bytes()).is_some()
}

/// Whether what follows a string (after JSON whitespace) makes it an object's key.
fn is_key(rest: &[u8]) -> bool {
    rest.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b':')
}

/// The text of a cut string decoded (only the escapes `cut` keeps).
pub fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('\\');
    out.push_str(parts.next().unwrap_or(""));
    let mut escaped_backslash = false;
    for part in parts {
        if escaped_backslash {
            // The part after `\\`: the second backslash began this split.
            escaped_backslash = false;
            out.push_str(part);
            continue;
        }
        let mut chars = part.chars();
        match chars.next() {
            None => {
                out.push('\\');
                escaped_backslash = true;
                continue;
            }
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(c) => out.push(c),
        }
        out.push_str(chars.as_str());
    }
    out
}

/// What `scan` found in a string's text.
struct Scanned {
    /// Index of the closing quote.
    end: usize,
    /// Escapes in it (each two bytes of text, one decoded).
    escapes: usize,
    /// Only the escapes serde_json writes back the same way, and no control byte.
    plain: bool,
    /// A `\u` escape of U+F8FF: the line could forge a marker.
    forged: bool,
}

/// Reads a string's text from just after its opening quote; `None` if it does not end.
/// Sixteen bytes at a time: a bit for each quote, backslash and control byte.
fn scan(s: &[u8]) -> Option<Scanned> {
    let mut found = Scanned {
        end: 0,
        escapes: 0,
        plain: true,
        forged: false,
    };
    let mut base = 0;
    let mut mask = specials(s, 0);
    loop {
        if mask == 0 {
            base += 16;
            if base >= s.len() {
                return None;
            }
            mask = specials(s, base);
            continue;
        }
        let k = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let j = base + k;
        match s[j] {
            b'"' => {
                found.end = j;
                return Some(found);
            }
            b'\\' => {
                let e = *s.get(j + 1)?;
                match e {
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        found.plain = false;
                        found.forged |= s
                            .get(j + 2..j + 6)
                            .is_some_and(|h| h.eq_ignore_ascii_case(b"f8ff"));
                    }
                    _ => found.plain = false,
                }
                found.escapes += 1;
                // The escaped byte is text, whatever it is.
                if k + 1 < 16 {
                    mask &= !(1 << (k + 1));
                } else {
                    base += 16;
                    if base >= s.len() {
                        return None;
                    }
                    mask = specials(s, base) & !1;
                }
            }
            _ => found.plain = false,
        }
    }
}

/// Bit `i` set when `s[at + i]` is a quote, a backslash or a control byte.
fn specials(s: &[u8], at: usize) -> u32 {
    match s.get(at..at + 16) {
        Some(block) => block_specials(block.try_into().unwrap_or(&[0; 16])),
        None => s[at.min(s.len())..]
            .iter()
            .enumerate()
            .fold(0, |m, (i, &b)| m | ((is_special(b) as u32) << i)),
    }
}

fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// Three byte compares and a movemask (SSE2 is part of x86_64).
#[cfg(target_arch = "x86_64")]
fn block_specials(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // Safety: SSE2 is part of the x86_64 baseline, and the load reads the 16 bytes
    // `block` refers to (unaligned).
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned b <= 0x1f is max(b, 0x1f) == 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn block_specials(block: &[u8; 16]) -> u32 {
    block
        .iter()
        .enumerate()
        .fold(0, |m, (i, &b)| m | ((is_special(b) as u32) << i))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mcp::jsonrpc::{parse_line, parse_line_cutting};

    fn source(len: usize) -> String {
        let unit = r#"fn main() {\n    println!(\"hello, world\");\n}\n"#;
        let mut s = unit.repeat(len / unit.len() + 1);
        s.truncate(len);
        while s.ends_with('\\') {
            s.pop();
        }
        s
    }

    #[test]
    fn decode_reads_every_kept_escape() {
        assert_eq!(decode(r#"a\"b\\c\b\f\n\r\td\\"#), "a\"b\\c\u{8}\u{c}\n\r\td\\");
        assert_eq!(decode(r#"\\\\n\\"#), "\\\\n\\");
        assert_eq!(decode(""), "");
        for text in [r#"x\\"#, r#"\\x"#, r#"\n\\\"é"#, source(300).as_str()] {
            let parsed: String = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(decode(text), parsed, "{text}");
            // What serde_json writes for the decoded string is the text as it came.
            assert_eq!(serde_json::to_string(&parsed).unwrap(), format!("\"{text}\""));
        }
    }

    #[test]
    fn only_long_plain_value_strings_are_cut() {
        let content = source(5000);
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"/a","content":"{content}"}}}}}}"#
        );
        let shorter = cut(line.as_bytes(), LONG).expect("a 5000-byte content is cut");
        assert!(
            shorter.line.len() < 200,
            "{}",
            String::from_utf8_lossy(&shorter.line)
        );
        // Shorter than the threshold once decoded, a key, `\u` or `\/`: left in.
        for left in [
            source(4200),
            "x".repeat(5000) + r#"\u00e9"#,
            "x".repeat(5000) + r#"\/"#,
            "x".repeat(5000) + "\u{1}",
        ] {
            let line = format!(r#"{{"a":"{left}"}}"#);
            assert!(cut(line.as_bytes(), LONG).is_none(), "{left:.40}");
        }
        let key = format!(r#"{{"{}" : 1}}"#, "k".repeat(5000));
        assert!(cut(key.as_bytes(), LONG).is_none());
        // A line that could forge a marker is not cut at all.
        for forged in [
            format!(r#"{{"a":"{content}","b":"\uF8FF0"}}"#),
            format!("{{\"a\":\"{content}\",\"b\":\"\u{F8FF}0\"}}"),
        ] {
            assert!(cut(forged.as_bytes(), LONG).is_none());
        }
        // A string that does not end: left to serde_json.
        assert!(cut(format!(r#"{{"a":"{content}"#).as_bytes(), LONG).is_none());
    }

    #[test]
    fn a_cut_line_parses_to_the_same_messages() {
        let content = source(6000);
        let long_meta = "m".repeat(5000);
        let lines = [
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"/a","content":"{content}","list":["{content}",1]}},"_meta":{{"x":"{long_meta}"}}}}}}"#
            ),
            format!(
                r#"{{"jsonrpc":"2.0","id":"{long_meta}","result":{{"content":[{{"type":"text","text":"{content}"}}],"isError":true}}}}"#
            ),
            format!(
                r#"{{"jsonrpc":"2.0","id":"{long_meta}","error":{{"code":1,"message":"{content}","data":"{content}"}}}}"#
            ),
            format!(
                r#"[{{"jsonrpc":"2.0","method":"{long_meta}","params":{{"arguments":"{content}"}}}},{{"jsonrpc":"2.0","id":2,"method":"m","params":{{"arguments":{{"a":"{content}","a":"{long_meta}"}}}}}}]"#
            ),
        ];
        for line in &lines {
            assert!(
                cut(line.as_bytes(), LONG).is_some(),
                "something is cut in {line:.80}"
            );
            let whole = parse_line_cutting(line.as_bytes(), usize::MAX);
            let mut parsed = parse_line(line.as_bytes());
            for m in parsed.iter_mut().flatten() {
                if let Message::Request { params, long, .. } = m {
                    if let Some(args) = params.get_mut("arguments") {
                        long.resolve(args);
                    }
                    *long = LongStrings::default();
                }
            }
            // (Not assert_eq: a failure would print kilobytes.)
            assert!(parsed == whole, "{line:.80}");
        }
        // The texts stay with the request that holds them.
        let parsed = parse_line(lines[0].as_bytes());
        let Ok(Message::Request { params, long, .. }) = &parsed[0] else {
            panic!("{parsed:?}");
        };
        let marker = params["arguments"]["content"].as_str().unwrap();
        assert_eq!(long.get(marker), Some(content.as_str()));
        assert_eq!(long.get("content"), None);
        assert_eq!(params["_meta"], json!({"x": long_meta}));
    }
}
