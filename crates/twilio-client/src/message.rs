//! The Messages resource: what we send ([`SendMessage`]) and what Twilio answers ([`Message`]).
//!
//! Field names follow Twilio's form parameters and JSON exactly; the form is checked against
//! Twilio's documented rules before anything goes on the wire, so a bad reply fails fast with
//! [`TwilioError::InvalidRequest`] instead of a 400 from Twilio.

use serde::Deserialize;

use crate::error::TwilioError;

/// Most media URLs Twilio accepts on one message.
pub const MAX_MEDIA_URLS: usize = 10;
/// Longest `Body` Twilio accepts, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// A message to create with `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
///
/// Needs `to`, exactly one of `from` / `messaging_service_sid`, and at least one of `body`,
/// `media_urls`, `content_sid`. WhatsApp addresses carry the `whatsapp:` prefix on both `to`
/// and `from`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendMessage {
    /// Recipient, e.g. `whatsapp:+15551234567`.
    pub to: String,
    /// Sender, e.g. `whatsapp:+14155238886`.
    pub from: Option<String>,
    /// `MG…`: let the Messaging Service pick the sender.
    pub messaging_service_sid: Option<String>,
    /// Text, at most 1600 characters. Free-form WhatsApp text only within the 24-hour window.
    pub body: Option<String>,
    /// Public media URLs, at most 10; sent as repeated `MediaUrl` parameters.
    pub media_urls: Vec<String>,
    /// `HX…`: an approved template (needed outside the WhatsApp 24-hour window).
    pub content_sid: Option<String>,
    /// JSON object of template variables, e.g. `{"1":"Ana"}`; requires `content_sid`.
    pub content_variables: Option<String>,
    /// URL Twilio posts delivery status callbacks to (overrides the Messaging Service's).
    pub status_callback: Option<String>,
}

impl SendMessage {
    /// A text message from a fixed sender.
    pub fn text(
        to: impl Into<String>,
        from: impl Into<String>,
        body: impl Into<String>,
    ) -> SendMessage {
        SendMessage {
            to: to.into(),
            from: Some(from.into()),
            body: Some(body.into()),
            ..SendMessage::default()
        }
    }

    /// Checks Twilio's documented constraints without sending anything.
    pub fn validate(&self) -> Result<(), TwilioError> {
        let invalid = |m: &str| Err(TwilioError::InvalidRequest(m.to_owned()));
        if self.to.trim().is_empty() {
            return invalid("'To' is required");
        }
        match (&self.from, &self.messaging_service_sid) {
            (None, None) => {
                return invalid("set either 'From' or 'MessagingServiceSid' (the sender)");
            }
            (Some(_), Some(_)) => {
                return invalid("set only one of 'From' and 'MessagingServiceSid'");
            }
            (Some(from), None) if from.trim().is_empty() => return invalid("'From' is empty"),
            (None, Some(mg)) if !is_sid(mg, "MG") => {
                return invalid("'MessagingServiceSid' must be MG followed by 32 hex digits");
            }
            _ => {}
        }
        if self.body.is_none() && self.media_urls.is_empty() && self.content_sid.is_none() {
            return invalid("set at least one of 'Body', 'MediaUrl' or 'ContentSid'");
        }
        if let Some(body) = &self.body
            && body.chars().count() > MAX_BODY_CHARS
        {
            return invalid("'Body' is longer than 1600 characters");
        }
        if self.media_urls.len() > MAX_MEDIA_URLS {
            return invalid("more than 10 'MediaUrl' values");
        }
        if let Some(content_sid) = &self.content_sid
            && !is_sid(content_sid, "HX")
        {
            return invalid("'ContentSid' must be HX followed by 32 hex digits");
        }
        if let Some(vars) = &self.content_variables {
            if self.content_sid.is_none() {
                return invalid("'ContentVariables' requires 'ContentSid'");
            }
            if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(vars).is_err() {
                return invalid("'ContentVariables' must be a JSON object");
            }
        }
        Ok(())
    }

    /// The form parameters in Twilio's names, repeated `MediaUrl` in order.
    pub fn form_pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![("To", self.to.as_str())];
        let optional = [
            ("From", &self.from),
            ("MessagingServiceSid", &self.messaging_service_sid),
            ("Body", &self.body),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                pairs.push((key, value.as_str()));
            }
        }
        for url in &self.media_urls {
            pairs.push(("MediaUrl", url.as_str()));
        }
        let optional = [
            ("ContentSid", &self.content_sid),
            ("ContentVariables", &self.content_variables),
            ("StatusCallback", &self.status_callback),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                pairs.push((key, value.as_str()));
            }
        }
        pairs
    }
}

