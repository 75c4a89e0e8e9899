//! Redaction: what an agent typed into a tool call leaves the host in events, so
//! credentials in it are replaced before anything is written.
//!
//! - A value whose key looks like a credential (`password`, `api_key`, `Authorization`,
//!   `client_secret`, `session_token`, ... in any case and spelling, nested anywhere)
//!   becomes `"[redacted]"`.
//! - Inside any string, whatever its key: JWTs, GitHub, Slack, AWS, `sk-` and Stripe
//!   keys, PEM private keys, `Bearer` tokens and the password of a URL become
//!   `[redacted:KIND]`, and so does the value of `KEY=VALUE`, `KEY: VALUE` and
//!   `--KEY VALUE` text whose key looks like a credential (an `.env` file's content,
//!   `--password=...`, a command line).
//! - Next to a path that one of the policy's `secrets` globs matches, every other
//!   string of the same object (the content written to a secret file) becomes
//!   `[redacted:secret_file]`.
//!
//! Everything else is left exactly as it was.
use std::{borrow::Cow, sync::LazyLock};

use regex::{Captures, Regex};
use serde_json::Value;

use crate::mcp::long_strings::{self, LongStrings};

/// What a value under a credential key becomes.
pub const REDACTED: &str = "[redacted]";

/// Credentials recognised by their shape, wherever they are. Named groups give the kind;
/// `scheme` and `url_user` are kept in front of what they introduce.
static TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<private_key>-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\z))",
        r"|(?P<jwt>\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)",
        r"|(?P<github_token>\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}))",
        r"|(?P<slack_token>\bxox[abposr]-[A-Za-z0-9-]{10,})",
        r"|(?P<aws_access_key>\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)",
        r"|(?P<api_key>\b(?:sk-[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}))",
        r"|(?P<scheme>\b(?i:bearer)\s+)(?P<bearer>[A-Za-z0-9._~+/-]{16,}=*)",
        r"|(?P<url_user>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<url_password>[^/\s@]+)@",
    ))
    .expect("the token patterns compile")
});

/// Text without any of these cannot match [`TOKENS`]: most strings are let through
/// at the speed of a literal search (case-sensitive, so that it is one).
static TOKEN_HINTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN|eyJ|gh[pousr]_|github_pat_|xox|AKIA|ASIA|sk-|[sr]k_|[Bb]earer|BEARER|://")
        .expect("the token hints compile")
});

/// The same for [`ASSIGNMENT`]: the words a credential's name has, in lower, title or
/// upper case (`password`, `userPassword`, `DB_PASSWORD`). Keys of JSON objects do not
/// depend on this. `private`, `credential` and `authorization` without their first
/// letter (which still finds them in all three cases): the search looks at a literal's
/// first three bytes first, and `pri`, `cre` and `aut` begin words on every line of
/// code (`print`, `create`, `auto`), each a false start to check.
static KEY_HINTS: LazyLock<Regex> = LazyLock::new(|| {
    let words = [
        "pass",
        "secret",
        "token",
        "api",
        "access",
        "rivate",
        "uthorization",
        "cookie",
        "redential",
    ];
    let mut alternatives = Vec::new();
    for w in words {
        let mut title = w.to_string();
        title[..1].make_ascii_uppercase();
        alternatives.extend([w.to_string(), title, w.to_ascii_uppercase()]);
    }
    Regex::new(&alternatives.join("|")).expect("the key hints compile")
});

/// `KEY=VALUE`, `KEY: VALUE`, `"KEY": "VALUE"` where KEY may be a credential's name
/// (checked by [`is_credential_key`]; the value may start with an auth scheme), and
/// `--KEY VALUE` (an option of a command line given as text).
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<key>[A-Za-z0-9_.-]*(?i:pass|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|authorization|cookie|credential)[A-Za-z0-9_.-]*)",
        r#"(?P<sep>["']?[ \t]*[:=][ \t]*)"#,
        r#"(?P<value>(?:(?i:bearer|basic|digest|token|negotiate)[ \t]+)?(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"',;&]+))"#,
        r"|(?P<option>(?:(?m:^)|[ \t])--?[A-Za-z0-9_.-]*(?i:pass|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|authorization|cookie|credential)[A-Za-z0-9_.-]*)",
        r#"(?P<gap>[ \t]+)(?P<option_value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'-][^\s"']*)"#,
    ))
    .expect("the assignment pattern compiles")
});

