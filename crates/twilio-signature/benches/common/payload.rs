//! The benchmark payload shared by `validate.rs` and `ratio.rs`: a WhatsApp text message as
//! Twilio posts it, 16 parameters in capture order.

/// The auth token of the fixtures.
pub(crate) const TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// The configured webhook URL.
pub(crate) const URL: &str = "https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook";

/// The 16 parameters.
pub(crate) const PARAMS: [(&str, &str); 16] = [
    ("SmsMessageSid", "SM1a2b3c4d5e6f708192a3b4c5d6e7f809"),
    ("NumMedia", "0"),
    ("ProfileName", "Ana Souza"),
    ("MessageType", "text"),
    ("SmsSid", "SM1a2b3c4d5e6f708192a3b4c5d6e7f809"),
    ("WaId", "15551234567"),
    ("SmsStatus", "received"),
    ("Body", "Hello, I need help with my order #1234"),
    ("To", "whatsapp:+14155238886"),
    ("NumSegments", "1"),
    ("ReferralNumMedia", "0"),
    ("MessageSid", "SM1a2b3c4d5e6f708192a3b4c5d6e7f809"),
    ("AccountSid", "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e"),
    ("From", "whatsapp:+15551234567"),
    ("ApiVersion", "2010-04-01"),
    ("Forwarded", "false"),
];

/// `PARAMS` form-encoded as Twilio sends them (`+` for spaces, `%XX` for the rest).
pub(crate) fn form_body() -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    PARAMS
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
