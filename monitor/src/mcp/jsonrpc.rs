//! JSON-RPC 2.0 messages as MCP peers send them: one JSON value per line, an object
//! (or, from older peers, a batch array of objects).
use std::borrow::Cow;

use serde::{
    Deserialize, Deserializer,
    de::{Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor, value::SeqAccessDeserializer},
};
use serde_json::{Value, value::RawValue};

use super::long_strings::{self, LongStrings};

/// A request id, kept as its JSON text so `1` and `"1"` stay distinct (and written
/// into events as it is, without a copy or a check).
#[derive(Debug, Clone)]
pub struct Id(Box<RawValue>);

impl Id {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Number(_) | Value::String(_) => serde_json::value::to_raw_value(v).ok().map(Self),
            _ => None,
        }
    }

    /// An id from its JSON text (None when not JSON).
    pub fn from_json(text: &str) -> Option<Self> {
        RawValue::from_string(text.to_string()).ok().map(Self)
    }

    /// Its JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// Its JSON text, to be written as it is.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// The id as JSON (number or string) for events.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.text()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Eq for Id {}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.text().hash(h);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Id,
        method: String,
        params: Value,
        /// The long strings in `params.arguments`, kept as sent (see `long_strings`).
        long: LongStrings,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: Id,
        result: Value,
    },
    Error {
        id: Option<Id>,
        code: i64,
        message: String,
        data: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (includes bytes that are not UTF-8).
    NotJson(String),
    /// JSON, but not a JSON-RPC 2.0 message (e.g. a number, a `jsonrpc` other than "2.0").
    NotJsonRpc(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson(e) => write!(f, "not JSON: {e}"),
            Self::NotJsonRpc(why) => write!(f, "not JSON-RPC 2.0: {why}"),
        }
    }
}

/// Parses one line: an object gives one message, a batch array gives one per element
/// (each element's error on its own).
///
/// Only what a decision needs becomes a `Value`: the envelope's members are read into
/// their own slots, and a result keeps only the members the session reads
/// (`serverInfo`, `_meta`, `protocolVersion`, `isError`, and `content` when `isError`
/// is true); the rest of a result is checked as JSON and skipped. A member given twice
/// counts as its last copy, as `JSON.parse` and Python's `json` take it. Skipped
/// members are checked as JSON syntax only: a number beyond f64 or bytes that are not
/// UTF-8 there do not hide the message (peers read those as infinity and replacement
/// characters). The `jsonrpc` fuzz target holds this to `parse_line_whole`.
///
/// A line refused that way is read again with `params`, the result's members and the
/// error member by member (see `lenient_params`): a number beyond f64 or a lone
/// surrogate in a call's arguments (which JavaScript and Python servers read, and run
/// the call) must not hide the call from the monitor, nor one in a result its answer.
///
/// Strings that decode to more than `long_strings::LONG` bytes are not decoded (see
/// `long_strings`): in a request's `params.arguments` they stay markers whose text is
/// in the request's `long`.
pub fn parse_line(line: &[u8]) -> Vec<Result<Message, ParseError>> {
    parse_line_cutting(line, long_strings::LONG)
}

/// `parse_line` with strings longer than `long` bytes decoded cut out (the fuzzer
/// takes short ones, to reach the cut at all; `usize::MAX` cuts nothing).
#[doc(hidden)]
pub fn parse_line_cutting(line: &[u8], long: usize) -> Vec<Result<Message, ParseError>> {
    if let Some(cut) = long_strings::cut(line, long)
        // Anything the cut line does not parse to is read from the line as it came,
        // for the same error and the same lenient read.
        && let Ok(parsed) = parse_as::<false>(&cut.line)
    {
        let mut messages = messages(parsed);
        cut.resolve(&mut messages);
        return messages;
    }
    let parsed = parse_as::<false>(line).or_else(|e| parse_as::<true>(line).map_err(|_| e));
    match parsed {
        Err(e) => vec![Err(ParseError::NotJson(e.to_string()))],
        Ok(line) => messages(line),
    }
}

