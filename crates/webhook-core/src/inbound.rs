//! Typed view of Twilio's inbound WhatsApp message webhook.
//!
//! Twilio posts `application/x-www-form-urlencoded` parameters and "will occasionally add new
//! parameters without advance notice", so parsing keeps every pair it received (in order, repeats
//! included) next to the typed fields: nothing Twilio sent is thrown away, and an unknown parameter
//! is never an error.

use std::fmt;

use twilio_signature::FormBody;

/// Why a webhook body could not be turned into an [`InboundMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A parameter every Twilio message webhook carries is missing or empty.
    #[error("missing required parameter {0}")]
    Missing(&'static str),
    /// A parameter is present but its value has the wrong shape.
    #[error("invalid value for {name}: {reason}")]
    Invalid {
        /// The parameter's name as Twilio sends it.
        name: &'static str,
        /// What is wrong with it, for the operator.
        reason: String,
    },
}

/// One media attachment (`MediaUrlN` / `MediaContentTypeN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Twilio-hosted URL of the media (may need Basic auth to download).
    pub url: String,
    /// MIME type reported by Twilio, e.g. `image/jpeg`.
    pub content_type: Option<String>,
}

/// A shared location (`Latitude`, `Longitude`, optional `Address` / `Label`).
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Street address for named places.
    pub address: Option<String>,
    /// Name of the place.
    pub label: Option<String>,
}

/// A quick-reply / interactive button the user tapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonReply {
    /// Text shown on the button.
    pub text: String,
    /// Developer-defined payload of the button, if any.
    pub payload: Option<String>,
}

/// The message this one replies to (the user quoted one of our messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepliedTo {
    /// SID of the quoted message (one of ours).
    pub message_sid: String,
    /// Address that sent the quoted message.
    pub sender: Option<String>,
}

/// An inbound WhatsApp message as Twilio delivered it.
#[derive(Clone, PartialEq)]
pub struct InboundMessage {
    /// `MessageSid`: `SM…` or `MM…`, 34 characters; the deduplication key.
    pub message_sid: String,
    /// `AccountSid` of the receiving account.
    pub account_sid: String,
    /// `From`, e.g. `whatsapp:+15551234567`.
    pub from: String,
    /// `To`, our WhatsApp sender, e.g. `whatsapp:+14155238886`.
    pub to: String,
    /// `Body`: empty for media-only messages.
    pub body: String,
    /// `ProfileName`: the user's WhatsApp display name.
    pub profile_name: Option<String>,
    /// `WaId`: the user's WhatsApp ID (digits of `From`).
    pub wa_id: Option<String>,
    /// `MessageType` (`text`, `image`, `interactive`, …) when Twilio sends it.
    pub message_type: Option<String>,
    /// `MessagingServiceSid` when the sender belongs to a Messaging Service.
    pub messaging_service_sid: Option<String>,
    /// Attachments, in `MediaUrl0..` order.
    pub media: Vec<Media>,
    /// Location share, when the message is one.
    pub location: Option<Location>,
    /// Button reply, when the user tapped one.
    pub button: Option<ButtonReply>,
    /// The message being replied to, when the user quoted one.
    pub replied_to: Option<RepliedTo>,
    /// Every parameter as received, unknown ones included.
    pub params: Vec<(String, String)>,
}

impl fmt::Debug for InboundMessage {
    // Message bodies are user content: keep them out of Debug so a stray `{:?}` in a log line
    // does not copy private text into log storage.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundMessage")
            .field("message_sid", &self.message_sid)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("body_len", &self.body.len())
            .field("media", &self.media.len())
            .field("params", &self.params.len())
            .finish_non_exhaustive()
    }
}

/// Parses a raw `application/x-www-form-urlencoded` body into its pairs (repeats kept, in order).
///
/// Decodes as the WHATWG URL standard says (what `form_urlencoded` and every web framework do);
/// a name or value that is not UTF-8 once decoded has its bad bytes replaced with U+FFFD.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    match FormBody::parse(body) {
        Ok(form) => form_pairs(&form),
        // Only bodies the signature check refuses get here: keep their lossy decoding.
        Err(_) => form_urlencoded::parse(body).into_owned().collect(),
    }
}

