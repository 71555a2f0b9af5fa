//! The `http` feature: validating an `http::Request` against the configured public URL.

use http::Request;
use twilio_signature::{Algorithm, SignatureError, Validator};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const CONFIGURED: &str = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook";
const FORM: &str = "application/x-www-form-urlencoded";

fn post(
    uri: &str,
    content_type: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Request<Vec<u8>> {
    let mut builder = Request::post(uri);
    if let Some(ct) = content_type {
        builder = builder.header("Content-Type", ct);
    }
    if let Some(sig) = signature {
        builder = builder.header("X-Twilio-Signature", sig);
    }
    builder.body(body.to_vec()).unwrap()
}

#[test]
fn form_post_behind_a_proxy_uses_the_configured_url() {
    let v = Validator::new(TOKEN);
    let body = b"Body=Hello+there&From=whatsapp%3A%2B15551234567";
    let signature = v.sign(
        CONFIGURED,
        &[("Body", "Hello there"), ("From", "whatsapp:+15551234567")],
    );
    // The proxy forwarded it to an internal path and host: irrelevant, the configured URL counts.
    let request = post(
        "http://10.0.0.5:8080/webhook",
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        Some(&signature),
        body,
    );
    assert_eq!(v.validate_http_request(CONFIGURED, &request), Ok(()));
    let (parts, body) = request.into_parts();
    assert_eq!(v.validate_http_parts(CONFIGURED, &parts, &body), Ok(()));
    assert_eq!(
        v.validate_http_parts(CONFIGURED, &parts, b"Body=Hello+there"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn json_post_takes_body_sha256_from_the_request_query() {
    let v = Validator::new(TOKEN);
    let body = br#"{"event":"x"}"#;
    let query = format!("bodySHA256={}", twilio_signature::body_sha256_hex(body));
    let signed = format!("{CONFIGURED}?{query}");
    let signature = v.sign(&signed, &[] as &[(&str, &str)]);
    let request = post(
        &format!("/webhook?{query}"),
        Some("application/json"),
        Some(&signature),
        body,
    );
    assert_eq!(v.validate_http_request(CONFIGURED, &request), Ok(()));
    let tampered = post(
        &format!("/webhook?{query}"),
        Some("application/json"),
        Some(&signature),
        br#"{"event":"y"}"#,
    );
    assert_eq!(
        v.validate_http_request(CONFIGURED, &tampered),
        Err(SignatureError::BodyHashMismatch)
    );
    // A JSON body without bodySHA256 cannot be validated.
    let bare = post("/webhook", Some("application/json"), Some(&signature), body);
    assert!(matches!(
        v.validate_http_request(CONFIGURED, &bare),
        Err(SignatureError::InvalidBody { .. })
    ));
}

#[test]
fn get_webhook_signs_the_query() {
    let v = Validator::new(TOKEN);
    let signed = format!("{CONFIGURED}?From=whatsapp%3A%2B1555&Body=hi+there");
    let signature = v.sign(&signed, &[] as &[(&str, &str)]);
    let request = Request::get("/x?From=whatsapp%3A%2B1555&Body=hi+there")
        .header("x-twilio-signature", &signature)
        .body(Vec::new())
        .unwrap();
    assert_eq!(v.validate_http_request(CONFIGURED, &request), Ok(()));
    let reordered = Request::get("/x?Body=hi+there&From=whatsapp%3A%2B1555")
        .header("x-twilio-signature", &signature)
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        v.validate_http_request(CONFIGURED, &reordered),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn missing_or_unreadable_headers() {
    let v = Validator::new(TOKEN);
    assert_eq!(
        v.validate_http_request(CONFIGURED, &post("/", Some(FORM), None, b"a=1")),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        v.validate_http_request(CONFIGURED, &post("/", Some(FORM), Some(""), b"a=1")),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        v.validate_http_request(CONFIGURED, &post("/", Some("text/plain"), None, b"a=1")),
        Err(SignatureError::Missing)
    );
    let mut request = post("/", Some(FORM), None, b"a=1");
    request.headers_mut().insert(
        "x-twilio-signature",
        http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
    );
    assert!(matches!(
        v.validate_http_request(CONFIGURED, &request),
        Err(SignatureError::Malformed)
    ));
    let sig = v.sign(CONFIGURED, &[("a", "1")]);
    assert!(matches!(
        v.validate_http_request(
            CONFIGURED,
            &post("/", Some("text/plain"), Some(&sig), b"a=1")
        ),
        Err(SignatureError::InvalidBody { .. })
    ));
}

#[test]
fn signature_settings_header_selects_and_checks_the_algorithm() {
    let shared = Validator::shared_key("whsk_secret");
    let params = [("MessageStatus", "read")];
    let signature = shared.sign(CONFIGURED, &params);
    let mut request = post("/", Some(FORM), Some(&signature), b"MessageStatus=read");
    request.headers_mut().insert(
        "X-Twilio-Webhooks-Signature-Settings",
        "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
            .parse()
            .unwrap(),
    );
    assert_eq!(shared.validate_http_request(CONFIGURED, &request), Ok(()));
    // The auth-token validator says why it cannot check this request.
    assert_eq!(
        Validator::new(TOKEN).validate_http_request(CONFIGURED, &request),
        Err(SignatureError::AlgorithmMismatch {
            request: Algorithm::Sha256,
            validator: Algorithm::Sha1
        })
    );
    // No settings header means HMAC-SHA1, which the shared-key validator refuses.
    let plain = post("/", Some(FORM), Some(&signature), b"MessageStatus=read");
    assert_eq!(
        shared.validate_http_request(CONFIGURED, &plain),
        Err(SignatureError::AlgorithmMismatch {
            request: Algorithm::Sha1,
            validator: Algorithm::Sha256
        })
    );
    request.headers_mut().insert(
        "X-Twilio-Webhooks-Signature-Settings",
        "algorithm=HMAC_SHA3".parse().unwrap(),
    );
    assert!(matches!(
        shared.validate_http_request(CONFIGURED, &request),
        Err(SignatureError::UnsupportedAlgorithm { .. })
    ));
}

#[test]
fn errors_name_the_header_that_is_wrong() {
    let v = Validator::new(TOKEN);
    let body = b"Body=hi";
    let signature = v.sign(CONFIGURED, &[("Body", "hi")]);
    // A settings header that is not ASCII is about the algorithm, not X-Twilio-Signature.
    let mut request = post("/hook", Some(FORM), Some(&signature), body);
    request.headers_mut().insert(
        "X-Twilio-Webhooks-Signature-Settings",
        http::HeaderValue::from_bytes(b"algorithm=HMAC_\xe9").unwrap(),
    );
    let err = v.validate_http_request(CONFIGURED, &request).unwrap_err();
    assert!(
        matches!(err, SignatureError::UnsupportedAlgorithm { .. }),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("X-Twilio-Signature header"),
        "{err}"
    );
    // No signature at all is reported as such, whatever the settings header names.
    let mut request = post("/hook", Some(FORM), None, body);
    request.headers_mut().insert(
        "X-Twilio-Webhooks-Signature-Settings",
        http::HeaderValue::from_static("key=KS1,algorithm=HMAC_SHA256"),
    );
    assert_eq!(
        v.validate_http_request(CONFIGURED, &request),
        Err(SignatureError::Missing)
    );
}

#[test]
fn settings_header_selects_the_algorithm() {
    use twilio_signature::SignatureSettings;
    let headers = |value: &[u8]| {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-twilio-webhooks-signature-settings",
            http::HeaderValue::from_bytes(value).unwrap(),
        );
        h
    };
    let none = http::HeaderMap::new();
    assert_eq!(
        SignatureSettings::from_headers(&none).unwrap().algorithm,
        Algorithm::Sha1
    );
    let h = headers(b"key=KS123, algorithm=HMAC_SHA256");
    let s = SignatureSettings::from_headers(&h).unwrap();
    assert_eq!((s.algorithm, s.key_id), (Algorithm::Sha256, Some("KS123")));
    let h = headers(b"algorithm=HMAC_MD5");
    assert!(matches!(
        SignatureSettings::from_headers(&h),
        Err(SignatureError::UnsupportedAlgorithm { .. })
    ));
    let h = headers(b"algorithm=\xff");
    assert!(matches!(
        SignatureSettings::from_headers(&h),
        Err(SignatureError::UnsupportedAlgorithm { .. })
    ));
}
