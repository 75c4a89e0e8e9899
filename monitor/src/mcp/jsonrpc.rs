//! JSON-RPC 2.0 messages as MCP peers send them: one JSON value per line, an object
//! (or, from older peers, a batch array of objects).
use serde_json::Value;

/// A request id, kept as its JSON text so `1` and `"1"` stay distinct.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(pub String);

impl Id {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Number(_) | Value::String(_) => Some(Self(v.to_string())),
            _ => None,
        }
    }

    /// The id as JSON (number or string) for events.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Id,
        method: String,
        params: Value,
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
pub fn parse_line(line: &[u8]) -> Vec<Result<Message, ParseError>> {
    match serde_json::from_slice::<Value>(line) {
        Err(e) => vec![Err(ParseError::NotJson(e.to_string()))],
        Ok(Value::Array(items)) if !items.is_empty() => items.into_iter().map(parse_value).collect(),
        Ok(v) => vec![parse_value(v)],
    }
}

pub fn parse_value(v: Value) -> Result<Message, ParseError> {
    let Value::Object(mut obj) = v else {
        return Err(ParseError::NotJsonRpc("not an object"));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(ParseError::NotJsonRpc("missing \"jsonrpc\": \"2.0\""));
    }
    let id = obj.remove("id");
    let id = id.as_ref();
    if let Some(method) = obj.get("method") {
        let method = method
            .as_str()
            .ok_or(ParseError::NotJsonRpc("method is not a string"))?
            .to_string();
        let params = obj.remove("params").unwrap_or(Value::Null);
        return match id {
            None => Ok(Message::Notification { method, params }),
            Some(id) => {
                let id = Id::from_value(id)
                    .ok_or(ParseError::NotJsonRpc("request id is not a number or string"))?;
                Ok(Message::Request { id, method, params })
            }
        };
    }
    if let Some(error) = obj.remove("error") {
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
    if let Some(result) = obj.remove("result") {
        let id = id
            .and_then(Id::from_value)
            .ok_or(ParseError::NotJsonRpc("response id is not a number or string"))?;
        return Ok(Message::Response { id, result });
    }
    Err(ParseError::NotJsonRpc(
        "neither a request, a notification nor a response",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Message, ParseError> {
        let mut v = parse_line(line.as_bytes());
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn parses_the_four_kinds() {
        let r = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#).unwrap();
        assert_eq!(
            r,
            Message::Request {
                id: Id("1".into()),
                method: "tools/call".into(),
                params: serde_json::json!({"name":"x"})
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
                id: Id("\"a\"".into()),
                result: serde_json::json!({})
            }
        );
        let err =
            one(r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found"}}"#).unwrap();
        assert!(matches!(err, Message::Error { id: Some(Id(ref i)), code: -32601, .. } if i == "7"));
    }

    #[test]
    fn number_and_string_ids_stay_distinct() {
        let a = one(r#"{"jsonrpc":"2.0","id":1,"result":null}"#).unwrap();
        let b = one(r#"{"jsonrpc":"2.0","id":"1","result":null}"#).unwrap();
        assert_ne!(a, b);
        assert_eq!(Id("\"1\"".into()).to_value(), serde_json::json!("1"));
        assert_eq!(Id("1".into()).to_value(), serde_json::json!(1));
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
