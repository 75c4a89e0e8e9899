//! `Authorization: Bearer` credentials of HTTP requests. A JWT's claims are decoded
//! without verifying its signature (the monitor holds no keys: events say
//! `"verified": false`); any other token is opaque. The token itself is never kept:
//! a short SHA-256 fingerprint tells two tokens apart without revealing either.
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Longest token decoded; longer ones are fingerprinted and reported as opaque.
const MAX_TOKEN: usize = 16 * 1024;
/// Longest claim value kept (characters); longer ones are cut.
const MAX_CLAIM: usize = 256;
/// Audiences kept of an `aud` array.
const MAX_AUDIENCES: usize = 8;
/// Hex digits of the fingerprint: 64 bits, enough to tell tokens apart in a log.
const FINGERPRINT_HEX: usize = 16;

/// What a request's bearer token says about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    /// `sha256:` and the first hex digits of the token's SHA-256.
    pub fingerprint: String,
    /// The claims of a JWT; None for an opaque token.
    pub claims: Option<Claims>,
}

/// The claims that name a caller, as the token states them (unverified).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    pub sub: Option<String>,
    /// `client_id`, else `azp` (the OAuth client the token was issued to).
    pub client_id: Option<String>,
    pub iss: Option<String>,
    pub aud: Vec<String>,
    /// `scope` (space-separated), else `scp` (an array or a string).
    pub scope: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
}

impl Bearer {
    /// The credential in an `Authorization` header value, when its scheme is Bearer.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        let value = std::str::from_utf8(value).ok()?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return None;
        }
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some(Self {
            fingerprint: format!("sha256:{}", &hex[..FINGERPRINT_HEX]),
            claims: (token.len() <= MAX_TOKEN).then(|| jwt_claims(token)).flatten(),
        })
    }

    /// How events show it: the fingerprint, and the claims marked unverified.
    pub fn to_json(&self) -> Value {
        let Some(c) = &self.claims else {
            return serde_json::json!({"kind": "opaque", "fingerprint": self.fingerprint});
        };
        serde_json::json!({
            "kind": "jwt",
            "verified": false,
            "fingerprint": self.fingerprint,
            "sub": c.sub,
            "client_id": c.client_id,
            "iss": c.iss,
            "aud": c.aud,
            "scope": c.scope,
            "exp": c.exp,
            "iat": c.iat,
        })
    }
}

/// The claims of a JWS compact token (`header.payload.signature`) whose header names
/// an algorithm and whose payload is a JSON object; None otherwise (a JWE, or not a
/// JWT at all).
fn jwt_claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&decode(header)?).ok()?;
    header.get("alg")?.as_str()?;
    let payload: Value = serde_json::from_slice(&decode(payload)?).ok()?;
    let p = payload.as_object()?;
    let text = |key: &str| p.get(key).and_then(Value::as_str).map(bounded);
    let number = |key: &str| {
        p.get(key)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let aud = match p.get("aud") {
        Some(Value::String(s)) => vec![bounded(s)],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .take(MAX_AUDIENCES)
            .map(bounded)
            .collect(),
        _ => Vec::new(),
    };
    let scope = text("scope").or_else(|| match p.get("scp") {
        Some(Value::Array(a)) => {
            let s: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            Some(bounded(&s.join(" ")))
        }
        Some(Value::String(s)) => Some(bounded(s)),
        _ => None,
    });
    Some(Claims {
        sub: text("sub"),
        client_id: text("client_id").or_else(|| text("azp")),
        iss: text("iss"),
        aud,
        scope,
        exp: number("exp"),
        iat: number("iat"),
    })
}

/// base64url, with or without padding.
fn decode(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

fn bounded(s: &str) -> String {
    s.chars().take(MAX_CLAIM).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn jwt(claims: Value) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b64(&serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            b64(&claims)
        )
    }

    #[test]
    fn a_jwt_gives_its_claims_unverified_and_never_the_token() {
        let token = jwt(serde_json::json!({
            "sub": "alice@example.com", "azp": "cursor", "iss": "https://idp.example",
            "aud": ["mcp", "api"], "scp": ["files:read", "files:write"], "exp": 1_900_000_000, "iat": 1.8e9,
        }));
        let b = Bearer::from_header(format!("bearer  {token} ").as_bytes()).unwrap();
        let c = b.claims.clone().unwrap();
        assert_eq!(c.sub.as_deref(), Some("alice@example.com"));
        assert_eq!(
            c.client_id.as_deref(),
            Some("cursor"),
            "azp when there is no client_id"
        );
        assert_eq!(c.iss.as_deref(), Some("https://idp.example"));
        assert_eq!(c.aud, ["mcp", "api"]);
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!((c.exp, c.iat), (Some(1_900_000_000), Some(1_800_000_000)));
        let shown = b.to_json().to_string();
        assert!(shown.contains("\"verified\":false"), "{shown}");
        assert!(
            !shown.contains(&token) && !shown.contains("c2lnbmF0dXJl"),
            "{shown}"
        );
        assert!(b.fingerprint.starts_with("sha256:") && b.fingerprint.len() == 7 + FINGERPRINT_HEX);
        // The same token, the same fingerprint; another token, another.
        assert_eq!(
            Bearer::from_header(format!("Bearer {token}").as_bytes())
                .unwrap()
                .fingerprint,
            b.fingerprint
        );
        let other = jwt(serde_json::json!({"sub": "bob"}));
        assert_ne!(
            Bearer::from_header(format!("Bearer {other}").as_bytes())
                .unwrap()
                .fingerprint,
            b.fingerprint
        );
    }

    #[test]
    fn opaque_and_hostile_tokens_are_opaque_and_bounded() {
        let b = Bearer::from_header(b"Bearer abc123").unwrap();
        assert_eq!(b.claims, None);
        assert_eq!(b.to_json()["kind"], "opaque");
        assert!(!b.to_json().to_string().contains("abc123"));
        for not_bearer in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer ",
            b"Bearer",
            b"",
            b"\xff\xfe",
        ] {
            assert_eq!(Bearer::from_header(not_bearer), None, "{not_bearer:?}");
        }
        // Not JSON, no alg, five parts (a JWE), a payload that is not an object.
        let alg = b64(&serde_json::json!({"alg": "none"}));
        for token in [
            "a.b.c".to_string(),
            format!(
                "{}.{}.x",
                b64(&serde_json::json!({})),
                b64(&serde_json::json!({"sub": "x"}))
            ),
            format!("{alg}.{alg}.x.y.z"),
            format!("{alg}.{}.x", b64(&serde_json::json!(["sub"]))),
        ] {
            let b = Bearer::from_header(format!("Bearer {token}").as_bytes()).unwrap();
            assert_eq!(b.claims, None, "{token}");
        }
        let long = "x".repeat(10_000);
        let c = jwt_claims(&jwt(serde_json::json!({"sub": long, "iss": 7}))).unwrap();
        assert_eq!(c.sub.unwrap().len(), MAX_CLAIM);
        assert_eq!(c.iss, None, "a claim of the wrong type is absent, not guessed");
        let huge = Bearer::from_header(
            format!(
                "Bearer {}",
                jwt(serde_json::json!({"sub": "x".repeat(MAX_TOKEN)}))
            )
            .as_bytes(),
        );
        assert_eq!(huge.unwrap().claims, None, "too long to decode: opaque");
    }
}
