//! Step 1 of the pipeline: is this request really from Twilio?
//!
//! The signature covers the public URL Twilio called, so the URL we check against is the one
//! configured in Twilio (`WEBHOOK_URL`), never what the request line says: behind ngrok or a
//! platform load balancer the scheme, host and port the server sees are not the ones Twilio used.
//! When a check fails, [`Diagnosis`] explains the likely cause for the operator (a different public
//! URL in `Host`/`X-Forwarded-*`, a placeholder token) without logging the token or a signature.

use http::HeaderMap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use twilio_signature::{FormBody, SignatureError, Validator};

/// Header carrying Twilio's signature.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The key a request was checked with, for [`diagnose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    /// `TWILIO_AUTH_TOKEN` (HMAC-SHA1, every webhook without a settings header).
    AuthToken {
        /// The configured token looks like a placeholder.
        placeholder: bool,
        /// `TWILIO_AUTH_TOKEN_SECONDARY` was tried too.
        secondary: bool,
    },
    /// `TWILIO_WEBHOOK_SHARED_KEY` (HMAC-SHA256, announced by the settings header).
    SharedKey {
        /// The configured secret looks like a placeholder.
        placeholder: bool,
    },
}

impl KeyUsed {
    /// The setting that holds this key.
    pub fn setting(self) -> &'static str {
        match self {
            KeyUsed::AuthToken { .. } => "TWILIO_AUTH_TOKEN",
            KeyUsed::SharedKey { .. } => "TWILIO_WEBHOOK_SHARED_KEY",
        }
    }
}

/// How the server finds the URL a request was signed for.
#[derive(Debug)]
pub struct PublicUrl {
    configured: Option<String>,
    warned: AtomicBool,
}

impl PublicUrl {
    /// `configured` is the exact URL set in Twilio for this endpoint (`None` in development
    /// without `WEBHOOK_URL`: the URL is then rebuilt from the request's headers).
    pub fn new(configured: Option<String>) -> Self {
        PublicUrl {
            configured,
            warned: AtomicBool::new(false),
        }
    }

    /// The URL to validate `path_and_query` against (borrowed from the configuration unless the
    /// request adds a query).
    ///
    /// Twilio signs the URL it actually requested, whose query can differ from the configured
    /// URL's: `bodySHA256` on JSON webhooks, the `ref` marker our sends add to the status
    /// callback URL (after the configured URL's own query, before its `#fragment`). Proxies
    /// pass the query through, so the request's query replaces the configured one
    /// ([`twilio_signature::signed_url`]); without one the configured URL is used as it is.
    pub fn resolve(&self, headers: &HeaderMap, path_and_query: &str) -> Option<Cow<'_, str>> {
        let query = path_and_query
            .split_once('?')
            .map(|(_, q)| q)
            .filter(|q| !q.is_empty());
        match &self.configured {
            Some(url) => Some(twilio_signature::signed_url(url, query)),
            None => {
                let rebuilt = rebuild_from_headers(headers, path_and_query)?;
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        url = %config::redact_url(&rebuilt),
                        "⚠️ WEBHOOK_URL is not set: validating signatures against a URL rebuilt from Host/X-Forwarded-Proto; set WEBHOOK_URL to the URL configured in Twilio"
                    );
                }
                Some(Cow::Owned(rebuilt))
            }
        }
    }
}

impl PublicUrl {
    /// The public URL of another path on this server: the configured URL's origin (scheme,
    /// userinfo, host, port) with `path_and_query`, or without a configured URL the one rebuilt
    /// from the request's headers. For a request that came to a path no route takes.
    pub fn at_path(&self, headers: &HeaderMap, path_and_query: &str) -> Option<String> {
        match &self.configured {
            Some(url) => {
                let start = url.find("://").map_or(0, |i| i + 3);
                let end = url[start..]
                    .find(['/', '?', '#'])
                    .map_or(url.len(), |i| start + i);
                Some(format!("{}{path_and_query}", &url[..end]))
            }
            None => rebuild_from_headers(headers, path_and_query),
        }
    }
}