/// A Message resource as Twilio returns it (create, fetch, list).
///
/// Only the fields this workspace uses are kept; unknown fields are ignored so new Twilio
/// fields never break parsing. Dates are Twilio's RFC 2822 strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// `SM…` (text) or `MM…` (media).
    pub sid: String,
    /// `queued`, `sent`, `delivered`, `read`, `failed`, `undelivered`, …
    pub status: String,
    /// Set when the message failed (for WhatsApp usually only after a status callback).
    pub error_code: Option<i64>,
    /// Twilio's text for `error_code`.
    pub error_message: Option<String>,
    /// Recipient as Twilio stored it.
    #[serde(default)]
    pub to: String,
    /// Sender; `null` at creation when a Messaging Service picks it.
    pub from: Option<String>,
    /// Text as stored by Twilio.
    pub body: Option<String>,
    /// `outbound-api`, `inbound`, …
    pub direction: Option<String>,
    /// Account that owns the message.
    pub account_sid: Option<String>,
    /// `MG…` when sent through a Messaging Service.
    pub messaging_service_sid: Option<String>,
    /// Media count — a string in Twilio's JSON (`"0"`).
    pub num_media: Option<String>,
    /// `Tue, 14 Oct 2025 09:21:07 +0000`.
    pub date_created: Option<String>,
    /// Null until the message left Twilio.
    pub date_sent: Option<String>,
    /// Last change.
    pub date_updated: Option<String>,
}

impl Message {
    /// `date_created` as UTC, when present and well-formed.
    pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let raw = self.date_created.as_deref()?;
        chrono::DateTime::parse_from_rfc2822(raw)
            .ok()
            .map(|d| d.with_timezone(&chrono::Utc))
    }

    /// Whether the status is final and failed (`failed` or `undelivered`).
    pub fn is_failed(&self) -> bool {
        matches!(self.status.as_str(), "failed" | "undelivered")
    }
}

/// One page of `GET …/Messages.json`. `messages` is required: a 200 without it (a proxy's
/// page, another API's shape) is not an empty list, or a lost send's lookup would find
/// "nothing sent" and send again.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagePage {
    pub(crate) messages: Vec<Message>,
    /// The next (older) page's path and query, absent or null on the last page.
    #[serde(default)]
    pub(crate) next_page_uri: Option<String>,
}

/// Whether `value` is `prefix` followed by 32 hex digits.
pub(crate) fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MG: &str = "MG0d4f8b2e6a1c9e3f7b5d1a8c4e2f6b9d";
    const HX: &str = "HX0d4f8b2e6a1c9e3f7b5d1a8c4e2f6b9d";

    fn base() -> SendMessage {
        SendMessage::text("whatsapp:+15551234567", "whatsapp:+14155238886", "hi")
    }

    fn rejected(msg: SendMessage) -> String {
        match msg.validate() {
            Err(TwilioError::InvalidRequest(why)) => why,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn valid_shapes_pass() {
        assert!(base().validate().is_ok());
        let template = SendMessage {
            from: None,
            messaging_service_sid: Some(MG.into()),
            body: None,
            content_sid: Some(HX.into()),
            content_variables: Some(r#"{"1":"Ana"}"#.into()),
            ..base()
        };
        assert!(template.validate().is_ok());
    }

    #[test]
    fn invalid_shapes_are_refused_with_the_reason() {
        assert!(
            rejected(SendMessage {
                to: " ".into(),
                ..base()
            })
            .contains("'To'")
        );
        assert!(
            rejected(SendMessage {
                from: None,
                ..base()
            })
            .contains("sender")
        );
        assert!(
            rejected(SendMessage {
                messaging_service_sid: Some(MG.into()),
                ..base()
            })
            .contains("only one")
        );
        assert!(
            rejected(SendMessage {
                body: None,
                ..base()
            })
            .contains("at least one")
        );
        assert!(
            rejected(SendMessage {
                body: Some("x".repeat(1601)),
                ..base()
            })
            .contains("1600")
        );
        assert!(
            rejected(SendMessage {
                media_urls: vec!["https://e/x".into(); 11],
                ..base()
            })
            .contains("10")
        );
        assert!(
            rejected(SendMessage {
                content_variables: Some("{}".into()),
                ..base()
            })
            .contains("requires")
        );
        assert!(
            rejected(SendMessage {
                content_sid: Some(HX.into()),
                content_variables: Some("[1]".into()),
                ..base()
            })
            .contains("JSON object")
        );
        assert!(
            rejected(SendMessage {
                content_sid: Some("HX1".into()),
                ..base()
            })
            .contains("ContentSid")
        );
    }

    #[test]
    fn body_limit_counts_characters_not_bytes() {
        let msg = SendMessage {
            body: Some("é".repeat(1600)),
            ..base()
        };
        assert!(msg.validate().is_ok());
    }

    #[test]
    fn form_keeps_order_and_repeats_media() {
        let msg = SendMessage {
            media_urls: vec!["https://a/1.jpg".into(), "https://a/2.jpg".into()],
            status_callback: Some("https://h/api/v1/whatsapp/status".into()),
            ..base()
        };
        let keys: Vec<&str> = msg.form_pairs().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "To",
                "From",
                "Body",
                "MediaUrl",
                "MediaUrl",
                "StatusCallback"
            ]
        );
    }

    #[test]
    fn parses_twilio_message_json() {
        let json = r#"{"sid":"SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b","status":"queued","error_code":null,
            "error_message":null,"to":"whatsapp:+15551234567","from":null,"num_media":"0",
            "date_created":"Tue, 14 Oct 2025 09:21:07 +0000","date_sent":null,"new_field":{"x":1}}"#;
        let msg: Message = serde_json::from_str(json).expect("parses");
        assert_eq!(msg.from, None);
        assert_eq!(
            msg.created_at().map(|d| d.to_rfc3339()),
            Some("2025-10-14T09:21:07+00:00".to_owned())
        );
        assert!(!msg.is_failed());
    }
}
