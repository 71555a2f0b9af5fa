//! [`Validator`]: holds the keyed MAC and checks requests against every URL variant.

use std::fmt;

use crate::form::FormParams;
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
    pub fn shared_key(secret: &str) -> Self {
        Self::with_algorithm(secret, Algorithm::Sha256)
    }

    /// A validator for `secret` and an explicit algorithm.
    pub fn with_algorithm(secret: &str, algorithm: Algorithm) -> Self {
        Self {
            mac: KeyedMac::new(secret.as_bytes(), algorithm),
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
    /// `url` is the URL configured in Twilio, query included, exactly as Twilio requested it.
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
        let expected = Tag::decode(signature, self.algorithm())?;
        if url::body_sha256(url).is_some() {
            return Err(SignatureError::UnexpectedBodyHash);
        }
        let form = FormParams::parse(body)?;
        self.check(url, &form, &expected)
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
    fn validator_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Validator>();
    }
}