/// `url` with its path's trailing slash as the request has it, when the two differ: Twilio
/// signs the URL it requests, and a Console URL (or status callback URL) that differs from the
/// one configured here only by a trailing slash reaches the same endpoint. `None` when they
/// already agree.
pub fn slash_as_requested(url: &str, path_and_query: &str) -> Option<String> {
    let request_path = path_and_query.split('?').next().unwrap_or(path_and_query);
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let (base, rest) = url.split_at(end);
    let path_start = base.find("://").map_or(0, |i| i + 3);
    let has_path = |b: &str| b.get(path_start..).is_some_and(|p| p.contains('/'));
    match (
        request_path.len() > 1 && request_path.ends_with('/'),
        base.ends_with('/'),
    ) {
        (true, false) if has_path(base) => Some(format!("{base}/{rest}")),
        (false, true) => {
            let trimmed = &base[..base.len() - 1];
            has_path(trimmed).then(|| format!("{trimmed}{rest}"))
        }
        _ => None,
    }
}

/// `X-Forwarded-Proto`://`X-Forwarded-Host` or `Host` + path, as a proxy-aware guess of the public URL.
/// `None` when the host is missing or is not a host (with an optional port), or the scheme is
/// not a scheme: headers are the client's words, and only a URL can be checked against.
pub fn rebuild_from_headers(headers: &HeaderMap, path_and_query: &str) -> Option<String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or(v).trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let host = get("x-forwarded-host")
        .or_else(|| get("host"))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
        })?;
    let proto = get("x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
    let scheme = proto.bytes().enumerate().all(|(i, b)| {
        b.is_ascii_alphabetic() || (i > 0 && (b.is_ascii_digit() || b"+-.".contains(&b)))
    });
    scheme.then(|| format!("{proto}://{host}{path_and_query}"))
}

/// Checks the request's signature; JSON bodies (with `bodySHA256` in the URL) take the body-hash path.
pub fn check(
    validator: &Validator,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    check_and_decode(validator, url, headers, body).map(drop)
}

/// Checks the request's signature like [`check`] and, for a form webhook, returns the parameters
/// the signature covered, decoded once for both the check and the parser
/// ([`inbound::form_pairs`](crate::inbound::form_pairs)). `Ok(None)` is a valid JSON webhook,
/// whose body is parsed as JSON.
pub fn check_and_decode(
    validator: &Validator,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<FormBody>, SignatureError> {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if url.contains("bodySHA256=") {
        validator
            .validate_json_body(url, body, signature)
            .map(|()| None)
    } else {
        validator
            .validated_form_body(url, body, signature)
            .map(Some)
    }
}

/// What an operator needs to know about a rejected request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The URL the signature was checked against.
    pub checked_url: String,
    /// The public URL the request's headers suggest, when it differs from `checked_url`.
    pub request_suggests: Option<String>,
    /// One sentence on the most likely cause.
    pub hint: &'static str,
}

/// `url` without the `user:password@` of its authority.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The fix when the key a request was checked with is a placeholder; `None` otherwise.
pub fn placeholder_hint(key: KeyUsed) -> Option<&'static str> {
    match key {
        KeyUsed::AuthToken {
            placeholder: true, ..
        } => {
            Some("TWILIO_AUTH_TOKEN is a placeholder: copy the Auth Token from the Twilio Console")
        }
        KeyUsed::SharedKey { placeholder: true } => Some(
            "TWILIO_WEBHOOK_SHARED_KEY is a placeholder: set it to the secret of the shared key your Webhook Rule signs with",
        ),
        _ => None,
    }
}