/// Words that make a key a credential's name.
const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "passwords",
    "passwd",
    "pwd",
    "passphrase",
    "passcode",
    "secret",
    "secrets",
    "token",
    "tokens",
    "cookie",
    "cookies",
    "authorization",
    "credential",
    "credentials",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "signingkey",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "sessiontoken",
    "bearertoken",
    "clientsecret",
];

/// `WORD key` pairs that name a key that is a credential (`api_key`, `privateKey`).
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "signing",
    "encryption",
    "master",
];

/// Words that make a credential-sounding key a count or a setting (`max_tokens`).
const COUNT_WORDS: &[&str] = &[
    "max", "min", "num", "number", "total", "count", "limit", "budget", "usage", "used", "length", "len",
    "size", "estimate",
];

/// Last words that make a credential-sounding key about a credential rather than one
/// (`password_file`, `token_url`, `secret_name`).
const ABOUT_WORDS: &[&str] = &[
    "name",
    "names",
    "id",
    "ids",
    "path",
    "paths",
    "file",
    "files",
    "dir",
    "arn",
    "ref",
    "type",
    "kind",
    "url",
    "uri",
    "endpoint",
    "expiry",
    "expires",
    "expiration",
    "ttl",
    "hint",
    "format",
    "policy",
    "prompt",
    "required",
];

/// The words of a key: split at anything not alphanumeric and at lower-to-upper case
/// changes (`userPassword`, `X-Api-Key`, `AWS_SECRET_ACCESS_KEY`), lower-cased.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether a JSON key (or the name in `NAME=VALUE`) names a credential.
pub fn is_credential_key(key: &str) -> bool {
    let w = words(key);
    let named = w.iter().any(|x| CREDENTIAL_WORDS.contains(&x.as_str()))
        || w.windows(2)
            .any(|p| p[1] == "key" && KEY_QUALIFIERS.contains(&p[0].as_str()));
    if !named || w.iter().any(|x| COUNT_WORDS.contains(&x.as_str())) {
        return false;
    }
    !w.last().is_some_and(|l| ABOUT_WORDS.contains(&l.as_str()))
}

/// Credentials in free text (an argument's string, an error message, a command line)
/// replaced by `[redacted:KIND]`; the text and how many were replaced.
pub fn redact_text(s: &str) -> (Cow<'_, str>, usize) {
    let mut n = 0;
    if !hinted(s) {
        return (Cow::Borrowed(s), 0);
    }
    let tokens = TOKENS.replace_all(s, |c: &Captures| {
        let whole = &c[0];
        if let Some(tok) = c.name("bearer") {
            // A word after "bearer" in prose ("Bearer authentication") has no digit.
            if !tok.as_str().bytes().any(|b| b.is_ascii_digit()) {
                return whole.to_string();
            }
            n += 1;
            return format!("{}[redacted:bearer]", &c["scheme"]);
        }
        if c.name("url_password").is_some() {
            n += 1;
            return format!("{}[redacted:url_password]@", &c["url_user"]);
        }
        let kind = [
            "private_key",
            "jwt",
            "github_token",
            "slack_token",
            "aws_access_key",
            "api_key",
        ]
        .into_iter()
        .find(|k| c.name(k).is_some())
        .unwrap_or("token");
        n += 1;
        format!("[redacted:{kind}]")
    });
    if !KEY_HINTS.is_match(tokens.as_ref()) {
        return match n {
            0 => (Cow::Borrowed(s), 0),
            _ => (Cow::Owned(tokens.into_owned()), n),
        };
    }
    let assigned = match ASSIGNMENT.replace_all(&tokens, |c: &Captures| {
        if let Some(option) = c.name("option") {
            let value = &c["option_value"];
            let name = option.as_str().trim_start().trim_start_matches('-');
            if !is_credential_key(name) || value.contains("[redacted") {
                return c[0].to_string();
            }
            n += 1;
            return format!("{}{}[redacted:credential]", option.as_str(), &c["gap"]);
        }
        let value = &c["value"];
        let bare = value.trim_matches(['"', '\'']);
        if !is_credential_key(&c["key"]) || bare.is_empty() || value.contains("[redacted") {
            return c[0].to_string();
        }
        n += 1;
        let quote = if value.starts_with('"') { "\"" } else { "" };
        format!("{}{}{quote}[redacted:credential]{quote}", &c["key"], &c["sep"])
    }) {
        Cow::Borrowed(_) => tokens,
        Cow::Owned(o) => Cow::Owned(o),
    };
    if n == 0 {
        return (Cow::Borrowed(s), 0);
    }
    (assigned, n)
}

