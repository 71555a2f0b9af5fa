//! Signed synthetic inbound messages: build one from a fixture, sign it for WEBHOOK_URL, POST
//! it, and turn the answer into a diagnosis (the seed's "403", "502 from ngrok" and "no
//! requests" flows). Used by the `--online` probe and by `simulate`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::{self, Answer, Failure};

/// Marks a message as a test: the server records it but never answers it, so a check cannot
/// text a real person. Same literal as `webhook_core::reply::PROBE_PARAM` (not imported: the
/// CLI deliberately does not depend on webhook-core).
pub const PROBE_PARAM: &str = "ValidateWebhookProbe";

/// Sample messages built into the binary, by fixture file name.
pub const FIXTURES: &[(&str, &str)] = &[
    (
        "inbound-whatsapp-text.form",
        include_str!("../../../fixtures/inbound-whatsapp-text.form"),
    ),
    (
        "inbound-whatsapp-media.form",
        include_str!("../../../fixtures/inbound-whatsapp-media.form"),
    ),
    (
        "inbound-whatsapp-button.form",
        include_str!("../../../fixtures/inbound-whatsapp-button.form"),
    ),
    (
        "inbound-whatsapp-location.form",
        include_str!("../../../fixtures/inbound-whatsapp-location.form"),
    ),
    (
        "inbound-whatsapp-emoji.form",
        include_str!("../../../fixtures/inbound-whatsapp-emoji.form"),
    ),
    (
        "inbound-whatsapp-long.form",
        include_str!("../../../fixtures/inbound-whatsapp-long.form"),
    ),
];

/// The body of a built-in fixture, by name (with or without `.form`).
pub fn fixture(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".form").unwrap_or(name);
    FIXTURES
        .iter()
        .find(|(n, _)| n.strip_suffix(".form") == Some(name))
        .map(|(_, body)| *body)
}

/// Values that replace the fixture's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `AccountSid` (the configured account, so the server's account check passes).
    pub account_sid: Option<String>,
    /// `To` (the configured WhatsApp sender).
    pub to: Option<String>,
    /// `Body`.
    pub body: Option<String>,
}

/// A message ready to POST.
#[derive(Debug, Clone)]
pub struct SignedMessage {
    /// Form parameters in fixture order, probe marker last.
    pub params: Vec<(String, String)>,
    /// The fresh `MessageSid`.
    pub message_sid: String,
    /// `X-Twilio-Signature` for `signed_for`.
    pub signature: String,
    /// URL the signature was computed over.
    pub signed_for: String,
}

impl SignedMessage {
    /// Builds a message from an urlencoded fixture: a fresh unique `MessageSid` (also in
    /// `SmsMessageSid`/`SmsSid`; added when the fixture has none), the overrides, `ValidateWebhookProbe=1`, signed with
    /// `auth_token` over `signed_for`.
    pub fn build(fixture: &str, overrides: &Overrides, auth_token: &str, signed_for: &str) -> Self {
        let message_sid = fresh_sid(if fixture.contains("MediaUrl0=") {
            "MM"
        } else {
            "SM"
        });
        let mut params: Vec<(String, String)> = form_urlencoded::parse(fixture.trim().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .filter(|(k, _)| k != PROBE_PARAM)
            .collect();
        for (key, value) in &mut params {
            match key.as_str() {
                "MessageSid" | "SmsMessageSid" | "SmsSid" => value.clone_from(&message_sid),
                "AccountSid" => {
                    if let Some(sid) = &overrides.account_sid {
                        value.clone_from(sid);
                    }
                }
                "To" => {
                    if let Some(to) = &overrides.to {
                        value.clone_from(to);
                    }
                }
                "Body" => {
                    if let Some(body) = &overrides.body {
                        value.clone_from(body);
                    }
                }
                _ => {}
            }
        }
        // A custom fixture without one still gets the fresh MessageSid the report names, and
        // the configured AccountSid and To (the server requires AccountSid).
        if !params.iter().any(|(k, _)| k == "MessageSid") {
            params.insert(0, ("MessageSid".to_owned(), message_sid.clone()));
        }
        for (key, value) in [
            ("AccountSid", &overrides.account_sid),
            ("To", &overrides.to),
        ] {
            if let Some(value) = value
                && !params.iter().any(|(k, _)| k == key)
            {
                params.push((key.to_owned(), value.clone()));
            }
        }
        params.push((PROBE_PARAM.to_owned(), "1".to_owned()));
        let signature = twilio_signature::compute_signature(auth_token, signed_for, &params);
        SignedMessage {
            params,
            message_sid,
            signature,
            signed_for: signed_for.to_owned(),
        }
    }

    /// The urlencoded body.
    pub fn body(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.params.iter())
            .finish()
    }

