//! The shared `fixtures/` payloads against the typed parsers and the signature check.
//!
//! Every `.form` file in `fixtures/` must be signed in `fixtures/signatures.json` or
//! `fixtures/signatures-extra.json`, must verify with `twilio-signature` exactly as the server
//! verifies a request, and must parse into the type the server builds from it
//! (`inbound-*` → [`InboundMessage`], `status-*` → [`StatusCallback`]) with the field values
//! asserted here. A fixture added without a test, or changed without updating its signature,
//! fails this binary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use twilio_signature::Validator;
use webhook_core::{InboundMessage, StatusCallback};

const ACCOUNT_SID: &str = "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e";
const USER: &str = "whatsapp:+15551234567";
const SANDBOX: &str = "whatsapp:+14155238886";

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read(name: &str) -> String {
    let path = fixtures_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

fn inbound(name: &str) -> InboundMessage {
    InboundMessage::from_form(read(name).as_bytes())
        .unwrap_or_else(|e| panic!("{name} does not parse as an inbound message: {e}"))
}

fn status(name: &str) -> StatusCallback {
    StatusCallback::from_form(read(name).as_bytes())
        .unwrap_or_else(|e| panic!("{name} does not parse as a status callback: {e}"))
}

/// One signed fixture: the URL it was signed for and the expected `X-Twilio-Signature`.
#[derive(Debug)]
struct Signed {
    token: String,
    url: String,
    signature: String,
}

/// Every fixture of `signatures.json` and `signatures-extra.json`, by file name.
fn signed_fixtures() -> BTreeMap<String, Signed> {
    let mut out = BTreeMap::new();
    for file in ["signatures.json", "signatures-extra.json"] {
        let doc: serde_json::Value =
            serde_json::from_str(&read(file)).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        let token = doc["auth_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: auth_token missing"))
            .to_owned();
        let entries = doc["fixtures"]
            .as_object()
            .unwrap_or_else(|| panic!("{file}: fixtures missing"));
        for (name, entry) in entries {
            let field = |key: &str| {
                entry[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: {name}.{key} missing"))
                    .to_owned()
            };
            let previous = out.insert(
                name.clone(),
                Signed {
                    token: token.clone(),
                    url: field("url"),
                    signature: field("x_twilio_signature"),
                },
            );
            assert!(previous.is_none(), "{name} is signed in two files");
        }
    }
    out
}

fn form_fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/ is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".form"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_form_fixture_is_signed_and_verifies_like_the_server_checks_it() {
    let signed = signed_fixtures();
    let names = form_fixture_names();
    assert!(
        names.len() >= 14,
        "expected the full fixture set, found {names:?}"
    );
    for name in &names {
        let s = signed.get(name).unwrap_or_else(|| {
            panic!("{name} has no entry in signatures.json or signatures-extra.json")
        });
        let body = read(name);
        let validator = Validator::new(&s.token);
        let expected_path = if name.starts_with("status-") {
            "/api/v1/whatsapp/status"
        } else {
            "/api/v1/whatsapp/webhook"
        };
        assert!(
            s.url.ends_with(expected_path),
            "{name} is signed for {}, not for the server's {expected_path}",
            s.url
        );
        validator
            .validate_form_body(&s.url, body.as_bytes(), &s.signature)
            .unwrap_or_else(|e| panic!("{name}: signature does not verify: {e}"));

        // The same signature must not carry another body, URL or token.
        let tampered = format!("{body}&Injected=1");
        assert!(
            validator
                .validate_form_body(&s.url, tampered.as_bytes(), &s.signature)
                .is_err(),
            "{name}: an extra parameter was accepted"
        );
        let http_url = s.url.replacen("https://", "http://", 1);
        assert!(
            validator
                .validate_form_body(&http_url, body.as_bytes(), &s.signature)
                .is_err(),
            "{name}: the http:// URL was accepted"
        );
        assert!(
            Validator::new("ffffffffffffffffffffffffffffffff")
                .validate_form_body(&s.url, body.as_bytes(), &s.signature)
                .is_err(),
            "{name}: another token was accepted"
        );
    }
    for name in signed.keys() {
        assert!(
            names.contains(name),
            "{name} is signed but is not a file in fixtures/"
        );
    }
}

#[test]
fn every_form_fixture_parses_into_the_type_the_server_builds() {
    for name in form_fixture_names() {
        if name.starts_with("inbound-") {
            let m = inbound(&name);
            assert_eq!(m.account_sid, ACCOUNT_SID, "{name}");
            assert_eq!(m.to, SANDBOX, "{name}");
        } else if name.starts_with("status-") {
            let cb = status(&name);
            assert_eq!(cb.to.as_deref(), Some(USER), "{name}");
        } else {
            panic!("{name}: a .form fixture must start with inbound- or status-");
        }
    }
}

#[test]
fn twilio_documented_vector_verifies() {
    let doc: serde_json::Value = serde_json::from_str(&read("signatures.json")).expect("json");
    let v = &doc["twilio_doc_vector"];
    let params: Vec<(String, String)> = v["params"]
        .as_object()
        .expect("params")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
        .collect();
    let validator = Validator::new(v["auth_token"].as_str().expect("token"));
    let url = v["url"].as_str().expect("url");
    let signature = v["signature"].as_str().expect("signature");
    assert_eq!(signature, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    validator
        .validate(url, &params, signature)
        .expect("Twilio's documented example verifies");
}

#[test]
fn location_message_has_coordinates_address_and_label() {
    let m = inbound("inbound-whatsapp-location.form");
    assert_eq!(m.message_sid, "SM4d7e1a9c3b5f8e2d6a0c4b7e9f1d3a5c");
    assert_eq!(m.from, USER);
    assert_eq!(m.body, "", "a location share has an empty Body");
    assert_eq!(m.message_type.as_deref(), Some("location"));
    assert_eq!(m.kind(), "location");
    assert!(m.media.is_empty() && m.button.is_none());
    let loc = m.location.expect("location parsed");
    assert_eq!(loc.latitude, -23.5613);
    assert_eq!(loc.longitude, -46.656);
    assert_eq!(
        loc.address.as_deref(),
        Some("Av. Paulista, 1578 - Bela Vista, São Paulo - SP, 01310-200")
    );
    assert_eq!(loc.label.as_deref(), Some("MASP"));
}

#[test]
fn emoji_and_reserved_characters_survive_form_decoding() {
    let m = inbound("inbound-whatsapp-emoji.form");
    assert_eq!(m.message_sid, "SM7b2e9d4f1a6c3e8b0d5f2a7c9e4b1d6f");
    // `+`, `=`, `&` and `%` are percent-encoded by Twilio; `+` in the form means a space.
    assert_eq!(
        m.body,
        "Olá! 👋 Meu pedido #1234 chegou quebrado 😢 — dá pra trocar? 2+2=4 & 100% 👍🏽 日本語 🇧🇷"
    );
    assert_eq!(m.profile_name.as_deref(), Some("José Ñúñez 🌟"));
    assert_eq!(m.kind(), "text");
    // Stored params keep the text byte for byte.
    let json: serde_json::Value = serde_json::from_str(&m.params_json()).expect("json");
    assert_eq!(json["Body"].as_str(), Some(m.body.as_str()));
}

#[test]
fn long_text_keeps_all_1600_characters() {
    let m = inbound("inbound-whatsapp-long.form");
    assert_eq!(m.message_sid, "SM0c9e8d7f6a5b4c3d2e1f0a9b8c7d6e5f");
    assert_eq!(m.body.chars().count(), 1600);
    assert!(m.body.starts_with("[1] Hi! I am writing about order #1234"));
    assert!(m.body.ends_with(" END"), "the tail is not cut off");
    assert_eq!(m.kind(), "text");
}

#[test]
fn existing_inbound_fixtures_keep_their_typed_fields() {
    let text = inbound("inbound-whatsapp-text.form");
    assert_eq!(text.body, "Hello, I need help with my order #1234");
    assert_eq!(text.kind(), "text");
    let media = inbound("inbound-whatsapp-media.form");
    assert!(media.message_sid.starts_with("MM"));
    assert_eq!(media.media.len(), 1);
    assert_eq!(media.kind(), "media");
    let button = inbound("inbound-whatsapp-button.form");
    assert_eq!(
        button.button.as_ref().and_then(|b| b.payload.as_deref()),
        Some("confirm_order_1234")
    );
    assert_eq!(button.kind(), "button");
}

/// (file, MessageSid, status, ErrorCode, sent through the Messaging Service)
const STATUS_FIXTURES: &[(&str, &str, &str, Option<i64>, bool)] = &[
    (
        "status-queued.form",
        "SM3b6d9f2c5e8a1d4f7b0c3e6a9d2f5b8c",
        "queued",
        None,
        true,
    ),
    (
        "status-sending.form",
        "SM3b6d9f2c5e8a1d4f7b0c3e6a9d2f5b8c",
        "sending",
        None,
        true,
    ),
    (
        "status-sent.form",
        "SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b",
        "sent",
        None,
        false,
    ),
    (
        "status-delivered.form",
        "SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b",
        "delivered",
        None,
        false,
    ),
    (
        "status-read.form",
        "SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b",
        "read",
        None,
        false,
    ),
    (
        "status-undelivered-63024.form",
        "SM6e9b2d5f8a1c4e7b0d3f6a9c2e5b8d1f",
        "undelivered",
        Some(63024),
        false,
    ),
    (
        "status-failed-63016.form",
        "SM2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c",
        "failed",
        Some(63016),
        false,
    ),
    (
        "status-failed-63015.form",
        "SM9c2f5b8e1d4a7c0f3b6e9d2a5c8f1b4e",
        "failed",
        Some(63015),
        false,
    ),
];

#[test]
fn status_fixtures_parse_with_status_error_code_and_addresses() {
    for &(file, sid, want, code, via_service) in STATUS_FIXTURES {
        let cb = status(file);
        assert_eq!(cb.message_sid, sid, "{file}");
        assert_eq!(cb.status, want, "{file}");
        assert_eq!(cb.error_code, code, "{file}");
        assert_eq!(cb.from.as_deref(), Some(SANDBOX), "{file}");
        assert_eq!(cb.to.as_deref(), Some(USER), "{file}");
        let service = cb
            .params
            .iter()
            .any(|(k, v)| k == "MessagingServiceSid" && v.starts_with("MG"));
        assert_eq!(service, via_service, "{file}: MessagingServiceSid");
        // Twilio sends no ErrorMessage in WhatsApp callbacks; the code is all there is.
        assert_eq!(cb.error_message, None, "{file}");
    }
}

#[test]
fn every_outbound_status_has_a_fixture_and_every_status_fixture_is_asserted() {
    for want in [
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "undelivered",
        "failed",
    ] {
        assert!(
            STATUS_FIXTURES.iter().any(|(_, _, s, _, _)| *s == want),
            "no status fixture for {want}"
        );
    }
    let listed: Vec<&str> = STATUS_FIXTURES.iter().map(|(f, ..)| *f).collect();
    for name in form_fixture_names() {
        if name.starts_with("status-") {
            assert!(
                listed.contains(&name.as_str()),
                "{name} has no assertions in STATUS_FIXTURES"
            );
        }
    }
}

#[test]
fn delivery_error_codes_in_fixtures_have_operator_hints() {
    for &(file, _, _, code, _) in STATUS_FIXTURES {
        if let Some(code) = code {
            assert!(
                twilio_client::hint_for_code(code).is_some(),
                "{file}: error {code} has no hint for the log line"
            );
        }
    }
}
