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
/// (`postgres://app:s3cret@db:5432/x` → `postgres://app:***@db:5432/x`), and the value of
/// every query parameter that names a secret (`password`, `sslpassword`, `pass`, `pwd`,
/// `secret`, `token`, `api_key`, `key`, `auth`, `sig`, … — libpq takes `?password=`):
/// `…/x?password=***&sslmode=require`.
///
/// Works by string surgery on the authority, so URLs the `url` crate would reject (an
/// unencoded `@` in the password, say) are still redacted: everything before the last `@` of
/// the authority after the first `:` is hidden.
pub fn redact_url(url: &str) -> String {
    redact_query(&redact_userinfo(url))
}

/// The pieces of `url` that [`redact_url`] hides, each with what it shows instead:
/// `("app:s3cret@", "app:***@")`, `("password=S3cr3t", "password=***")`. For scrubbing text
/// that may quote a piece of the URL rather than all of it.
///
/// ```
/// let parts = config::secret_parts("postgres://app:s3cret@db/x?password=p&sslmode=require");
/// assert_eq!(
///     parts,
///     [
///         ("app:s3cret@".to_owned(), "app:***@".to_owned()),
///         ("password=p".to_owned(), "password=***".to_owned()),
///     ]
/// );
/// ```
pub fn secret_parts(url: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    if let Some((start, colon, at)) = password_span(url) {
        parts.push((
            url[start..=at].to_owned(),
            format!("{}:***@", &url[start..colon]),
        ));
    }
    // The query as redact_url reads it: after the userinfo, whose password may hold a '?'.
    let shown = redact_userinfo(url);
    parts.extend(
        secret_params(&shown)
            .into_iter()
            .map(|(start, value, end)| {
                (
                    shown[start..end].to_owned(),
                    format!("{}***", &shown[start..value]),
                )
            }),
    );
    parts
}

/// Whether a query parameter's name (percent-decoded) says its value is a secret. Erring
/// towards hiding: `key` covers `api_key` and `apikey`, `auth` `authorization`, `sig`
/// `signature`.
fn is_secret_param(name: &str) -> bool {
    let decoded: String = url::form_urlencoded::parse(name.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    let name = decoded.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "sig",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The query parameters of `url` whose name says their value is a secret, as byte offsets:
/// `(start of name=value, start of the value, end)`. Empty values are not secrets.
fn secret_params(url: &str) -> Vec<(usize, usize, usize)> {
    let Some(q) = url.find('?') else {
        return Vec::new();
    };
    let end = url[q..].find('#').map_or(url.len(), |h| q + h);
    let mut found = Vec::new();
    let mut start = q + 1;
    for pair in url[q + 1..end].split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && !value.is_empty()
            && is_secret_param(name)
        {
            found.push((start, start + name.len() + 1, start + pair.len()));
        }
        start += pair.len() + 1;
    }
    found
}

/// `url` with the values of its secret query parameters replaced by `***`.
fn redact_query(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    for (_, value, end) in secret_params(url) {
        out.push_str(&url[copied..value]);
        out.push_str("***");
        copied = end;
    }
    out.push_str(&url[copied..]);
    out
}

/// Where the password of `url`'s userinfo is, as byte offsets: `(start of the userinfo, the
/// ':' before the password, the '@' after it)`; `None` without a password.
///
/// Normally the userinfo ends at the last '@' before the first '/', '?' or '#'. A password may
/// contain those characters unencoded (`p@ss#w0rd`, `12/34`): when no '@' comes before them,
/// or an '@' follows in what would be the path or the fragment, the password runs to the last
/// '@' in the URL. (An '@' in the query alone, `?application_name=ops@team`, is a query's.)
/// Erring towards hiding too much is fine, showing a password is not.
fn password_span(url: &str) -> Option<(usize, usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let naive_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let tail = &rest[naive_end..];
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    let fragment = tail.split_once('#').map_or("", |(_, f)| f);
    let at = match rest[..naive_end].rfind('@') {
        Some(at) if !path.contains('@') && !fragment.contains('@') => at,
        _ => rest.rfind('@')?,
    };
    let colon = rest[..at].find(':')?;
    if rest[..colon].contains(['/', '?', '#']) {
        // The ':' belongs to a path or query ("db/x?opt=a:b@c"), there is no password.
        return None;
    }
    Some((start, start + colon, start + at))
}

fn redact_userinfo(url: &str) -> String {
    match password_span(url) {
        Some((_, colon, at)) => format!("{}:***{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
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
    fn a_password_with_unencoded_separators_is_hidden_whole_and_a_query_at_is_not_a_password() {
        for (url, shown) in [
            (
                "postgres://app:p@ss#w0rd@127.0.0.1:5432/db",
                "postgres://app:***@127.0.0.1:5432/db",
            ),
            ("postgres://app:1234/ss@db/x", "postgres://app:***@db/x"),
            (
                "postgres://app:pw@db.internal:5432/db?application_name=ops@team",
                "postgres://app:***@db.internal:5432/db?application_name=ops@team",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
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
    fn secret_parts_are_what_redact_url_hides() {
        // An '@' in the password: the whole password is a part, not its head.
        assert_eq!(
            secret_parts("postgresql://app:p@ss@db/x?sslmode=require"),
            [("app:p@ss@".to_owned(), "app:***@".to_owned())]
        );
        // A '?' in the password is not the query.
        assert_eq!(
            secret_parts("rediss://default:tok/en?x@host:6380/0?token=t"),
            [
                ("default:tok/en?x@".to_owned(), "default:***@".to_owned()),
                ("token=t".to_owned(), "token=***".to_owned()),
            ]
        );
        assert!(secret_parts("sqlite://data/webhook.db?mode=rwc").is_empty());
    }

    #[test]
    fn secret_query_parameters_become_stars() {
        for (input, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/db?password=S3cr3tPw",
                "postgres://postgres@127.0.0.1:5432/db?password=***",
            ),
            (
                "postgres://u:p@db/x?sslmode=require&sslpassword=k3y&PASSWORD=a",
                "postgres://u:***@db/x?sslmode=require&sslpassword=***&PASSWORD=***",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "https://bot.example.com/api/v1/whatsapp/webhook?token=abc#rc=3",
                "https://bot.example.com/api/v1/whatsapp/webhook?token=***#rc=3",
            ),
            (
                "sqlite://data/webhook.db?mode=rwc",
                "sqlite://data/webhook.db?mode=rwc",
            ),
            ("postgres://db/x?password=", "postgres://db/x?password="),
            (
                "https://bot.example.com/hook?api_key=k1&apikey=k2&key=k3&auth=a&sig=s&to%6Ben=t&tenant=acme",
                "https://bot.example.com/hook?api_key=***&apikey=***&key=***&auth=***&sig=***&to%6Ben=***&tenant=acme",
            ),
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