    /// A signature that cannot be valid: the right one with its first character changed.
    pub fn tampered_signature(&self) -> String {
        let mut chars: Vec<char> = self.signature.chars().collect();
        if let Some(first) = chars.first_mut() {
            *first = if *first == 'A' { 'B' } else { 'A' };
        }
        chars.into_iter().collect()
    }

    /// POSTs the message to `target` with `signature`, the way Twilio would.
    pub fn post(
        &self,
        target: &str,
        signature: &str,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let local = url::Url::parse(target)
            .ok()
            .and_then(|u| u.host_str().map(crate::http::is_loopback))
            .unwrap_or(false);
        let agent = http::agent(timeout, local);
        let token = fresh_sid("");
        http::post_form(
            &agent,
            target,
            &self.body(),
            &[
                ("X-Twilio-Signature", signature),
                ("I-Twilio-Idempotency-Token", &token),
            ],
        )
    }
}

/// `prefix` + 32 lowercase hex digits, different on every call and in every process.
pub fn fresh_sid(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // RandomState is seeded randomly per process: two hashes give 128 unpredictable bits.
    let state = RandomState::new();
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut h = state.build_hasher();
        h.write_u128(nanos);
        h.write_u64(n);
        h.write_u32(std::process::id());
        h.write_usize(i);
        *word = h.finish();
    }
    format!("{prefix}{:016x}{:016x}", words[0], words[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    const URL: &str = "https://example.ngrok-free.app/api/v1/whatsapp/webhook";

    #[test]
    fn built_messages_are_fresh_marked_and_correctly_signed() {
        let overrides = Overrides {
            account_sid: Some("AC00000000000000000000000000000001".into()),
            ..Overrides::default()
        };
        let text = fixture("inbound-whatsapp-text").expect("fixture");
        let a = SignedMessage::build(text, &overrides, TOKEN, URL);
        let b = SignedMessage::build(text, &overrides, TOKEN, URL);
        assert_ne!(a.message_sid, b.message_sid);
        assert!(a.message_sid.starts_with("SM") && a.message_sid.len() == 34);
        let get = |k: &str| {
            a.params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("MessageSid"), Some(a.message_sid.as_str()));
        assert_eq!(get("SmsSid"), Some(a.message_sid.as_str()));
        assert_eq!(
            get("AccountSid"),
            Some("AC00000000000000000000000000000001")
        );
        assert_eq!(get(PROBE_PARAM), Some("1"));
        let v = twilio_signature::Validator::new(TOKEN);
        assert!(
            v.validate_form_body(URL, a.body().as_bytes(), &a.signature)
                .is_ok()
        );
        assert!(
            v.validate_form_body(URL, a.body().as_bytes(), &a.tampered_signature())
                .is_err()
        );
        assert!(
            v.validate_form_body(
                "https://other.example/api/v1/whatsapp/webhook",
                a.body().as_bytes(),
                &a.signature
            )
            .is_err()
        );
    }

    #[test]
    fn a_fixture_without_a_message_sid_gets_the_fresh_one() {
        let m = SignedMessage::build(
            "Body=hi&From=whatsapp%3A%2B1555",
            &Overrides::default(),
            TOKEN,
            URL,
        );
        assert_eq!(
            m.params.first(),
            Some(&("MessageSid".to_owned(), m.message_sid.clone()))
        );
        assert!(
            m.body()
                .starts_with(&format!("MessageSid={}&Body=hi", m.message_sid))
        );
    }

    #[test]
    fn a_fixture_without_account_sid_or_to_gets_the_configured_ones() {
        let overrides = Overrides {
            account_sid: Some("AC0123456789abcdef0123456789abcdef".to_owned()),
            to: Some("whatsapp:+14155238886".to_owned()),
            ..Overrides::default()
        };
        let m = SignedMessage::build("Body=hi&From=whatsapp%3A%2B1555", &overrides, TOKEN, URL);
        let value = |key: &str| {
            m.params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(value("AccountSid"), overrides.account_sid.as_deref());
        assert_eq!(value("To"), overrides.to.as_deref());
        assert!(
            twilio_signature::Validator::new(TOKEN)
                .validate_form_body(URL, m.body().as_bytes(), &m.signature)
                .is_ok()
        );
    }

    #[test]
    fn every_built_in_sample_signs_and_validates() {
        let v = twilio_signature::Validator::new(TOKEN);
        for (name, body) in FIXTURES {
            let m = SignedMessage::build(body, &Overrides::default(), TOKEN, URL);
            assert!(
                v.validate_form_body(URL, m.body().as_bytes(), &m.signature)
                    .is_ok(),
                "{name}"
            );
            assert!(m.params.len() > 5, "{name} parsed to {:?}", m.params);
        }
    }

    #[test]
    fn media_fixture_gets_an_mm_sid() {
        let m = SignedMessage::build(
            fixture("inbound-whatsapp-media.form").expect("fixture"),
            &Overrides::default(),
            TOKEN,
            URL,
        );
        assert!(m.message_sid.starts_with("MM"));
    }
}
