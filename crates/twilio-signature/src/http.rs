//! Feature `http`: validate an [`http::Request`] (hyper, axum, …) given the public URL
//! configured in Twilio. Picks the JSON or form path from the URL and `Content-Type`, and the
//! algorithm from `X-Twilio-Webhooks-Signature-Settings`.

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Uri};

use crate::{SignatureError, SignatureSettings, Validator, signed_url, url};

const SIGNATURE: &str = "x-twilio-signature";
const SETTINGS: &str = "x-twilio-webhooks-signature-settings";
const FORM: &str = "application/x-www-form-urlencoded";

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, SignatureError> {
    headers
        .get(name)
        .map(|value| value.to_str())
        .transpose()
        .map_err(|_| SignatureError::Malformed)
}

impl SignatureSettings<'_> {
    /// Reads `X-Twilio-Webhooks-Signature-Settings` from `headers` ([`parse`](Self::parse));
    /// absent means HMAC-SHA1 with the auth token.
    ///
    /// # Errors
    ///
    /// [`SignatureError::UnsupportedAlgorithm`] for an algorithm this crate does not implement,
    /// or a header value that is not visible ASCII.
    ///
    /// ```
    /// use twilio_signature::{Algorithm, SignatureSettings};
    /// let mut headers = http::HeaderMap::new();
    /// assert_eq!(SignatureSettings::from_headers(&headers)?.algorithm, Algorithm::Sha1);
    /// headers.insert("x-twilio-webhooks-signature-settings", "key=KS1,algorithm=HMAC_SHA256".parse().unwrap());
    /// let settings = SignatureSettings::from_headers(&headers)?;
    /// assert_eq!((settings.algorithm, settings.key_id), (Algorithm::Sha256, Some("KS1")));
    /// # Ok::<(), twilio_signature::SignatureError>(())
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Result<SignatureSettings<'_>, SignatureError> {
        let value = headers
            .get(SETTINGS)
            .map(|value| value.to_str())
            .transpose()
            .map_err(|_| SignatureError::UnsupportedAlgorithm {
                name: "(X-Twilio-Webhooks-Signature-Settings is not visible ASCII)".to_owned(),
            })?;
        SignatureSettings::parse(value)
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM))
}

impl Validator {
    /// Validates a request whose body has been read into bytes.
    ///
    /// `configured_url` is the webhook URL as configured in Twilio (e.g. `WEBHOOK_URL`), not
    /// one rebuilt from `Host`. The request's query string, if any, replaces the configured one
    /// ([`signed_url`]), so GET webhooks and JSON webhooks' `bodySHA256` work. Then:
    ///
    /// - a URL with `bodySHA256` → [`validate_json_body`](Self::validate_json_body);
    /// - `Content-Type: application/x-www-form-urlencoded` → [`validate_form_body`](Self::validate_form_body);
    /// - an empty body (GET) → [`validate`](Self::validate) with no parameters;
    /// - anything else → [`SignatureError::InvalidBody`].
    ///
    /// The algorithm named by `X-Twilio-Webhooks-Signature-Settings` (HMAC-SHA1 when absent)
    /// must be this validator's.
    ///
    /// # Errors
    ///
    /// Any [`SignatureError`]; [`AlgorithmMismatch`](SignatureError::AlgorithmMismatch) or
    /// [`UnsupportedAlgorithm`](SignatureError::UnsupportedAlgorithm) for a settings header that
    /// does not fit this validator.
    ///
    /// ```
    /// use twilio_signature::Validator;
    ///
    /// let validator = Validator::new("12345");
    /// let url = "https://example.com/hook";
    /// let signature = validator.sign(url, &[("Body", "hi")]);
    /// let request = http::Request::post("/hook")
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .header("x-twilio-signature", signature)
    ///     .body(b"Body=hi".to_vec())
    ///     .unwrap();
    /// assert_eq!(validator.validate_http_request(url, &request), Ok(()));
    /// ```
    pub fn validate_http_request<B: AsRef<[u8]>>(
        &self,
        configured_url: &str,
        request: &Request<B>,
    ) -> Result<(), SignatureError> {
        self.validate_http(
            configured_url,
            request.uri(),
            request.headers(),
            request.body().as_ref(),
        )
    }

    /// As [`validate_http_request`](Self::validate_http_request), for the usual hyper flow of
    /// `let (parts, body) = request.into_parts();` followed by collecting the body.
    ///
    /// # Errors
    ///
    /// As [`validate_http_request`](Self::validate_http_request).
    pub fn validate_http_parts(
        &self,
        configured_url: &str,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.validate_http(configured_url, &parts.uri, &parts.headers, body)
    }

    fn validate_http(
        &self,
        configured_url: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let signature = header(headers, SIGNATURE)?.unwrap_or("");
        // A missing signature is the first thing to report, whatever the settings header says.
        if signature.is_empty() {
            return Err(SignatureError::Missing);
        }
        let settings = SignatureSettings::from_headers(headers)?;
        if settings.algorithm != self.algorithm() {
            return Err(SignatureError::AlgorithmMismatch {
                request: settings.algorithm,
                validator: self.algorithm(),
            });
        }
        let url = signed_url(configured_url, uri.query());
        if url::body_sha256(&url).is_some() {
            self.validate_json_body(&url, body, signature)
        } else if is_form(headers) {
            self.validate_form_body(&url, body, signature)
        } else if body.is_empty() {
            self.validate(&url, &[] as &[(&str, &str)], signature)
        } else {
            Err(SignatureError::InvalidBody {
                reason: "body is neither application/x-www-form-urlencoded nor a JSON webhook with bodySHA256 in the URL",
            })
        }
    }
}
