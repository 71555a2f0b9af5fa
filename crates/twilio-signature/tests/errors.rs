//! What callers see when a request is refused: the right variant, a message that says why,
//! and never the expected signature or the key.

use twilio_signature::{Algorithm, SignatureError, SignatureSettings, Validator};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const URL: &str = "https://h.example/hook";

#[test]
fn empty_header_is_missing_not_a_panic() {
    let v = Validator::new(TOKEN);
    let params = [("Body", "hi")];
    assert_eq!(v.validate(URL, &params, ""), Err(SignatureError::Missing));
    assert_eq!(
        v.validate_form_body(URL, b"Body=hi", ""),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        v.validate_json_body(URL, b"{}", ""),
        Err(SignatureError::Missing)
    );
}

#[test]
fn header_is_not_trimmed_or_reinterpreted() {
    let v = Validator::new(TOKEN);
    let params = [("Body", "hi")];
    let good = v.sign(URL, &params);
    for bad in [
        format!(" {good}"),
        format!("{good}\n"),
        good.trim_end_matches('=').to_owned(),
        good.replace('/', "_").replace('+', "-"),
        good.to_lowercase(),
        format!("{good},{good}"),
        "sha1=".to_owned() + &good,
    ] {
        if bad != good {
            assert!(v.validate(URL, &params, &bad).is_err(), "{bad:?}");
        }
    }
}

#[test]
fn messages_never_contain_the_expected_signature_or_key() {
    let v = Validator::new(TOKEN);
    let params = [("Body", "hi")];
    let expected = v.sign(URL, &params);
    let wrong = Validator::new("other").sign(URL, &params);
    let errors = [
        v.validate(URL, &params, &wrong),
        v.validate(URL, &params, "short"),
        v.validate(URL, &params, ""),
        v.validate_json_body(URL, b"{}", &wrong),
        v.validate_json_body(
            &format!("{URL}?bodySHA256=00"),
            b"{}",
            &v.sign(&format!("{URL}?bodySHA256=00"), &params[..0]),
        ),
        v.validate_form_body(&format!("{URL}?bodySHA256=00"), b"", &wrong),
        v.validate_form_body(URL, b"a=%FF", &wrong),
    ];
    for result in errors {
        let err = result.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&expected) && !shown.contains(TOKEN),
            "{shown}"
        );
        assert!(
            shown.chars().next().is_some_and(|c| c.is_lowercase()) || shown.starts_with("X-Twilio"),
            "{shown}"
        );
    }
}

#[test]
#[allow(clippy::unneeded_struct_pattern)] // callers may match `Malformed { .. }`: it must compile
fn each_failure_has_its_own_reason() {
    let v = Validator::new(TOKEN);
    let sig = v.sign(URL, &[("a", "1")]);
    assert_eq!(
        v.validate(URL, &[("a", "2")], &sig),
        Err(SignatureError::Mismatch)
    );
    // DESIGN.md names the variant `Malformed`: the bare path is a pattern and a value, and
    // `Malformed { .. }` matches it too.
    assert_eq!(
        v.validate(URL, &[("a", "1")], "not base64!"),
        Err(SignatureError::Malformed)
    );
    assert!(matches!(
        v.validate(URL, &[("a", "1")], "AAAAAAAAAAAAAAAAAAAAAAAAAAB="),
        Err(SignatureError::Malformed)
    ));
    assert!(matches!(
        v.validate(
            URL,
            &[("a", "1")],
            &Validator::shared_key("k").sign(URL, &[("a", "1")])
        ),
        Err(SignatureError::Malformed { .. })
    ));
    let malformed = SignatureError::Malformed.to_string();
    assert!(
        malformed.contains("28") && malformed.contains("44") && malformed.contains("shared_key"),
        "{malformed}"
    );
    let mismatch = SignatureError::Mismatch.to_string();
    assert!(
        mismatch.contains("URL") && mismatch.contains("auth token"),
        "{mismatch}"
    );
    assert!(
        SignatureError::UnexpectedBodyHash
            .to_string()
            .contains("validate_json_body")
    );
    assert!(
        SignatureError::MissingBodyHash
            .to_string()
            .contains("bodySHA256")
    );
    let mismatch = SignatureError::AlgorithmMismatch {
        request: Algorithm::Sha256,
        validator: Algorithm::Sha1,
    };
    assert!(
        mismatch.to_string().contains("HMAC_SHA256") && mismatch.to_string().contains("shared_key")
    );
    assert!(matches!(
        SignatureSettings::parse(Some("key=k,algorithm=HMAC_MD5")),
        Err(SignatureError::UnsupportedAlgorithm { name }) if name == "HMAC_MD5"
    ));
}
