//! Property tests: signing then validating round-trips for arbitrary parameters; any
//! single-byte change to the URL, a key, a value, the body or the header is refused; arbitrary
//! bytes never panic. Case counts are kept small enough for a debug build to finish in seconds.

use proptest::prelude::*;
use twilio_signature::{
    SignatureError, SignatureSettings, Validator, compute_signature, string_to_sign,
};

fn validator() -> Validator {
    Validator::new("0123456789abcdef0123456789abcdef")
}

/// URLs as Twilio may be configured with: scheme, optional userinfo, host or IPv6 literal,
/// optional port, path, optional query. No '#' (see `url_changes_are_refused`).
fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof!["https", "http", "HTTPS"],
        prop_oneof![Just(String::new()), "[a-z]{1,5}(:[a-z]{0,5})?@"],
        prop_oneof![
            "[a-z0-9.-]{1,20}",
            Just("[::1]".to_owned()),
            Just("[2001:db8::7]".to_owned())
        ],
        prop_oneof![Just(String::new()), "(:[0-9]{0,5})"],
        "(/[a-zA-Z0-9._~%'+-]{0,12}){0,3}",
        prop_oneof![Just(String::new()), "\\?[a-zA-Z0-9=&+%' ]{0,30}"],
    )
        .prop_map(|(s, u, h, p, path, q)| format!("{s}://{u}{h}{p}{path}{q}"))
        .prop_filter("no JSON webhooks here", |u| {
            !u.contains("bodySHA256") && !u.contains('%')
        })
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof!["[A-Za-z][A-Za-z0-9.]{0,12}", "\\PC{0,6}"];
    let value = prop_oneof!["[ -~]{0,20}", "\\PC{0,10}", Just(String::new())];
    prop::collection::vec((key, value), 0..20)
}

/// Replaces the character at `index % len` with `replacement` if that changes the string.
fn replace_char(s: &str, index: usize, replacement: char) -> Option<String> {
    let count = s.chars().count();
    if count == 0 {
        return None;
    }
    let at = index % count;
    let changed: String = s
        .chars()
        .enumerate()
        .map(|(i, c)| if i == at { replacement } else { c })
        .collect();
    (changed != s).then_some(changed)
}