/// Whether `s` has any of the words or shapes `redact_text` looks for: text without
/// one is left as it is.
fn hinted(s: &str) -> bool {
    // Two literal searches: one set of both is a slower kind of search (fat Teddy).
    TOKEN_HINTS.is_match(s) || KEY_HINTS.is_match(s)
}

/// Redacts `v` in place (arguments of a call, with `long` the texts of its long
/// strings); how many values were replaced. `secret_path` says whether a string is a
/// path the policy's `secrets` globs match.
pub fn redact_json(v: &mut Value, long: &LongStrings, secret_path: &dyn Fn(&str) -> bool) -> usize {
    let mut n = 0;
    walk(v, &Walk { long, secret_path }, &mut n);
    n
}

struct Walk<'a> {
    long: &'a LongStrings,
    secret_path: &'a dyn Fn(&str) -> bool,
}

fn walk(v: &mut Value, w: &Walk, n: &mut usize) {
    match v {
        Value::Object(map) => {
            let names_secret = map.values().any(|x| {
                x.as_str()
                    .is_some_and(|s| looks_like_path(s) && (w.secret_path)(s))
            });
            for (k, x) in map.iter_mut() {
                if is_credential_key(k) && hides_something(x) {
                    *x = Value::String(REDACTED.into());
                    *n += 1;
                } else if names_secret && !x.as_str().is_some_and(looks_like_path) {
                    // What goes with a secret's path (the content written to it).
                    blank_strings(x, n);
                } else {
                    walk(x, w, n);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| walk(x, w, n)),
        Value::String(s) => {
            if let Some(text) = w.long.get(s) {
                // A long string kept as sent: the words and shapes `redact_text` looks
                // for have no quote, backslash or control character, so text without
                // them as sent has none decoded either (and stays as sent).
                if hinted(text)
                    && let (Cow::Owned(r), k) = redact_text(&long_strings::decode(text))
                {
                    *s = r;
                    *n += k;
                }
                return;
            }
            if let (Cow::Owned(r), k) = redact_text(s) {
                *s = r;
                *n += k;
            }
        }
        _ => {}
    }
}

/// Whether a credential key's value holds anything to hide: `true`, `null` and `""`
/// say nothing about the credential.
fn hides_something(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) => false,
        Value::String(s) => !s.is_empty() && s != REDACTED,
        _ => true,
    }
}

/// Every non-empty string in `v` becomes `[redacted:secret_file]`.
fn blank_strings(v: &mut Value, n: &mut usize) {
    match v {
        Value::String(s) if !s.is_empty() => {
            *s = "[redacted:secret_file]".into();
            *n += 1;
        }
        Value::Array(items) => items.iter_mut().for_each(|x| blank_strings(x, n)),
        Value::Object(map) => map.values_mut().for_each(|x| blank_strings(x, n)),
        _ => {}
    }
}

/// A string that could be a path argument: absolute, home-relative or explicitly
/// relative, on one line. A long string kept as sent is longer than this.
fn looks_like_path(s: &str) -> bool {
    (s.starts_with('/') || s.starts_with("~/") || s.starts_with("./") || s.starts_with("../"))
        && !s.contains('\n')
        && s.len() <= long_strings::LONG
}

