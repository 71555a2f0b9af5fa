//! Fuzz target: no input to any entry point of twilio-signature may panic. The input is split
//! into URL, header, settings header, body and a few raw key/value pairs; every entry point is
//! called, and a request signed by the crate itself must validate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twilio_signature::{SignatureSettings, Validator, signed_url, string_to_sign};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |&b| b == 0xff);
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let header = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let settings = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();
    let pairs_raw = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let params: Vec<(&str, &str)> = pairs_raw
        .split('\n')
        .map(|line| line.split_once('\t').unwrap_or((line, "")))
        .collect();

    for validator in [
        Validator::new("0123456789abcdef0123456789abcdef"),
        Validator::shared_key(&header),
    ] {
        let _ = validator.validate(&url, &params, &header);
        let _ = validator.validate_form_body(&url, body, &header);
        let _ = validator.validate_json_body(&url, body, &header);

        // Self-consistency: what the crate signs, it accepts (form entry points refuse JSON URLs).
        let signature = validator.sign(&url, &params);
        let result = validator.validate(&url, &params, &signature);
        assert!(
            result.is_ok() || result == Err(twilio_signature::SignatureError::UnexpectedBodyHash),
            "{result:?}"
        );

        if let Ok(request) = http::Request::post(url.as_ref())
            .header("x-twilio-signature", header.as_bytes())
            .header("x-twilio-webhooks-signature-settings", settings.as_bytes())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_vec())
        {
            let _ = validator.validate_http_request(&url, &request);
        }
    }
    let _ = SignatureSettings::parse(Some(&settings));
    let _ = signed_url(&url, Some(&header));
    let _ = string_to_sign(&url, &params);
});
