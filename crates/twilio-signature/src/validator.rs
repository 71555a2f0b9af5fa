//! [`Validator`]: holds the keyed MAC and checks requests against every URL variant.

use std::fmt;

use crate::form::FormBody;
use crate::mac::{self, KeyedMac, Tag};
use crate::params::{self, Params};
use crate::{Algorithm, SignatureError, url};

/// Validates `X-Twilio-Signature` headers for one secret.
///
/// Build it once (keying the MAC is done here) and share it: it is `Send + Sync`, cheap to clone,
/// and its `Debug` output never shows the key. It does not keep the token itself, only the
/// HMAC states derived from it.
///
/// ```
/// use twilio_signature::{SignatureError, Validator};
///
/// let validator = Validator::new("12345");
/// let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
/// let params = [
///     ("CallSid", "CA1234567890ABCDE"),
///     ("Caller", "+12349013030"),
///     ("Digits", "1234"),
///     ("From", "+12349013030"),
///     ("To", "+18005551212"),
/// ];
/// assert_eq!(validator.validate(url, &params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), Ok(()));
/// assert_eq!(validator.validate(url, &params[..4], "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), Err(SignatureError::Mismatch));
/// assert_eq!(validator.validate(url, &params, ""), Err(SignatureError::Missing));
/// ```
#[derive(Clone)]
pub struct Validator {
    mac: KeyedMac,
    /// Built from an empty key: every check fails with [`SignatureError::EmptyKey`].
    empty_key: bool,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("algorithm", &self.algorithm())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Validator {
    /// A validator for webhooks signed with the account's auth token (HMAC-SHA1, the default).
    pub fn new(auth_token: &str) -> Self {
        Self::with_algorithm(auth_token, Algorithm::Sha1)
    }

    /// A validator for webhooks signed with a shared key (`X-Twilio-Webhooks-Signature-Settings:
    /// key=…,algorithm=HMAC_SHA256`): HMAC-SHA256 keyed with the shared key's secret.
    ///
    /// The algorithm belongs to the key: only requests announcing HMAC_SHA256 are checked with
    /// it. The `http` entry points read the settings header themselves; with the other entry
    /// points, read it with [`SignatureSettings::parse`](crate::SignatureSettings::parse) and
    /// pick this validator or the auth token's by its `algorithm` (and `key_id`, when you hold
    /// several shared keys).
    pub fn shared_key(secret: &str) -> Self {
        Self::with_algorithm(secret, Algorithm::Sha256)
    }

    /// A validator for `secret` and an explicit algorithm.
    ///
    /// An empty `secret` gives a validator that refuses every request with
    /// [`SignatureError::EmptyKey`] (anyone could sign with an empty key), so a missing
    /// configuration value can never open the door:
    ///
    /// ```
    /// use twilio_signature::{SignatureError, Validator};
    /// let empty = Validator::new("");
    /// let url = "https://example.com/hook";
    /// let forged = empty.sign(url, &[("Body", "hi")]);
    /// assert_eq!(empty.validate(url, &[("Body", "hi")], &forged), Err(SignatureError::EmptyKey));
    /// ```
    pub fn with_algorithm(secret: &str, algorithm: Algorithm) -> Self {
        Self {
            mac: KeyedMac::new(secret.as_bytes(), algorithm),
            empty_key: secret.is_empty(),
        }
    }

    /// The algorithm this validator checks.
    pub fn algorithm(&self) -> Algorithm {
        self.mac.algorithm()
    }

    /// The signature Twilio would send for `url` and `params` with this validator's key: the
    /// base64 MAC of [`string_to_sign`](crate::string_to_sign) (the URL as given, no variants).
    /// For tests, fake Twilio servers and diagnostics.
    pub fn sign<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        let mut tail = Vec::new();
        params::write_tail(params, &mut tail);
        self.mac.tag(&[url.as_bytes(), &tail]).to_base64()
    }

