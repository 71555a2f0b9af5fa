//! REST credentials: Account SID + Auth Token, or API key SID + secret, sent as HTTP Basic.
//!
//! `Debug` never shows the token or the secret, and shortens SIDs to `AC12…cdef`, so an `Auth`
//! can sit inside structs that get logged.

use std::fmt;

use base64::Engine as _;

/// How the client authenticates to Twilio's REST API.
///
/// Both forms keep the Account SID: it is part of every `/2010-04-01/Accounts/{AccountSid}/…` path.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// `AccountSid:AuthToken` — full access, including `/Accounts/{Sid}.json`.
    Token {
        /// `AC…`, 34 characters.
        account_sid: String,
        /// The account's Auth Token (also the webhook signing key).
        auth_token: String,
    },
    /// `ApiKeySid:ApiKeySecret`. Standard API keys cannot read `/Accounts` (401, code 20003).
    ApiKey {
        /// `AC…` of the account the key belongs to.
        account_sid: String,
        /// `SK…`, the key's SID.
        key_sid: String,
        /// The key's secret, shown once when the key was created.
        secret: String,
    },
}

impl Auth {
    /// Account SID + Auth Token.
    pub fn token(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Auth {
        Auth::Token {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
        }
    }

    /// API key SID + secret, acting on `account_sid`.
    pub fn api_key(
        account_sid: impl Into<String>,
        key_sid: impl Into<String>,
        secret: impl Into<String>,
    ) -> Auth {
        Auth::ApiKey {
            account_sid: account_sid.into(),
            key_sid: key_sid.into(),
            secret: secret.into(),
        }
    }

    /// The Account SID used in request paths.
    pub fn account_sid(&self) -> &str {
        match self {
            Auth::Token { account_sid, .. } | Auth::ApiKey { account_sid, .. } => account_sid,
        }
    }

    /// Whether this is an API key (which cannot read `/Accounts/{Sid}.json`).
    pub fn is_api_key(&self) -> bool {
        matches!(self, Auth::ApiKey { .. })
    }

    /// The `Authorization` header value: `Basic base64(user:password)`.
    pub(crate) fn header_value(&self) -> String {
        let (user, password) = match self {
            Auth::Token {
                account_sid,
                auth_token,
            } => (account_sid, auth_token),
            Auth::ApiKey {
                key_sid, secret, ..
            } => (key_sid, secret),
        };
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token { account_sid, .. } => f
                .debug_struct("Token")
                .field("account_sid", &redact_sid(account_sid))
                .field("auth_token", &"[redacted]")
                .finish(),
            Auth::ApiKey {
                account_sid,
                key_sid,
                ..
            } => f
                .debug_struct("ApiKey")
                .field("account_sid", &redact_sid(account_sid))
                .field("key_sid", &redact_sid(key_sid))
                .field("secret", &"[redacted]")
                .finish(),
        }
    }
}

/// Shortens a SID for logs: `AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e` → `AC3f…5c7e`.
///
/// Strings of 12 characters or fewer are shown as `…` so a mistyped secret pasted into a SID
/// setting is not echoed.
pub fn redact_sid(sid: &str) -> String {
    let chars: Vec<char> = sid.chars().collect();
    if chars.len() <= 12 {
        return "…".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_for_token_and_key() {
        // base64("AC1:tok") and base64("SK1:sec")
        assert_eq!(
            Auth::token("AC1", "tok").header_value(),
            "Basic QUMxOnRvaw=="
        );
        assert_eq!(
            Auth::api_key("AC1", "SK1", "sec").header_value(),
            "Basic U0sxOnNlYw=="
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let token = Auth::token(
            "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e",
            "0123456789abcdef0123456789abcdef",
        );
        let shown = format!("{token:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("AC3f…5c7e"), "{shown}");
        let key = Auth::api_key(
            "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e",
            "SK00000000000000000000000000000001",
            "topsecretvalue",
        );
        let shown = format!("{key:#?}");
        assert!(!shown.contains("topsecretvalue"), "{shown}");
        assert!(shown.contains("SK00…0001"), "{shown}");
    }

    #[test]
    fn short_values_are_fully_hidden() {
        assert_eq!(redact_sid("hunter2"), "…");
    }
}