/// The pairs of a form body already decoded by the signature check
/// ([`twilio_signature::Validator::validated_form_body`]), as [`parse_form`] returns them.
pub fn form_pairs(form: &FormBody) -> Vec<(String, String)> {
    form.iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// First value of `name` in `params`.
pub(crate) fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn non_empty(params: &[(String, String)], name: &str) -> Option<String> {
    first(params, name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn required(params: &[(String, String)], name: &'static str) -> Result<String, ParseError> {
    non_empty(params, name).ok_or(ParseError::Missing(name))
}

/// `MediaUrl0` … `MediaUrl9`: Twilio sends at most 10 media per message.
const MEDIA_URL: [&str; 10] = [
    "MediaUrl0",
    "MediaUrl1",
    "MediaUrl2",
    "MediaUrl3",
    "MediaUrl4",
    "MediaUrl5",
    "MediaUrl6",
    "MediaUrl7",
    "MediaUrl8",
    "MediaUrl9",
];

/// `MediaContentType0` … `MediaContentType9`.
const MEDIA_CONTENT_TYPE: [&str; 10] = [
    "MediaContentType0",
    "MediaContentType1",
    "MediaContentType2",
    "MediaContentType3",
    "MediaContentType4",
    "MediaContentType5",
    "MediaContentType6",
    "MediaContentType7",
    "MediaContentType8",
    "MediaContentType9",
];

/// Checks the shape of a Twilio SID: two-letter prefix from `prefixes`, then 32 hex digits.
pub(crate) fn check_sid(
    name: &'static str,
    value: &str,
    prefixes: &[&str],
) -> Result<(), ParseError> {
    let ok = value.len() == 34
        && prefixes.iter().any(|p| value.starts_with(p))
        && value.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
    if ok {
        Ok(())
    } else {
        Err(ParseError::Invalid {
            name,
            reason: format!(
                "expected {} followed by 32 hex digits, got {} characters",
                prefixes.join(" or "),
                value.chars().count()
            ),
        })
    }
}

impl InboundMessage {
    /// Whether `params` carry an inbound message's mark: `SmsStatus` `received` (or
    /// `receiving`), which Twilio sends on every inbound message and never on a status
    /// callback of a message we sent.
    ///
    /// ```
    /// use webhook_core::inbound::{parse_form, InboundMessage};
    /// assert!(InboundMessage::is_inbound(&parse_form(b"SmsStatus=received&Body=hi")));
    /// assert!(!InboundMessage::is_inbound(&parse_form(b"SmsStatus=delivered&MessageStatus=delivered")));
    /// assert!(!InboundMessage::is_inbound(&parse_form(b"Body=hi")));
    /// ```
    pub fn is_inbound(params: &[(String, String)]) -> bool {
        params.iter().any(|(k, v)| {
            k == "SmsStatus"
                && (v.eq_ignore_ascii_case("received") || v.eq_ignore_ascii_case("receiving"))
        })
    }

    /// Builds the typed message from decoded webhook parameters.
    ///
    /// Requires `MessageSid`, `AccountSid`, `From` and `To`; everything else is optional.
    ///
    /// ```
    /// use webhook_core::inbound::{parse_form, InboundMessage};
    /// let params = parse_form(b"MessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f809&\
    ///     AccountSid=AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e&From=whatsapp%3A%2B15551234567&\
    ///     To=whatsapp%3A%2B14155238886&Body=Hello&ProfileName=Ana");
    /// let msg = InboundMessage::from_params(params).unwrap();
    /// assert_eq!(msg.body, "Hello");
    /// assert_eq!(msg.profile_name.as_deref(), Some("Ana"));
    /// ```
    pub fn from_params(params: Vec<(String, String)>) -> Result<Self, ParseError> {
        let message_sid = required(&params, "MessageSid")?;
        check_sid("MessageSid", &message_sid, &["SM", "MM"])?;
        let account_sid = required(&params, "AccountSid")?;
        check_sid("AccountSid", &account_sid, &["AC"])?;
        let from = required(&params, "From")?;
        let to = required(&params, "To")?;
        let body = first(&params, "Body").unwrap_or_default().to_owned();

        let num_media = match first(&params, "NumMedia") {
            None | Some("") => 0,
            Some(v) => v.parse::<usize>().map_err(|_| ParseError::Invalid {
                name: "NumMedia",
                reason: "not a whole number".into(),
            })?,
        };
        // Twilio allows at most 10 media per message; a larger count is not a real webhook and
        // must not make us scan for thousands of keys.
        if num_media > MEDIA_URL.len() {
            return Err(ParseError::Invalid {
                name: "NumMedia",
                reason: format!("{num_media} is more than the 10 Twilio allows"),
            });
        }
        let media = MEDIA_URL
            .iter()
            .zip(MEDIA_CONTENT_TYPE)
            .take(num_media)
            .filter_map(|(url, content_type)| {
                Some(Media {
                    url: non_empty(&params, url)?,
                    content_type: non_empty(&params, content_type),
                })
            })
            .collect();

        let location = match (first(&params, "Latitude"), first(&params, "Longitude")) {
            (Some(lat), Some(lon)) if !lat.is_empty() && !lon.is_empty() => {
                let parse = |name: &'static str, v: &str, limit: f64| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && x.abs() <= limit)
                        .ok_or_else(|| ParseError::Invalid {
                            name,
                            reason: format!("not a coordinate within ±{limit}"),
                        })
                };
                Some(Location {
                    latitude: parse("Latitude", lat, 90.0)?,
                    longitude: parse("Longitude", lon, 180.0)?,
                    address: non_empty(&params, "Address"),
                    label: non_empty(&params, "Label"),
                })
            }
            _ => None,
        };

        let button = non_empty(&params, "ButtonText").map(|text| ButtonReply {
            text,
            payload: non_empty(&params, "ButtonPayload"),
        });
        let replied_to =
            non_empty(&params, "OriginalRepliedMessageSid").map(|message_sid| RepliedTo {
                message_sid,
                sender: non_empty(&params, "OriginalRepliedMessageSender"),
            });

        Ok(InboundMessage {
            message_sid,
            account_sid,
            from,
            to,
            body,
            profile_name: non_empty(&params, "ProfileName"),
            wa_id: non_empty(&params, "WaId"),
            message_type: non_empty(&params, "MessageType"),
            messaging_service_sid: non_empty(&params, "MessagingServiceSid"),
            media,
            location,
            button,
            replied_to,
            params,
        })
    }

    /// Parses a raw form body (see [`InboundMessage::from_params`]).
    pub fn from_form(body: &[u8]) -> Result<Self, ParseError> {
        Self::from_params(parse_form(body))
    }

    /// The raw parameters as a JSON object (repeated keys become arrays), for storage.
    pub fn params_json(&self) -> String {
        params_to_json(&self.params)
    }

    /// The row [`App::record`](crate::App::record) hands to the store for this message.
    pub fn to_row(&self, idempotency_token: Option<String>) -> store::NewInbound {
        store::NewInbound {
            message_sid: self.message_sid.clone(),
            account_sid: self.account_sid.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            body: self.body.clone(),
            num_media: i32::try_from(self.media.len()).unwrap_or(0),
            profile_name: self.profile_name.clone(),
            wa_id: self.wa_id.clone(),
            params_json: self.params_json(),
            idempotency_token,
        }
    }

    /// A short description of the content for logs: kind and sizes, never the text itself.
    pub fn kind(&self) -> &'static str {
        if self.button.is_some() {
            "button"
        } else if self.location.is_some() {
            "location"
        } else if !self.media.is_empty() {
            "media"
        } else {
            "text"
        }
    }
}

/// Serialises pairs as a JSON object; a key that repeats maps to an array of its values.
///
/// Keys come out in byte order and a repeated key's values in arrival order, which is what
/// serialising a `serde_json::Map` gives; the object is written straight into one buffer
/// (strings escaped by `serde_json`) instead of cloning every pair into a map first.
pub fn params_to_json(params: &[(String, String)]) -> String {
    // A stable sort keeps a repeated key's values in arrival order.
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let text: usize = params.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut out: Vec<u8> = Vec::with_capacity(2 + text + text / 8 + 6 * params.len());
    out.push(b'{');
    for (n, same_key) in sorted.chunk_by(|a, b| a.0 == b.0).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        push_json_str(&mut out, &same_key[0].0);
        out.push(b':');
        if let [(_, only)] = same_key {
            push_json_str(&mut out, only);
        } else {
            out.push(b'[');
            for (i, (_, value)) in same_key.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(&mut out, value);
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    // Only `&str`s and ASCII punctuation were written, so this is UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends `s` as a JSON string literal, escaped by `serde_json`.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = include_str!("../../../fixtures/inbound-whatsapp-text.form");
    const MEDIA: &str = include_str!("../../../fixtures/inbound-whatsapp-media.form");
    const BUTTON: &str = include_str!("../../../fixtures/inbound-whatsapp-button.form");

    #[test]
    fn text_fixture_parses_every_typed_field() {
        let m = InboundMessage::from_form(TEXT.as_bytes()).unwrap();
        assert_eq!(m.message_sid, "SM1a2b3c4d5e6f708192a3b4c5d6e7f809");
        assert_eq!(m.account_sid, "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e");
        assert_eq!(m.from, "whatsapp:+15551234567");
        assert_eq!(m.to, "whatsapp:+14155238886");
        assert_eq!(m.body, "Hello, I need help with my order #1234");
        assert_eq!(m.profile_name.as_deref(), Some("Ana Souza"));
        assert_eq!(m.wa_id.as_deref(), Some("15551234567"));
        assert_eq!(m.message_type.as_deref(), Some("text"));
        assert!(m.media.is_empty() && m.button.is_none() && m.location.is_none());
        assert_eq!(m.kind(), "text");
        // Unknown parameters are kept.
        assert!(
            m.params
                .iter()
                .any(|(k, v)| k == "ReferralNumMedia" && v == "0")
        );
    }

    #[test]
    fn media_fixture_has_one_attachment() {
        let m = InboundMessage::from_form(MEDIA.as_bytes()).unwrap();
        assert_eq!(m.media.len(), 1);
        assert!(
            m.media[0]
                .url
                .starts_with("https://api.twilio.com/2010-04-01/Accounts/")
        );
        assert_eq!(m.media[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.kind(), "media");
    }

    #[test]
    fn button_fixture_has_button_and_replied_to() {
        let m = InboundMessage::from_form(BUTTON.as_bytes()).unwrap();
        let b = m.button.as_ref().unwrap();
        assert_eq!(b.text, "Yes, confirm");
        assert_eq!(b.payload.as_deref(), Some("confirm_order_1234"));
        let r = m.replied_to.as_ref().unwrap();
        assert_eq!(r.message_sid, "SM8e2c4a6b0d1f3e5a7c9b2d4f6a8c0e1b");
        assert_eq!(r.sender.as_deref(), Some("whatsapp:+14155238886"));
        assert_eq!(m.kind(), "button");
    }

    #[test]
    fn location_is_parsed_and_bounded() {
        let base = "MessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f809&AccountSid=AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e&From=whatsapp%3A%2B1&To=whatsapp%3A%2B2";
        let m = InboundMessage::from_form(
            format!("{base}&Latitude=-23.5505&Longitude=-46.6333&Label=Office").as_bytes(),
        )
        .unwrap();
        let loc = m.location.unwrap();
        assert_eq!(loc.latitude, -23.5505);
        assert_eq!(loc.label.as_deref(), Some("Office"));
        let err = InboundMessage::from_form(format!("{base}&Latitude=91&Longitude=0").as_bytes())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for Latitude: not a coordinate within ±90"
        );
    }

    #[test]
    fn missing_and_malformed_required_params_are_errors() {
        assert_eq!(
            InboundMessage::from_form(b"Body=hi").unwrap_err(),
            ParseError::Missing("MessageSid")
        );
        let err = InboundMessage::from_form(b"MessageSid=SMnothex&AccountSid=AC&From=a&To=b")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value for MessageSid: expected SM or MM followed by 32 hex digits, got 8 characters"
        );
        let err = InboundMessage::from_form(
            b"MessageSid=SM1a2b3c4d5e6f708192a3b4c5d6e7f809&AccountSid=AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e&From=a&To=b&NumMedia=5000",
        )
        .unwrap_err();
        assert!(err.to_string().contains("more than the 10 Twilio allows"));
    }

    #[test]
    fn garbage_bytes_never_panic() {
        for body in [
            &b"\xff\xfe%%%&&&==="[..],
            b"",
            b"=",
            b"&&",
            b"%zz=%",
            b"MessageSid",
        ] {
            assert!(InboundMessage::from_form(body).is_err());
        }
    }

    #[test]
    fn params_json_keeps_repeats_as_arrays() {
        let json = params_to_json(&[
            ("a".into(), "1".into()),
            ("b".into(), "x".into()),
            ("a".into(), "2".into()),
        ]);
        assert_eq!(json, r#"{"a":["1","2"],"b":"x"}"#);
    }

    #[test]
    fn params_json_escapes_like_serde_json() {
        let json = params_to_json(&[
            (
                "Body".into(),
                "say \"hi\"\\ \n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é 😀 </script>".into(),
            ),
            ("".into(), "".into()),
        ]);
        // DEL, non-ASCII and '/' are not escaped; the key order is byte order.
        assert_eq!(
            json,
            "{\"\":\"\",\"Body\":\"say \\\"hi\\\"\\\\ \\n\\r\\t\\b\\f\\u0001\\u001f\u{7f} é 😀 </script>\"}"
        );
        assert_eq!(params_to_json(&[]), "{}");
    }

    /// What `params_to_json` returned before it wrote the JSON itself: a `serde_json::Map`.
    fn params_to_json_via_map(params: &[(String, String)]) -> String {
        let mut map = serde_json::Map::new();
        for (k, v) in params {
            match map.get_mut(k) {
                None => {
                    map.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
                Some(serde_json::Value::Array(values)) => values.push(v.clone().into()),
                Some(existing) => {
                    let prev = existing.take();
                    *existing = serde_json::Value::Array(vec![prev, v.clone().into()]);
                }
            }
        }
        serde_json::Value::Object(map).to_string()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn params_json_is_what_a_serde_json_map_gives(
            params in proptest::collection::vec(
                ("[AaBb\"\\\n]{0,3}|\\PC{0,6}|(MediaUrl|Medi\u{0})?[0-9a\u{0}]{0,3}", "\\PC{0,24}|[\u{0}-\u{7f}]{0,24}"),
                0..12,
            )
        ) {
            proptest::prop_assert_eq!(params_to_json(&params), params_to_json_via_map(&params));
        }

        #[test]
        fn parse_form_decodes_like_form_urlencoded(
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"&=+%aZ9 \xc3\xa9\xff".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..48,
            )
        ) {
            let expected: Vec<(String, String)> =
                form_urlencoded::parse(&body).into_owned().collect();
            proptest::prop_assert_eq!(parse_form(&body), expected);
        }

        #[test]
        fn parse_form_decodes_percent_sequences_like_form_urlencoded(
            body in "([a-zA-Z0-9=&+%. ]|%[0-9a-fA-F]{2}|%[cC][23]%[89aAbB][0-9a-fA-F]|%[eEfF][0-9a-fA-F]|é|😀){0,40}"
        ) {
            let expected: Vec<(String, String)> =
                form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            proptest::prop_assert_eq!(parse_form(body.as_bytes()), expected);
        }
    }

    #[test]
    fn debug_hides_the_body() {
        let m = InboundMessage::from_form(TEXT.as_bytes()).unwrap();
        let dbg = format!("{m:?}");
        assert!(!dbg.contains("my order"), "{dbg}");
        assert!(dbg.contains("SM1a2b3c4d5e6f708192a3b4c5d6e7f809"));
    }
}
