//! Known-answer tests: Twilio's documented example, the literals of the official SDKs' test
//! suites, the repository fixtures (`fixtures/*.form` + `signatures.json`), and
//! `vectors/sdk_vectors.json` (our edge cases as judged by twilio-node 6.2.0 and twilio-python
//! 9.13.0; see `vectors/generate.py`).

use std::path::PathBuf;

use serde_json::Value;
use twilio_signature::{Algorithm, SignatureError, Validator, compute_signature};

const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const DOC_PARAMS: [(&str, &str); 5] = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
];
/// The SDK test suites use another caller number than the docs page.
const SDK_PARAMS: [(&str, &str); 5] = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
];
/// One SDK literal: signature, URL, params.
type Literal<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

const SDK_BODY: &str = r#"{"property": "value", "boolean": true}"#;
const SDK_BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

fn form_body(params: &[(impl AsRef<str>, impl AsRef<str>)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

#[test]
fn twilio_docs_example() {
    assert_eq!(
        compute_signature("12345", DOC_URL, &DOC_PARAMS),
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    );
    let v = Validator::new("12345");
    assert_eq!(
        v.validate(DOC_URL, &DOC_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        Ok(())
    );
    let body = form_body(&DOC_PARAMS);
    assert_eq!(
        v.validate_form_body(DOC_URL, body.as_bytes(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        Ok(())
    );
    // Param order is irrelevant; the token is not.
    let mut reversed = DOC_PARAMS;
    reversed.reverse();
    assert_eq!(
        v.validate(DOC_URL, &reversed, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        Ok(())
    );
    assert_eq!(
        Validator::new("12346").validate(DOC_URL, &DOC_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        Err(SignatureError::Mismatch)
    );
}

/// Literals from twilio-node `spec/validation.spec.js` and twilio-python
/// `tests/unit/test_request_validator.py`.
#[test]
fn sdk_test_suite_literals() {
    let v = Validator::new("12345");
    let http_url = DOC_URL.replace("https", "http");
    let cases: [Literal; 11] = [
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", DOC_URL, &SDK_PARAMS),
        // Port 1234 stripped.
        (
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &SDK_PARAMS,
        ),
        // Signed with the port, http.
        (
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &SDK_PARAMS,
        ),
        // Signed with :443 / :80 added.
        ("kvajT1Ptam85bY51eRf/AJRuM3w=", DOC_URL, &SDK_PARAMS),
        ("0ZXoZLH/DfblKGATFgpif+LLRf4=", &http_url, &SDK_PARAMS),
        // Credentials, with and without the default port.
        (
            "CukzLTc1tT5dXEDIHm/tKBanW10=",
            "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            &SDK_PARAMS,
        ),
        (
            "2YRLlVAflCqxaNicjMpJcSTgzSs=",
            "https://user@mycompany.com/myapp.php?foo=1&bar=2",
            &SDK_PARAMS,
        ),
        (
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
            "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            &SDK_PARAMS,
        ),
        // Apostrophe and '+' in the query, verbatim.
        (
            "dsq4Ehbj6cs+KdTkpF5sSSplOWw=",
            "https://mycompany.com/myapp.php?foo=1&bar=2&Body=It's+amazing",
            &SDK_PARAMS,
        ),
        // Repeated keys, in either order.
        (
            "83O6e2vORAoJHUNzJjDWN1jz+BA=",
            DOC_URL,
            &[
                ("MessagingBinding.Address", "+1325xxxxxxx"),
                ("MessagingBinding.Address", "+1415xxxxxxx"),
            ],
        ),
        (
            "83O6e2vORAoJHUNzJjDWN1jz+BA=",
            DOC_URL,
            &[
                ("MessagingBinding.Address", "+1415xxxxxxx"),
                ("MessagingBinding.Address", "+1325xxxxxxx"),
            ],
        ),
    ];
    for (signature, url, params) in cases {
        assert_eq!(
            v.validate(url, params, signature),
            Ok(()),
            "{signature} {url}"
        );
    }
    // Repeated values are de-duplicated (node spec and python MultiDict/QueryDict tests).
    let dup = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ];
    assert_eq!(
        compute_signature("12345", DOC_URL, &dup),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    );
    assert_eq!(
        v.validate_form_body(
            DOC_URL,
            b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234",
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        ),
        Ok(())
    );
    assert_eq!(
        v.validate(DOC_URL, &SDK_PARAMS, "WRONG_SIGNATURE")
            .map_err(|e| matches!(e, SignatureError::Malformed)),
        Err(true)
    );
}

#[test]
fn sdk_test_suite_json_bodies() {
    let v = Validator::new("12345");
    assert_eq!(
        twilio_signature::body_sha256_hex(SDK_BODY.as_bytes()),
        SDK_BODY_HASH
    );
    let with_hash = format!("{DOC_URL}&bodySHA256={SDK_BODY_HASH}");
    assert_eq!(
        v.validate_json_body(
            &with_hash,
            SDK_BODY.as_bytes(),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ),
        Ok(())
    );
    let empty_hash = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let with_empty = format!("{DOC_URL}&bodySHA256={empty_hash}");
    assert_eq!(
        v.validate_json_body(&with_empty, b"{}", "Ldidvp12m26NI7eqEvxnEpkd9Hc="),
        Ok(())
    );
    let short = format!("https://mycompany.com/myapp.php?bodySHA256={SDK_BODY_HASH}");
    assert_eq!(
        v.validate_json_body(&short, SDK_BODY.as_bytes(), "y77kIzt2vzLz71DgmJGsen2scGs="),
        Ok(())
    );
    // The node middleware test: one character cut from the hash.
    let cut = &with_hash[..with_hash.len() - 1];
    assert!(
        v.validate_json_body(cut, SDK_BODY.as_bytes(), "a9nBmqA0ju/hNViExpshrM61xv4=")
            .is_err()
    );
    // Body given but no bodySHA256 in the URL.
    assert_eq!(
        v.validate_json_body(DOC_URL, SDK_BODY.as_bytes(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        Err(SignatureError::MissingBodyHash)
    );
}

#[test]
fn shared_key_hmac_sha256() {
    // Computed with twilio-python 9.13.0: compute_signature(url, params, "HMAC_SHA256").
    let secret = "whsk_secret_0123456789abcdefABCDEF";
    let url = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/status";
    let params = [
        ("MessageSid", "SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b"),
        ("MessageStatus", "delivered"),
        ("To", "whatsapp:+15551234567"),
    ];
    let signature = "S947oYjNpOQMbkBmDSAWh7A09B/pZYUr+LSAxQKPl6I=";
    let v = Validator::shared_key(secret);
    assert_eq!(v.algorithm(), Algorithm::Sha256);
    assert_eq!(v.sign(url, &params), signature);
    assert_eq!(v.validate(url, &params, signature), Ok(()));
    assert_eq!(
        Validator::with_algorithm(secret, Algorithm::Sha256).validate(url, &params, signature),
        Ok(())
    );
    assert_eq!(
        v.validate(&format!("{url}x"), &params, signature),
        Err(SignatureError::Mismatch)
    );
    // The SHA-1 validator refuses a SHA-256 header and says why.
    let err = Validator::new(secret)
        .validate(url, &params, signature)
        .unwrap_err();
    assert!(err.to_string().contains("HMAC-SHA256"), "{err}");
    let json_url = format!(
        "{url}?bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(
        v.validate_json_body(
            &json_url,
            b"{}",
            "gRE3BCxLJqMHpJctBdLEG2/SN6JnNnEIzYCokjl8EK4="
        ),
        Ok(())
    );
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (run from the repository)",
            path.display()
        )
    })
}

#[test]
fn repository_fixtures() {
    let doc: Value = serde_json::from_slice(&read_fixture("signatures.json")).unwrap();
    let token = doc["auth_token"].as_str().unwrap();
    let v = Validator::new(token);
    let fixtures = doc["fixtures"].as_object().unwrap();
    assert_eq!(fixtures.len(), 7);
    for (file, entry) in fixtures {
        let url = entry["url"].as_str().unwrap();
        let signature = entry["x_twilio_signature"].as_str().unwrap();
        let body = read_fixture(file);
        assert_eq!(
            v.validate_form_body(url, &body, signature),
            Ok(()),
            "{file}"
        );
        // Same through decoded params, and through the port variant Twilio may use.
        let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        assert_eq!(v.validate(url, &params, signature), Ok(()), "{file}");
        let with_port = url.replace(".com/", ".com:443/");
        assert_eq!(
            v.validate_form_body(&with_port, &body, signature),
            Ok(()),
            "{file}"
        );
        // The wrong endpoint, a dropped parameter, another token: refused.
        let other = if url.ends_with("/status") {
            url.replace("/status", "/webhook")
        } else {
            url.replace("/webhook", "/status")
        };
        assert_eq!(
            v.validate_form_body(&other, &body, signature),
            Err(SignatureError::Mismatch),
            "{file}"
        );
        assert_eq!(
            v.validate(url, &params[1..], signature),
            Err(SignatureError::Mismatch),
            "{file}"
        );
        assert_eq!(
            Validator::new("0123456789abcdef0123456789abcdee")
                .validate_form_body(url, &body, signature),
            Err(SignatureError::Mismatch)
        );
    }
    let vector = &doc["twilio_doc_vector"];
    let params: Vec<(&str, &str)> = vector["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    assert_eq!(
        compute_signature(
            vector["auth_token"].as_str().unwrap(),
            vector["url"].as_str().unwrap(),
            &params
        ),
        vector["signature"].as_str().unwrap()
    );
}

/// Our edge-case table, judged by both official SDKs (see `vectors/generate.py`).
#[test]
fn edge_cases_agree_with_the_sdks() {
    let doc: Value = serde_json::from_str(include_str!("vectors/sdk_vectors.json")).unwrap();
    let big = "0123456789abcdef".repeat(4096);
    let expand = |s: &str| s.replace("<BIG>", &big);
    let v = Validator::new(doc["token"].as_str().unwrap());
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 50);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let url = expand(case["url"].as_str().unwrap());
        let signature = case["signature"].as_str().unwrap();
        let expected = case["expected"].as_bool().unwrap();
        let results = if let Some(body) = case["body"].as_str() {
            vec![v.validate_json_body(&url, expand(body).as_bytes(), signature)]
        } else {
            let params: Vec<(String, String)> = case["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        expand(p[0].as_str().unwrap()),
                        expand(p[1].as_str().unwrap()),
                    )
                })
                .collect();
            let body = form_body(&params);
            let signed_url = expand(case["signed_url"].as_str().unwrap());
            // The SDKs' signature is what we compute for the signed URL.
            assert_eq!(v.sign(&signed_url, &params), signature, "{name}: signature");
            vec![
                v.validate(&url, &params, signature),
                v.validate_form_body(&url, body.as_bytes(), signature),
            ]
        };
        for result in results {
            let ok = result.is_ok();
            if ok != expected {
                failures.push(format!("{name}: expected {expected}, got {result:?}"));
            } else if !ok
                && !matches!(
                    result,
                    Err(SignatureError::Mismatch | SignatureError::BodyHashMismatch)
                )
            {
                failures.push(format!(
                    "{name}: refused for an unexpected reason {result:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn json_webhooks() {
    let v = Validator::new("0123456789abcdef0123456789abcdef");
    let body = br#"{"MessageSid":"SM1","Body":"hi"}"#;
    let hash = twilio_signature::body_sha256_hex(body);
    let url = format!("https://h.example/hook?bodySHA256={hash}");
    let signature = v.sign(&url, &[] as &[(&str, &str)]);
    assert_eq!(v.validate_json_body(&url, body, &signature), Ok(()));
    // Tampered body: the signature (URL only) still matches, the hash does not.
    assert_eq!(
        v.validate_json_body(&url, br#"{"MessageSid":"SM1","Body":"hi!"}"#, &signature),
        Err(SignatureError::BodyHashMismatch)
    );
    // Uppercase hex in the URL is refused, as by every SDK.
    let upper = format!("https://h.example/hook?bodySHA256={}", hash.to_uppercase());
    let upper_sig = v.sign(&upper, &[] as &[(&str, &str)]);
    assert_eq!(
        v.validate_json_body(&upper, body, &upper_sig),
        Err(SignatureError::BodyHashMismatch)
    );
    // Missing bodySHA256, and the form entry points refusing a JSON URL.
    let bare = "https://h.example/hook";
    assert_eq!(
        v.validate_json_body(bare, body, &v.sign(bare, &[] as &[(&str, &str)])),
        Err(SignatureError::MissingBodyHash)
    );
    assert_eq!(
        v.validate(&url, &[] as &[(&str, &str)], &signature),
        Err(SignatureError::UnexpectedBodyHash)
    );
    assert_eq!(
        v.validate_form_body(&url, b"", &signature),
        Err(SignatureError::UnexpectedBodyHash)
    );
    // 64 KiB body.
    let big = vec![b'x'; 64 * 1024];
    let big_url = format!(
        "https://h.example/hook?a=1&bodySHA256={}#rc=2",
        twilio_signature::body_sha256_hex(&big)
    );
    let big_sig = v.sign(&big_url, &[] as &[(&str, &str)]);
    assert_eq!(v.validate_json_body(&big_url, &big, &big_sig), Ok(()));
    let mut tampered = big.clone();
    tampered[40_000] = b'y';
    assert_eq!(
        v.validate_json_body(&big_url, &tampered, &big_sig),
        Err(SignatureError::BodyHashMismatch)
    );
    // Port variant applies to JSON webhooks too.
    let with_port = url.replace("h.example/", "h.example:443/");
    assert_eq!(v.validate_json_body(&with_port, body, &signature), Ok(()));
}

#[test]
fn form_bodies_decode_like_the_frameworks() {
    let v = Validator::new("tok");
    let url = "https://h.example/hook";
    // '+' and %20 are both a space in a form body; %2B is a plus; a lone '%' stays.
    let params = [("Body", "a b+c 100% 'd'"), ("Empty", ""), ("Uni", "Olá 😀")];
    let signature = v.sign(url, &params);
    for body in [
        "Body=a+b%2Bc+100%25+%27d%27&Empty=&Uni=Ol%C3%A1+%F0%9F%98%80",
        "Body=a%20b%2bc%20100%+'d'&Empty&Uni=Olá%20😀",
        "&&Uni=Ol%c3%a1+%f0%9f%98%80&Empty=&Body=a+b%2Bc+100%25+%27d%27&",
    ] {
        assert_eq!(
            v.validate_form_body(url, body.as_bytes(), &signature),
            Ok(()),
            "{body}"
        );
    }
    assert!(matches!(
        v.validate_form_body(url, b"Body=%FF", &signature),
        Err(SignatureError::InvalidBody { .. })
    ));
}

#[test]
fn fragments_are_tried_with_and_without() {
    let v = Validator::new("tok");
    let params = [("Body", "hi")];
    let plain = "https://h.example/hook";
    let with_fragment = "https://h.example/hook#rc=2&ct=1000";
    // Configured with a fragment: accepted whether Twilio signed the fragment or not.
    assert_eq!(
        v.validate(with_fragment, &params, &v.sign(with_fragment, &params)),
        Ok(())
    );
    assert_eq!(
        v.validate(with_fragment, &params, &v.sign(plain, &params)),
        Ok(())
    );
    assert_eq!(
        v.validate(
            with_fragment,
            &params,
            &v.sign("https://h.example:443/hook", &params)
        ),
        Ok(())
    );
    // Configured without: a signature over the fragment is not accepted.
    assert_eq!(
        v.validate(plain, &params, &v.sign(with_fragment, &params)),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn concatenation_is_ambiguous_by_design() {
    // Twilio's scheme concatenates without separators: {a: "bc"} and {ab: "c"} sign the same
    // string. Documented so nobody mistakes it for a bug in this crate.
    let v = Validator::new("tok");
    let signature = v.sign("https://h/p", &[("a", "bc")]);
    assert_eq!(
        v.validate("https://h/p", &[("ab", "c")], &signature),
        Ok(())
    );
}
