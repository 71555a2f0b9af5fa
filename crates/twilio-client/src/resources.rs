//! Read-only resources the CLI inspects: the account, the incoming number, the Messaging
//! Service and the WhatsApp sender — each holding one place where the inbound webhook URL lives.
//!
//! Only the fields needed to answer "is the account usable" and "does Twilio point at
//! WEBHOOK_URL" are parsed; everything else in Twilio's JSON is ignored.

use serde::Deserialize;

/// `GET /2010-04-01/Accounts/{Sid}.json`.
///
/// Twilio also returns the account's auth token in this resource; it is deliberately not parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Account {
    /// `AC…`.
    pub sid: String,
    /// Display name from the Console.
    pub friendly_name: Option<String>,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    /// `Trial` or `Full`. Trial accounts only reach verified numbers (21608).
    #[serde(rename = "type")]
    pub account_type: Option<String>,
}

impl Account {
    /// Whether the account can send (`status == "active"`).
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// Whether this is a trial account.
    pub fn is_trial(&self) -> bool {
        self.account_type.as_deref() == Some("Trial")
    }
}

/// One entry of `GET …/IncomingPhoneNumbers.json`: a number's inbound message webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct IncomingNumber {
    /// `PN…`.
    pub sid: String,
    /// E.164 without `whatsapp:`, e.g. `+14155550100`.
    pub phone_number: String,
    /// "A message comes in" URL; empty or null when unset.
    pub sms_url: Option<String>,
    /// `POST` or `GET`.
    pub sms_method: Option<String>,
    /// Fallback URL Twilio tries when `sms_url` fails.
    pub sms_fallback_url: Option<String>,
    /// When set, a TwiML App handles inbound messages instead of `sms_url`.
    pub sms_application_sid: Option<String>,
}

impl IncomingNumber {
    /// `sms_url` when it is set and not empty.
    pub fn webhook_url(&self) -> Option<&str> {
        non_empty(self.sms_url.as_deref())
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct IncomingNumberPage {
    #[serde(default)]
    pub(crate) incoming_phone_numbers: Vec<IncomingNumber>,
}

/// `GET https://messaging.twilio.com/v1/Services/{MG…}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct MessagingService {
    /// `MG…`.
    pub sid: String,
    /// Display name.
    pub friendly_name: Option<String>,
    /// Inbound webhook; null disables inbound handling by the service.
    pub inbound_request_url: Option<String>,
    /// `POST` or `GET`.
    pub inbound_method: Option<String>,
    /// Fallback URL.
    pub fallback_url: Option<String>,
    /// Default status callback for messages sent through the service.
    pub status_callback: Option<String>,
    /// When true, each number's own `sms_url` wins over `inbound_request_url`.
    #[serde(default)]
    pub use_inbound_webhook_on_number: bool,
}

impl MessagingService {
    /// `inbound_request_url` when set and not empty.
    pub fn webhook_url(&self) -> Option<&str> {
        non_empty(self.inbound_request_url.as_deref())
    }
}

/// `GET https://messaging.twilio.com/v2/Channels/Senders/{XE…}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct WhatsAppSender {
    /// `XE…`.
    pub sid: String,
    /// `ONLINE`, `OFFLINE`, `PENDING_VERIFICATION`, …
    pub status: Option<String>,
    /// `whatsapp:+E164`.
    pub sender_id: Option<String>,
    /// Where the sender's webhooks go.
    pub webhook: Option<SenderWebhook>,
}

impl WhatsAppSender {
    /// `webhook.callback_url` when set and not empty.
    pub fn webhook_url(&self) -> Option<&str> {
        non_empty(self.webhook.as_ref()?.callback_url.as_deref())
    }
}

/// One page of `GET {messaging}/v2/Channels/Senders?Channel=whatsapp`.
#[derive(Debug, Deserialize)]
pub(crate) struct SenderPage {
    #[serde(default)]
    pub(crate) senders: Vec<WhatsAppSender>,
    #[serde(default)]
    pub(crate) meta: Option<PageMeta>,
}

/// The `meta` object of a Messaging v2 list page.
#[derive(Debug, Deserialize)]
pub(crate) struct PageMeta {
    pub(crate) next_page_url: Option<String>,
}

/// The `webhook` object of a WhatsApp sender.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SenderWebhook {
    /// Inbound message URL.
    pub callback_url: Option<String>,
    /// `POST` or `PUT`.
    pub callback_method: Option<String>,
    /// Fallback URL.
    pub fallback_url: Option<String>,
    /// Status callback URL.
    pub status_callback_url: Option<String>,
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_urls_count_as_unset() {
        let number: IncomingNumber = serde_json::from_str(
            r#"{"sid":"PN1","phone_number":"+1","sms_url":"","sms_method":"POST"}"#,
        )
        .expect("parses");
        assert_eq!(number.webhook_url(), None);
        let sender: WhatsAppSender =
            serde_json::from_str(r#"{"sid":"XE1","webhook":null}"#).expect("parses");
        assert_eq!(sender.webhook_url(), None);
    }

    #[test]
    fn account_flags() {
        let acct: Account = serde_json::from_str(
            r#"{"sid":"AC1","status":"suspended","type":"Trial","auth_token":"secret"}"#,
        )
        .expect("parses");
        assert!(!acct.is_active());
        assert!(acct.is_trial());
        assert!(!format!("{acct:?}").contains("secret"));
    }
}