fn messages(line: Line) -> Vec<Result<Message, ParseError>> {
    match line {
        Line::One(m) => vec![m],
        Line::Batch(items) if !items.is_empty() => items,
        Line::Batch(_) | Line::NotObject => vec![Err(ParseError::NotJsonRpc("not an object"))],
    }
}

fn parse_as<const LENIENT: bool>(line: &[u8]) -> serde_json::Result<Line> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let line = de.deserialize_any(LineVisitor::<LENIENT> { batch: true })?;
    de.end()?;
    Ok(line)
}

/// What a member (of `params`, a result, an error) that a `Value` cannot hold is read
/// as.
pub const UNREADABLE: &str = "[unreadable: a number beyond f64 or a lone surrogate]";

/// JSON text as a `Value`, or `UNREADABLE` when a `Value` cannot hold it.
fn lenient_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(UNREADABLE.into()))
}

/// `params` (or an error object) a `Value` cannot hold as a whole: each member read on
/// its own by `lenient_value` (so the call is still seen, and judged by its name).
/// Members given twice count as their last copy.
fn lenient_params(raw: &RawValue) -> Value {
    match serde_json::from_str::<std::collections::BTreeMap<String, &RawValue>>(raw.get()) {
        Ok(members) => Value::Object(members.into_iter().map(|(k, v)| (k, lenient_value(v))).collect()),
        Err(_) => lenient_value(raw),
    }
}

/// What `parse_line` gives, the slow way: the whole line as a `Value`, then each
/// result cut down to the members the session reads. The fuzzer and the tests hold
/// `parse_line` to it.
#[doc(hidden)]
pub fn parse_line_whole(line: &[u8]) -> Vec<Result<Message, ParseError>> {
    let trimmed = |m: Result<Message, ParseError>| match m {
        Ok(Message::Response { id, result }) => Ok(Message::Response {
            id,
            result: trim_result(result),
        }),
        other => other,
    };
    match serde_json::from_slice::<Value>(line) {
        Err(e) => vec![Err(ParseError::NotJson(e.to_string()))],
        Ok(Value::Array(items)) if !items.is_empty() => {
            items.into_iter().map(parse_value).map(trimmed).collect()
        }
        Ok(v) => vec![trimmed(parse_value(v))],
    }
}

/// A result object with only the members the session reads, in the order given.
fn trim_result(result: Value) -> Value {
    let Value::Object(mut all) = result else {
        return result;
    };
    let is_error = all.get("isError").and_then(Value::as_bool) == Some(true);
    let content = all.remove("content");
    all.retain(|k, _| RESULT_MEMBERS.contains(&k.as_str()));
    if let (true, Some(content)) = (is_error, content) {
        all.insert("content".into(), content);
    }
    Value::Object(all)
}

/// A message as a JSON value (tests, and peers already parsed).
pub fn parse_value(v: Value) -> Result<Message, ParseError> {
    let Value::Object(mut obj) = v else {
        return Err(ParseError::NotJsonRpc("not an object"));
    };
    message(Envelope {
        jsonrpc: obj.remove("jsonrpc"),
        id: obj.remove("id"),
        method: obj.remove("method"),
        params: obj.remove("params"),
        result: obj.remove("result"),
        error: obj.remove("error"),
    })
}

/// The members of a JSON-RPC object, each as its last copy in the text.
#[derive(Default)]
struct Envelope {
    jsonrpc: Option<Value>,
    id: Option<Value>,
    method: Option<Value>,
    params: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
}

fn message(e: Envelope) -> Result<Message, ParseError> {
    if e.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return Err(ParseError::NotJsonRpc("missing \"jsonrpc\": \"2.0\""));
    }
    let id = e.id.as_ref();
    if let Some(method) = e.method {
        let Value::String(method) = method else {
            return Err(ParseError::NotJsonRpc("method is not a string"));
        };
        let params = e.params.unwrap_or(Value::Null);
        return match id {
            None => Ok(Message::Notification { method, params }),
            Some(id) => {
                let id = Id::from_value(id)
                    .ok_or(ParseError::NotJsonRpc("request id is not a number or string"))?;
                Ok(Message::Request {
                    id,
                    method,
                    params,
                    long: LongStrings::default(),
                })
            }
        };
    }
    if let Some(error) = e.error {
        let id = id.and_then(Id::from_value);
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let data = error.get("data").cloned().unwrap_or(Value::Null);
        return Ok(Message::Error {
            id,
            code,
            message,
            data,
        });
    }
    if let Some(result) = e.result {
        let id = id
            .and_then(Id::from_value)
            .ok_or(ParseError::NotJsonRpc("response id is not a number or string"))?;
        return Ok(Message::Response { id, result });
    }
    Err(ParseError::NotJsonRpc(
        "neither a request, a notification nor a response",
    ))
}

