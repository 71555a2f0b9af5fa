//! String surgery on the signed URL: the port variants, the fragment-less form and the
//! `bodySHA256` query parameter. Nothing here parses, normalises or re-serialises a URL, because
//! Twilio signs the URL byte for byte as configured.

use std::borrow::Cow;

use crate::form;

/// The name of the query parameter that carries the hex SHA-256 of a JSON webhook's body.
pub(crate) const BODY_SHA256: &str = "bodySHA256";

/// One string to sign, as up to three borrowed pieces; nothing is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate<'a>(pub(crate) [&'a str; 3]);

impl<'a> Candidate<'a> {
    fn whole(url: &'a str) -> Self {
        Self([url, "", ""])
    }

    #[cfg(test)]
    pub(crate) fn concat(&self) -> String {
        self.0.concat()
    }
}

/// `scheme://`, `userinfo@host`, `:port` and the rest of a URL, split the way twilio-node 6.2.0's
/// `splitUrl` does: the authority runs from `scheme://` to the first `/`, `?` or `#`; userinfo
/// ends at its last `@`; the port starts at the first `:` after the last `]` (IPv6 literals).
struct Split<'a> {
    /// Scheme, `://`, userinfo and host.
    head: &'a str,
    /// `:port` (possibly just `:`) or empty.
    port: &'a str,
    /// Path, query and fragment.
    rest: &'a str,
    https: bool,
}

fn split(url: &str) -> Option<Split<'_>> {
    let bytes = url.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    let scheme_len = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')))?;
    if !url[scheme_len..].starts_with("://") {
        return None;
    }
    let authority_start = scheme_len + 3;
    // One pass over the authority: where it ends, and after which `@` or `]` a port colon counts.
    let mut authority_end = url.len();
    let mut search_from = authority_start;
    for (i, &b) in bytes.iter().enumerate().skip(authority_start) {
        match b {
            b'/' | b'?' | b'#' => {
                authority_end = i;
                break;
            }
            b'@' | b']' => search_from = i + 1,
            _ => {}
        }
    }
    let port_start = bytes[search_from..authority_end]
        .iter()
        .position(|&b| b == b':')
        .map_or(authority_end, |i| search_from + i);
    Some(Split {
        head: &url[..port_start],
        port: &url[port_start..authority_end],
        rest: &url[authority_end..],
        https: url[..scheme_len].eq_ignore_ascii_case("https"),
    })
}

/// The other port form of `url`: without its port if it has one (`:8080` included), else with
/// the scheme's default port (`:443` for https, `:80` for anything else). `None` when the URL has
/// no `scheme://` prefix (then there is only the URL itself, as in twilio-node).
fn port_variant(url: &str) -> Option<Candidate<'_>> {
    let s = split(url)?;
    Some(if s.port.is_empty() {
        Candidate([s.head, if s.https { ":443" } else { ":80" }, s.rest])
    } else {
        Candidate([s.head, s.rest, ""])
    })
}

/// Every string Twilio may have signed for `url`, most likely first: the URL as given, its port
/// variant, and when it has a `#fragment`, the same two without the fragment. Each is worked out
/// only when the previous ones did not match.
pub(crate) fn candidates(url: &str) -> Candidates<'_> {
    Candidates {
        url,
        step: 0,
        without_fragment: None,
    }
}

/// Iterator of [`candidates`].
pub(crate) struct Candidates<'a> {
    url: &'a str,
    step: u8,
    without_fragment: Option<&'a str>,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = Candidate<'a>;

    fn next(&mut self) -> Option<Candidate<'a>> {
        loop {
            self.step += 1;
            let next = match self.step {
                1 => Some(Candidate::whole(self.url)),
                2 => port_variant(self.url),
                3 => {
                    self.without_fragment = find(self.url, b'#').map(|i| &self.url[..i]);
                    self.without_fragment.map(Candidate::whole)
                }
                4 => self.without_fragment.and_then(port_variant),
                _ => return None,
            };
            if next.is_some() {
                return next;
            }
        }
    }
}

/// Byte offset of the first `byte` (ASCII) in `s` (`str::find` with a `char` uses `memchr`).
fn find(s: &str, byte: u8) -> Option<usize> {
    s.find(char::from(byte))
}

/// The query string of `url`: after the first `?` and before the first `#`.
fn query(url: &str) -> Option<&str> {
    let start = find(url, b'?')?;
    if find(&url[..start], b'#').is_some() {
        return None;
    }
    let rest = &url[start + 1..];
    Some(find(rest, b'#').map_or(rest, |end| &rest[..end]))
}