    /// Validates a request whose parameters are already decoded: a form POST's fields, or nothing
    /// (`&[]`) for a GET webhook, whose parameters are in the URL's query string.
    ///
    /// `url` is the URL Twilio requested, query included, exactly as sent: the URL configured in
    /// Twilio for a POST webhook; for a GET webhook, whose query carries the parameters, build it
    /// with [`signed_url`](crate::signed_url) from the configured URL and the request's query.
    ///
    /// # Errors
    ///
    /// [`Missing`](SignatureError::Missing) for an empty header,
    /// [`Malformed`](SignatureError::Malformed) when it is not base64 of the right length,
    /// [`UnexpectedBodyHash`](SignatureError::UnexpectedBodyHash) when `url` carries
    /// `bodySHA256` (a JSON webhook: use [`validate_json_body`](Self::validate_json_body)),
    /// [`Mismatch`](SignatureError::Mismatch) when no URL variant matches.
    pub fn validate<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        params: &[(K, V)],
        signature: &str,
    ) -> Result<(), SignatureError> {
        self.validate_params(url, params, signature)
    }

    /// Validates an `application/x-www-form-urlencoded` POST from its raw body.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate), plus [`InvalidBody`](SignatureError::InvalidBody) when a
    /// decoded name or value is not UTF-8.
    pub fn validate_form_body(
        &self,
        url: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        self.validated_form_body(url, body, signature).map(drop)
    }

    /// Validates an `application/x-www-form-urlencoded` POST like
    /// [`validate_form_body`](Self::validate_form_body) and hands back the decoded parameters
    /// the signature was checked over, so that the caller reads them without decoding the body
    /// a second time.
    ///
    /// ```
    /// use twilio_signature::Validator;
    ///
    /// let validator = Validator::new("12345");
    /// let url = "https://example.com/api/v1/whatsapp/webhook";
    /// let body = b"Body=Hello%2C+world&From=whatsapp%3A%2B15551234567";
    /// let signature = validator.sign(url, &[("Body", "Hello, world"), ("From", "whatsapp:+15551234567")]);
    ///
    /// let form = validator.validated_form_body(url, body, &signature)?;
    /// assert_eq!(form.get(0), Some(("Body", "Hello, world")));
    /// assert!(validator.validated_form_body(url, b"Body=Bye", &signature).is_err());
    /// # Ok::<(), twilio_signature::SignatureError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The same errors, in the same order, as [`validate_form_body`](Self::validate_form_body).
    pub fn validated_form_body(
        &self,
        url: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<FormBody, SignatureError> {
        let expected = Tag::decode(signature, self.algorithm())?;
        if url::body_sha256(url).is_some() {
            return Err(SignatureError::UnexpectedBodyHash);
        }
        let form = FormBody::parse(body)?;
        self.check(url, &form, &expected)?;
        Ok(form)
    }

    /// Validates a form POST whose body was already decoded with [`FormBody::parse`].
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn validate_form(
        &self,
        url: &str,
        form: &FormBody,
        signature: &str,
    ) -> Result<(), SignatureError> {
        self.validate_params(url, form, signature)
    }

    /// Validates a JSON webhook: Twilio signs the URL only (parameters empty) and puts the
    /// lowercase hex SHA-256 of the raw body in the `bodySHA256` query parameter, which must
    /// match too. `url` must therefore include the query string of the request.
    ///
    /// # Errors
    ///
    /// [`Missing`](SignatureError::Missing), [`Malformed`](SignatureError::Malformed),
    /// [`MissingBodyHash`](SignatureError::MissingBodyHash) when `url` has no `bodySHA256`,
    /// [`Mismatch`](SignatureError::Mismatch) when the signature does not match the URL,
    /// [`BodyHashMismatch`](SignatureError::BodyHashMismatch) when it does but the body is not
    /// the one Twilio hashed (compared in constant time; uppercase hex is refused, as by every SDK).
    pub fn validate_json_body(
        &self,
        url: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let expected = Tag::decode(signature, self.algorithm())?;
        let Some(body_hash) = url::body_sha256(url) else {
            return Err(SignatureError::MissingBodyHash);
        };
        self.check(url, &[] as &[(&str, &str)], &expected)?;
        if mac::body_hash_matches(body, &body_hash) {
            Ok(())
        } else {
            Err(SignatureError::BodyHashMismatch)
        }
    }

    fn validate_params<P: Params + ?Sized>(
        &self,
        url: &str,
        params: &P,
        signature: &str,
    ) -> Result<(), SignatureError> {
        let expected = Tag::decode(signature, self.algorithm())?;
        if url::body_sha256(url).is_some() {
            return Err(SignatureError::UnexpectedBodyHash);
        }
        self.check(url, params, &expected)
    }

    /// Tries each URL candidate in turn, most likely first; the parameter tail is built once and
    /// shared by all of them, since only the URL differs.
    fn check<P: Params + ?Sized>(
        &self,
        url: &str,
        params: &P,
        expected: &Tag,
    ) -> Result<(), SignatureError> {
        if self.empty_key {
            return Err(SignatureError::EmptyKey);
        }
        let mut tail = Vec::new();
        params::write_tail(params, &mut tail);
        for url::Candidate([a, b, c]) in url::candidates(url) {
            let tag = self
                .mac
                .tag(&[a.as_bytes(), b.as_bytes(), c.as_bytes(), &tail]);
            if tag.matches(expected) {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let token = "0123456789abcdef0123456789abcdef";
        let shown = format!(
            "{:?} {:#?}",
            Validator::new(token),
            Validator::shared_key(token)
        );
        assert!(!shown.contains(token) && !shown.contains("0123"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("Sha256"),
            "{shown}"
        );
    }

    #[test]
    fn validated_form_body_returns_what_was_checked() {
        let v = Validator::new("0123456789abcdef0123456789abcdef");
        let url = "https://h.example/hook";
        let body = b"b=2&&a=x+y%2B&b=1&b=2&Empty&Uni=Ol%C3%A1+%F0%9F%98%80";
        let pairs = [
            ("b", "2"),
            ("a", "x y+"),
            ("b", "1"),
            ("b", "2"),
            ("Empty", ""),
            ("Uni", "Olá 😀"),
        ];
        let signature = v.sign(url, &pairs);
        let form = v.validated_form_body(url, body, &signature).unwrap();
        assert_eq!(form.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(form.iter().next_back(), Some(("Uni", "Olá 😀")));
        assert_eq!(
            (form.len(), form.get(4), form.get(6)),
            (6, Some(("Empty", "")), None)
        );
        assert_eq!(v.validate_form(url, &form, &signature), Ok(()));
        assert_eq!(
            v.validate_form(url, &form, ""),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            v.validate_form(&format!("{url}?bodySHA256=ab"), &form, &signature),
            Err(SignatureError::UnexpectedBodyHash)
        );
        let other = FormBody::parse(b"b=2&a=x+y%2B&b=1").unwrap();
        assert_eq!(
            v.validate_form(url, &other, &signature),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn validated_form_body_fails_like_validate_form_body() {
        let v = Validator::new("0123456789abcdef0123456789abcdef");
        let url = "https://h.example/hook";
        let good = v.sign(url, &[("a", "1")]);
        let cases: [(&str, &[u8], &str); 6] = [
            (url, b"a=1", ""),
            (url, b"a=%FF", ""),
            (url, b"a=%FF", "short"),
            (url, b"a=%FF", &good),
            ("https://h.example/hook?bodySHA256=ab", b"a=%FF", &good),
            (url, b"a=2", &good),
        ];
        for (url, body, signature) in cases {
            let expected = v.validate_form_body(url, body, signature);
            assert!(expected.is_err());
            assert_eq!(
                v.validated_form_body(url, body, signature).map(drop),
                expected,
                "{url} {body:?} {signature}"
            );
        }
        assert!(FormBody::parse(b"a=%FF").is_err());
        assert!(FormBody::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn validator_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Validator>();
    }
}
