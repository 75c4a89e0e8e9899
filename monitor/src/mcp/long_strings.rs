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
const MARK: &str = "\u{F8FF}";

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
    if line.len() <= long.saturating_add(2) || memchr::memmem::find(line, MARK.as_bytes()).is_some() {
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
        let Some(inner) = id.text().strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            return;
        };
        if let Some(t) = marker_index(inner).and_then(|i| self.take(i))
            && let Some(whole) = Id::from_json(&format!("\"{t}\""))
        {
            *id = whole;
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
    out.extend_from_slice(MARK.as_bytes());
    out.extend_from_slice(i.to_string().as_bytes());
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
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let mut escaped = rest[i + 1..].chars();
        let Some(c) = escaped.next() else {
            // A lone backslash at the end: not one `cut` keeps.
            out.push('\\');
            return out;
        };
        out.push(match c {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            other => other,
        });
        rest = escaped.as_str();
    }
    out.push_str(rest);
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
/// Sixty-four bytes at a time: masks of quotes, backslashes and control bytes, and of
/// the bytes an odd run of backslashes escapes (what ends the string is the first quote
/// not escaped).
fn scan(s: &[u8]) -> Option<Scanned> {
    let mut found = Scanned {
        end: 0,
        escapes: 0,
        plain: true,
        forged: false,
    };
    // Whether the next chunk's first byte is escaped (an odd run ended this one).
    let mut carry = 0;
    let mut base = 0;
    let mut tail = [b' '; 64];
    while base < s.len() {
        let chunk: &[u8; 64] = match s.get(base..base + 64).map(<&[u8; 64]>::try_from) {
            Some(Ok(chunk)) => chunk,
            _ => {
                // The last bytes, padded with spaces (nothing special).
                let rest = &s[base..];
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            }
        };
        let m = masks(chunk);
        let escaped = escaped_by_backslashes(m.backslash, &mut carry);
        let quotes = m.quote & !escaped;
        // The bits before the closing quote (all of them if it is further on).
        let within = match quotes {
            0 => u64::MAX,
            q => (1 << q.trailing_zeros()) - 1,
        };
        if m.control & within != 0 {
            found.plain = false;
        }
        let mut e = escaped & within;
        found.escapes += e.count_ones() as usize;
        while e != 0 {
            let k = e.trailing_zeros() as usize;
            e &= e - 1;
            match chunk[k] {
                b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    found.plain = false;
                    found.forged |= s
                        .get(base + k + 1..base + k + 5)
                        .is_some_and(|h| h.eq_ignore_ascii_case(b"f8ff"));
                }
                _ => found.plain = false,
            }
        }
        if quotes != 0 {
            found.end = base + quotes.trailing_zeros() as usize;
            return Some(found);
        }
        base += 64;
    }
    None
}

/// The bytes escaped by a backslash, given the backslashes of a 64-byte chunk: the
/// byte after an odd-length run. `carry` comes in set when the previous chunk ended
/// in an odd run, and goes out the same way. Branch-free: a run's length is odd when
/// it starts on an even bit and ends on an even one, or odd and odd; adding the run
/// starts on odd bits to the backslashes carries each such run through to its end.
fn escaped_by_backslashes(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    // A backslash escaped by the previous chunk starts nothing.
    let backslash = backslash & !*carry;
    let follows_backslash = (backslash << 1) | *carry;
    let odd_starts = backslash & !EVEN & !follows_backslash;
    let (ends_on_even_starts, overflow) = odd_starts.overflowing_add(backslash);
    *carry = overflow as u64;
    (EVEN ^ (ends_on_even_starts << 1)) & follows_backslash
}

/// One bit per byte of a 64-byte chunk.
struct Masks {
    quote: u64,
    backslash: u64,
    control: u64,
}

#[inline(always)]
fn masks(chunk: &[u8; 64]) -> Masks {
    let mut m = Masks {
        quote: 0,
        backslash: 0,
        control: 0,
    };
    for (i, block) in chunk.chunks_exact(16).enumerate() {
        let (q, b, c) = block_masks(block);
        m.quote |= u64::from(q) << (16 * i);
        m.backslash |= u64::from(b) << (16 * i);
        m.control |= u64::from(c) << (16 * i);
    }
    m
}

/// Quotes, backslashes and control bytes of 16 bytes: three compares and movemasks
/// (SSE2 is part of x86_64).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_masks(block: &[u8]) -> (u16, u16, u16) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8,
    };
    assert!(block.len() >= 16);
    // Safety: SSE2 is part of the x86_64 baseline, and the load reads 16 bytes of
    // `block` (checked above), unaligned.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)));
        let backslash = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)));
        // Unsigned b <= 0x1f is max(b, 0x1f) == 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, low), low));
        (quote as u16, backslash as u16, control as u16)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn block_masks(block: &[u8]) -> (u16, u16, u16) {
    let bits = |f: fn(u8) -> bool| {
        block[..16]
            .iter()
            .enumerate()
            .fold(0u16, |m, (i, &b)| m | (u16::from(f(b)) << i))
    };
    (bits(|b| b == b'"'), bits(|b| b == b'\\'), bits(|b| b < 0x20))
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

    /// The branch-free escape masks against a byte-by-byte reading, over chunk
    /// boundaries, on runs of backslashes of every length.
    #[test]
    fn escaped_bytes_are_found_across_chunks() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let text: Vec<u8> = (0..300)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    [b'\\', b'\\', b'\\', b'a', b'n'][(state % 5) as usize]
                })
                .collect();
            let mut expected = vec![false; text.len() + 1];
            let mut i = 0;
            while i < text.len() {
                if text[i] == b'\\' {
                    expected[i + 1] = true;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            let mut carry = 0;
            for (c, chunk) in text.chunks(64).enumerate() {
                let backslash = chunk
                    .iter()
                    .enumerate()
                    .fold(0u64, |m, (i, &b)| m | (u64::from(b == b'\\') << i));
                let escaped = escaped_by_backslashes(backslash, &mut carry);
                for (i, _) in chunk.iter().enumerate() {
                    assert_eq!(
                        escaped >> i & 1 == 1,
                        expected[c * 64 + i],
                        "{}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
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
