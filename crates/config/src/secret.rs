//! Keeping secrets out of logs: the [`Secret`] wrapper, SID masking and URL password redaction.

use std::fmt;

use serde::{Serialize, Serializer};

/// A secret string (auth token, API key secret, database URL with a password).
///
/// `Debug`, `Display` and `Serialize` all print `[redacted]`; the value is only reachable
/// through [`Secret::expose`], so every use of the real value is visible in the code.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

/// Shortens a Twilio SID for display: `AC12…cdef`. Values too short to shorten safely are
/// shown as `[redacted]`.
pub fn mask_sid(sid: &str) -> String {
    let chars: Vec<char> = sid.chars().collect();
    if chars.len() < 12 {
        return "[redacted]".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Replaces the password in a URL's userinfo with `***`
/// (`postgres://app:s3cret@db:5432/x` → `postgres://app:***@db:5432/x`).
///
/// Works by string surgery on the authority, so URLs the `url` crate would reject (an
/// unencoded `@` in the password, say) are still redacted: everything before the last `@` of
/// the authority after the first `:` is hidden.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    // Normally the userinfo ends at the last '@' before the first '/', '?' or '#'. A password
    // may contain those characters unencoded; then the first '@' anywhere ends it. Erring
    // towards hiding too much is fine, showing a password is not.
    let naive_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = match rest[..naive_end].rfind('@') {
        Some(at) => at,
        None => match rest.find('@') {
            Some(at) => at,
            None => return url.to_owned(),
        },
    };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    if userinfo[..colon].contains(['/', '?', '#']) {
        // The ':' belongs to a path or query ("db/x?opt=a:b@c"), there is no password.
        return url.to_owned();
    }
    format!(
        "{}{}:***{}",
        &url[..auth_start],
        &userinfo[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:#?}"), "[redacted]");
        assert_eq!(s.expose(), "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn sids_keep_four_characters_at_each_end() {
        assert_eq!(mask_sid("AC1234567890abcdef1234567890abcdef"), "AC12…cdef");
        assert_eq!(mask_sid("MGffffffffffffffffffffffffffff0000"), "MGff…0000");
        assert_eq!(mask_sid("AC123"), "[redacted]");
    }

    #[test]
    fn url_passwords_become_stars() {
        for (input, expected) in [
            (
                "postgres://app:s3cret@db:5432/x",
                "postgres://app:***@db:5432/x",
            ),
            (
                "postgresql://app:p@ss@db/x?sslmode=require",
                "postgresql://app:***@db/x?sslmode=require",
            ),
            ("redis://:hunter2@red-abc:6379", "redis://:***@red-abc:6379"),
            (
                "rediss://default:tok/en?x@host:6380/0",
                "rediss://default:***@host:6380/0",
            ),
            ("redis://red-abc:6379", "redis://red-abc:6379"),
            ("postgres://app@db/x", "postgres://app@db/x"),
            (
                "sqlite://data/webhook.db?mode=rwc",
                "sqlite://data/webhook.db?mode=rwc",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(redact_url(input), expected, "{input}");
        }
    }

    #[test]
    fn an_at_sign_in_the_path_is_not_taken_for_userinfo() {
        assert_eq!(
            redact_url("postgres://db/x?user=a@b"),
            "postgres://db/x?user=a@b"
        );
        assert_eq!(
            redact_url("postgres://db/x?opt=a:b@c"),
            "postgres://db/x?opt=a:b@c"
        );
    }
}