/// The first `bodySHA256` query value, form-decoded (`+` is a space, `%XX` a byte), as the SDKs
/// read it with `URLSearchParams.get` / `parse_qs`.
pub(crate) fn body_sha256(url: &str) -> Option<Cow<'_, [u8]>> {
    let query = query(url)?;
    // Fast path: the name can only be present literally or with some letters percent-encoded.
    if !query.contains(BODY_SHA256) && !query.contains('%') {
        return None;
    }
    form::pairs(query.as_bytes())
        .find(|(name, _)| form::decode(name).as_ref() == BODY_SHA256.as_bytes())
        .map(|(_, value)| form::decode(value))
}

/// The URL Twilio signed for a request to `configured_url` whose request line carried
/// `request_query`; see [`crate::signed_url`].
pub(crate) fn with_request_query<'a>(
    configured_url: &'a str,
    request_query: Option<&str>,
) -> Cow<'a, str> {
    let Some(request_query) = request_query else {
        return Cow::Borrowed(configured_url);
    };
    let (before_fragment, fragment) = match configured_url.find('#') {
        Some(i) => configured_url.split_at(i),
        None => (configured_url, ""),
    };
    let base = before_fragment
        .split_once('?')
        .map_or(before_fragment, |(base, _)| base);
    if before_fragment.len() == base.len() + 1 + request_query.len()
        && before_fragment[base.len() + 1..] == *request_query
    {
        return Cow::Borrowed(configured_url);
    }
    Cow::Owned(format!("{base}?{request_query}{fragment}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(url: &str) -> Vec<String> {
        candidates(url).map(|c| c.concat()).collect()
    }

    #[test]
    fn port_variants_by_string_surgery() {
        let cases = [
            ("https://h.com/p?a=1", "https://h.com:443/p?a=1"),
            ("http://h.com/p", "http://h.com:80/p"),
            ("https://h.com:443/p", "https://h.com/p"),
            ("https://h.com:8443/p", "https://h.com/p"),
            ("http://h.com:8080", "http://h.com"),
            ("https://h.com", "https://h.com:443"),
            ("https://h.com?x=1", "https://h.com:443?x=1"),
            ("HTTPS://H.com/p", "HTTPS://H.com:443/p"),
            ("wss://h.com/p", "wss://h.com:80/p"),
            ("https://[::1]:8443/p", "https://[::1]/p"),
            ("https://[::1]/p", "https://[::1]:443/p"),
            ("https://u:p@h.com/p", "https://u:p@h.com:443/p"),
            ("https://u:p@h.com:8443/p", "https://u:p@h.com/p"),
            (
                "https://u@x:p@[fe80::1%25eth0]:99/p",
                "https://u@x:p@[fe80::1%25eth0]/p",
            ),
            ("https://h.com:/p", "https://h.com/p"),
            ("https://h.com/a:b@c:1", "https://h.com:443/a:b@c:1"),
            ("https://h.com#frag:1", "https://h.com:443#frag:1"),
        ];
        for (url, variant) in cases {
            assert_eq!(all(url)[..2], [url.to_owned(), variant.to_owned()], "{url}");
        }
    }

    #[test]
    fn no_scheme_means_no_variant() {
        for url in [
            "",
            "h.com/p",
            "/p?a=1",
            "1http://h",
            "https:/h",
            "ht tp://h",
            "é://h",
        ] {
            assert_eq!(all(url), [url], "{url:?}");
        }
    }

    #[test]
    fn fragment_adds_the_fragmentless_forms_last() {
        assert_eq!(
            all("https://h.com/p?a=1#rc=2"),
            [
                "https://h.com/p?a=1#rc=2",
                "https://h.com:443/p?a=1#rc=2",
                "https://h.com/p?a=1",
                "https://h.com:443/p?a=1",
            ]
        );
    }

    #[test]
    fn body_sha256_is_the_first_decoded_query_value() {
        assert_eq!(
            body_sha256("https://h/p?a=1&bodySHA256=ab%63&bodySHA256=x").as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            body_sha256("https://h/p?body%53HA256=abc").as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            body_sha256("https://h/p?bodySHA256").as_deref(),
            Some(&b""[..])
        );
        assert_eq!(body_sha256("https://h/p?bodysha256=abc"), None);
        assert_eq!(body_sha256("https://h/bodySHA256?a=1"), None);
        assert_eq!(body_sha256("https://h/p#?bodySHA256=abc"), None);
        assert_eq!(body_sha256("https://h/p"), None);
    }

    #[test]
    fn request_query_replaces_the_configured_one() {
        let c = "https://h/p";
        assert_eq!(with_request_query(c, None), c);
        assert_eq!(
            with_request_query(c, Some("bodySHA256=ab")),
            "https://h/p?bodySHA256=ab"
        );
        assert_eq!(
            with_request_query("https://h/p?a=1#rc=2", Some("a=1&From=x")),
            "https://h/p?a=1&From=x#rc=2"
        );
        assert!(matches!(
            with_request_query("https://h/p?a=1", Some("a=1")),
            Cow::Borrowed(_)
        ));
        assert_eq!(with_request_query(c, Some("")), "https://h/p?");
    }
}
