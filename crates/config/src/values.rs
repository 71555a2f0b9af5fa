//! Shape checks for single values: SIDs, tokens, placeholders, URLs, phone numbers, numbers.
//!
//! Pure functions without knowledge of sources; `load` turns their verdicts into problems that
//! name the key and where the value came from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// A value that cannot be used: what is wrong with it and the fix, both user-facing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) message: String,
    pub(crate) fix: String,
}

impl Invalid {
    pub(crate) fn new(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Whether a value is an obvious placeholder copied from an example rather than a real
/// credential: `your_auth_token`, `changeme`, `xxxx…`, `ACxxxxxxxx…`, `<token>`, `…`.
///
/// Real SIDs and tokens are random hex, so none of these patterns occurs in them by chance
/// (an `x` cannot appear in hex at all). An API key secret is 32 random letters and digits,
/// where four `x` in a row occur by chance in about one secret of 30,000: `x`s mark a
/// placeholder only as a run of eight or more, or as half of the value or more.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return false;
    }
    const MARKERS: [&str; 9] = [
        "your_",
        "your-",
        "yourauth",
        "changeme",
        "change_me",
        "change-me",
        "placeholder",
        "replace",
        "example",
    ];
    if MARKERS.iter().any(|m| lower.contains(m)) || mostly_x(&lower) {
        return true;
    }
    if lower.starts_with('<') || lower.contains("...") || lower.contains('…') {
        return true;
    }
    if matches!(
        lower.as_str(),
        "todo" | "token" | "secret" | "test" | "none" | "null"
    ) {
        return true;
    }
    // "00000000…" or "aaaaaaaa…": one repeated character.
    let mut chars = lower.chars();
    let first = chars.next();
    lower.len() >= 8 && chars.all(|c| Some(c) == first)
}

/// `xxxxxxxx…`, `ACxxxxxxxx…`, `+1415xxxxxxx`: a run of at least eight `x`, or at least four
/// that make up half of the value.
fn mostly_x(lower: &str) -> bool {
    let (mut run, mut longest, mut count) = (0usize, 0usize, 0usize);
    for c in lower.chars() {
        if c == 'x' {
            run += 1;
            count += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest >= 8 || (longest >= 4 && count * 2 >= lower.chars().count())
}

/// `prefix` followed by exactly 32 hex digits (Twilio SIDs: `AC…`, `MG…`, `SK…`).
pub(crate) fn is_sid(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// 32 hex digits: the shape of an Auth Token.
pub(crate) fn is_hex32(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A value with spaces or line breaks around it; almost always a copy-paste accident, and in
/// WEBHOOK_URL it silently breaks every signature.
pub(crate) fn has_surrounding_whitespace(value: &str) -> bool {
    value.trim() != value
}

/// Shows a non-secret value in a message: quoted, shortened when long.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() > MAX {
        let head: String = value.chars().take(MAX).collect();
        format!("\"{head}…\"")
    } else {
        format!("\"{value}\"")
    }
}

/// Shows a URL in a message like [`shown`], its `user:password@` and secret query values
/// hidden ([`redact_url`](crate::redact_url)): a WEBHOOK_URL may carry Basic credentials.
pub(crate) fn shown_url(value: &str) -> String {
    shown(&crate::redact_url(value))
}

/// Parses an `http://` or `https://` URL.
pub(crate) fn parse_http_url(value: &str, fix: &str) -> Result<Url, Invalid> {
    let url = Url::parse(value)
        .map_err(|e| Invalid::new(format!("{} is not a URL ({e})", shown_url(value)), fix))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Invalid::new(
                format!(
                    "{} must start with https:// (got \"{other}:\")",
                    shown_url(value)
                ),
                fix,
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::new(
            format!("{} has no host name", shown_url(value)),
            fix,
        ));
    }
    Ok(url)
}

/// The host when Twilio (a machine on the internet) cannot reach it: localhost, loopback,
/// private, link-local or unspecified addresses.
///
/// ```
/// let url = url::Url::parse("http://192.168.1.5:5000/api/v1/whatsapp/webhook").unwrap();
/// assert_eq!(config::unreachable_host(&url).as_deref(), Some("192.168.1.5"));
/// let url = url::Url::parse("https://bot.example.com/x").unwrap();
/// assert_eq!(config::unreachable_host(&url), None);
/// ```
pub fn unreachable_host(url: &Url) -> Option<String> {
    let unreachable = match url.host()? {
        Host::Domain(d) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local")
        }
        Host::Ipv4(ip) => unreachable_ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => unreachable_ip(IpAddr::V6(ip)),
    };
    unreachable.then(|| url.host_str().unwrap_or_default().to_owned())
}

fn unreachable_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => unreachable_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return unreachable_v4(v4);
            }
            v6.is_loopback() || v6.is_unspecified() || is_unique_local(v6) || is_link_local(v6)
        }
    }
}

fn unreachable_v4(v4: Ipv4Addr) -> bool {
    v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
}

