//! JSON-RPC lines (`jsonrpc::parse_line`): the member-by-member parse must never panic,
//! and wherever parsing the whole line into a `Value` works, it must give exactly what
//! that parse gives with each result cut down to what the session reads
//! (`parse_line_whole`): the same messages, the same errors, duplicate members taken
//! as their last copy. Only the position in a not-JSON error's text may differ
//! (serde_json counts columns one apart when it skips a member rather than reading it).
//!
//! Where the whole parse refuses the line, the member-by-member parse may still read
//! it: members it skips are checked as JSON syntax only, so a number beyond f64 or bytes
//! that are not UTF-8 in them do not hide the message (JavaScript and Python peers read
//! such numbers as infinity, and decode such bytes with replacement characters).
//! Input: one line of bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::mcp::jsonrpc::{Message, ParseError, parse_line, parse_line_whole};

fn without_positions(parsed: Vec<Result<Message, ParseError>>) -> Vec<Result<Message, ParseError>> {
    parsed
        .into_iter()
        .map(|m| match m {
            Err(ParseError::NotJson(_)) => Err(ParseError::NotJson(String::new())),
            other => other,
        })
        .collect()
}

fuzz_target!(|line: &[u8]| {
    let fast = without_positions(parse_line(line));
    let whole = without_positions(parse_line_whole(line));
    if whole == [Err(ParseError::NotJson(String::new()))] {
        return;
    }
    assert_eq!(fast, whole);
});
