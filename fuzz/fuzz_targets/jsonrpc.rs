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
//!
//! Long strings (`long_strings`, cut here from 8 decoded bytes up rather than 4 KiB, so
//! that short inputs reach the cut) must change nothing either: with a request's
//! `params.arguments` decoded back from its `long`, the messages are the same, and
//! the arguments written with their texts as sent are the JSON serde_json writes for
//! them decoded.
//! Input: one line of bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::mcp::jsonrpc::{Message, ParseError, parse_line, parse_line_cutting, parse_line_whole};

/// Short, so that fuzzed lines have strings long enough to cut.
const LONG: usize = 8;

/// `parsed` with each request's long strings decoded back into its arguments (after
/// checking that writing them as sent gives serde_json's text).
fn resolved(mut parsed: Vec<Result<Message, ParseError>>) -> Vec<Result<Message, ParseError>> {
    for m in parsed.iter_mut().flatten() {
        if let Message::Request { params, long, .. } = m
            && let Some(arguments) = params.get_mut("arguments")
        {
            let mut as_sent = Vec::new();
            long.write_json(&mut as_sent, arguments).expect("writes to a Vec");
            long.resolve(arguments);
            assert_eq!(String::from_utf8(as_sent).unwrap(), serde_json::to_string(arguments).unwrap());
            *long = Default::default();
        }
    }
    parsed
}

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
    let fast = without_positions(resolved(parse_line(line)));
    let cut = without_positions(resolved(parse_line_cutting(line, LONG)));
    assert_eq!(fast, cut);
    let whole = without_positions(parse_line_whole(line));
    if whole == [Err(ParseError::NotJson(String::new()))] {
        return;
    }
    assert_eq!(fast, whole);
});
