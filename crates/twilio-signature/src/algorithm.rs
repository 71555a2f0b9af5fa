//! Which HMAC signs a webhook, and the `X-Twilio-Webhooks-Signature-Settings` header that says so.

use std::fmt;

use crate::SignatureError;

/// The MAC Twilio used to sign a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA1 keyed with the account's auth token: every webhook without
    /// `X-Twilio-Webhooks-Signature-Settings`. 28 base64 characters.
    #[default]
    Sha1,
    /// HMAC-SHA256 keyed with a shared key secret (`algorithm=HMAC_SHA256`). 44 base64 characters.
    Sha256,
}

impl Algorithm {
    /// The name Twilio uses in `X-Twilio-Webhooks-Signature-Settings`: `HMAC_SHA1` or `HMAC_SHA256`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "HMAC_SHA1",
            Self::Sha256 => "HMAC_SHA256",
        }
    }

    /// Parses a name as Twilio writes it, ignoring ASCII case (`HMAC_SHA256`, `hmac_sha256`).
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("HMAC_SHA1") {
            Some(Self::Sha1)
        } else if name.eq_ignore_ascii_case("HMAC_SHA256") {
            Some(Self::Sha256)
        } else {
            None
        }
    }

    /// Length of the raw MAC in bytes (20 or 32).
    pub const fn mac_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Length of the `X-Twilio-Signature` header value: padded base64 of the MAC (28 or 44).
    pub const fn signature_len(self) -> usize {
        self.mac_len().div_ceil(3) * 4
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The parsed `X-Twilio-Webhooks-Signature-Settings` header (`key=<id>,algorithm=HMAC_SHA256`).
///
/// Twilio adds it to webhooks signed with a shared key. Parsing follows twilio-python 9.13.0:
/// comma-separated `name=value` parts, names and values trimmed, the first non-empty
/// `algorithm=` wins, its value compared without regard to ASCII case. A missing or empty header,
/// or one without `algorithm=`, means [`Algorithm::Sha1`] (the auth token signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SignatureSettings<'a> {
    /// The shared key's identifier (`key=`), to pick the secret when several are in use.
    pub key_id: Option<&'a str>,
    /// The algorithm the request was signed with.
    pub algorithm: Algorithm,
}

impl<'a> SignatureSettings<'a> {
    /// Parses the header value; `None` (header absent) gives the HMAC-SHA1 default.
    ///
    /// # Errors
    ///
    /// [`SignatureError::UnsupportedAlgorithm`] when `algorithm=` names anything but
    /// `HMAC_SHA1` or `HMAC_SHA256`: such a request cannot be validated and must be refused.
    pub fn parse(header: Option<&'a str>) -> Result<Self, SignatureError> {
        let mut settings = Self::default();
        let mut algorithm_seen = false;
        for part in header.unwrap_or("").split(',') {
            let Some((name, value)) = part.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if value.is_empty() {
                continue;
            }
            if name == "algorithm" && !algorithm_seen {
                algorithm_seen = true;
                settings.algorithm = Algorithm::from_name(value).ok_or_else(|| {
                    SignatureError::UnsupportedAlgorithm {
                        name: value.chars().take(32).collect(),
                    }
                })?;
            } else if name == "key" && settings.key_id.is_none() {
                settings.key_id = Some(value);
            }
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_empty_header_means_sha1() {
        for header in [
            None,
            Some(""),
            Some("key=abc"),
            Some("algorithm="),
            Some(",,"),
        ] {
            assert_eq!(
                SignatureSettings::parse(header).map(|s| s.algorithm),
                Ok(Algorithm::Sha1),
                "{header:?}"
            );
        }
    }

    #[test]
    fn parses_key_and_algorithm_like_twilio_python() {
        let s = SignatureSettings::parse(Some(" key = sk_123 , algorithm = hmac_sha256 ")).unwrap();
        assert_eq!(s.key_id, Some("sk_123"));
        assert_eq!(s.algorithm, Algorithm::Sha256);
        let s =
            SignatureSettings::parse(Some("algorithm=HMAC_SHA1,algorithm=HMAC_SHA256")).unwrap();
        assert_eq!(s.algorithm, Algorithm::Sha1, "the first algorithm wins");
    }

    #[test]
    fn unknown_algorithm_is_refused_with_its_name() {
        let err = SignatureSettings::parse(Some("key=k,algorithm=HMAC_SHA512")).unwrap_err();
        assert_eq!(
            err,
            SignatureError::UnsupportedAlgorithm {
                name: "HMAC_SHA512".into()
            }
        );
        let long = format!("algorithm={}", "é".repeat(100));
        match SignatureSettings::parse(Some(&long)) {
            Err(SignatureError::UnsupportedAlgorithm { name }) => {
                assert_eq!(name.chars().count(), 32)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(Algorithm::Sha1.signature_len(), 28);
        assert_eq!(Algorithm::Sha256.signature_len(), 44);
    }
}