/// A line: one object, a batch, or some other JSON value.
enum Line {
    One(Result<Message, ParseError>),
    Batch(Vec<Result<Message, ParseError>>),
    NotObject,
}

/// A batch element: an object is a message; anything else is an error of its own.
struct Item<const LENIENT: bool>(Result<Message, ParseError>);

impl<'de, const LENIENT: bool> Deserialize<'de> for Item<LENIENT> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Item(
            match d.deserialize_any(LineVisitor::<LENIENT> { batch: false })? {
                Line::One(m) => m,
                _ => Err(ParseError::NotJsonRpc("not an object")),
            },
        ))
    }
}

/// Reads a line's value; `batch`: an array is a batch (only at the top: a nested array
/// is just not an object). `LENIENT`: `params` and the error read by `lenient_params`,
/// the result's kept members by `lenient_value`.
struct LineVisitor<const LENIENT: bool> {
    batch: bool,
}

impl<'de, const LENIENT: bool> Visitor<'de> for LineVisitor<LENIENT> {
    type Value = Line;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line, A::Error> {
        let mut e = Envelope::default();
        while let Some(key) = map.next_key::<Member>()? {
            match key {
                Member::Jsonrpc => e.jsonrpc = Some(map.next_value()?),
                Member::Id => e.id = Some(map.next_value()?),
                Member::Method => e.method = Some(map.next_value()?),
                Member::Params if LENIENT => e.params = Some(lenient_params(map.next_value()?)),
                Member::Params => e.params = Some(map.next_value()?),
                Member::Result => e.result = Some(map.next_value::<ResultView<LENIENT>>()?.0),
                Member::Error if LENIENT => e.error = Some(lenient_params(map.next_value()?)),
                Member::Error => e.error = Some(map.next_value()?),
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Line::One(message(e)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Line, A::Error> {
        let mut items = Vec::new();
        while let Some(Item(m)) = seq.next_element::<Item<LENIENT>>()? {
            items.push(m);
        }
        Ok(if self.batch {
            Line::Batch(items)
        } else {
            Line::NotObject
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<Line, E> {
        Ok(Line::NotObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Line, E> {
        Ok(Line::NotObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Line, E> {
        Ok(Line::NotObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Line, E> {
        Ok(Line::NotObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Line, E> {
        Ok(Line::NotObject)
    }

    fn visit_unit<E>(self) -> Result<Line, E> {
        Ok(Line::NotObject)
    }
}

/// A member name of the envelope (any other is skipped).
enum Member {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Member, E> {
        Ok(match name {
            "jsonrpc" => Member::Jsonrpc,
            "id" => Member::Id,
            "method" => Member::Method,
            "params" => Member::Params,
            "result" => Member::Result,
            "error" => Member::Error,
            _ => Member::Other,
        })
    }
}

/// A result as the session reads it: an object keeps the members named below (the
/// others are checked and skipped); anything else is kept whole. `LENIENT`: a kept
/// member a `Value` cannot hold is `UNREADABLE`.
struct ResultView<const LENIENT: bool>(Value);

/// Result members the session reads (`content` only when `isError` is true).
const RESULT_MEMBERS: [&str; 4] = ["serverInfo", "_meta", "protocolVersion", "isError"];

impl<'de, const LENIENT: bool> Deserialize<'de> for ResultView<LENIENT> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ResultVisitor::<LENIENT>)
    }
}

struct ResultVisitor<const LENIENT: bool>;

impl<'de, const LENIENT: bool> Visitor<'de> for ResultVisitor<LENIENT> {
    type Value = ResultView<LENIENT>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ResultView<LENIENT>, A::Error> {
        let mut kept = serde_json::Map::new();
        let mut content: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "content" {
                content = Some(map.next_value()?);
            } else if RESULT_MEMBERS.contains(&key.as_ref()) {
                let value = if LENIENT {
                    lenient_value(map.next_value()?)
                } else {
                    map.next_value()?
                };
                kept.insert(key.into_owned(), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if kept.get("isError").and_then(Value::as_bool) == Some(true)
            && let Some(raw) = content
        {
            let content = match serde_json::from_str(raw.get()) {
                Ok(content) => content,
                Err(_) if LENIENT => Value::String(UNREADABLE.into()),
                Err(e) => return Err(A::Error::custom(e)),
            };
            kept.insert("content".into(), content);
        }
        Ok(ResultView(Value::Object(kept)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ResultView<LENIENT>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(ResultView)
    }

    fn visit_bool<E>(self, v: bool) -> Result<ResultView<LENIENT>, E> {
        Ok(ResultView(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<ResultView<LENIENT>, E> {
        Ok(ResultView(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<ResultView<LENIENT>, E> {
        Ok(ResultView(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<ResultView<LENIENT>, E> {
        Ok(ResultView(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<ResultView<LENIENT>, E> {
        Ok(ResultView(Value::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<ResultView<LENIENT>, E> {
        Ok(ResultView(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Message, ParseError> {
        let mut v = parse_line(line.as_bytes());
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    /// A number beyond f64 or a lone surrogate in params (JavaScript and Python servers
    /// read both, and run the call) made the whole line "not JSON": a call the monitor
    /// never saw (and, in a result or an error, an answer it never saw). Such a member
    /// is now read as `UNREADABLE`, the rest as before.
    #[test]
    fn what_a_value_cannot_hold_does_not_hide_a_call_or_its_answer() {
        for (line, params) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"n":1e400,"p":"/x"}}}"#,
                serde_json::json!({"name":"rm","arguments":UNREADABLE}),
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"a":"\ud800"},"name":"rm","arguments":{}}}"#,
                serde_json::json!({"name":"rm","arguments":{},"_meta":UNREADABLE}),
            ),
        ] {
            assert!(
                matches!(
                    parse_line_whole(line.as_bytes())[..],
                    [Err(ParseError::NotJson(_))]
                ),
                "a Value of the whole line cannot be read: {line}"
            );
            let Ok(Message::Request {
                method, params: got, ..
            }) = one(line)
            else {
                panic!("not read as a request: {line}");
            };
            assert_eq!((method.as_str(), got), ("tools/call", params));
        }
        // The answers: a result's members, an error's.
        let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}],"_meta":{"t":1e400},"isError":false}}"#;
        assert_eq!(
            one(ok).unwrap(),
            Message::Response {
                id: Id::from_json("1").unwrap(),
                result: serde_json::json!({"_meta":UNREADABLE,"isError":false})
            }
        );
        let err = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"no","data":[1e400]}}"#;
        assert!(matches!(one(err), Ok(Message::Error { code: -32000, ref message, .. }) if message == "no"));
        // In a batch too; and what is not JSON stays not JSON.
        let batch =
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":[1e999]}}]"#;
        assert!(matches!(
            parse_line(batch.as_bytes())[..],
            [Ok(Message::Request { .. })]
        ));
        assert!(matches!(
            one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":[1e999}}"#),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn parses_the_four_kinds() {
        let r = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#).unwrap();
        assert_eq!(
            r,
            Message::Request {
                id: Id::from_json("1").unwrap(),
                method: "tools/call".into(),
                params: serde_json::json!({"name":"x"}),
                long: LongStrings::default(),
            }
        );
        let n = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(
            matches!(n, Message::Notification { ref method, params: Value::Null } if method == "notifications/initialized")
        );
        let ok = one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(
            ok,
            Message::Response {
                id: Id::from_json("\"a\"").unwrap(),
                result: serde_json::json!({})
            }
        );
        let err =
            one(r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found"}}"#).unwrap();
        assert!(matches!(err, Message::Error { id: Some(ref i), code: -32601, .. } if i.text() == "7"));
    }

    #[test]
    fn number_and_string_ids_stay_distinct() {
        let a = one(r#"{"jsonrpc":"2.0","id":1,"result":null}"#).unwrap();
        let b = one(r#"{"jsonrpc":"2.0","id":"1","result":null}"#).unwrap();
        assert_ne!(a, b);
        assert_eq!(Id::from_json("\"1\"").unwrap().to_value(), serde_json::json!("1"));
        assert_eq!(Id::from_json("1").unwrap().to_value(), serde_json::json!(1));
    }

    #[test]
    fn invalid_input_is_an_error_not_a_panic() {
        assert!(matches!(one("not json"), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse_line(&[0xff, 0xfe])[0],
            Err(ParseError::NotJson(_))
        ));
        assert_eq!(one("42"), Err(ParseError::NotJsonRpc("not an object")));
        assert_eq!(one(r#""str""#), Err(ParseError::NotJsonRpc("not an object")));
        assert!(
            one(r#"{"id":1,"method":"x"}"#).is_err(),
            "jsonrpc member required"
        );
        assert!(one(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).is_err());
        assert!(one(r#"{"jsonrpc":"2.0","id":{"o":1},"method":"x"}"#).is_err());
        assert!(one(r#"{"jsonrpc":"2.0","id":1,"method":5}"#).is_err());
        assert!(one(r#"{"jsonrpc":"2.0","id":1}"#).is_err());
        assert!(one("[]").is_err());
    }

    #[test]
    fn batch_gives_one_result_per_element() {
        let v = parse_line(br#"[{"jsonrpc":"2.0","id":1,"method":"a"},3,{"jsonrpc":"2.0","method":"b"}]"#);
        assert_eq!(v.len(), 3);
        assert!(v[0].is_ok() && v[1].is_err() && v[2].is_ok());
    }

    /// The member-by-member parse gives what parsing the whole line and cutting the
    /// results down gives, on lines that probe its edges.
    #[test]
    fn parse_line_is_the_whole_parse_cut_down() {
        let lines: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,{"b":null}]}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}],"structuredContent":{"x":1}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"bad"}],"isError":true}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"content":"not a list","isError":false}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":false,"content":[],"isError":true,"content":[{"text":"last"}]}}"#,
            br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","serverInfo":{"name":"s","version":"1"},"capabilities":{"tools":{}},"_meta":{"k":[1]}}}"#,
            br#"{"jsonrpc":"2.0","id":2,"result":[1,"two",{"three":3}]}"#,
            br#"{"jsonrpc":"2.0","id":2,"result":"text"}"#,
            br#"{"jsonrpc":"2.0","id":2,"result":null}"#,
            br#"{"jsonrpc":"2.0","id":2,"result":-1.5e3}"#,
            br#"{"id":3,"jsonrpc":"1.0","jsonrpc":"2.0","method":"a","method":"b","id":"4"}"#,
            br#"{"jsonrpc":"2.0","\u0069d":5,"m\u0065thod":"tools/list","x":{"deep":[[[]]]}}"#,
            br#"{"jsonrpc":"2.0","id":6,"error":{"code":-32000,"message":"m","data":{"d":1}},"result":{}}"#,
            br#"  [{"jsonrpc":"2.0","id":1,"method":"a"}, 3, [1], "s", null, {"jsonrpc":"2.0","id":1,"result":{"isError":true}}]  "#,
            br#"[[{"jsonrpc":"2.0","id":1,"method":"a"}]]"#,
            br#"[]"#,
            br#"{}"#,
            br#"true"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}} trailing"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[1,}]}}"#,
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":\"\xff\"}}",
            br#"{"jsonrpc":"2.0","id":{"o":1},"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
        ];
        for line in lines {
            assert_eq!(
                parse_line(line),
                parse_line_whole(line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn error_without_id_is_kept() {
        let e =
            one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#).unwrap();
        assert!(matches!(
            e,
            Message::Error {
                id: None,
                code: -32700,
                ..
            }
        ));
    }
}