fn is_unique_local(v6: Ipv6Addr) -> bool {
    (v6.segments()[0] & 0xfe00) == 0xfc00
}

fn is_link_local(v6: Ipv6Addr) -> bool {
    (v6.segments()[0] & 0xffc0) == 0xfe80
}

/// `+` followed by 8 to 15 digits, the first not 0 (E.164).
pub(crate) fn is_e164(value: &str) -> bool {
    value.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// A whole number within `min..=max`.
pub(crate) fn parse_number(key: &str, value: &str, min: u64, max: u64) -> Result<u64, Invalid> {
    let fix = format!("set {key} to a whole number from {min} to {max}");
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(n) => Err(Invalid::new(format!("{n} is outside {min} to {max}"), fix)),
        Err(_) => Err(Invalid::new(
            format!("{} is not a whole number", shown(value)),
            fix,
        )),
    }
}

/// A listen address: an IP address or a host name, without a port.
pub(crate) fn is_listen_host(value: &str) -> bool {
    if value.parse::<IpAddr>().is_ok() {
        return true;
    }
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_from_examples_and_tutorials_are_recognised() {
        for p in [
            "your_auth_token",
            "YOUR_AUTH_TOKEN",
            "your-auth-token",
            "changeme",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "<your token>",
            "placeholder",
            "00000000000000000000000000000000",
            "SKxxxx",
            "+1415xxxxxxx",
            "token",
            "...",
        ] {
            assert!(is_placeholder(p), "{p} should be a placeholder");
        }
    }

    #[test]
    fn real_looking_values_are_not_placeholders() {
        for v in [
            "0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdef",
            "9f86d081884c7d659a2feaa0c55ad015",
            // API key secrets are 32 random letters and digits: four x in a row happen.
            "q7XxXxR2mN8pL4vB6tY1wZ3kJ5hG9fD0",
            "abxxxxcd0123456789ABCDEFGHIJKLMN",
            "",
        ] {
            assert!(!is_placeholder(v), "{v} is not a placeholder");
        }
    }

    #[test]
    fn sid_shapes() {
        assert!(is_sid("AC0123456789abcdef0123456789ABCDEF", "AC"));
        assert!(!is_sid("AC0123456789abcdef0123456789abcde", "AC"), "31 hex");
        assert!(
            !is_sid("MG0123456789abcdef0123456789abcdef", "AC"),
            "wrong prefix"
        );
        assert!(
            !is_sid("AC0123456789abcdef0123456789abcdeg", "AC"),
            "not hex"
        );
        assert!(is_hex32("0123456789abcdef0123456789abcdef"));
        assert!(!is_hex32("0123456789abcdef0123456789abcdef0"));
    }

    #[test]
    fn unreachable_hosts() {
        for u in [
            "http://localhost:5000/x",
            "http://127.0.0.1/x",
            "http://[::1]:5000/x",
            "http://10.1.2.3/x",
            "http://192.168.1.10/x",
            "http://172.16.0.1/x",
            "http://0.0.0.0/x",
            "http://app.localhost/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[fd00::1]/x",
        ] {
            let url = Url::parse(u).unwrap();
            assert!(unreachable_host(&url).is_some(), "{u}");
        }
        for u in [
            "https://abc.ngrok-free.app/x",
            "https://8.8.8.8/x",
            "https://[2001:db8::1]/x",
        ] {
            let url = Url::parse(u).unwrap();
            assert_eq!(unreachable_host(&url), None, "{u}");
        }
    }

    #[test]
    fn e164_numbers() {
        assert!(is_e164("+14155238886"));
        assert!(!is_e164("14155238886"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1415"));
        assert!(!is_e164("+1415523888612345"));
        assert!(!is_e164("+1 415 523 8886"));
    }

    #[test]
    fn listen_hosts() {
        for h in [
            "0.0.0.0",
            "127.0.0.1",
            "::",
            "::1",
            "localhost",
            "my-host.internal",
        ] {
            assert!(is_listen_host(h), "{h}");
        }
        for h in ["0.0.0.0:5000", "http://0.0.0.0", "", "a..b", "-x"] {
            assert!(!is_listen_host(h), "{h}");
        }
    }

    #[test]
    fn numbers_in_range() {
        assert_eq!(parse_number("X", "8", 1, 10), Ok(8));
        assert_eq!(
            parse_number("X", "0", 1, 10),
            Err(Invalid::new(
                "0 is outside 1 to 10",
                "set X to a whole number from 1 to 10"
            ))
        );
        assert_eq!(
            parse_number("X", "-1", 1, 10),
            Err(Invalid::new(
                "\"-1\" is not a whole number",
                "set X to a whole number from 1 to 10"
            ))
        );
    }

    #[test]
    fn long_values_are_shortened_when_shown() {
        let long = "a".repeat(100);
        assert_eq!(shown(&long), format!("\"{}…\"", "a".repeat(60)));
    }
}
