//! Deciding the reply: the [`Handler`] trait and the default [`AutoReply`].
//!
//! A handler sees the typed inbound message and returns what to send back, or nothing. It runs on
//! the background worker, after Twilio already has its 200, so it may take its time; it must not
//! block the async runtime for long (do heavy work in `spawn_blocking`).

use crate::inbound::InboundMessage;

/// Parameter the `validate-webhook` CLI adds to its signed probe messages. A message carrying it is
/// recorded like any other but never answered, so checks cannot text a real user.
pub const PROBE_PARAM: &str = "ValidateWebhookProbe";

/// What to send back to the user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Free-form text (only allowed within WhatsApp's 24-hour customer-service window).
    pub body: Option<String>,
    /// Media to attach (public URLs; at most 10).
    pub media_urls: Vec<String>,
    /// An approved template (`HX…`), required outside the 24-hour window.
    pub content_sid: Option<String>,
    /// JSON object of template variables for `content_sid`.
    pub content_variables: Option<String>,
}

impl Reply {
    /// A plain text reply.
    pub fn text(body: impl Into<String>) -> Self {
        Reply {
            body: Some(body.into()),
            ..Reply::default()
        }
    }
}

/// Decides how to answer an inbound message.
///
/// ```
/// use webhook_core::reply::{Handler, Reply};
/// use webhook_core::inbound::InboundMessage;
///
/// struct Echo;
/// impl Handler for Echo {
///     fn reply(&self, msg: &InboundMessage) -> Option<Reply> {
///         (!msg.body.is_empty()).then(|| Reply::text(format!("You said: {}", msg.body)))
///     }
/// }
/// ```
///
/// A panic in `reply` costs only that message: it is marked `failed` with an error line naming
/// it and the panic's text, and is not answered (the same input would panic again). This needs
/// the default `panic = "unwind"`; and a handler whose shared state sits behind a `Mutex` must
/// cope with the lock being poisoned by the panicking call, or every later call panics too.
pub trait Handler: Send + Sync + 'static {
    /// The reply to send, or `None` to acknowledge without answering.
    fn reply(&self, msg: &InboundMessage) -> Option<Reply>;
}

/// The default handler: a text reply from a template (`AUTO_REPLY_TEMPLATE`).
///
/// `{name}` becomes the sender's WhatsApp profile name (or "there"), `{text}` the message text
/// (or a description of what was sent when there is no text).
#[derive(Debug, Clone)]
pub struct AutoReply {
    template: String,
}

impl AutoReply {
    /// A handler answering every message with `template`; an empty template means "never reply".
    pub fn new(template: impl Into<String>) -> Self {
        AutoReply {
            template: template.into(),
        }
    }
}

impl Handler for AutoReply {
    fn reply(&self, msg: &InboundMessage) -> Option<Reply> {
        if self.template.trim().is_empty() {
            return None;
        }
        let name = msg.profile_name.as_deref().unwrap_or("there");
        let text = if !msg.body.is_empty() {
            msg.body.clone()
        } else if let Some(b) = &msg.button {
            b.text.clone()
        } else if let Some(loc) = &msg.location {
            format!("a location ({}, {})", loc.latitude, loc.longitude)
        } else if !msg.media.is_empty() {
            format!("{} attachment(s)", msg.media.len())
        } else {
            "an empty message".to_owned()
        };
        Some(Reply::text(fit(&self.template, name, &text)))
    }
}

/// The template filled in, at most [`twilio_client::MAX_BODY_CHARS`] characters (Twilio
/// refuses a longer body, and a WhatsApp message can itself be that long): the quoted text is
/// shortened with `…` first, the whole reply only if the template alone is too long.
fn fit(template: &str, name: &str, text: &str) -> String {
    const MAX: usize = twilio_client::MAX_BODY_CHARS;
    let render = |t: &str| template.replace("{name}", name).replace("{text}", t);
    let mut body = render(text);
    let over = body.chars().count().saturating_sub(MAX);
    if over > 0 {
        let quoted = template.matches("{text}").count().max(1);
        let keep = text
            .chars()
            .count()
            .saturating_sub(over.div_ceil(quoted) + 1);
        let short: String = text.chars().take(keep).chain(['…']).collect();
        body = render(&short);
    }
    if body.chars().count() > MAX {
        body = body.chars().take(MAX - 1).chain(['…']).collect();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(extra: &str) -> InboundMessage {
        InboundMessage::from_form(
            format!(
                "MessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f809&AccountSid=AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e&From=whatsapp%3A%2B1&To=whatsapp%3A%2B2{extra}"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn template_fills_name_and_text() {
        let r = AutoReply::new("Hi {name}! You said: {text}")
            .reply(&msg("&Body=hello&ProfileName=Ana"))
            .unwrap();
        assert_eq!(r.body.as_deref(), Some("Hi Ana! You said: hello"));
    }

    #[test]
    fn media_only_and_nameless_messages_still_read_well() {
        let r = AutoReply::new("Hi {name}! You sent {text}")
            .reply(&msg("&Body=&NumMedia=1&MediaUrl0=https%3A%2F%2Fx"))
            .unwrap();
        assert_eq!(
            r.body.as_deref(),
            Some("Hi there! You sent 1 attachment(s)")
        );
    }

    #[test]
    fn a_reply_quoting_a_long_message_fits_twilio_s_limit() {
        // A WhatsApp message may be 1600 characters; quoting it whole would be refused.
        let long = "é".repeat(1600);
        let r = AutoReply::new("Hi {name}! We received your message: {text}")
            .reply(&msg(&format!("&Body={long}&ProfileName=Ana")))
            .unwrap();
        let body = r.body.unwrap();
        assert_eq!(body.chars().count(), twilio_client::MAX_BODY_CHARS);
        assert!(
            body.starts_with("Hi Ana! We received your message: éé"),
            "{body}"
        );
        assert!(body.ends_with("é…"), "{body}");
        // Quoted twice, and a template longer than the limit on its own.
        let twice = fit("{text} / {text}", "x", &"a".repeat(1000));
        assert!(
            (1599..=1600).contains(&twice.chars().count()),
            "{}",
            twice.len()
        );
        let huge = fit(&"b".repeat(2000), "x", "hi");
        assert_eq!(huge.chars().count(), twilio_client::MAX_BODY_CHARS);
        // Short replies are untouched.
        assert_eq!(fit("Hi {name}: {text}", "Ana", "yo"), "Hi Ana: yo");
    }

    #[test]
    fn empty_template_disables_replies() {
        assert_eq!(AutoReply::new("  ").reply(&msg("&Body=x")), None);
    }
}