/// A program's argv (an `exec` effect): each string through [`redact_text`], and the
/// value after a `--password`-like option. How many were replaced.
pub fn redact_argv(argv: &mut [Value]) -> usize {
    let mut n = 0;
    let mut hide_next = false;
    for a in argv.iter_mut() {
        let Value::String(s) = a else {
            hide_next = false;
            continue;
        };
        if std::mem::take(&mut hide_next) && !s.starts_with('-') && !s.is_empty() {
            *s = "[redacted:credential]".into();
            n += 1;
            continue;
        }
        if let Some(name) = s.strip_prefix('-')
            && !s.contains('=')
            && is_credential_key(name)
        {
            hide_next = true;
        }
        if let (Cow::Owned(r), k) = redact_text(s) {
            *s = r;
            n += k;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn no_secrets(_: &str) -> bool {
        false
    }

    fn text(s: &str) -> (String, usize) {
        let (r, n) = redact_text(s);
        (r.into_owned(), n)
    }

    #[test]
    fn credential_keys_in_any_case_and_spelling() {
        for k in [
            "password",
            "PASSWORD",
            "Passwd",
            "userPassword",
            "db_password",
            "passphrase",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "access_token",
            "accessToken",
            "refresh-token",
            "GITHUB_TOKEN",
            "api_key",
            "apiKey",
            "APIKEY",
            "x-api-key",
            "X-Api-Key",
            "access_key",
            "AWS_SECRET_ACCESS_KEY",
            "private_key",
            "privateKey",
            "Authorization",
            "cookie",
            "Set-Cookie",
            "credentials",
            "session_token",
            "signing_key",
        ] {
            assert!(is_credential_key(k), "{k} is a credential's key");
        }
        for k in [
            "path",
            "key",
            "text",
            "max_tokens",
            "maxTokens",
            "token_count",
            "num_tokens",
            "tokenizer",
            "password_file",
            "token_url",
            "secret_name",
            "private_key_id",
            "keyboard",
            "monkey",
            "compass",
            "bypass",
            "author",
            "secretary",
        ] {
            assert!(!is_credential_key(k), "{k} is not a credential's key");
        }
    }

    #[test]
    fn values_under_credential_keys_are_redacted_anywhere_and_nothing_else_changes() {
        let mut v = json!({
            "path": "/srv/docs/a.txt",
            "Password": "hunter2",
            "count": 3,
            "max_tokens": 1000,
            "remember_password": true,
            "token": null,
            "api_key": "",
            "config": {
                "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "application/json"},
                "nested": [{"client_secret": {"value": "s3cr3t", "n": 1}}, {"PIN": 1234}],
                "db": {"passwd": 1234},
            },
            "list": ["a", 1, false, null],
        });
        let n = redact_json(&mut v, &LongStrings::default(), &no_secrets);
        assert_eq!(n, 4);
        assert_eq!(
            v,
            json!({
                "path": "/srv/docs/a.txt",
                "Password": "[redacted]",
                "count": 3,
                "max_tokens": 1000,
                "remember_password": true,
                "token": null,
                "api_key": "",
                "config": {
                    "headers": {"Authorization": "[redacted]", "Accept": "application/json"},
                    "nested": [{"client_secret": "[redacted]"}, {"PIN": 1234}],
                    "db": {"passwd": "[redacted]"},
                },
                "list": ["a", 1, false, null],
            })
        );
        // Key order and everything not a credential: byte for byte the same.
        let mut plain =
            json!({"z": "last", "a": {"b": [1.5, "x", {"c": "see /etc/hosts"}]}, "text": "hello world"});
        let before = plain.to_string();
        assert_eq!(redact_json(&mut plain, &LongStrings::default(), &no_secrets), 0);
        assert_eq!(plain.to_string(), before);
    }

    #[test]
    fn each_token_shape_is_redacted_wherever_it_is() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let cases = [
            (format!("token is {jwt} ok"), "token is [redacted:jwt] ok", 1),
            (
                "use ghp_abcdefghijklmnopqrstuvwxyz0123456789 here".into(),
                "use [redacted:github_token] here",
                1,
            ),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz".into(),
                "[redacted:github_token]",
                1,
            ),
            (
                "slack xoxb-1234567890-abcdefghij".into(),
                "slack [redacted:slack_token]",
                1,
            ),
            (
                "key AKIAIOSFODNN7EXAMPLE!".into(),
                "key [redacted:aws_access_key]!",
                1,
            ),
            (
                "sk-proj-abcdefghijklmnopqrstuvwxyz012345".into(),
                "[redacted:api_key]",
                1,
            ),
            ("sk_live_abcdefghijklmnop1234".into(), "[redacted:api_key]", 1),
            (
                "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----\nb".into(),
                "a\n[redacted:private_key]\nb",
                1,
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIEvQ (cut short".into(),
                "[redacted:private_key]",
                1,
            ),
            (
                "curl -H 'Authorization: Bearer abc123def456ghi789jkl'".into(),
                "curl -H 'Authorization: Bearer [redacted:bearer]'",
                1,
            ),
            (
                "Authorization: Basic dXNlcjpwYXNz".into(),
                "Authorization: [redacted:credential]",
                1,
            ),
            (
                "header Bearer abc123def456ghi789jkl".into(),
                "header Bearer [redacted:bearer]",
                1,
            ),
            (
                "postgres://app:pa55w0rd@db.internal:5432/app".into(),
                "postgres://app:[redacted:url_password]@db.internal:5432/app",
                1,
            ),
            (
                "DB_HOST=x\nDB_PASSWORD=hunter2\nAPI_TOKEN=\"abc def\"\n".into(),
                "DB_HOST=x\nDB_PASSWORD=[redacted:credential]\nAPI_TOKEN=\"[redacted:credential]\"\n",
                2,
            ),
            (
                "run --password=hunter2 --user bob".into(),
                "run --password=[redacted:credential] --user bob",
                1,
            ),
            (
                "mysql --user bob --password hunter2 -v".into(),
                "mysql --user bob --password [redacted:credential] -v",
                1,
            ),
            (
                "--api-key 'a b' --token=ghp_abcdefghijklmnopqrstuvwxyz0123456789".into(),
                "--api-key [redacted:credential] --token=[redacted:github_token]",
                2,
            ),
            (
                r#"{"user":"bob","password":"hunter2"}"#.into(),
                r#"{"user":"bob","password":"[redacted:credential]"}"#,
                1,
            ),
            (
                "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789".into(),
                "GITHUB_TOKEN=[redacted:github_token]",
                1,
            ),
        ];
        for (input, want, count) in cases {
            let (got, n) = text(&input);
            assert_eq!(got, want, "{input:?}");
            assert_eq!(n, count, "{input:?}");
        }
        // Prose and ordinary values stay as they are.
        for s in [
            "Bearer authentication is described in RFC 6750",
            "max_tokens: 100",
            "password_file: /etc/app/pw",
            "https://example.com/a:b@c",
            "see https://example.com/path?q=1",
            "sk-short",
            "ghp_short",
            "--password-file /etc/pw --verbose",
            "--token --verbose",
            "the token is here",
        ] {
            assert_eq!(text(s), (s.to_string(), 0), "{s:?}");
        }
    }

    #[test]
    fn strings_in_json_go_through_the_token_patterns() {
        let mut v = json!({"cmd": "git push https://x:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/a/b", "args": ["AKIAIOSFODNN7EXAMPLE"]});
        assert_eq!(redact_json(&mut v, &LongStrings::default(), &no_secrets), 2);
        assert_eq!(
            v,
            json!({"cmd": "git push https://x:[redacted:url_password]@github.com/a/b", "args": ["[redacted:aws_access_key]"]})
        );
    }

    #[test]
    fn what_goes_with_a_secret_path_is_redacted_not_the_path() {
        let secret = |s: &str| s.ends_with("/.env") || s.contains("/.aws/");
        let mut v = json!({
            "path": "/srv/app/.env",
            "content": "HOST=x\nMODE=prod\n",
            "edits": [{"oldText": "a", "newText": "b"}],
            "dryRun": false,
        });
        assert_eq!(redact_json(&mut v, &LongStrings::default(), &secret), 3);
        assert_eq!(
            v,
            json!({
                "path": "/srv/app/.env",
                "content": "[redacted:secret_file]",
                "edits": [{"oldText": "[redacted:secret_file]", "newText": "[redacted:secret_file]"}],
                "dryRun": false,
            })
        );
        // Moving a secret keeps both paths; other objects are untouched.
        let mut v = json!({"source": "/home/a/.aws/credentials", "destination": "/tmp/c", "overwrite": true});
        let before = v.clone();
        assert_eq!(redact_json(&mut v, &LongStrings::default(), &secret), 0);
        assert_eq!(v, before);
        let mut v = json!({"path": "/srv/app/notes.txt", "content": "HOST=x"});
        let before = v.clone();
        assert_eq!(redact_json(&mut v, &LongStrings::default(), &secret), 0);
        assert_eq!(v, before);
    }

    #[test]
    fn argv_options_that_take_a_credential() {
        let mut argv = vec![
            json!("mysql"),
            json!("--password"),
            json!("hunter2"),
            json!("--user"),
            json!("bob"),
            json!("--api-key=abc"),
            json!("--token"),
            json!("--verbose"),
        ];
        assert_eq!(redact_argv(&mut argv), 2);
        assert_eq!(
            argv,
            [
                json!("mysql"),
                json!("--password"),
                json!("[redacted:credential]"),
                json!("--user"),
                json!("bob"),
                json!("--api-key=[redacted:credential]"),
                json!("--token"),
                json!("--verbose"),
            ]
        );
    }
}
