//! Property tests of the webhook parsers: `parse_form`, `InboundMessage::from_form` and
//! `StatusCallback::from_form` never panic on arbitrary bytes, and every well-formed webhook a
//! generator can build parses back to exactly the fields and parameters it was built from, in
//! any parameter order, with unknown parameters kept. Case counts keep a debug build in seconds.

use proptest::prelude::*;
use webhook_core::inbound::{InboundMessage, params_to_json, parse_form};
use webhook_core::status::{KNOWN_STATUSES, StatusCallback};
use webhook_core::worker::json_to_params;

/// Names the typed parser reads; generated unknown parameters never use them.
const KNOWN: [&str; 18] = [
    "MessageSid",
    "AccountSid",
    "From",
    "To",
    "Body",
    "ProfileName",
    "WaId",
    "MessageType",
    "MessagingServiceSid",
    "NumMedia",
    "Latitude",
    "Longitude",
    "Address",
    "Label",
    "ButtonText",
    "ButtonPayload",
    "OriginalRepliedMessageSid",
    "OriginalRepliedMessageSender",
];

fn sid(prefixes: &'static [&'static str]) -> impl Strategy<Value = String> {
    (prop::sample::select(prefixes), "[0-9a-fA-F]{32}").prop_map(|(p, hex)| format!("{p}{hex}"))
}

/// Any text, including the characters form encoding must escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,40}", "[&=+%# ;\n\r\t]{0,10}", "[ -~]{0,40}"]
}

fn non_empty_text() -> impl Strategy<Value = String> {
    text().prop_filter("required values are not empty", |s| !s.is_empty())
}

/// A well-formed inbound message's fields, and the parameters Twilio would post for it.
#[derive(Debug, Clone)]
struct Generated {
    message_sid: String,
    account_sid: String,
    from: String,
    to: String,
    body: Option<String>,
    profile_name: Option<String>,
    media: Vec<(String, Option<String>)>,
    location: Option<(f64, f64, Option<String>)>,
    button: Option<(String, Option<String>)>,
    unknown: Vec<(String, String)>,
}

impl Generated {
    fn params(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vec![
            ("MessageSid".into(), self.message_sid.clone()),
            ("AccountSid".into(), self.account_sid.clone()),
            ("From".into(), self.from.clone()),
            ("To".into(), self.to.clone()),
        ];
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                p.push((k.into(), v.clone()));
            }
        };
        opt("Body", &self.body);
        opt("ProfileName", &self.profile_name);
        if !self.media.is_empty() {
            p.push(("NumMedia".into(), self.media.len().to_string()));
        }
        for (i, (url, ct)) in self.media.iter().enumerate() {
            p.push((format!("MediaUrl{i}"), url.clone()));
            if let Some(ct) = ct {
                p.push((format!("MediaContentType{i}"), ct.clone()));
            }
        }
        if let Some((lat, lon, label)) = &self.location {
            p.push(("Latitude".into(), lat.to_string()));
            p.push(("Longitude".into(), lon.to_string()));
            if let Some(label) = label {
                p.push(("Label".into(), label.clone()));
            }
        }
        if let Some((text, payload)) = &self.button {
            p.push(("ButtonText".into(), text.clone()));
            if let Some(payload) = payload {
                p.push(("ButtonPayload".into(), payload.clone()));
            }
        }
        p.extend(self.unknown.iter().cloned());
        p
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    let media = prop::collection::vec(
        (
            "https://api\\.twilio\\.com/[A-Za-z0-9/]{1,30}",
            prop::option::of("(image|audio|video)/[a-z0-9]{1,8}"),
        ),
        0..=10,
    );
    let location = prop::option::of((
        -90.0f64..=90.0,
        -180.0f64..=180.0,
        prop::option::of(non_empty_text()),
    ));
    let button = prop::option::of((non_empty_text(), prop::option::of(non_empty_text())));
    let unknown = prop::collection::vec(
        ("[A-Z][A-Za-z0-9]{0,15}|\\PC{1,8}", text()).prop_filter("unknown names only", |(k, _)| {
            !KNOWN.contains(&k.as_str())
                && !k.starts_with("MediaUrl")
                && !k.starts_with("MediaContentType")
        }),
        0..8,
    );
    (
        (
            sid(&["SM", "MM"]),
            sid(&["AC"]),
            non_empty_text(),
            non_empty_text(),
        ),
        (prop::option::of(text()), prop::option::of(non_empty_text())),
        (media, location, button, unknown),
    )
        .prop_map(
            |(
                (message_sid, account_sid, from, to),
                (body, profile_name),
                (media, location, button, unknown),
            )| {
                Generated {
                    message_sid,
                    account_sid,
                    from,
                    to,
                    body,
                    profile_name,
                    media,
                    location,
                    button,
                    unknown,
                }
            },
        )
}

