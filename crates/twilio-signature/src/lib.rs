//! Validate Twilio webhook signatures (`X-Twilio-Signature`): a pure, constant-time,
//! never-panicking implementation of the rules Twilio's official SDKs follow.
//!
//! # Quick start
//!
//! ```
//! use twilio_signature::{SignatureError, Validator};
//!
//! // Once, at start-up: the auth token of the account that owns the number.
//! let validator = Validator::new("0123456789abcdef0123456789abcdef");
//!
//! // Per request: the URL exactly as configured in Twilio, the raw form body, and the header.
//! let url = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook";
//! let body = b"SmsMessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f809&NumMedia=0&ProfileName=Ana+Souza\
//!     &MessageType=text&SmsSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f809&WaId=15551234567\
//!     &SmsStatus=received&Body=Hello%2C+I+need+help+with+my+order+%231234\
//!     &To=whatsapp%3A%2B14155238886&NumSegments=1&ReferralNumMedia=0\
//!     &MessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f809&AccountSid=AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e\
//!     &From=whatsapp%3A%2B15551234567&ApiVersion=2010-04-01";
//! let header = "jnjxCJgdmi0DAqQOnv4F4B6gPlU=";
//!
//! assert_eq!(validator.validate_form_body(url, body, header), Ok(()));
//! assert_eq!(validator.validate_form_body(url, &body[1..], header), Err(SignatureError::Mismatch));
//! // Answer 403 on any error; the message says why without revealing the expected signature.
//! ```
//!
//! # The algorithm in five lines
//!
//! 1. Start from the URL exactly as Twilio requested it (query kept verbatim, never re-encoded).
//! 2. Append each distinct parameter name in ascending byte order and, for each of its distinct
//!    values in ascending byte order, `name` then `value` (empty values still add the name).
//! 3. HMAC-SHA1 it with the auth token (HMAC-SHA256 with a shared key) and base64 it, padded.
//! 4. Accept if it equals the header in constant time for the URL as given or for its port
//!    variant (`:443`/`:80` added when absent, the port removed when present).
//! 5. JSON webhooks sign the URL only; its `bodySHA256` query value must also equal the
//!    lowercase hex SHA-256 of the raw body.
//!
//! When the URL has a `#fragment` (Twilio's connection overrides such as `#rc=2`), the same two
//! variants of the fragment-less URL are tried as well: the SDKs sign whatever string they are
//! given, and whether Twilio's back end keeps the fragment is not documented.
//!
//! # Why the URL must be the one configured in Twilio
//!
//! The URL is the first part of the signed string, so it must be byte-for-byte what Twilio
//! used: the public `https://` URL with the public host and the path as configured in the
//! console. Behind a proxy, load balancer, ngrok or a PaaS router, the URL your server sees
//! (`http://10.0.0.5:8080/webhook`) is not that URL, and rebuilding it from `Host` and
//! `X-Forwarded-*` headers trusts headers an attacker can set. Configure the public URL
//! (e.g. `WEBHOOK_URL`) and pass it here; for GET and JSON webhooks, where Twilio adds query
//! parameters, [`signed_url`] combines it with the request's query string.
//!
//! # What this crate deliberately does not do
//!
//! - No I/O, no async, no framework: the optional `http` feature only reads an
//!   `http::Request`'s headers and URI query; reading the body is the caller's job (cap it, e.g.
//!   64 KiB).
//! - No URL normalisation (case, percent-encoding, dot segments) and no guessing from `Host` or
//!   `X-Forwarded-*`: a lenient match is a wider attack surface and hides misconfiguration.
//! - No replay protection: Twilio's signature has no timestamp or nonce. De-duplicate on
//!   `MessageSid` / `I-Twilio-Idempotency-Token` in your storage.
//! - No logging and no secrets in errors or `Debug` output.
//!
//! # Layout
//!
//! - [`Validator`] (`validator.rs`): the keyed MAC and the `validate*` entry points.
//! - [`FormBody`] (`form.rs`): a decoded form body, shared by the signature check and the caller
//!   ([`Validator::validated_form_body`]) so a request is decoded once.
//! - [`compute_signature`], [`string_to_sign`], [`signed_url`], [`body_sha256_hex`]: free helpers.
//! - [`Algorithm`], [`SignatureSettings`] (`algorithm.rs`): SHA-1 vs shared-key SHA-256.
//! - [`SignatureError`] (`error.rs`): why a request was refused.
//! - `url.rs` (port/fragment variants, `bodySHA256`), `params.rs` (sorted parameter tail),
//!   `form.rs` (strict form decoding), `mac.rs` (HMAC and base64), `http.rs` (feature `http`).
//!
//! # Features
//!
//! - `http` (off by default): `Validator::validate_http_request` and
//!   `Validator::validate_http_parts` for hyper/axum services, taking an `http::Request` (or its
//!   parts and the collected body) and the configured URL.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
mod error;
mod form;
#[cfg(feature = "http")]
mod http;
mod mac;
mod params;
mod url;
mod validator;