fn form_body(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compute_then_validate_round_trips(url in url(), params in params()) {
        let v = validator();
        let signature = compute_signature("0123456789abcdef0123456789abcdef", &url, &params);
        prop_assert_eq!(v.validate(&url, &params, &signature), Ok(()));
        prop_assert_eq!(v.validate_form_body(&url, form_body(&params).as_bytes(), &signature), Ok(()));
        // Order of the pairs never matters.
        let mut reversed = params.clone();
        reversed.reverse();
        prop_assert_eq!(v.validate(&url, &reversed, &signature), Ok(()));
    }

    #[test]
    fn url_changes_are_refused(url in url(), params in params(), index in any::<usize>(), c in any::<char>()) {
        // '#' is excluded: a '#' starts a fragment, and a URL whose fragment-less form plus the
        // default port equals the original (`https://h:443` vs `https://h#443`) is accepted by design.
        prop_assume!(c != '#');
        let v = validator();
        let signature = v.sign(&url, &params);
        if let Some(changed) = replace_char(&url, index, c) {
            prop_assert!(v.validate(&changed, &params, &signature).is_err(), "{} accepted", changed);
        }
    }

    #[test]
    fn key_and_value_changes_are_refused(
        url in url(), params in params(), which in any::<usize>(), in_key in any::<bool>(),
        index in any::<usize>(), c in any::<char>(),
    ) {
        prop_assume!(!params.is_empty());
        let v = validator();
        let signature = v.sign(&url, &params);
        let mut changed = params.clone();
        let pair = &mut changed[which % params.len()];
        let target = if in_key { &mut pair.0 } else { &mut pair.1 };
        let Some(new) = replace_char(target, index, c) else { return Ok(()) };
        *target = new;
        // A change can only go unnoticed if it leaves the signed string identical (e.g. turning a
        // pair into a duplicate of another and back is impossible with one substitution, but
        // Twilio's separator-less concatenation makes rare collisions possible in principle).
        if string_to_sign(&url, &changed) != string_to_sign(&url, &params) {
            prop_assert_eq!(v.validate(&url, &changed, &signature), Err(SignatureError::Mismatch));
        }
    }

    #[test]
    fn form_body_byte_changes_are_refused(params in params(), index in any::<usize>(), byte in any::<u8>()) {
        let v = validator();
        let url = "https://h.example/hook";
        let signature = v.sign(url, &params);
        let mut body = form_body(&params).into_bytes();
        prop_assume!(!body.is_empty());
        let at = index % body.len();
        prop_assume!(body[at] != byte);
        body[at] = byte;
        // The signature covers decoded parameters, so `%2b` → `%2B` is the same request; any
        // change that alters the decoded parameters must be refused.
        let decoded: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        // Lossy decoding turns invalid UTF-8 into U+FFFD; count them, since a generated
        // parameter may itself contain U+FFFD (sent as valid, percent-encoded UTF-8).
        let replacements = |pairs: &[(String, String)]| {
            pairs.iter().map(|(k, v)| k.matches('\u{FFFD}').count() + v.matches('\u{FFFD}').count()).sum::<usize>()
        };
        if string_to_sign(url, &decoded) != string_to_sign(url, &params) || replacements(&decoded) > replacements(&params) {
            prop_assert!(v.validate_form_body(url, &body, &signature).is_err());
        }
    }

    #[test]
    fn json_body_and_header_byte_changes_are_refused(
        body in prop::collection::vec(any::<u8>(), 0..512), index in any::<usize>(), byte in any::<u8>(),
    ) {
        let v = validator();
        let url = format!("https://h.example/hook?x=1&bodySHA256={}", twilio_signature::body_sha256_hex(&body));
        let signature = v.sign(&url, &[] as &[(&str, &str)]);
        prop_assert_eq!(v.validate_json_body(&url, &body, &signature), Ok(()));
        if !body.is_empty() {
            let mut changed = body.clone();
            let at = index % body.len();
            prop_assume!(changed[at] != byte);
            changed[at] = byte;
            prop_assert_eq!(v.validate_json_body(&url, &changed, &signature), Err(SignatureError::BodyHashMismatch));
        }
        let mut header = signature.clone().into_bytes();
        let at = index % header.len();
        prop_assume!(header[at] != byte);
        header[at] = byte;
        let header = String::from_utf8_lossy(&header);
        prop_assert!(v.validate_json_body(&url, &body, &header).is_err(), "{} accepted", header);
    }

    #[test]
    fn arbitrary_input_never_panics(
        url in prop::collection::vec(any::<u8>(), 0..200),
        body in prop::collection::vec(any::<u8>(), 0..300),
        header in prop::collection::vec(any::<u8>(), 0..60),
        settings in "\\PC{0,40}",
    ) {
        let url = String::from_utf8_lossy(&url);
        let header = String::from_utf8_lossy(&header);
        for v in [validator(), Validator::shared_key("k")] {
            let _ = v.validate(&url, &[(url.as_ref(), header.as_ref())], &header);
            let _ = v.validate_form_body(&url, &body, &header);
            let _ = v.validate_json_body(&url, &body, &header);
        }
        let _ = SignatureSettings::parse(Some(&settings));
        let _ = twilio_signature::signed_url(&url, Some(&header));
        let _ = string_to_sign(&url, &[(header.as_ref(), url.as_ref())]);
    }

    #[test]
    fn structured_noise_never_panics(
        url in "[a-zA-Z]{0,6}(:(//)?)?[\\[\\]@:/?#%0-9a-f.]{0,40}",
        body in "[a-z=&%+0-9A-F]{0,80}",
        header in "[A-Za-z0-9+/=]{26,46}",
    ) {
        let v = validator();
        let _ = v.validate_form_body(&url, body.as_bytes(), &header);
        let _ = v.validate_json_body(&url, body.as_bytes(), &header);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Our fixed-shape base64 agrees with the `base64` crate's strict standard engine on every
    /// header of the right length: same accept/reject decision, same bytes.
    #[test]
    fn header_decoding_matches_the_base64_crate(
        raw in prop::collection::vec(any::<u8>(), 20..=20),
        noise in "[A-Za-z0-9+/=]{28}",
        flip in any::<usize>(),
        c in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ .".to_vec()),
    ) {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let url = "https://h/p";
        let v = validator();
        let good = v.sign(url, &[] as &[(&str, &str)]);
        let mut near = good.clone().into_bytes();
        near[flip % 28] = c;
        let near = String::from_utf8(near).unwrap();
        for header in [engine.encode(&raw), noise, near] {
            let strict_ok = engine.decode(&header).is_ok_and(|bytes| bytes.len() == 20);
            let ours = v.validate(url, &[] as &[(&str, &str)], &header);
            prop_assert_eq!(
                strict_ok,
                !matches!(ours, Err(SignatureError::Malformed)),
                "{:?}: {:?}", header, ours
            );
            prop_assert_eq!(ours.is_ok(), header == good);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Our strict form decoder reads every body as the WHATWG decoder (`form_urlencoded`, what
    /// web frameworks use) does, except that it refuses bodies that are not UTF-8 once decoded.
    #[test]
    fn form_decoding_matches_form_urlencoded(body in "([a-zA-Z0-9=&+%. ]|%[0-9a-fA-F]{2}|%[cC][23]%[89aAbB][0-9a-fA-F]|é|😀){0,40}") {
        let v = validator();
        let url = "https://h.example/hook";
        let decoded: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let lossy = decoded.iter().any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'));
        let signature = v.sign(url, &decoded);
        let ours = v.validate_form_body(url, body.as_bytes(), &signature);
        if lossy {
            prop_assert!(matches!(ours, Err(SignatureError::InvalidBody { .. })), "{:?}", ours);
        } else {
            prop_assert_eq!(ours, Ok(()));
        }
    }
}