/// Explains a signature failure (never includes the token or any signature).
pub fn diagnose(
    error: &SignatureError,
    checked_url: &str,
    headers: &HeaderMap,
    path_and_query: &str,
    key: KeyUsed,
) -> Diagnosis {
    let suggested = rebuild_from_headers(headers, path_and_query);
    // Compared without query, fragment and trailing slash: the signature was checked both
    // ways for the slash.
    let comparable = |u: &str| {
        let base = u.split(['?', '#']).next().unwrap_or(u);
        base.strip_suffix('/').unwrap_or(base).to_owned()
    };
    // Requests never carry the user:password@ of a URL (Twilio sends it as basic auth), so
    // it does not count as a difference.
    let differs = suggested
        .as_deref()
        .is_some_and(|s| comparable(s) != comparable(&without_userinfo(checked_url)));
    let hint = if let Some(hint) = placeholder_hint(key) {
        hint
    } else if matches!(error, SignatureError::InvalidBody { .. }) {
        "the body is not what Twilio sends (UTF-8 form data, or JSON with bodySHA256 in the URL), so no signature can cover it: the request did not come from Twilio, or a proxy re-encoded the body"
    } else if matches!(error, SignatureError::Missing) {
        "the request has no X-Twilio-Signature header: it did not come from Twilio (or a proxy stripped the header)"
    } else if matches!(error, SignatureError::Malformed) {
        let length = headers.get("x-twilio-signature").map(|v| v.len());
        if length == Some(44) && matches!(key, KeyUsed::AuthToken { .. }) {
            "X-Twilio-Signature has 44 characters, an HMAC-SHA256 (shared-key) signature, but the request has no X-Twilio-Webhooks-Signature-Settings header: a proxy dropped it, or the request did not come from Twilio"
        } else {
            "X-Twilio-Signature is not a Twilio signature (28 base64 characters with the auth token, 44 with a shared key): the request did not come from Twilio, or something rewrote the header"
        }
    } else if differs {
        "the request arrived for a different public URL than WEBHOOK_URL: set WEBHOOK_URL to exactly the URL configured in the Twilio Console (scheme, host, path)"
    } else if matches!(key, KeyUsed::SharedKey { .. }) {
        "the URL matches but the signature does not: check that TWILIO_WEBHOOK_SHARED_KEY is the secret of the shared key the request names (key_id)"
    } else if matches!(
        key,
        KeyUsed::AuthToken {
            secondary: true,
            ..
        }
    ) {
        "the URL matches but the signature matches neither TWILIO_AUTH_TOKEN nor TWILIO_AUTH_TOKEN_SECONDARY: check that they are the current tokens of the account (or sub-account) that owns the number"
    } else {
        "the URL matches but the signature does not: check that TWILIO_AUTH_TOKEN is the current token (promoting a secondary token replaces it) of the account (or sub-account) that owns the number"
    };
    Diagnosis {
        checked_url: config::redact_url(checked_url),
        request_suggests: suggested
            .filter(|_| differs)
            .map(|u| config::redact_url(&u)),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn configured_url_wins_over_headers_and_keeps_request_query() {
        let p = PublicUrl::new(Some(
            "https://bot.example.com/api/v1/whatsapp/webhook".into(),
        ));
        let h = headers(&[("host", "127.0.0.1:5000")]);
        assert_eq!(
            p.resolve(&h, "/api/v1/whatsapp/webhook").unwrap(),
            "https://bot.example.com/api/v1/whatsapp/webhook"
        );
        assert_eq!(
            p.resolve(&h, "/api/v1/whatsapp/webhook?bodySHA256=ab")
                .unwrap(),
            "https://bot.example.com/api/v1/whatsapp/webhook?bodySHA256=ab"
        );
    }

    /// STATUS_CALLBACK_URL may carry its own query and Twilio's `#fragment` overrides; our sends
    /// add `ref=` after that query and before the fragment, and Twilio signs what it requested.
    #[test]
    fn a_configured_query_or_fragment_keeps_the_request_s_ref_marker() {
        let h = HeaderMap::new();
        let with_query = PublicUrl::new(Some(
            "https://bot.example.com/api/v1/whatsapp/status?src=twilio".into(),
        ));
        assert_eq!(
            with_query
                .resolve(&h, "/api/v1/whatsapp/status?src=twilio&ref=reSM1")
                .unwrap(),
            "https://bot.example.com/api/v1/whatsapp/status?src=twilio&ref=reSM1"
        );
        assert_eq!(
            with_query.resolve(&h, "/api/v1/whatsapp/status").unwrap(),
            "https://bot.example.com/api/v1/whatsapp/status?src=twilio"
        );
        let with_fragment = PublicUrl::new(Some(
            "https://bot.example.com/api/v1/whatsapp/status#rc=3&rp=all".into(),
        ));
        assert_eq!(
            with_fragment
                .resolve(&h, "/api/v1/whatsapp/status?ref=reSM1")
                .unwrap(),
            "https://bot.example.com/api/v1/whatsapp/status?ref=reSM1#rc=3&rp=all"
        );
    }

    #[test]
    fn rebuilds_from_forwarded_headers_in_development() {
        let p = PublicUrl::new(None);
        let h = headers(&[
            ("host", "localhost:5000"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "abc.ngrok-free.app"),
        ]);
        assert_eq!(
            p.resolve(&h, "/api/v1/whatsapp/webhook").unwrap(),
            "https://abc.ngrok-free.app/api/v1/whatsapp/webhook"
        );
        assert_eq!(p.resolve(&HeaderMap::new(), "/x"), None);
    }

    #[test]
    fn headers_that_are_not_a_host_or_a_scheme_rebuild_no_url() {
        for (name, value) in [
            ("host", "#"),
            ("host", "a/b"),
            ("host", "a?b"),
            ("host", "user@host"),
            ("x-forwarded-host", "#frag"),
            ("x-forwarded-proto", "java script"),
            ("x-forwarded-proto", "1http"),
        ] {
            let mut h = headers(&[("host", "bot.example.com")]);
            h.insert(name, value.parse().unwrap());
            assert_eq!(rebuild_from_headers(&h, "/x"), None, "{name}: {value}");
        }
        let h = headers(&[("host", "[::1]:8080"), ("x-forwarded-proto", "https")]);
        assert_eq!(
            rebuild_from_headers(&h, "/x").as_deref(),
            Some("https://[::1]:8080/x")
        );
    }

    #[test]
    fn diagnosis_points_at_the_url_mismatch() {
        let h = headers(&[
            ("host", "abc.ngrok-free.app"),
            ("x-forwarded-proto", "https"),
        ]);
        let d = diagnose(
            &SignatureError::Mismatch,
            "https://old.ngrok-free.app/api/v1/whatsapp/webhook",
            &h,
            "/api/v1/whatsapp/webhook",
            TOKEN,
        );
        assert_eq!(
            d.request_suggests.as_deref(),
            Some("https://abc.ngrok-free.app/api/v1/whatsapp/webhook")
        );
        assert!(d.hint.contains("different public URL"));
        let same = diagnose(
            &SignatureError::Mismatch,
            "https://abc.ngrok-free.app/api/v1/whatsapp/webhook",
            &h,
            "/api/v1/whatsapp/webhook",
            TOKEN,
        );
        assert_eq!(same.request_suggests, None);
        assert!(same.hint.contains("TWILIO_AUTH_TOKEN is the current token"));
        // A body that is not UTF-8 form data was never signed by Twilio: the token and the URL
        // are not the suspects, whatever the headers suggest.
        for url in [
            "https://abc.ngrok-free.app/api/v1/whatsapp/webhook",
            "https://old.ngrok-free.app/api/v1/whatsapp/webhook",
        ] {
            let body = diagnose(
                &SignatureError::InvalidBody {
                    reason: "not UTF-8",
                },
                url,
                &h,
                "/api/v1/whatsapp/webhook",
                TOKEN,
            );
            assert!(body.hint.contains("not what Twilio sends"), "{}", body.hint);
        }
        // A trailing slash is not a different URL: the signature was checked both ways.
        let slash = diagnose(
            &SignatureError::Mismatch,
            "https://abc.ngrok-free.app/api/v1/whatsapp/webhook",
            &h,
            "/api/v1/whatsapp/webhook/",
            TOKEN,
        );
        assert_eq!(slash.request_suggests, None);
        assert!(slash.hint.contains("the URL matches"), "{}", slash.hint);
        let placeholder = diagnose(
            &SignatureError::Mismatch,
            "x",
            &h,
            "/",
            KeyUsed::AuthToken {
                placeholder: true,
                secondary: false,
            },
        );
        assert!(
            placeholder
                .hint
                .contains("TWILIO_AUTH_TOKEN is a placeholder")
        );
    }

    #[test]
    fn a_password_in_webhook_url_is_not_logged_nor_taken_for_another_url() {
        let h = headers(&[("host", "bot.example.com"), ("x-forwarded-proto", "https")]);
        let d = diagnose(
            &SignatureError::Mismatch,
            "https://twilio:hunter2pw@bot.example.com/api/v1/whatsapp/webhook",
            &h,
            "/api/v1/whatsapp/webhook",
            TOKEN,
        );
        assert_eq!(
            d.checked_url,
            "https://twilio:***@bot.example.com/api/v1/whatsapp/webhook"
        );
        assert_eq!(d.request_suggests, None);
        assert!(d.hint.contains("the URL matches"), "{}", d.hint);

        // The URL the request suggests hides a secret in its query like the checked one.
        let moved = headers(&[
            ("host", "new.ngrok-free.app"),
            ("x-forwarded-proto", "https"),
        ]);
        let d = diagnose(
            &SignatureError::Mismatch,
            "https://old.ngrok-free.app/api/v1/whatsapp/webhook?token=TokSecret4242",
            &moved,
            "/api/v1/whatsapp/webhook?token=TokSecret4242",
            TOKEN,
        );
        let suggests = d.request_suggests.unwrap();
        assert!(!suggests.contains("TokSecret4242"), "{suggests}");
        assert!(
            suggests.starts_with("https://new.ngrok-free.app/"),
            "{suggests}"
        );
    }

    #[test]
    fn another_path_keeps_the_configured_origin() {
        let p = PublicUrl::new(Some(
            "https://u:p@bot.example.com:8443/api/v1/whatsapp/webhook?x=1".into(),
        ));
        assert_eq!(
            p.at_path(&HeaderMap::new(), "/hooks/whatsapp?a=b")
                .as_deref(),
            Some("https://u:p@bot.example.com:8443/hooks/whatsapp?a=b")
        );
        let bare = PublicUrl::new(Some("https://bot.example.com".into()));
        assert_eq!(
            bare.at_path(&HeaderMap::new(), "/x").as_deref(),
            Some("https://bot.example.com/x")
        );
        let dev = PublicUrl::new(None);
        let h = headers(&[
            ("host", "abc.ngrok-free.app"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            dev.at_path(&h, "/x").as_deref(),
            Some("https://abc.ngrok-free.app/x")
        );
    }

    #[test]
    fn the_url_is_checked_with_the_trailing_slash_the_request_has() {
        let status = "https://bot.example.com/api/v1/whatsapp/status";
        let slashed = "https://bot.example.com/api/v1/whatsapp/status/";
        assert_eq!(
            slash_as_requested(status, "/api/v1/whatsapp/status/").as_deref(),
            Some(slashed)
        );
        assert_eq!(
            slash_as_requested(slashed, "/api/v1/whatsapp/status").as_deref(),
            Some(status)
        );
        assert_eq!(
            slash_as_requested(
                &format!("{status}?ref=a1#rc=3"),
                "/api/v1/whatsapp/status/?ref=a1"
            )
            .as_deref(),
            Some("https://bot.example.com/api/v1/whatsapp/status/?ref=a1#rc=3")
        );
        assert_eq!(
            slash_as_requested(
                &format!("{slashed}?ref=a1"),
                "/api/v1/whatsapp/status?ref=a1"
            )
            .as_deref(),
            Some("https://bot.example.com/api/v1/whatsapp/status?ref=a1")
        );
        // Already the same, or nothing to add or remove.
        assert_eq!(slash_as_requested(status, "/api/v1/whatsapp/status"), None);
        assert_eq!(
            slash_as_requested(status, "/api/v1/whatsapp/status?x=/"),
            None
        );
        assert_eq!(
            slash_as_requested(slashed, "/api/v1/whatsapp/status/"),
            None
        );
        assert_eq!(slash_as_requested(status, "/"), None);
        assert_eq!(slash_as_requested("https://bot.example.com/", "/x"), None);
        // Never a panic, whatever is left of the URL before its query or fragment.
        for url in ["http://#/api", "http:/", "x", "", "://", "http://?a=/"] {
            for pq in ["/", "/api/", "/api", "/api?x=1"] {
                let _ = slash_as_requested(url, pq);
            }
        }
        assert_eq!(slash_as_requested("https://bot.example.com", "/x/"), None);
    }

    #[test]
    fn diagnosis_of_a_malformed_header_tells_a_stripped_settings_header_apart() {
        let url = "https://bot.example.com/api/v1/whatsapp/webhook";
        let hint = |signature: &str| {
            let h = headers(&[
                ("host", "bot.example.com"),
                ("x-twilio-signature", signature),
            ]);
            diagnose(
                &SignatureError::Malformed,
                url,
                &h,
                "/api/v1/whatsapp/webhook",
                TOKEN,
            )
            .hint
        };
        let sha256 = twilio_signature::Validator::shared_key("k").sign(url, &[("a", "1")]);
        assert!(hint(&sha256).contains("X-Twilio-Webhooks-Signature-Settings"));
        let garbage = hint("not a signature");
        assert!(garbage.contains("not a Twilio signature"), "{garbage}");
        assert!(!garbage.contains("the URL matches"), "{garbage}");
    }

    const TOKEN: KeyUsed = KeyUsed::AuthToken {
        placeholder: false,
        secondary: false,
    };

    #[test]
    fn diagnosis_of_a_shared_key_request_points_at_the_shared_key() {
        let url = "https://bot.example.com/api/v1/whatsapp/webhook";
        let h = headers(&[("host", "bot.example.com"), ("x-forwarded-proto", "https")]);
        let shared = |placeholder| {
            diagnose(
                &SignatureError::Mismatch,
                url,
                &h,
                "/api/v1/whatsapp/webhook",
                KeyUsed::SharedKey { placeholder },
            )
            .hint
        };
        assert!(shared(false).contains("TWILIO_WEBHOOK_SHARED_KEY is the secret"));
        assert!(shared(true).contains("TWILIO_WEBHOOK_SHARED_KEY is a placeholder"));
        assert!(!shared(false).contains("TWILIO_AUTH_TOKEN"));
    }
}