use std::borrow::Cow;

pub use algorithm::{Algorithm, SignatureSettings};
pub use error::SignatureError;
pub use form::FormBody;
pub use validator::Validator;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The request header naming the shared key and algorithm of shared-key webhooks.
pub const SIGNATURE_SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";

/// The signature Twilio sends for `url` and `params` with the account's auth token
/// (HMAC-SHA1, padded base64), for exactly the URL given.
///
/// ```
/// let params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
///               ("From", "+12349013030"), ("To", "+18005551212")];
/// assert_eq!(
///     twilio_signature::compute_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
///     "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
/// );
/// ```
pub fn compute_signature<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> String {
    Validator::new(auth_token).sign(url, params)
}

/// The exact string that is signed for `url` and `params`: the URL, then each distinct
/// `key` + `value` in byte order. Useful to see why two parties disagree; it contains the
/// request's data, so treat it like the request when logging.
///
/// ```
/// assert_eq!(
///     twilio_signature::string_to_sign("https://h/p?x=1", &[("b", "2"), ("a", ""), ("b", "1"), ("b", "2")]),
///     "https://h/p?x=1ab1b2"
/// );
/// ```
pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(url: &str, params: &[(K, V)]) -> String {
    let mut tail = Vec::new();
    params::write_tail(params, &mut tail);
    let mut out = String::with_capacity(url.len() + tail.len());
    out.push_str(url);
    // The tail is concatenated `&str`s, so it is UTF-8.
    out.push_str(&String::from_utf8_lossy(&tail));
    out
}

/// The lowercase hex SHA-256 of a body, as Twilio puts it in a JSON webhook's `bodySHA256`.
///
/// ```
/// assert_eq!(
///     twilio_signature::body_sha256_hex(b"{}"),
///     "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
/// );
/// ```
pub fn body_sha256_hex(body: &[u8]) -> String {
    mac::sha256_hex(body)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// The URL Twilio signed for a request to `configured_url` whose request line carried the query
/// string `request_query` (`None` when it had no `?`).
///
/// Twilio adds query parameters to the configured URL for GET webhooks (every parameter) and
/// JSON webhooks (`bodySHA256`). Proxies rewrite scheme, host and path but pass the query
/// through byte for byte, so the signed URL is the configured one with its query replaced by the
/// request's (its `#fragment`, if any, kept). Without a request query the configured URL is
/// returned unchanged.
///
/// ```
/// use twilio_signature::signed_url;
/// let configured = "https://example.com/api/v1/whatsapp/webhook";
/// assert_eq!(signed_url(configured, None), configured);
/// assert_eq!(
///     signed_url(configured, Some("bodySHA256=44136f")),
///     "https://example.com/api/v1/whatsapp/webhook?bodySHA256=44136f"
/// );
/// ```
pub fn signed_url<'a>(configured_url: &'a str, request_query: Option<&str>) -> Cow<'a, str> {
    url::with_request_query(configured_url, request_query)
}

/// The README's code blocks, compiled and run as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
