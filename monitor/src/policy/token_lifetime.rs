//! Short-lived or long-lived: a bearer JWT's lifetime from its `iat` and `exp` claims
//! (unverified: what the token says), against the policy's `short_lived_tokens`
//! threshold. A credential issued just in time expires soon after it is issued; one
//! valid for days, or with no `exp`, is a static secret by another name.
use serde::Serialize;

use crate::transport::bearer::Claims;

/// The default `short_lived_tokens`: tokens valid for at most an hour are short-lived
/// (OAuth access tokens of the common identity providers last 5 to 60 minutes).
pub const DEFAULT_SHORT_LIVED_S: i64 = 3600;

/// What events add to a JWT bearer token (`agent.token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lifetime {
    /// `exp - iat`: how long it was valid for when issued. None without both claims.
    pub lifetime_s: Option<i64>,
    /// `exp` minus the call's time: negative when it had expired. None without `exp`.
    pub expires_in_s: Option<i64>,
    /// `short_lived` (`lifetime_s` within the threshold), `long_lived` (past it, or no
    /// `exp`: it never expires), or `unknown` (`exp` but no `iat`, expiring within the
    /// threshold: it may have been issued long ago).
    #[serde(rename = "lifetime")]
    pub class: &'static str,
}

/// The lifetime of a token with `claims`, seen in a call at `now_s` (Unix seconds),
/// classified against `short_lived_max_s`. Claims are whatever the caller sent: the
/// arithmetic saturates rather than overflows.
pub fn lifetime(claims: &Claims, now_s: i64, short_lived_max_s: i64) -> Lifetime {
    let Some(exp) = claims.exp else {
        return Lifetime {
            lifetime_s: None,
            expires_in_s: None,
            class: "long_lived",
        };
    };
    let expires_in_s = Some(exp.saturating_sub(now_s));
    let lifetime_s = claims.iat.map(|iat| exp.saturating_sub(iat));
    let class = match lifetime_s {
        Some(l) if l <= short_lived_max_s => "short_lived",
        Some(_) => "long_lived",
        // Without `iat`, what is left of it bounds its lifetime from below only.
        None if exp.saturating_sub(now_s) > short_lived_max_s => "long_lived",
        None => "unknown",
    };
    Lifetime {
        lifetime_s,
        expires_in_s,
        class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: Option<i64>, exp: Option<i64>) -> Claims {
        Claims {
            iat,
            exp,
            ..Claims::default()
        }
    }

    #[test]
    fn short_and_long_lived_by_the_threshold() {
        let now = 1_800_000_000;
        let l = lifetime(&claims(Some(now - 60), Some(now + 840)), now, 3600);
        assert_eq!(
            (l.lifetime_s, l.expires_in_s, l.class),
            (Some(900), Some(840), "short_lived")
        );
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"lifetime_s":900,"expires_in_s":840,"lifetime":"short_lived"}"#
        );
        let l = lifetime(&claims(Some(now), Some(now + 3600)), now, 3600);
        assert_eq!(l.class, "short_lived", "the threshold itself is short");
        let l = lifetime(&claims(Some(now - 86_400), Some(now + 30 * 86_400)), now, 3600);
        assert_eq!(
            (l.lifetime_s, l.expires_in_s, l.class),
            (Some(31 * 86_400), Some(30 * 86_400), "long_lived")
        );
        // Expired when seen.
        let l = lifetime(&claims(Some(now - 600), Some(now - 300)), now, 3600);
        assert_eq!((l.expires_in_s, l.class), (Some(-300), "short_lived"));
    }

    #[test]
    fn missing_claims_and_hostile_numbers() {
        let now = 1_800_000_000;
        let l = lifetime(&claims(Some(now), None), now, 3600);
        assert_eq!(
            (l.lifetime_s, l.expires_in_s, l.class),
            (None, None, "long_lived")
        );
        let l = lifetime(&claims(None, Some(now + 7200)), now, 3600);
        assert_eq!((l.lifetime_s, l.class), (None, "long_lived"));
        let l = lifetime(&claims(None, Some(now + 60)), now, 3600);
        assert_eq!((l.expires_in_s, l.class), (Some(60), "unknown"));
        let l = lifetime(&claims(Some(i64::MIN), Some(i64::MAX)), i64::MIN, 3600);
        assert_eq!(
            (l.lifetime_s, l.expires_in_s, l.class),
            (Some(i64::MAX), Some(i64::MAX), "long_lived")
        );
    }
}
