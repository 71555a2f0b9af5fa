//! [`Setup`]: the part of the configuration the checks look at, copied out of
//! `config::Settings` by [`crate::settings`] so that only that module depends on the config
//! crate's types. Tests of the checks build a `Setup` by hand.

use std::collections::BTreeMap;
use std::fmt;

/// Who replies are sent from (mirrors `config::Sender`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderSetup {
    /// `TWILIO_WHATSAPP_FROM`, `whatsapp:+E164`.
    WhatsAppFrom(String),
    /// `TWILIO_MESSAGING_SERVICE_SID`, `MG…`.
    MessagingService(String),
}

/// The public WhatsApp Sandbox number shared by every Twilio account.
pub const SANDBOX_NUMBER: &str = "+14155238886";

/// What the checks need to know. Secrets are plain strings here; `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct Setup {
    /// `APP_ENV=production`.
    pub production: bool,
    /// `WEBHOOK_URL` exactly as configured.
    pub webhook_url: Option<String>,
    /// `PORT`.
    pub port: u16,
    /// `HOST`.
    pub host: String,
    /// `DATABASE_URL` (may hold a password).
    pub database_url: String,
    /// The same URL with its password replaced, for output.
    pub database_url_shown: String,
    /// `REDIS_URL` (may hold a password).
    pub redis_url: Option<String>,
    /// The same URL with its password replaced, for output.
    pub redis_url_shown: Option<String>,
    /// `TWILIO_ACCOUNT_SID`, only when it is not a placeholder.
    pub account_sid: Option<String>,
    /// `TWILIO_AUTH_TOKEN`, only when it is not a placeholder.
    pub auth_token: Option<String>,
    /// `TWILIO_AUTH_TOKEN_SECONDARY` during a rotation, only when it is not a placeholder.
    pub auth_token_secondary: Option<String>,
    /// `TWILIO_API_KEY_SID` + `TWILIO_API_KEY_SECRET`, only when both are set and real.
    pub api_key: Option<(String, String)>,
    /// Sender for replies.
    pub sender: Option<SenderSetup>,
    /// `TWILIO_API_BASE_URL`.
    pub api_base_url: String,
    /// Effective status callback URL.
    pub status_callback_url: Option<String>,
    /// Where a key's value came from (`.env line 3`, `environment`, `default`), for the keys
    /// whose checks name it: `DATABASE_URL` and `REDIS_URL`. A key not listed was not set.
    pub sources: BTreeMap<&'static str, String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            production: false,
            webhook_url: None,
            port: 5000,
            host: "0.0.0.0".to_owned(),
            database_url: "sqlite://data/webhook.db?mode=rwc".to_owned(),
            database_url_shown: "sqlite://data/webhook.db?mode=rwc".to_owned(),
            redis_url: None,
            redis_url_shown: None,
            account_sid: None,
            auth_token: None,
            auth_token_secondary: None,
            api_key: None,
            sender: None,
            api_base_url: "https://api.twilio.com".to_owned(),
            status_callback_url: None,
            sources: BTreeMap::new(),
        }
    }
}

impl Setup {
    /// Address to reach the local server at: `HOST`, except that a wildcard (`0.0.0.0`, `::`)
    /// is reached through loopback.
    pub fn local_host(&self) -> String {
        match self.host.as_str() {
            "" | "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_owned(),
            h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            h => h.to_owned(),
        }
    }

    /// `http://<local host>:<PORT>`.
    pub fn local_base_url(&self) -> String {
        format!("http://{}:{}", self.local_host(), self.port)
    }
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("production", &self.production)
            .field("webhook_url", &self.webhook_url)
            .field("port", &self.port)
            .field("host", &self.host)
            .field("database_url", &self.database_url_shown)
            .field("redis_url", &self.redis_url_shown)
            .field("account_sid", &self.account_sid.as_ref().map(|_| "[set]"))
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "auth_token_secondary",
                &self.auth_token_secondary.as_ref().map(|_| "[redacted]"),
            )
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("sender", &self.sender)
            .field("api_base_url", &self.api_base_url)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_are_reached_through_loopback() {
        let mut s = Setup::default();
        assert_eq!(s.local_base_url(), "http://127.0.0.1:5000");
        s.host = "::1".into();
        assert_eq!(s.local_host(), "[::1]");
    }

    #[test]
    fn debug_hides_secrets() {
        let s = Setup {
            auth_token: Some("0123456789abcdef0123456789abcdef".into()),
            database_url: "postgres://u:hunter2@db/x".into(),
            database_url_shown: "postgres://u:***@db/x".into(),
            ..Setup::default()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("0123456789abcdef") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