fn encode(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let pairs = parse_form(&body);
        let _ = InboundMessage::from_form(&body);
        let _ = StatusCallback::from_form(&body);
        let _ = InboundMessage::from_params(pairs.clone());
        let _ = StatusCallback::from_params(pairs);
    }

    #[test]
    fn arbitrary_values_for_known_names_never_panic(
        pairs in prop::collection::vec(
            (prop::sample::select(&[
                "MessageSid", "AccountSid", "From", "To", "NumMedia", "MediaUrl0",
                "MediaUrl9", "Latitude", "Longitude", "ButtonText", "MessageStatus",
                "SmsStatus", "SmsSid", "ErrorCode",
            ][..]), "\\PC{0,40}|[0-9eE.+-]{0,12}|(SM|MM|AC)[0-9a-fA-F]{30,34}"),
            0..20,
        )
    ) {
        let pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let _ = InboundMessage::from_params(pairs.clone());
        let _ = StatusCallback::from_params(pairs.clone());
        // Through the wire format as well.
        let body = encode(&pairs);
        let _ = InboundMessage::from_form(body.as_bytes());
        let _ = StatusCallback::from_form(body.as_bytes());
    }

    #[test]
    fn well_formed_inbound_messages_round_trip(g in generated(), seed in any::<u64>()) {
        let mut params = g.params();
        // Twilio's parameter order is not part of the contract.
        let n = params.len();
        if n > 1 {
            let mut x = seed | 1;
            for i in (1..n).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                params.swap(i, (x % (i as u64 + 1)) as usize);
            }
        }
        let body = encode(&params);
        let m = InboundMessage::from_form(body.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&m.message_sid, &g.message_sid);
        prop_assert_eq!(&m.account_sid, &g.account_sid);
        prop_assert_eq!(&m.from, &g.from);
        prop_assert_eq!(&m.to, &g.to);
        prop_assert_eq!(m.body, g.body.clone().unwrap_or_default());
        prop_assert_eq!(m.profile_name, g.profile_name.clone());
        prop_assert_eq!(m.media.len(), g.media.len());
        for (got, (url, ct)) in m.media.iter().zip(&g.media) {
            prop_assert_eq!(&got.url, url);
            prop_assert_eq!(&got.content_type, ct);
        }
        match (&m.location, &g.location) {
            (Some(got), Some((lat, lon, label))) => {
                prop_assert_eq!(got.latitude, *lat);
                prop_assert_eq!(got.longitude, *lon);
                prop_assert_eq!(&got.label, label);
            }
            (None, None) => {}
            (got, want) => prop_assert!(false, "location {got:?} vs {want:?}"),
        }
        match (&m.button, &g.button) {
            (Some(got), Some((text, payload))) => {
                prop_assert_eq!(&got.text, text);
                prop_assert_eq!(&got.payload, payload);
            }
            (None, None) => {}
            (got, want) => prop_assert!(false, "button {got:?} vs {want:?}"),
        }
        // Every parameter kept, in the order received, unknown ones included…
        prop_assert_eq!(&m.params, &params);
        // … and what is stored (JSON) gives the same parameters back to the worker.
        prop_assert_eq!(sorted(json_to_params(&params_to_json(&m.params))), sorted(params));
    }

    #[test]
    fn status_callbacks_round_trip(
        message_sid in sid(&["SM", "MM"]),
        status in prop::sample::select(&KNOWN_STATUSES[..]),
        upper in any::<bool>(),
        legacy in any::<bool>(),
        error_code in prop::option::of(any::<i64>()),
        extra in prop::collection::vec(("[A-Z][a-z]{1,10}", text()), 0..6),
    ) {
        let (sid_key, status_key) = if legacy { ("SmsSid", "SmsStatus") } else { ("MessageSid", "MessageStatus") };
        let shown = if upper { status.to_ascii_uppercase() } else { status.to_owned() };
        let mut params = vec![
            (sid_key.to_owned(), message_sid.clone()),
            (status_key.to_owned(), shown),
        ];
        if let Some(code) = error_code {
            params.push(("ErrorCode".to_owned(), code.to_string()));
        }
        params.extend(extra.into_iter().filter(|(k, _)| {
            !["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "ErrorMessage", "From", "To"]
                .contains(&k.as_str())
        }));
        let cb = StatusCallback::from_form(encode(&params).as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&cb.message_sid, &message_sid);
        prop_assert_eq!(cb.status.as_str(), status);
        prop_assert_eq!(cb.error_code, error_code);
        prop_assert_eq!(&cb.params, &params);
    }

    #[test]
    fn malformed_required_values_are_errors_not_panics(
        g in generated(),
        bad_sid in "\\PC{0,40}".prop_filter("not a SID", |s| {
            !(s.len() == 34
                && (s.starts_with("SM") || s.starts_with("MM"))
                && s.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit))
        }),
        num_media in 11u64..u64::MAX,
    ) {
        let mut params = g.params();
        params[0].1 = bad_sid;
        prop_assert!(InboundMessage::from_params(params).is_err());
        let mut params = g.params();
        params.retain(|(k, _)| k != "NumMedia");
        params.push(("NumMedia".into(), num_media.to_string()));
        prop_assert!(InboundMessage::from_params(params).is_err());
    }
}
