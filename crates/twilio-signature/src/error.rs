//! The one error type of the crate: why a request was refused, never what was expected.

use crate::Algorithm;

/// Why a webhook request failed validation.
///
/// Every variant means "do not trust this request". The messages say what to check and never
/// contain the expected signature, the key, or any part of the string that was signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The `X-Twilio-Signature` header is absent or empty.
    #[error(
        "missing X-Twilio-Signature header: the request did not come from Twilio, or a proxy dropped the header"
    )]
    Missing,

    /// The header is not a padded standard base64 MAC of the validator's algorithm: not visible
    /// ASCII, not canonical base64, or the other algorithm's length (28 characters for
    /// HMAC-SHA1, 44 for HMAC-SHA256).
    ///
    /// A unit variant, as the design names it: `SignatureError::Malformed` and
    /// `SignatureError::Malformed { .. }` both match it.
    #[error(
        "malformed X-Twilio-Signature header: not the padded standard base64 of a signature \
         (28 characters for HMAC-SHA1 with the auth token, 44 for HMAC-SHA256 with a shared key, \
         which needs Validator::shared_key)"
    )]
    Malformed,

    /// The signature is well formed but matches none of the URL variants tried.
    #[error(
        "signature mismatch: X-Twilio-Signature does not match the request; check that the URL is exactly the one configured in Twilio \
         (scheme, host, path and query as Twilio sees them, not as a proxy forwards them) and that the \
         key is right: the auth token of the account that owns the number, or for HMAC_SHA256 \
         webhooks the shared key of the Webhook Rule"
    )]
    Mismatch,

    /// The URL carries `bodySHA256` and the SHA-256 of the raw body is not that value.
    #[error(
        "request body does not match the bodySHA256 query parameter: the body was altered or re-encoded"
    )]
    BodyHashMismatch,

    /// A JSON body was validated against a URL that has no `bodySHA256` query parameter.
    #[error(
        "no bodySHA256 query parameter in the URL: Twilio signs JSON webhooks with one \
         (validate form-encoded webhooks with validate_form_body instead)"
    )]
    MissingBodyHash,

    /// A form entry point was given a URL that carries `bodySHA256`: that is a JSON webhook, whose
    /// body must be checked against the hash.
    #[error(
        "bodySHA256 in the URL marks a JSON webhook: validate it with validate_json_body so the body is checked"
    )]
    UnexpectedBodyHash,

    /// The request body cannot be what Twilio signed.
    #[error("invalid webhook body: {reason}")]
    InvalidBody {
        /// What is wrong with the body.
        reason: &'static str,
    },

    /// `X-Twilio-Webhooks-Signature-Settings` names an algorithm this crate does not implement.
    #[error(
        "unsupported webhook signature algorithm {name:?} in X-Twilio-Webhooks-Signature-Settings \
         (supported: HMAC_SHA1, HMAC_SHA256)"
    )]
    UnsupportedAlgorithm {
        /// The algorithm named by the request (at most 32 characters of it).
        name: String,
    },

    /// The request is signed with another algorithm than the validator's key is for.
    #[error(
        "request is signed with {request} but this validator holds a {validator} key \
         (HMAC_SHA256 webhooks are signed with a shared key: use Validator::shared_key)"
    )]
    AlgorithmMismatch {
        /// The algorithm the request says it was signed with.
        request: Algorithm,
        /// The algorithm of the validator's key.
        validator: Algorithm,
    },

    /// The validator was built from an empty auth token or shared key. Anyone can compute an
    /// HMAC with an empty key, so such a validator refuses every request.
    #[error(
        "no key: the validator was built from an empty auth token (or shared key), so every request is refused; configure the real one"
    )]
    EmptyKey,
}
